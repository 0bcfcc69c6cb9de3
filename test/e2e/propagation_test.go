package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

// fleetGateway is one `offerfeed gateway` process standing for the sidecar of one pod: the
// pod exists on the API server (injected by the manager's webhook), and the process runs the
// sidecar's command line with its volumes in a temporary directory: a token bound to that pod,
// the API server's CA, the labels file, and the config directory that the kubelet would fill.
type fleetGateway struct {
	pod        *corev1.Pod
	proc       *process
	admin      string // base URL of the admin port
	proxy      string // base URL of the proxy port
	configFile string
}

// readyz is the part of the gateway's /readyz detail this test reads.
type readyz struct {
	PolicyHash       string `json:"policyHash"`
	ConfigGeneration int64  `json:"configGeneration"`
	ConfigSource     string `json:"configSource"`
}

func (g *fleetGateway) readyz() (readyz, error) {
	var r readyz
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(g.admin + "/readyz")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("readyz %q: %w", b, err)
	}
	return r, nil
}

// metric returns the sum of the samples of the counter or gauge name (any labels matching
// the label filter, "" for all) on the gateway's /metrics.
func (g *fleetGateway) metric(name, filter string) (float64, error) {
	code, body, _, err := httpGet(g.admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %d", code)
	}
	sum := 0.0
	for line := range strings.SplitSeq(body, "\n") {
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		if filter != "" && !strings.Contains(line, filter) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// enforces reports whether a second poll of a new driver is throttled, as the policy says.
func (g *fleetGateway) enforces(driver string) error {
	h := http.Header{"X-Driver-Id": {driver}}
	_, _, _, _ = httpGet(g.proxy+"/offers", h)
	code, _, header, err := httpGet(g.proxy+"/offers", h)
	if err != nil {
		return err
	}
	if code != http.StatusTooManyRequests || header.Get("OfferFeed-Decision") != "feed-throttled" {
		return fmt.Errorf("%s: second poll %d %q", g.pod.Name, code, header.Get("OfferFeed-Decision"))
	}
	return nil
}

// startFleet creates n pods in ns (running as ServiceAccount sa, injected by the manager's
// webhook) and starts a gateway process for each.
func startFleet(t *testing.T, in *installation, ns, sa string, n int, sel map[string]string, app string) []*fleetGateway {
	t.Helper()
	ctx := context.Background()
	cfg := in.env.Config
	root := t.TempDir()
	caFile := filepath.Join(root, "ca.crt")
	if err := os.WriteFile(caFile, cfg.CAData, 0o600); err != nil {
		t.Fatal(err)
	}
	var labels []string
	for k, v := range sel {
		labels = append(labels, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(labels)
	fleet := make([]*fleetGateway, n)
	for i := range fleet {
		pod := appPod(ns, fmt.Sprintf("offers-%02d", i), sa, sel)
		if err := in.admin.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		if !webhook.Injected(pod) {
			t.Fatalf("pod %s not injected", pod.Name)
		}
		var sc *corev1.Container
		for j := range pod.Spec.InitContainers {
			if pod.Spec.InitContainers[j].Name == webhook.ContainerName {
				sc = &pod.Spec.InitContainers[j]
			}
		}
		dir := filepath.Join(root, pod.Name)
		configDir, podInfoDir, tokenDir := filepath.Join(dir, "config"), filepath.Join(dir, "podinfo"), filepath.Join(dir, "token")
		for _, d := range []string{configDir, podInfoDir, tokenDir} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(podInfoDir, "labels"), []byte(strings.Join(labels, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tokenDir, "token"), []byte(podToken(t, ctx, in.admin, ns, sa, pod)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(caFile, filepath.Join(tokenDir, "ca.crt")); err != nil {
			t.Fatal(err)
		}
		var args []string
		for _, a := range sc.Args {
			a = strings.Replace(a, webhook.ConfigDir, configDir, 1)
			a = strings.Replace(a, webhook.PodInfoDir, podInfoDir, 1)
			a = strings.Replace(a, webhook.TokenDir, tokenDir, 1)
			args = append(args, a)
		}
		port, adminPort := freePort(t), freePort(t)
		g := &fleetGateway{pod: pod, configFile: filepath.Join(configDir, v1alpha1.GatewayConfigKey),
			admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), proxy: fmt.Sprintf("http://127.0.0.1:%d", port)}
		// What differs outside a pod (later flags win): loopback ports, the app's address and
		// the API server's, which a pod finds in $KUBERNETES_SERVICE_HOST.
		args = append(args, "--listen=127.0.0.1:"+strconv.Itoa(port), "--admin-listen=127.0.0.1:"+strconv.Itoa(adminPort),
			"--upstream="+app, "--kube-api-server="+cfg.Host)
		g.proc = start(t, []string{"POD_NAMESPACE=" + ns, "POD_NAME=" + pod.Name}, args...)
		fleet[i] = g
	}
	for _, g := range fleet {
		eventually(t, g.pod.Name+" ready", wantOK(g.admin+"/healthz"))
	}
	return fleet
}

// alive fails the test when a gateway process has exited.
func alive(t *testing.T, fleet []*fleetGateway, when string) {
	t.Helper()
	for _, g := range fleet {
		select {
		case err := <-g.proc.done:
			g.proc.done <- err
			t.Fatalf("gateway %s exited %s: %v", g.pod.Name, when, err)
		default:
		}
	}
}

// reportTimes watches the pods of ns and records, for each policy hash, when each pod first
// reported enforcing it (annotation offerfeed.dev/enforced-policy-hash), and when the policy's
// status first counted want pods enforcing it.
type reportTimes struct {
	mu       sync.Mutex
	reported map[string]map[string]time.Time // hash -> pod -> first seen
	counted  map[string]time.Time            // hash -> enforcedPods reached want
}

func watchReports(t *testing.T, in *installation, ns, policy string, want int32) *reportTimes {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rt := &reportTimes{reported: map[string]map[string]time.Time{}, counted: map[string]time.Time{}}
	wc, err := client.NewWithWatch(in.env.Config, client.Options{Scheme: in.admin.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	run := func(list client.ObjectList, on func(client.Object)) {
		for ctx.Err() == nil {
			w, err := wc.Watch(ctx, list, client.InNamespace(ns))
			if err != nil {
				time.Sleep(200 * time.Millisecond) // the API server may be down: the outage
				continue
			}
			for ev := range w.ResultChan() {
				if ev.Type == watch.Added || ev.Type == watch.Modified {
					if o, ok := ev.Object.(client.Object); ok {
						on(o)
					}
				}
			}
		}
	}
	go run(&corev1.PodList{}, func(o client.Object) {
		now := time.Now()
		h := o.GetAnnotations()[v1alpha1.EnforcedPolicyHashAnnotation]
		rt.mu.Lock()
		defer rt.mu.Unlock()
		if rt.reported[h] == nil {
			rt.reported[h] = map[string]time.Time{}
		}
		if _, ok := rt.reported[h][o.GetName()]; !ok {
			rt.reported[h][o.GetName()] = now
		}
	})
	go run(&v1alpha1.OfferFeedPolicyList{}, func(o client.Object) {
		now := time.Now()
		p := o.(*v1alpha1.OfferFeedPolicy)
		if p.Name != policy || p.Status.EnforcedPods != want || p.Status.ConfigHash == "" {
			return
		}
		rt.mu.Lock()
		defer rt.mu.Unlock()
		if _, ok := rt.counted[p.Status.ConfigHash]; !ok {
			rt.counted[p.Status.ConfigHash] = now
		}
	})
	return rt
}

// since returns, for hash, how long after t0 each pod reported it, sorted, and how long after
// t0 the status counted them all (0: not yet).
func (rt *reportTimes) since(hash string, t0 time.Time) ([]time.Duration, time.Duration) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var out []time.Duration
	for _, at := range rt.reported[hash] {
		out = append(out, at.Sub(t0))
	}
	slices.Sort(out)
	var counted time.Duration
	if at, ok := rt.counted[hash]; ok {
		counted = at.Sub(t0)
	}
	return out, counted
}

// quantile returns the q-quantile (nearest rank) of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// TestPushPropagation runs `offerfeed manager` under the install's RBAC and 20 `offerfeed
// gateway` processes, each with a token bound to its own Pod object (as the sidecar's
// projected volume holds it) and no config file at all, so that only the push can bring them
// a config. Ten policy edits: every gateway enforces every edit (its /readyz and its pod's
// annotation say the policy's new configHash), the status counts the 20, and
// `kubectl wait --for=condition=Enforced` returns only then. A stale config file written
// afterwards does not roll a gateway back. Then the API server stops (10 s and more: it takes
// up to a minute to drain its watches and exit): the gateways keep enforcing, none exits, and
// they catch up on an edit made right after the restart.
//
// It logs the edit-to-report times (p50, p99) and the status count time of each edit, and the
// API requests the gateways sent: BENCHMARKS.md records them (run it with -v).
func TestPushPropagation(t *testing.T) {
	const gateways, edits, outage = 20, 10, 10 * time.Second
	in := install(t)
	ctx := context.Background()
	mgr := in.startManager(t, 0)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"offers":[]}`)
	}))
	t.Cleanup(app.Close)

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "offers-",
		Labels: map[string]string{v1alpha1.InjectionLabel: "enabled"}}}
	if err := in.admin.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	sel := map[string]string{"app": "offer-service"}
	if err := in.admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "offers", Namespace: ns.Name}}); err != nil {
		t.Fatal(err)
	}
	policy := policyFor(ns.Name, sel)
	policy.Spec.Feed.MinInterval = "1m"
	if err := in.admin.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	rt := watchReports(t, in, ns.Name, policy.Name, gateways)
	fleet := startFleet(t, in, ns.Name, "offers", gateways, sel, app.URL)

	policyKey := client.ObjectKeyFromObject(policy)
	// current returns the policy's configHash once its status is of its generation.
	current := func() (string, error) {
		p := &v1alpha1.OfferFeedPolicy{}
		if err := in.admin.Get(ctx, policyKey, p); err != nil {
			return "", err
		}
		if p.Status.ObservedGeneration != p.Generation || p.Status.ConfigHash == "" {
			return "", fmt.Errorf("status of generation %d, policy at %d", p.Status.ObservedGeneration, p.Generation)
		}
		return p.Status.ConfigHash, nil
	}
	// allEnforce waits until every gateway's /readyz and pod say hash, and the status counts them.
	allEnforce := func(what, hash string, deadline time.Duration) {
		t.Helper()
		waitFor(t, deadline, what, func() error {
			pods := &corev1.PodList{}
			if err := in.admin.List(ctx, pods, client.InNamespace(ns.Name)); err != nil {
				return err
			}
			for _, p := range pods.Items {
				if got := p.Annotations[v1alpha1.EnforcedPolicyHashAnnotation]; got != hash {
					return fmt.Errorf("pod %s reports %q, want %s", p.Name, got, hash)
				}
			}
			for _, g := range fleet {
				r, err := g.readyz()
				if err != nil {
					return err
				}
				if r.PolicyHash != hash {
					return fmt.Errorf("%s enforces %q, want %s", g.pod.Name, r.PolicyHash, hash)
				}
			}
			p := &v1alpha1.OfferFeedPolicy{}
			if err := in.admin.Get(ctx, policyKey, p); err != nil {
				return err
			}
			if p.Status.EnforcedPods != gateways || !meta.IsStatusConditionTrue(p.Status.Conditions, string(v1alpha1.ConditionEnforced)) {
				return fmt.Errorf("status enforcedPods %d: %+v", p.Status.EnforcedPods, meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionEnforced)))
			}
			return nil
		})
	}
	var hash string
	waitFor(t, timeout, "policy programmed", func() (err error) { hash, err = current(); return err })
	allEnforce("every gateway enforces the first config", hash, 2*timeout)
	// The first config, kept for a late kubelet copy later.
	first := &corev1.ConfigMap{}
	if err := in.admin.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: v1alpha1.GatewayConfigMapName}, first); err != nil {
		t.Fatal(err)
	}
	firstHash := hash
	for _, g := range fleet {
		if err := g.enforces("first"); err != nil {
			t.Fatal(err)
		}
	}

	// requests is the sum of the API requests that the gateways sent.
	requests := func() float64 {
		sum := 0.0
		for _, g := range fleet {
			n, err := g.metric("offerfeed_gateway_kube_requests_total", "")
			if err != nil {
				t.Fatal(err)
			}
			sum += n
		}
		return sum
	}
	kubectl := in.env.ControlPlane.KubeCtl() //nolint:staticcheck // SA1019: the admin's kubectl is the one wanted, as in controllers/samples_test.go
	beforeEdits := requests()
	var all, counts []time.Duration
	for i := range edits {
		prev := hash
		var wrote time.Time
		waitFor(t, timeout, "edit", func() error {
			p := &v1alpha1.OfferFeedPolicy{}
			if err := in.admin.Get(ctx, policyKey, p); err != nil {
				return err
			}
			p.Spec.Feed.MinInterval = v1alpha1.Duration(fmt.Sprintf("%dm", i+2))
			err := in.admin.Update(ctx, p)
			wrote = time.Now()
			return err
		})
		// kubectl wait returns once every governed pod enforces this generation.
		stdout, stderr, err := kubectl.Run("wait", "--for=condition=Enforced", "--timeout=60s", "-n", ns.Name, "offerfeedpolicy/"+policy.Name)
		if err != nil {
			out, _ := io.ReadAll(stdout)
			errOut, _ := io.ReadAll(stderr)
			t.Fatalf("edit %d: kubectl wait: %v\n%s%s", i+1, err, out, errOut)
		}
		p := &v1alpha1.OfferFeedPolicy{}
		if err := in.admin.Get(ctx, policyKey, p); err != nil {
			t.Fatal(err)
		}
		hash = p.Status.ConfigHash
		if hash == prev || p.Status.ObservedGeneration != p.Generation || p.Status.EnforcedPods != gateways {
			t.Fatalf("edit %d: kubectl wait returned with status %+v (previous hash %s)", i+1, p.Status, prev)
		}
		allEnforce(fmt.Sprintf("edit %d enforced", i+1), hash, timeout)
		var reports []time.Duration
		var counted time.Duration
		waitFor(t, timeout, "the watch of this test saw the reports and the count", func() error {
			if reports, counted = rt.since(hash, wrote); len(reports) != gateways || counted == 0 {
				return fmt.Errorf("edit %d: %d reports, counted after %s", i+1, len(reports), counted)
			}
			return nil
		})
		all = append(all, reports...)
		counts = append(counts, counted)
	}
	t.Logf("%.1f API requests per gateway during the %d edits (%d reports each)", (requests()-beforeEdits)/gateways, edits, edits)
	slices.Sort(all)
	slices.Sort(counts)
	t.Logf("edit to report (%d gateway processes, %d edits, %d reports): p50 %s, p99 %s, max %s; status counted all %d: p50 %s, max %s",
		gateways, edits, len(all), quantile(all, 0.5).Round(time.Millisecond), quantile(all, 0.99).Round(time.Millisecond),
		all[len(all)-1].Round(time.Millisecond), gateways, quantile(counts, 0.5).Round(time.Millisecond), counts[len(counts)-1].Round(time.Millisecond))

	// A late kubelet copy of the mounted file, the first config (an older generation and
	// another policy hash), changes nothing.
	stale := first.Data[v1alpha1.GatewayConfigKey]
	if !strings.Contains(stale, firstHash) || firstHash == hash {
		t.Fatalf("the first config does not hold the first hash %s", firstHash)
	}
	for _, g := range fleet {
		tmp := g.configFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(stale), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, g.configFile); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range fleet {
		waitFor(t, timeout, g.pod.Name+" reads the stale file", func() error {
			n, err := g.metric("offerfeed_gateway_config_stale_total", `source="file"`)
			if err != nil {
				return err
			}
			if n < 1 {
				return fmt.Errorf("%v stale configs from the file", n)
			}
			return nil
		})
	}
	allEnforce("no gateway rolled back to the stale file", hash, timeout)

	// The API server goes away for 10 s and more (it takes up to a minute to stop, draining its
	// watches): the gateways keep enforcing and none exits.
	before := requests()
	apiServer := in.env.ControlPlane.APIServer
	down := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- apiServer.Stop() }()
	for n, isDown := 0, true; isDown || time.Since(down) < outage; n++ {
		alive(t, fleet, fmt.Sprintf("%s into the outage", time.Since(down).Round(time.Second)))
		for _, g := range fleet {
			if err := g.enforces(fmt.Sprintf("outage-%d", n)); err != nil {
				t.Fatalf("%s into the outage: %v", time.Since(down).Round(time.Second), err)
			}
		}
		select {
		case err := <-stopped:
			if err != nil {
				t.Fatalf("stopping the API server: %v", err)
			}
			isDown = false
		case <-time.After(time.Second):
		}
	}
	t.Logf("the API server was down for %s", time.Since(down).Round(time.Second))
	if err := apiServer.Start(); err != nil {
		t.Fatalf("restarting the API server: %v", err)
	}
	// Right after the restart, an edit: the gateways reconnect (backoff up to 30 s) and catch up.
	prev := hash
	var wrote time.Time
	waitFor(t, 90*time.Second, "edit after the outage", func() error {
		p := &v1alpha1.OfferFeedPolicy{}
		if err := in.admin.Get(ctx, policyKey, p); err != nil {
			return err
		}
		p.Spec.Feed.MinInterval = "30m"
		err := in.admin.Update(ctx, p)
		wrote = time.Now()
		return err
	})
	waitFor(t, 90*time.Second, "the edit after the outage programmed", func() (err error) {
		if hash, err = current(); err == nil && hash == prev {
			err = fmt.Errorf("still the hash before the edit")
		}
		return err
	})
	allEnforce("every gateway caught up after the outage", hash, 2*time.Minute)
	var reports []time.Duration
	var counted time.Duration
	waitFor(t, timeout, "the watch of this test saw the reports and the count", func() error {
		if reports, counted = rt.since(hash, wrote); len(reports) != gateways || counted == 0 {
			return fmt.Errorf("%d reports, counted after %s", len(reports), counted)
		}
		return nil
	})
	t.Logf("after a %s outage: the edit made right after the restart reported by all %d gateways within %s (p50 %s), counted in the status after %s; %.1f API requests per gateway from the outage to catching up",
		outage, len(reports), reports[len(reports)-1].Round(time.Millisecond), quantile(reports, 0.5).Round(time.Millisecond),
		counted.Round(time.Millisecond), (requests()-before)/gateways)
	alive(t, fleet, "after the outage")
	for _, g := range fleet {
		if err := g.enforces("after"); err != nil {
			t.Error(err)
		}
	}
	mgr.stop(t)
}
