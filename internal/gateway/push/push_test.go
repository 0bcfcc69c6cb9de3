package push_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/gateway/push"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/render"
	"github.com/offerfeed/offerfeed/internal/testenv"
	"github.com/offerfeed/offerfeed/offerfeedtest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// cluster is a control plane that can be stopped and started again on the same port with the
// same certificates (an outage, not a new cluster), with an admin client.
type cluster struct {
	env   *envtest.Environment
	cfg   *rest.Config
	admin client.Client
	cs    kubernetes.Interface
	caDir string
}

func startCluster(t testing.TB) *cluster {
	t.Helper()
	env, err := testenv.New()
	if err != nil {
		t.Fatal(err)
	}
	env.ControlPlane.APIServer = &envtest.APIServer{CertDir: t.TempDir()}
	env.ControlPlaneStopTimeout = 2 * time.Minute // the API server drains its watches when stopped
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	c := &cluster{env: env, cfg: testenv.Unthrottled(cfg), caDir: t.TempDir()}
	if c.admin, err = client.New(c.cfg, client.Options{Scheme: operator.NewScheme()}); err != nil {
		t.Fatal(err)
	}
	if c.cs, err = kubernetes.NewForConfig(c.cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.caDir, "ca.crt"), cfg.CAData, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// gatewayPod is one offer-service pod with its own ServiceAccount, granted what a gateway needs
// (as the operator grants it: get, list and watch of ConfigMap offerfeed-gateway, get, list,
// watch and patch of this pod, by resourceNames), and a token bound to the pod in a file.
type gatewayPod struct {
	pod       *corev1.Pod
	tokenFile string
}

func (c *cluster) newGatewayPod(t testing.TB, ns, name string, podLabels map[string]string) *gatewayPod {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: podLabels},
		Spec: corev1.PodSpec{ServiceAccountName: sa.Name, AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "app", Image: "offer-service:1"}}},
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "gateway-" + name, Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{v1alpha1.GatewayConfigMapName}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, ResourceNames: []string{name}, Verbs: []string{"get", "list", "watch", "patch"}},
		},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "gateway-" + name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa.Name, Namespace: ns}},
	}
	for _, o := range []client.Object{sa, pod, role, binding} {
		if err := c.admin.Create(ctx, o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To[int64](3600),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if err := c.admin.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatalf("token bound to pod %s: %v", name, err)
	}
	gp := &gatewayPod{pod: pod, tokenFile: filepath.Join(t.TempDir(), "token")}
	if err := os.WriteFile(gp.tokenFile, []byte(tr.Status.Token), 0o600); err != nil {
		t.Fatal(err)
	}
	return gp
}

// runningGateway is an in-process gateway with its push running.
type runningGateway struct {
	g        *gateway.Gateway
	reg      *prometheus.Registry
	file     string
	stopPush context.CancelFunc
	pushDone chan error
}

func (c *cluster) startGateway(t testing.TB, gp *gatewayPod, opts push.Options) *runningGateway {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	reg := prometheus.NewRegistry()
	g, err := gateway.New(gateway.Options{Upstream: u, Registry: reg, Namespace: gp.pod.Namespace, PodLabels: gp.pod.Labels})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := push.RESTConfig(c.cfg.Host, gp.tokenFile, filepath.Join(c.caDir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rg := &runningGateway{g: g, reg: reg, file: filepath.Join(t.TempDir(), "config.json"), stopPush: cancel, pushDone: make(chan error, 1)}
	opts.Config, opts.Namespace, opts.PodName, opts.Gateway, opts.Registry = rc, gp.pod.Namespace, gp.pod.Name, g, reg
	go func() { rg.pushDone <- push.Run(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-rg.pushDone; err != nil {
			t.Errorf("push.Run: %v", err)
		}
	})
	return rg
}

// waitFor polls cond every 20 ms until it returns nil or limit passes.
func waitFor(t testing.TB, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newPolicy(ns, name, minInterval string, sel map[string]string) *v1alpha1.OfferFeedPolicy {
	match := map[string]v1alpha1.LabelValue{}
	for k, v := range sel {
		match[k] = v1alpha1.LabelValue(v)
	}
	return &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.LabelSelector{MatchLabels: match},
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Method: "GET", Path: "/offers", MinInterval: v1alpha1.Duration(minInterval)},
		},
	}
}

// policyHash returns the status.configHash of policy ns/name once it is programmed at its
// current generation.
func policyHash(ctx context.Context, c client.Client, ns, name string) (string, error) {
	p := &v1alpha1.OfferFeedPolicy{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, p); err != nil {
		return "", err
	}
	if err := offerfeedtest.Programmed(ctx, c, client.ObjectKeyFromObject(p)); err != nil {
		return "", err
	}
	return p.Status.ConfigHash, nil
}

// reported returns nil when pod ns/name carries the annotations of hash and generation.
func reported(ctx context.Context, c client.Client, ns, name, hash string, gen int64) error {
	pod := &corev1.Pod{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, pod); err != nil {
		return err
	}
	got := [2]string{pod.Annotations[v1alpha1.EnforcedPolicyHashAnnotation], pod.Annotations[v1alpha1.EnforcedGenerationAnnotation]}
	if want := [2]string{hash, strconv.FormatInt(gen, 10)}; got != want {
		return fmt.Errorf("pod reports %v, want %v", got, want)
	}
	return nil
}

// configGeneration reads the generation of the ConfigMap's config.
func configGeneration(ctx context.Context, c client.Client, ns string) (int64, []byte, error) {
	cm := &corev1.ConfigMap{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: v1alpha1.GatewayConfigMapName}, cm); err != nil {
		return 0, nil, err
	}
	data := []byte(cm.Data[v1alpha1.GatewayConfigKey])
	return gatewayconfig.PeekGeneration(data), data, nil
}

// TestPushFromTheAPIServer runs the operator's controller and one in-process gateway that
// authenticates with a token bound to its Pod and granted by a Role scoped with resourceNames:
// a policy edit reaches the gateway through the watch (its file is never updated) and the pod
// reports it; a stale file does not roll it back; a label change moves the pod to another
// policy as fast; with the API server stopped the gateway keeps enforcing, does not stop, and
// catches up on an edit made once it is back.
func TestPushFromTheAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	c := startCluster(t)
	ctx := context.Background()
	m, err := offerfeedtest.StartManager(ctx, c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Stop() })
	ns := "offers"
	if err := c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*v1alpha1.OfferFeedPolicy{
		newPolicy(ns, "standard", "2s", map[string]string{"app": "offer-service"}),
		newPolicy(ns, "canary", "4s", map[string]string{"app": "offer-service-canary"}),
	} {
		if err := c.admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	gp := c.newGatewayPod(t, ns, "offers-1", map[string]string{"app": "offer-service"})

	var std string
	waitFor(t, time.Minute, "policies programmed", func() (err error) {
		if _, err = policyHash(ctx, c.admin, ns, "canary"); err != nil {
			return err
		}
		std, err = policyHash(ctx, c.admin, ns, "standard")
		return err
	})
	_, data0, err := configGeneration(ctx, c.admin, ns)
	if err != nil {
		t.Fatal(err)
	}
	rg := c.startGateway(t, gp, push.Options{BackoffCap: 2 * time.Second})
	// The kubelet's copy, as of the start: it is never refreshed in this test.
	if err := os.WriteFile(rg.file, data0, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rg.g.LoadFile(rg.file); err != nil {
		t.Fatal(err)
	}
	// The controller may still write once more (the pod was created after the policies).
	var gen0 int64
	waitFor(t, time.Minute, "the pod reports the config in place", func() (err error) {
		if gen0, _, err = configGeneration(ctx, c.admin, ns); err != nil {
			return err
		}
		return reported(ctx, c.admin, ns, gp.pod.Name, std, gen0)
	})
	// Someone else's edit of the report is put right.
	if err := c.admin.Patch(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: gp.pod.Name, Namespace: ns}}, client.RawPatch(types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"`+v1alpha1.EnforcedPolicyHashAnnotation+`":"sha256:forged"}}}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the report put right", func() error { return reported(ctx, c.admin, ns, gp.pod.Name, std, gen0) })

	// An edit of the policy: controller, ConfigMap, watch, gateway, pod.
	edit := func(name, minInterval string) {
		t.Helper()
		waitFor(t, time.Minute, "policy "+name+" edited", func() error {
			p := &v1alpha1.OfferFeedPolicy{}
			if err := c.admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, p); err != nil {
				return err
			}
			p.Spec.Feed.MinInterval = v1alpha1.Duration(minInterval)
			return c.admin.Update(ctx, p)
		})
	}
	edit("standard", "3s")
	var gen1 int64
	waitFor(t, time.Minute, "the edit enforced from the watch", func() (err error) {
		if std, err = policyHash(ctx, c.admin, ns, "standard"); err != nil {
			return err
		}
		if gen1, _, err = configGeneration(ctx, c.admin, ns); err != nil {
			return err
		}
		st := rg.g.Status()
		if st.PolicyHash != std || st.ConfigGeneration != gen1 || st.ConfigSource != gateway.SourceWatch {
			return fmt.Errorf("gateway enforces %s generation %d from %s; want %s generation %d from the watch", st.PolicyHash, st.ConfigGeneration, st.ConfigSource, std, gen1)
		}
		return nil
	})
	if gen1 <= gen0 {
		t.Fatalf("generation %d after the edit, %d before", gen1, gen0)
	}
	waitFor(t, time.Minute, "the pod reports the edit", func() error { return reported(ctx, c.admin, ns, gp.pod.Name, std, gen1) })

	// The kubelet's copy of the old generation, rewritten late: no rollback.
	stale := strings.Replace(string(data0), "\n", "\n ", 1) // other bytes, same old generation
	if err := os.WriteFile(rg.file, []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rg.g.LoadFile(rg.file); err != nil {
		t.Fatal(err)
	}
	if st := rg.g.Status(); st.PolicyHash != std || st.ConfigGeneration != gen1 {
		t.Fatalf("a stale file rolled the gateway back: %+v", st)
	}

	// A label change moves the pod to policy canary, through the pod watch.
	canary, err := policyHash(ctx, c.admin, ns, "canary")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.admin.Patch(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: gp.pod.Name, Namespace: ns}},
		client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"app":"offer-service-canary"}}}`))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the pod moved to policy canary", func() error {
		if h := rg.g.Status().PolicyHash; h != canary {
			return fmt.Errorf("gateway enforces %s, want canary's %s", h, canary)
		}
		return reported(ctx, c.admin, ns, gp.pod.Name, canary, gen1)
	})

	// Outage: the API server stops for 10 s. The gateway keeps enforcing and keeps running.
	// Stop closes the port at once; the process takes a while to end (it drains watches).
	apiServer := c.env.ControlPlane.APIServer
	before := sum(t, rg.reg, "offerfeed_gateway_kube_requests_total")
	down := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- apiServer.Stop() }()
	for time.Since(down) < 10*time.Second {
		select {
		case err := <-rg.pushDone:
			t.Fatalf("push.Run returned during the outage: %v", err)
		case <-time.After(500 * time.Millisecond):
		}
		if h := rg.g.Status().PolicyHash; h != canary {
			t.Fatalf("%s into the outage the gateway enforces %q, want canary's %s", time.Since(down).Round(time.Second), h, canary)
		}
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stopping the API server: %v", err)
	}
	if h := rg.g.Status().PolicyHash; h != canary {
		t.Fatalf("after the outage the gateway enforces %q, want canary's %s", h, canary)
	}
	if err := apiServer.Start(); err != nil {
		t.Fatalf("restarting the API server: %v", err)
	}
	t.Logf("the API server is back after %s", time.Since(down).Round(time.Millisecond))
	edit("canary", "6s")
	edited := time.Now()
	waitFor(t, 2*time.Minute, "the edit made after the outage enforced", func() error {
		h, err := policyHash(ctx, c.admin, ns, "canary")
		if err != nil {
			return err
		}
		gen, _, err := configGeneration(ctx, c.admin, ns)
		if err != nil {
			return err
		}
		if st := rg.g.Status(); st.PolicyHash != h || st.ConfigGeneration != gen || gen <= gen1 {
			return fmt.Errorf("gateway enforces %s generation %d, want %s generation %d (> %d)", st.PolicyHash, st.ConfigGeneration, h, gen, gen1)
		}
		return reported(ctx, c.admin, ns, gp.pod.Name, h, gen)
	})
	t.Logf("the edit made after the outage was enforced and reported %s after its write; the gateway sent %.0f API requests from the outage's start (%s) to then",
		time.Since(edited).Round(time.Millisecond), sum(t, rg.reg, "offerfeed_gateway_kube_requests_total")-before, time.Since(down).Round(time.Second))
	select {
	case err := <-rg.pushDone:
		t.Fatalf("push.Run returned: %v", err)
	default:
	}
	if !hasSample(t, rg.reg, "offerfeed_gateway_kube_watch_failures_total", `watch="configmap"`) {
		t.Error("the outage left no watch failure in the metrics")
	}
}

// hasSample reports whether a counter of the registry named name, with a label pair like
// label, is above 0.
func hasSample(t testing.TB, reg *prometheus.Registry, name, label string) bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var pairs []string
			for _, l := range m.GetLabel() {
				pairs = append(pairs, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if strings.Contains(strings.Join(pairs, ","), label) && m.GetCounter().GetValue() > 0 {
				return true
			}
		}
	}
	return false
}

// sum adds the values of the counter name in reg.
func sum(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

// TestGatewayTokenIsNotEnough checks the gateway's own requests fail as they should when its
// token is not granted: the gateway keeps running and enforcing the file, and says so.
func TestGatewayTokenIsNotEnough(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	c := startCluster(t)
	ctx := context.Background()
	ns := "offers"
	if err := c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	gp := c.newGatewayPod(t, ns, "offers-1", map[string]string{"app": "offer-service"})
	if err := c.admin.Delete(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "gateway-offers-1", Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	rg := c.startGateway(t, gp, push.Options{BackoffCap: time.Second})
	waitFor(t, time.Minute, "forbidden requests counted", func() error {
		if !hasSample(t, rg.reg, "offerfeed_gateway_kube_requests_total", `code="403"`) {
			return fmt.Errorf("no 403 yet")
		}
		return nil
	})
	if st := rg.g.Status(); st.ConfigSource == gateway.SourceWatch {
		t.Errorf("a config came through the watch without a grant: %+v", st)
	}
	select {
	case err := <-rg.pushDone:
		t.Fatalf("push.Run returned: %v", err)
	default:
	}
}

// TestBackoffFullJitter checks the reconnection delays: uniform in [0, min(cap, base*2^n)).
func TestBackoffFullJitter(t *testing.T) {
	base, capDelay := 500*time.Millisecond, 30*time.Second
	for _, tt := range []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{0, 0, 0},
		{0, 0.5, 250 * time.Millisecond},
		{1, 0.999, 999 * time.Millisecond},
		{3, 0.5, 2 * time.Second},
		{6, 0.5, 15 * time.Second}, // 32 s capped to 30 s
		{63, 0.5, 15 * time.Second},
		{1000, 0.9, 27 * time.Second},
	} {
		if got := push.Backoff(tt.n, base, capDelay, tt.r); got != tt.want {
			t.Errorf("Backoff(%d, r=%v) = %s, want %s", tt.n, tt.r, got, tt.want)
		}
	}
	// 10,000 gateways after an outage, each at its 10th failure: spread over the cap, not at once.
	var ds []time.Duration
	for i := range 10000 {
		ds = append(ds, push.Backoff(10, base, capDelay, float64(i)/10000))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	if ds[0] != 0 || ds[len(ds)-1] >= capDelay || ds[5000] < 14*time.Second || ds[5000] > 16*time.Second {
		t.Errorf("delays not spread over [0, %s): min %s median %s max %s", capDelay, ds[0], ds[5000], ds[len(ds)-1])
	}
}

// renderOne renders policy standard of ns with minInterval, as the controller does.
func renderOne(t testing.TB, ns, minInterval string) *render.Result {
	t.Helper()
	p := newPolicy(ns, "standard", minInterval, map[string]string{"app": "offer-service"})
	p.CreationTimestamp = metav1.Unix(1, 0)
	res, err := render.Render(ns, []v1alpha1.OfferFeedPolicy{*p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
