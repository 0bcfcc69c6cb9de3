// Package e2e runs the offerfeed binary as the install runs it: `offerfeed manager` with the
// Deployment's arguments from `kustomize build config/default`, under the install's RBAC, on
// the envtest control plane; and `offerfeed gateway` with exactly the command line the webhook
// gives the sidecar.
package e2e

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	cfgwebhook "github.com/offerfeed/offerfeed/config/webhook"
	"github.com/offerfeed/offerfeed/internal/kustomize"
	"github.com/offerfeed/offerfeed/internal/manifest"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/render"
	"github.com/offerfeed/offerfeed/internal/testenv"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

const (
	// managerNamespace and managerUser are the install's namespace and its manager's
	// ServiceAccount, as RBAC knows it.
	managerNamespace = "offerfeed-system"
	managerUser      = "system:serviceaccount:offerfeed-system:offerfeed-controller-manager"
	timeout          = 30 * time.Second
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// offerfeedBinary builds the offerfeed binary once per test run.
func offerfeedBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the offerfeed binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "offerfeed-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "offerfeed")
		if out, err := exec.Command("go", "build", "-o", binary, "../..").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// process is a running offerfeed command whose output is logged when the test fails.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(offerfeedBinary(t), args...), out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // it may have exited already
		<-p.done                 //nolint:errcheck // killed: its exit status is not under test
		if t.Failed() {
			t.Logf("offerfeed %s output:\n%s", args[0], p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM, as the kubelet does, and wants a clean exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("offerfeed exited with %v after SIGTERM", err)
		}
	case <-time.After(timeout):
		t.Errorf("offerfeed still running %s after SIGTERM", timeout)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	// Below Linux's ephemeral range (32768-60999), from which the kernel takes the ports of
	// outgoing connections and of listeners on port 0: a port picked here and bound a moment
	// later by a gateway process cannot have been handed out meanwhile. Each once per process.
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if portsTaken[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		_ = l.Close()
		portsTaken[p] = true
		return p
	}
	t.Fatal("no free port in 20000-31999")
	return 0
}

var (
	portsMu    sync.Mutex
	portsTaken = map[int]bool{}
)

// eventually retries f until it returns nil or timeout passes.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpGet(url string, header http.Header) (int, string, http.Header, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", nil, err
	}
	req.Header = header
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

func wantOK(url string) func() error {
	return func() error {
		code, body, _, err := httpGet(url, nil)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", url, code, body)
		}
		return nil
	}
}

func decode[T any](t *testing.T, d manifest.Document) *T {
	t.Helper()
	v := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Object.Object, v); err != nil {
		t.Fatal(err)
	}
	return v
}

// installation is a control plane with the install's namespace, RBAC and webhook
// configuration, on which `offerfeed manager` runs as the install's ServiceAccount.
type installation struct {
	env   *envtest.Environment
	admin client.Client
	// container is the manager's container of the install's Deployment.
	container corev1.Container
	// kubeconfig is a kubeconfig file for the manager's ServiceAccount user.
	kubeconfig string
}

// install starts a control plane and installs offerfeed's namespace, RBAC (the gateways'
// ClusterRole and admission policy included) and webhook configuration from
// `kustomize build config/default`. The API server keeps its certificates
// in a directory of the test, so that it can be stopped and started again on the same port
// with the same certificates (an outage, not a new cluster).
func install(t *testing.T) *installation {
	t.Helper()
	offerfeedBinary(t)
	docs, err := kustomize.Build("../../config/default")
	if err != nil {
		t.Fatal(err)
	}
	env, err := testenv.New()
	if err != nil {
		t.Fatal(err)
	}
	if env.WebhookInstallOptions.MutatingWebhooks, err = cfgwebhook.MutatingWebhookConfigurations(); err != nil {
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
	ctx := context.Background()
	in := &installation{env: env}
	if in.admin, err = client.New(cfg, client.Options{Scheme: operator.NewScheme()}); err != nil {
		t.Fatal(err)
	}

	// The install's namespace and RBAC; the manager runs as its ServiceAccount's user.
	var deploy *appsv1.Deployment
	for _, kinds := range [][]string{{"Namespace"}, {"ServiceAccount", "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}} {
		for _, d := range docs {
			if slices.Contains(kinds, d.Object.GetKind()) {
				if err := in.admin.Create(ctx, d.Object); err != nil {
					t.Fatalf("creating %s %s: %v", d.Object.GetKind(), d.Object.GetName(), err)
				}
			}
			if d.Object.GetKind() == "Deployment" {
				deploy = decode[appsv1.Deployment](t, d)
			}
		}
	}
	in.container = deploy.Spec.Template.Spec.Containers[0]
	user, err := env.AddUser(envtest.User{Name: managerUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + managerNamespace}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	in.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(in.kubeconfig, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

// manager is a running `offerfeed manager` and its local addresses.
type manager struct {
	*process
	probeAddr, metricsAddr string
}

// startManager runs `offerfeed manager` with the Deployment's arguments as the kubelet
// expands them; then what differs outside a pod (later flags win): the webhook's port and
// certificate from envtest (webhookPort 0: envtest's own; a second replica in this process
// needs another), local probe and metrics addresses, and the Lease namespace, which in a pod
// is the pod's own. It waits until the manager is ready.
func (in *installation) startManager(t *testing.T, webhookPort int) *manager {
	t.Helper()
	args := kustomize.ExpandedArgs(in.container)
	wo := in.env.WebhookInstallOptions
	m := &manager{probeAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		metricsAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))}
	args = append(args,
		"--webhook-port="+strconv.Itoa(cmp.Or(webhookPort, wo.LocalServingPort)),
		"--webhook-cert-dir="+wo.LocalServingCertDir,
		"--health-probe-bind-address="+m.probeAddr,
		"--metrics-bind-address="+m.metricsAddr,
		"--leader-election-namespace="+managerNamespace)
	m.process = start(t, []string{"KUBECONFIG=" + in.kubeconfig}, args...)
	// Ready includes the webhook server serving.
	eventually(t, "manager ready", wantOK("http://"+m.probeAddr+"/readyz"))
	return m
}

// leaseHolder returns the identity that holds the leader Lease, "" for none.
func (in *installation) leaseHolder(ctx context.Context) (string, error) {
	lease := &coordinationv1.Lease{}
	if err := in.admin.Get(ctx, client.ObjectKey{Namespace: managerNamespace, Name: operator.LeaderElectionID}, lease); err != nil {
		return "", err
	}
	return ptr.Deref(lease.Spec.HolderIdentity, ""), nil
}

// TestManagerAsInstalled runs `offerfeed manager` with the install's arguments and RBAC and
// has it inject a pod and count it in its policy's status.
func TestManagerAsInstalled(t *testing.T) {
	in := install(t)
	ctx := context.Background()
	admin, c := in.admin, in.container
	mgr := in.startManager(t, 0)
	eventually(t, "leader elected", func() error {
		if h, err := in.leaseHolder(ctx); err != nil || h == "" {
			return fmt.Errorf("lease holder %q: %w", h, err)
		}
		return nil
	})

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "offers-", Labels: map[string]string{
		v1alpha1.InjectionLabel: "enabled", "pod-security.kubernetes.io/enforce": "restricted",
	}}}
	if err := admin.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	sel := map[string]string{"app": "offer-service"}
	if err := admin.Create(ctx, &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: ns.Name},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(sel),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
		},
	}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "offers-1", Namespace: ns.Name, Labels: sel,
			Annotations: map[string]string{v1alpha1.UpstreamPortAnnotation: "http"}},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "app", Image: "offer-service:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		},
	}
	if err := admin.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if !webhook.Injected(pod) {
		t.Fatalf("pod not injected by the manager binary: %+v", pod.Spec)
	}
	if img := pod.Spec.InitContainers[0].Image; img != c.Image {
		t.Errorf("sidecar image %q, want the manager's %q", img, c.Image)
	}
	eventually(t, "policy programmed, counting the pod", func() error {
		p := &v1alpha1.OfferFeedPolicy{}
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "standard"}, p); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(p.Status.Conditions, string(v1alpha1.ConditionProgrammed)) || p.Status.TargetedPods != 1 {
			return fmt.Errorf("status %+v", p.Status)
		}
		return nil
	})
	checkSecureMetrics(t, ctx, admin, "https://"+mgr.metricsAddr+"/metrics")
	mgr.stop(t)
	if strings.Contains(mgr.out.String(), "forbidden") {
		t.Errorf("the manager was refused something under the install's RBAC:\n%s", mgr.out.String())
	}
}

// checkSecureMetrics scrapes the manager's metrics at url as the install serves them (HTTPS,
// --metrics-secure by default): without a token, with the token of a ServiceAccount bound to
// nothing, and with one bound to the install's metrics-reader ClusterRole, as a Prometheus is.
func checkSecureMetrics(t *testing.T, ctx context.Context, admin client.Client, url string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "monitoring-"}}
	if err := admin.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	token := func(name string) string {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name}}
		if err := admin.Create(ctx, sa); err != nil {
			t.Fatal(err)
		}
		tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
		if err := admin.SubResource("token").Create(ctx, sa, tr); err != nil {
			t.Fatalf("token of %s: %v", name, err)
		}
		return tr.Status.Token
	}
	prometheus, stranger := token("prometheus"), token("stranger")
	if err := admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "prometheus-offerfeed-metrics-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "offerfeed-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: ns.Name}},
	}); err != nil {
		t.Fatal(err)
	}
	// The manager's certificate is self-signed unless --metrics-cert-dir holds one; the client
	// offers HTTP/2, which the manager must decline (--enable-http2 is off).
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, // self-signed, on loopback
		ForceAttemptHTTP2: true,
	}}
	get := func(token string) (*http.Response, string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, "", err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	for _, tc := range []struct {
		who, token string
		want       int
	}{{"no token", "", http.StatusUnauthorized}, {"a ServiceAccount bound to nothing", stranger, http.StatusForbidden}} {
		resp, body, err := get(tc.token)
		if err != nil {
			t.Fatalf("scraping with %s: %v", tc.who, err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("scraping with %s: %d %q, want %d", tc.who, resp.StatusCode, body, tc.want)
		}
	}
	// RBAC may take a moment to see the new binding.
	eventually(t, "metrics for the metrics-reader", func() error {
		resp, body, err := get(prometheus)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%d %q", resp.StatusCode, body)
		}
		if resp.ProtoMajor != 1 {
			return fmt.Errorf("served over %s; HTTP/2 must be off by default", resp.Proto)
		}
		if !strings.Contains(body, `controller_runtime_reconcile_total{controller="offerfeedpolicy"`) {
			return fmt.Errorf("no reconcile counter of the policy controller in:\n%.2000s", body)
		}
		return nil
	})
}

// TestInjectedGatewayRuns starts `offerfeed gateway` with the sidecar's command line from
// Inject (paths moved to a temporary directory, as the volumes would be mounted): its probes
// answer, it proxies to the app, and it enforces the policy once its ConfigMap appears.
func TestInjectedGatewayRuns(t *testing.T) {
	offerfeedBinary(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"offers":[]}`)
	}))
	t.Cleanup(app.Close)
	appPort := app.Listener.Addr().(*net.TCPAddr).Port
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "offers-1", Namespace: "offers", Labels: map[string]string{"app": "offer-service"},
			Annotations: map[string]string{v1alpha1.UpstreamPortAnnotation: strconv.Itoa(appPort)}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "offer-service:1"}}},
	}
	port, adminPort := freePort(t), freePort(t)
	changed, warning := webhook.Inject(pod, webhook.Config{Image: "offerfeed:test", Port: int32(port), AdminPort: int32(adminPort)})
	if !changed {
		t.Fatalf("not injected: %s", warning)
	}
	sc := pod.Spec.InitContainers[0]

	// The volumes: the ConfigMap's (empty: optional, the namespace has no policy yet) and the
	// downward API's labels file.
	root := t.TempDir()
	configDir, podInfoDir := filepath.Join(root, "offerfeed"), filepath.Join(root, "podinfo")
	for _, d := range []string{configDir, podInfoDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(podInfoDir, "labels"), []byte(`app="offer-service"`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var args []string
	for _, a := range sc.Args {
		a = strings.Replace(a, webhook.ConfigDir, configDir, 1)
		a = strings.Replace(a, webhook.PodInfoDir, podInfoDir, 1)
		args = append(args, a)
	}
	if sc.Command != nil {
		t.Fatalf("sidecar command %q: want the image's entrypoint", sc.Command)
	}
	// The env as the kubelet resolves it.
	// No token volume here: the gateway says its config push is off and reads the file (the
	// push has its own tests in internal/gateway/push, and TestPushPropagation).
	env := []string{"POD_NAMESPACE=offers", "POD_NAME=" + pod.Name, "GOMEMLIMIT=" + strconv.FormatInt(sc.Resources.Limits.Memory().Value(), 10)}
	for _, e := range sc.Env {
		if e.Name != "POD_NAMESPACE" && e.Name != "POD_NAME" && e.Name != "GOMEMLIMIT" {
			t.Errorf("env %s not set by this test", e.Name)
		}
	}
	gw := start(t, env, args...)

	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	for _, p := range []*corev1.Probe{sc.StartupProbe, sc.ReadinessProbe, sc.LivenessProbe} {
		eventually(t, "probe "+p.HTTPGet.Path, wantOK(admin+p.HTTPGet.Path))
	}
	proxy := fmt.Sprintf("http://127.0.0.1:%d/offers", port)
	driver := http.Header{"X-Driver-Id": {"driver-1"}}
	for range 3 {
		if code, body, _, err := httpGet(proxy, driver); err != nil || code != http.StatusOK || body != `{"offers":[]}` {
			t.Fatalf("without a policy, GET /offers = %d %q %v; want the app's answer", code, body, err)
		}
	}

	// The operator writes the ConfigMap; the kubelet updates the file; the gateway reloads.
	res, err := render.Render("offers", []v1alpha1.OfferFeedPolicy{{
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: "offers", CreationTimestamp: metav1.Now()},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(map[string]string{"app": "offer-service"}),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "1m"},
		},
	}}, []render.Pod{{Name: "offers-1", Labels: pod.Labels, Injected: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(configDir, v1alpha1.GatewayConfigKey), res.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	n := 0
	eventually(t, "policy enforced after the config appeared", func() error {
		n++
		h := http.Header{"X-Driver-Id": {fmt.Sprintf("driver-%d", n+1)}}
		_, _, _, _ = httpGet(proxy, h)
		code, _, header, err := httpGet(proxy, h)
		if err != nil {
			return err
		}
		if code != http.StatusTooManyRequests || header.Get("OfferFeed-Decision") != "feed-throttled" {
			return fmt.Errorf("second poll: %d %q", code, header.Get("OfferFeed-Decision"))
		}
		return nil
	})
	gw.stop(t)
}
