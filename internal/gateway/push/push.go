// Package push brings the gateway its config from the API server (docs/design.md#config-travel):
// it watches ConfigMap offerfeed-gateway of the pod's namespace and the gateway's own Pod, each
// by name (a field selector, so a Role with resourceNames grants it), hands what it sees to the
// gateway (gateway.ApplyPushed, gateway.SetPushedPodLabels), and reports on the Pod what the
// gateway enforces (annotations offerfeed.dev/enforced-policy-hash and
// offerfeed.dev/enforced-generation).
//
// It authenticates with a token file, re-read as it rotates (a projected service-account
// token bound to the pod). On API errors it reconnects with exponential backoff and full jitter,
// keeps the last config in force meanwhile, and never gives up: Run returns only when its
// context ends.
package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/gateway"
)

// Defaults of Options.
const (
	// DefaultBackoffBase is the first reconnection delay's upper bound; it doubles with each
	// failure in a row up to DefaultBackoffCap.
	DefaultBackoffBase = 500 * time.Millisecond
	// DefaultBackoffCap bounds the delay between two attempts: after an outage, gateways come
	// back spread evenly over at most this long.
	DefaultBackoffCap = 30 * time.Second
	// DefaultWatchTimeout is the shortest a watch lasts before the API server ends it; each
	// watch asks for between it and twice it, so that watches do not all end at once.
	DefaultWatchTimeout = 5 * time.Minute
	// healthyWatch is how long a watch must have lasted for the next failure to start the
	// backoff over (a watch that ends at once is a failure, not a reset).
	healthyWatch = 10 * time.Second
	// watchGrace is how long after its requested timeout the client ends a watch itself.
	watchGrace = 30 * time.Second
)

// Options configure Run.
type Options struct {
	// Config reaches the API server as the gateway: host, CA and token file (BearerTokenFile,
	// re-read as it rotates). See RESTConfig.
	Config *rest.Config
	// Namespace and PodName are the gateway's pod; required.
	Namespace, PodName string
	// Gateway receives the config and the pod's labels.
	Gateway *gateway.Gateway
	// Logger receives structured logs; the zero value discards them.
	Logger logr.Logger
	// Registry receives the metrics of the API requests; nil registers nothing.
	Registry prometheus.Registerer
	// BackoffBase and BackoffCap shape the reconnection delays: attempt n waits a uniformly
	// random time in [0, min(BackoffCap, BackoffBase*2^n)) ("full jitter"). Zero: the defaults.
	BackoffBase, BackoffCap time.Duration
	// WatchTimeout: each watch lasts a random time between it and twice it. Zero: the default.
	WatchTimeout time.Duration
}

// RESTConfig returns the config to reach the API server at host (an URL; empty: from
// $KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT, as in a pod) with the token of
// tokenFile (re-read by client-go as the kubelet rotates it) and the CA of caFile. The client is
// not rate limited by client-go: a gateway makes a handful of requests an hour.
func RESTConfig(host, tokenFile, caFile string) (*rest.Config, error) {
	if host == "" {
		h, p := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if h == "" || p == "" {
			return nil, errors.New("no API server: set --kube-api-server, or run in a pod ($KUBERNETES_SERVICE_HOST and _PORT)")
		}
		host = "https://" + net.JoinHostPort(h, p)
	}
	if _, err := os.Stat(tokenFile); err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	return &rest.Config{
		Host:            host,
		BearerTokenFile: tokenFile,
		TLSClientConfig: rest.TLSClientConfig{CAFile: caFile},
		UserAgent:       "offerfeed-gateway",
		QPS:             -1, // no client-side limit: the backoff spaces the requests
		Timeout:         0,  // watches are long; each request's context bounds it
	}, nil
}

// pusher runs the watches and the reporter of one gateway.
type pusher struct {
	opts   Options
	cs     kubernetes.Interface
	log    logr.Logger
	m      *metrics
	base   time.Duration
	cap    time.Duration
	wtime  time.Duration
	rnd    func() float64
	podMu  sync.Mutex
	podAnn map[string]string // the pod's annotations as the watch last saw them; nil: not yet
	podCh  chan struct{}     // closed and replaced when podAnn changes
	// writtenRV is the pod's resourceVersion after the reporter's last patch; writtenSeen
	// says the watch (or a list) got that far, so a later difference is someone else's edit.
	writtenRV   string
	writtenSeen bool
}

// Run watches and reports until ctx ends; it returns nil then. It returns an error at once only
// when opts cannot work.
func Run(ctx context.Context, opts Options) error {
	if opts.Config == nil || opts.Gateway == nil || opts.Namespace == "" || opts.PodName == "" {
		return errors.New("push: Config, Gateway, Namespace and PodName are required")
	}
	p := &pusher{opts: opts, log: opts.Logger, base: opts.BackoffBase, cap: opts.BackoffCap, wtime: opts.WatchTimeout,
		rnd: rand.Float64, podCh: make(chan struct{})}
	if p.log.GetSink() == nil {
		p.log = logr.Discard()
	}
	if p.base <= 0 {
		p.base = DefaultBackoffBase
	}
	if p.cap <= 0 {
		p.cap = DefaultBackoffCap
	}
	if p.wtime <= 0 {
		p.wtime = DefaultWatchTimeout
	}
	var err error
	if p.m, err = newMetrics(opts.Registry); err != nil {
		return err
	}
	cfg := rest.CopyConfig(opts.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &counting{next: rt, m: p.m} })
	if p.cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("push: %w", err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.watchLoop(ctx, "configmap", p.listConfigMap, p.watchConfigMap) })
	wg.Go(func() { p.watchLoop(ctx, "pod", p.listPod, p.watchPod) })
	wg.Go(func() { p.report(ctx) })
	wg.Wait()
	return nil
}

// Backoff returns how long attempt n (0 first) waits: uniformly random in
// [0, min(capDelay, base*2^n)), given r uniformly random in [0, 1).
func Backoff(n int, base, capDelay time.Duration, r float64) time.Duration {
	d := capDelay
	if n < 30 && base<<n < capDelay && base<<n > 0 {
		d = base << n
	}
	return time.Duration(r * float64(d))
}

// sleep waits the backoff of attempt n; false when ctx ended.
func (p *pusher) sleep(ctx context.Context, n int) bool {
	t := time.NewTimer(Backoff(n, p.base, p.cap, p.rnd()))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// byName selects the one object name, as RBAC's resourceNames require of list and watch.
func byName(name string) string { return fields.OneTermEqualSelector("metadata.name", name).String() }

// watchLoop lists (when it has no resourceVersion to go on from) and watches one object, again
// and again, until ctx ends. A watch that ends on its timeout starts again at once from the
// last resourceVersion; errors back off; 410 Gone lists again.
func (p *pusher) watchLoop(ctx context.Context, what string, list func(context.Context) (string, error),
	open func(context.Context, metav1.ListOptions) (watch.Interface, error)) {
	log := p.log.WithValues("watch", what)
	failures, rv := 0, ""
	fail := func(err error, msg string) bool {
		p.m.up.WithLabelValues(what).Set(0)
		p.m.failures.WithLabelValues(what).Inc()
		if ctx.Err() != nil {
			return false
		}
		log.Error(err, msg, "failures", failures+1)
		failures++
		return p.sleep(ctx, failures-1)
	}
	for ctx.Err() == nil {
		if rv == "" {
			var err error
			if rv, err = list(ctx); err != nil {
				if !fail(err, "listing failed; the config in force stays; retrying with backoff") {
					return
				}
				continue
			}
		}
		timeout := int64((p.wtime + time.Duration(p.rnd()*float64(p.wtime))) / time.Second)
		// The server ends the watch after timeout; the client gives up a while later, in case
		// the server went away without closing the connection.
		wctx, cancel := context.WithTimeout(ctx, time.Duration(timeout)*time.Second+watchGrace)
		w, err := open(wctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true, TimeoutSeconds: &timeout})
		if err != nil {
			cancel()
			if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
				rv = ""
			}
			if !fail(err, "watch failed; the config in force stays; retrying with backoff") {
				return
			}
			continue
		}
		p.m.up.WithLabelValues(what).Set(1)
		start := time.Now()
		var werr error
		rv, werr = p.consume(w, rv, what)
		w.Stop()
		cancel()
		switch {
		case werr != nil:
			if !fail(werr, "watch ended with an error; the config in force stays; retrying with backoff") {
				return
			}
		case time.Since(start) < min(healthyWatch, p.wtime):
			// Ended at once: a server going down, not a timeout. Back off all the same.
			if !fail(errors.New("watch ended early"), "watch ended early; retrying with backoff") {
				return
			}
		default:
			failures = 0
		}
	}
}

// consume handles the events of w until it ends and returns the resourceVersion to go on from
// ("" to list again) and the error that ended it, if any.
func (p *pusher) consume(w watch.Interface, rv, what string) (string, error) {
	for ev := range w.ResultChan() {
		switch ev.Type {
		case watch.Error:
			err := apierrors.FromObject(ev.Object)
			if apierrors.IsGone(err) || apierrors.IsResourceExpired(err) {
				return "", err
			}
			return rv, err
		case watch.Bookmark, watch.Added, watch.Modified, watch.Deleted:
			obj, ok := ev.Object.(metav1.Object)
			if !ok {
				return rv, fmt.Errorf("watch event of type %T", ev.Object)
			}
			rv = obj.GetResourceVersion()
			if ev.Type == watch.Bookmark {
				continue
			}
			p.m.events.WithLabelValues(what).Inc()
			p.handle(ev.Type, ev.Object)
		}
	}
	return rv, nil
}

// handle passes an object seen by a list or a watch to the gateway.
func (p *pusher) handle(t watch.EventType, obj any) {
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		if t == watch.Deleted {
			p.log.Info("ConfigMap deleted; the config in force stays", "configMap", o.Name)
			return
		}
		data, ok := o.Data[v1alpha1.GatewayConfigKey]
		if !ok {
			p.log.Info("ConfigMap has no config; the config in force stays", "configMap", o.Name, "key", v1alpha1.GatewayConfigKey)
			return
		}
		_ = p.opts.Gateway.ApplyPushed([]byte(data)) // refusals are logged, counted and shown by the gateway
	case *corev1.Pod:
		if t == watch.Deleted {
			return
		}
		if err := p.opts.Gateway.SetPushedPodLabels(o.Labels); err != nil {
			p.log.Error(err, "pod labels not applied")
		}
		p.podMu.Lock()
		if o.ResourceVersion == p.writtenRV {
			p.writtenSeen = true
		}
		p.podAnn = map[string]string{
			v1alpha1.EnforcedPolicyHashAnnotation: o.Annotations[v1alpha1.EnforcedPolicyHashAnnotation],
			v1alpha1.EnforcedGenerationAnnotation: o.Annotations[v1alpha1.EnforcedGenerationAnnotation],
		}
		close(p.podCh)
		p.podCh = make(chan struct{})
		p.podMu.Unlock()
	}
}

func (p *pusher) listConfigMap(ctx context.Context) (string, error) {
	l, err := p.cs.CoreV1().ConfigMaps(p.opts.Namespace).List(ctx, metav1.ListOptions{FieldSelector: byName(v1alpha1.GatewayConfigMapName)})
	if err != nil {
		return "", err
	}
	for i := range l.Items {
		p.handle(watch.Added, &l.Items[i])
	}
	return l.ResourceVersion, nil
}

func (p *pusher) watchConfigMap(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	o.FieldSelector = byName(v1alpha1.GatewayConfigMapName)
	return p.cs.CoreV1().ConfigMaps(p.opts.Namespace).Watch(ctx, o)
}

func (p *pusher) listPod(ctx context.Context) (string, error) {
	l, err := p.cs.CoreV1().Pods(p.opts.Namespace).List(ctx, metav1.ListOptions{FieldSelector: byName(p.opts.PodName)})
	if err != nil {
		return "", err
	}
	for i := range l.Items {
		p.handle(watch.Added, &l.Items[i])
	}
	p.podMu.Lock()
	p.writtenSeen = true // a list reads the latest, the reporter's last write included
	p.podMu.Unlock()
	return l.ResourceVersion, nil
}

func (p *pusher) watchPod(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
	o.FieldSelector = byName(p.opts.PodName)
	return p.cs.CoreV1().Pods(p.opts.Namespace).Watch(ctx, o)
}

// Report is what a gateway sets on its pod: the annotations' values.
func Report(e gateway.Enforced) map[string]string {
	hash := e.PolicyHash
	if hash == "" {
		hash = v1alpha1.EnforcedPolicyNone
	}
	return map[string]string{
		v1alpha1.EnforcedPolicyHashAnnotation: hash,
		v1alpha1.EnforcedGenerationAnnotation: strconv.FormatInt(e.Generation, 10),
	}
}

// report keeps the pod's annotations equal to what the gateway enforces: it patches them when
// they differ from what the pod watch last saw (and from what it last wrote, until the watch
// shows that write), retrying with backoff.
func (p *pusher) report(ctx context.Context) {
	var written map[string]string // the last values patched, until the watch shows them
	failures := 0
	for {
		e, applied := p.opts.Gateway.Enforced()
		p.podMu.Lock()
		seen, podChanged, writtenSeen := p.podAnn, p.podCh, p.writtenSeen
		p.podMu.Unlock()
		want := Report(e)
		switch {
		case !e.Loaded || seen == nil:
			// Nothing to say yet, or the pod not seen yet: wait.
		case mapsEqual(seen, want):
			written, failures = nil, 0
		case written != nil && mapsEqual(written, want) && !writtenSeen:
			// Written; the watch has not shown it yet.
		default:
			rv, err := p.patch(ctx, want)
			if err == nil {
				p.podMu.Lock()
				p.writtenRV, p.writtenSeen = rv, false
				p.podMu.Unlock()
				written, failures = want, 0
				p.m.reports.Inc()
				p.log.V(1).Info("reported on the pod", "policyHash", want[v1alpha1.EnforcedPolicyHashAnnotation],
					"generation", want[v1alpha1.EnforcedGenerationAnnotation])
				continue
			}
			p.m.reportFailures.Inc()
			if ctx.Err() != nil {
				return
			}
			p.log.Error(err, "reporting on the pod failed; retrying with backoff", "failures", failures+1)
			failures++
			if !p.sleep(ctx, failures-1) {
				return
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-applied:
		case <-podChanged:
		}
	}
}

// patch sets the annotations on the gateway's own pod with a JSON merge patch that changes
// metadata.annotations only.
// It returns the pod's resourceVersion after the patch.
func (p *pusher) patch(ctx context.Context, ann map[string]string) (string, error) {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": ann}})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pod, err := p.cs.CoreV1().Pods(p.opts.Namespace).Patch(ctx, p.opts.PodName, types.MergePatchType, body, metav1.PatchOptions{FieldManager: "offerfeed-gateway"})
	if err != nil {
		return "", err
	}
	return pod.ResourceVersion, nil
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
