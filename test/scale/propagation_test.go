package scale

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/gateway/push"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/testenv"
	"github.com/offerfeed/offerfeed/offerfeedtest"
)

const (
	// pushGateways is how many gateways BenchmarkPropagation runs, as goroutines of this process.
	pushGateways = 500
	// pushEdits is how many policy edits one run of BenchmarkPropagation times.
	pushEdits = 5
)

// BenchmarkPropagation measures the config push at 500 gateways: the envtest control plane,
// the manager in process, the gateways' access installed as config/default installs it (the
// manager binds the ClusterRole; the admission policy checks every report), and 500 pods, each
// with an in-process gateway whose push (package push) runs with a token bound to its pod. A run
// edits the policy five times and reports, from each edit's write: when each gateway enforces
// the new policy hash (p50, p99, max), when the status counts all 500 (status.enforcedPods),
// and the API requests the gateways sent per gateway and edit.
//
//	go test ./test/scale -run '^$' -bench Propagation -benchtime 1x
func BenchmarkPropagation(b *testing.B) {
	for i := range b.N {
		runPropagation(b, fmt.Sprint(i))
	}
}

func runPropagation(b *testing.B, name string) {
	env, err := testenv.New()
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := env.Stop(); err != nil {
			b.Error(err)
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	admin, err := client.New(testenv.Unthrottled(cfg), client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		b.Fatal(err)
	}
	if err := offerfeedtest.InstallGatewayAccess(ctx, admin); err != nil {
		b.Fatal(err)
	}
	mgr, err := operator.NewManager(testenv.Unthrottled(cfg), operator.Options{MaxConcurrentReconciles: 4, Controller: name})
	if err != nil {
		b.Fatal(err)
	}
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-mgrDone; err != nil {
			b.Error(err)
		}
	})

	const ns, sa = "offers", "offers"
	sel := map[string]string{"app": "offer-service"}
	for _, o := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}},
		&v1alpha1.OfferFeedPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: ns},
			Spec: v1alpha1.OfferFeedPolicySpec{
				TargetSelector: v1alpha1.SelectLabels(sel),
				ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
				Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "1m"},
			},
		},
	} {
		if err := admin.Create(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
	dir := b.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, cfg.CAData, 0o600); err != nil {
		b.Fatal(err)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	b.Cleanup(up.Close)
	upURL, _ := url.Parse(up.URL)

	// The pods, as the webhook leaves them, and a gateway with its push for each.
	type gw struct {
		g   *gateway.Gateway
		reg *prometheus.Registry
	}
	gws := make([]gw, pushGateways)
	var wg sync.WaitGroup
	for i := range gws {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("offers-%03d", i), Namespace: ns, Labels: sel,
				Annotations: map[string]string{v1alpha1.InjectedAnnotation: "true", v1alpha1.ServiceAccountAnnotation: sa}},
			Spec: corev1.PodSpec{ServiceAccountName: sa, Containers: []corev1.Container{{Name: "app", Image: "offer-service:1"}}},
		}
		if err := admin.Create(ctx, pod); err != nil {
			b.Fatal(err)
		}
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600),
			BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}
		if err := admin.SubResource("token").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}}, tr); err != nil {
			b.Fatal(err)
		}
		tokenFile := filepath.Join(dir, pod.Name)
		if err := os.WriteFile(tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
			b.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		g, err := gateway.New(gateway.Options{Upstream: upURL, Registry: reg, Namespace: ns})
		if err != nil {
			b.Fatal(err)
		}
		rc, err := push.RESTConfig(cfg.Host, tokenFile, caFile)
		if err != nil {
			b.Fatal(err)
		}
		gws[i] = gw{g: g, reg: reg}
		wg.Go(func() {
			if err := push.Run(ctx, push.Options{Config: rc, Namespace: ns, PodName: pod.Name, Gateway: g, Registry: reg}); err != nil {
				b.Error(err)
			}
		})
	}
	b.Cleanup(func() { cancel(); wg.Wait() })

	policyKey := client.ObjectKey{Namespace: ns, Name: "standard"}
	status := func() (*v1alpha1.OfferFeedPolicy, error) {
		p := &v1alpha1.OfferFeedPolicy{}
		return p, admin.Get(ctx, policyKey, p)
	}
	// counted waits until the status counts every gateway enforcing a hash other than prev,
	// and returns that hash.
	counted := func(prev string, limit time.Duration) string {
		deadline := time.Now().Add(limit)
		for {
			p, err := status()
			if err == nil && p.Status.ObservedGeneration == p.Generation && p.Status.ConfigHash != prev &&
				p.Status.EnforcedPods == pushGateways && meta.IsStatusConditionTrue(p.Status.Conditions, string(v1alpha1.ConditionEnforced)) {
				return p.Status.ConfigHash
			}
			if time.Now().After(deadline) {
				b.Fatalf("status never counted %d gateways: %v %+v", pushGateways, err, p.Status)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	hash := counted("", 5*time.Minute)
	requests := func() float64 {
		sum := 0.0
		for _, g := range gws {
			mfs, err := g.reg.Gather()
			if err != nil {
				b.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() == "offerfeed_gateway_kube_requests_total" {
					for _, m := range mf.GetMetric() {
						sum += m.GetCounter().GetValue()
					}
				}
			}
		}
		return sum
	}

	// The pods' reports as a watch sees them: when the last pod reported each hash.
	var repMu sync.Mutex
	lastReport := map[string]time.Time{}
	reported := map[string]int{}
	wc, err := client.NewWithWatch(testenv.Unthrottled(cfg), client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		b.Fatal(err)
	}
	seen := map[string]string{}
	go func() {
		for ctx.Err() == nil {
			w, err := wc.Watch(ctx, &corev1.PodList{}, client.InNamespace(ns))
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				o, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				h := o.Annotations[v1alpha1.EnforcedPolicyHashAnnotation]
				repMu.Lock()
				if seen[o.Name] != h {
					seen[o.Name] = h
					reported[h]++
					lastReport[h] = time.Now()
				}
				repMu.Unlock()
			}
		}
	}()

	var all, counts, reports []time.Duration
	before := requests()
	for i := range pushEdits {
		prev := hash
		p, err := status()
		if err != nil {
			b.Fatal(err)
		}
		p.Spec.Feed.MinInterval = v1alpha1.Duration(fmt.Sprintf("%dm", i+2))
		if err := admin.Update(ctx, p); err != nil {
			b.Fatal(err)
		}
		wrote := time.Now()
		// Each gateway's enforcement, timed from its own goroutine as it happens.
		times := make([]time.Duration, pushGateways)
		var ew sync.WaitGroup
		for j, g := range gws {
			ew.Go(func() {
				limit := time.After(time.Minute)
				for {
					e, ch := g.g.Enforced()
					if e.PolicyHash != "" && e.PolicyHash != prev {
						times[j] = time.Since(wrote)
						return
					}
					select {
					case <-ch:
					case <-limit:
						b.Errorf("gateway %d did not enforce edit %d within a minute", j, i+1)
						return
					}
				}
			})
		}
		hash = counted(prev, time.Minute)
		counts = append(counts, time.Since(wrote))
		repMu.Lock()
		if reported[hash] != pushGateways {
			b.Errorf("edit %d: the watch saw %d reports", i+1, reported[hash])
		}
		reports = append(reports, lastReport[hash].Sub(wrote))
		repMu.Unlock()
		ew.Wait()
		all = append(all, times...)
	}
	perGateway := (requests() - before) / pushGateways / pushEdits
	slices.Sort(all)
	slices.Sort(counts)
	slices.Sort(reports)
	q := func(s []time.Duration, f float64) float64 {
		return float64(s[min(len(s)-1, int(f*float64(len(s))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(all, 0.5), "enforce-p50-ms")
	b.ReportMetric(q(all, 0.99), "enforce-p99-ms")
	b.ReportMetric(q(all, 1), "enforce-max-ms")
	b.ReportMetric(q(reports, 0.5), "last-report-p50-ms")
	b.ReportMetric(q(counts, 0.5), "counted-p50-ms")
	b.ReportMetric(q(counts, 1), "counted-max-ms")
	b.ReportMetric(perGateway, "requests/gateway/edit")
}
