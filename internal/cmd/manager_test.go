package cmd

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/cmd/flagcompat"
	"github.com/offerfeed/offerfeed/internal/kustomize"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/testenv"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

// TestManagerFlagsOfTheInstall parses the manager's command line from the Deployment that
// `kustomize build config/default` produces, as the kubelet would run it.
func TestManagerFlagsOfTheInstall(t *testing.T) {
	docs, err := kustomize.Build("../../config/default")
	if err != nil {
		t.Fatal(err)
	}
	var d *appsv1.Deployment
	for _, doc := range docs {
		if doc.Object.GetKind() == "Deployment" {
			d = &appsv1.Deployment{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(doc.Object.Object, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if d == nil {
		t.Fatal("no Deployment in config/default")
	}
	c := d.Spec.Template.Spec.Containers[0]
	if len(c.Command) != 0 || len(c.Args) == 0 || c.Args[0] != "manager" {
		t.Fatalf("command %q args %q: want the image's entrypoint with `manager`", c.Command, c.Args)
	}
	args := kustomize.ExpandedArgs(c)[1:]
	mo, err := parseManagerFlags(args)
	opts := mo.operator
	if err != nil {
		t.Fatalf("parsing %q: %v", args, err)
	}
	if !opts.LeaderElection || opts.ProbeAddr != ":8081" || opts.MetricsAddr != ":8443" || !opts.MetricsSecure || opts.EnableHTTP2 {
		t.Errorf("options %+v", opts)
	}
	if opts.Gateway.Image != c.Image {
		t.Errorf("gateway image %q, want the manager's own %q", opts.Gateway.Image, c.Image)
	}
	if opts.WebhookPort != operator.DefaultWebhookPort || opts.WebhookCertDir != "/tmp/k8s-webhook-server/serving-certs" {
		t.Errorf("webhook port %d cert dir %q", opts.WebhookPort, opts.WebhookCertDir)
	}
}

// parseManagerFlags parses the flags of `offerfeed manager` (without the subcommand) as the
// command does, and checks them.
func parseManagerFlags(args []string) (*managerOptions, error) {
	o := &managerOptions{}
	fs := pflag.NewFlagSet("manager", pflag.ContinueOnError)
	o.addFlags(fs)
	if err := fs.Parse(flagcompat.GoStyleArgs(fs, args)); err != nil {
		return o, err
	}
	return o, o.complete()
}

func TestManagerFlags(t *testing.T) {
	o, err := parseManagerFlags([]string{"--kubeconfig", "/etc/kube.conf", "-leader-elect=false", "--zap-log-level=debug", "--zap-devel",
		"--gateway-image=offerfeed:1", "--gateway-image-pull-policy", "IfNotPresent", "--gateway-port=9000", "--max-concurrent-reconciles", "8"})
	if err != nil {
		t.Fatal(err)
	}
	if o.kubeconfig != "/etc/kube.conf" || o.operator.LeaderElection || !o.zap.Development || o.operator.MaxConcurrentReconciles != 8 {
		t.Errorf("options %+v", o)
	}
	if g := o.operator.Gateway; g.Image != "offerfeed:1" || g.ImagePullPolicy != corev1.PullIfNotPresent || g.Port != 9000 || g.AdminPort != webhook.DefaultAdminPort {
		t.Errorf("gateway %+v", g)
	}
}

func TestManagerFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--gateway-image-pull-policy=Sometimes"},
		{"--gateway-image=x", "--gateway-port=8481"},
		{"--webhook-port=0"},
		{"--gateway-port=70000"},
		{"--zap-log-level=loud"},
		{"--gateway-memory-limit=lots"},
		{"--gateway-cpu-request=2", "--gateway-cpu-limit=1"},
		{"--no-such-flag"},
		{"extra"},
	} {
		if code, _, stderr := runOfferfeed(t, "", append([]string{"manager"}, args...)...); code != ExitUsage {
			t.Errorf("offerfeed manager %q: exit %d, want %d; stderr:\n%s", args, code, ExitUsage, stderr)
		}
	}
	// A kubeconfig that cannot be read is a failure, not a usage error.
	missing := filepath.Join(t.TempDir(), "no-kubeconfig")
	code, _, stderr := runOfferfeed(t, "", "manager", "--kubeconfig", missing, "--zap-log-level=error")
	if code != ExitFailed || !strings.Contains(stderr, "--kubeconfig") || !strings.Contains(stderr, missing) {
		t.Errorf("offerfeed manager --kubeconfig %s: exit %d, want %d; stderr:\n%s", missing, code, ExitFailed, stderr)
	}
}

// TestManagerKubeconfig runs `offerfeed manager --kubeconfig FILE` against a real API server,
// as a user of its own, with $KUBECONFIG pointing elsewhere: the manager must use the file,
// become ready and reconcile a policy, and stop with exit code 0 when its context ends.
func TestManagerKubeconfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env, err := testenv.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	user, err := env.AddUser(envtest.User{Name: "offerfeed-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfigFile := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigFile, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", filepath.Join(dir, "not-this-one"))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	probe := freeAddr(t)
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- Execute(ctx, []string{"manager", "--kubeconfig", kubeconfigFile, "--leader-elect=false",
			"--metrics-bind-address=0", "--health-probe-bind-address=" + probe, "--zap-log-level=error"},
			strings.NewReader(""), io.Discard, &stderr)
	}()
	c, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "manager-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	policy := &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "standard"},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(map[string]string{"app": "offer-service"}),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
		},
	}
	if err := c.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for ready, programmed := false, false; !ready || !programmed; time.Sleep(100 * time.Millisecond) {
		select {
		case code := <-done:
			t.Fatalf("manager exited with %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("manager not ready (%v) or policy not programmed (%v) after a minute", ready, programmed)
		}
		if resp, err := http.Get("http://" + probe + "/readyz"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		cm := &corev1.ConfigMap{}
		programmed = c.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: v1alpha1.GatewayConfigMapName}, cm) == nil &&
			strings.Contains(cm.Data[v1alpha1.GatewayConfigKey], `"name": "standard"`)
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Errorf("exit %d after its context ended:\n%s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("manager did not stop")
	}
}

// TestManagerGatewayResources: the --gateway-{cpu,memory}-{request,limit} flags (which the Helm
// chart's gateway.resources sets) become the injected sidecar's resources; an empty flag
// leaves its entry out.
func TestManagerGatewayResources(t *testing.T) {
	q := resource.MustParse
	for _, tc := range []struct {
		args []string
		want corev1.ResourceRequirements
	}{{
		args: nil,
		want: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: q("50m"), corev1.ResourceMemory: q("64Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: q("256Mi")},
		},
	}, {
		args: []string{"--gateway-cpu-request=200m", "--gateway-memory-request=128Mi", "--gateway-cpu-limit=1", "--gateway-memory-limit=1Gi"},
		want: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: q("200m"), corev1.ResourceMemory: q("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: q("1"), corev1.ResourceMemory: q("1Gi")},
		},
	}, {
		args: []string{"--gateway-cpu-request=", "--gateway-memory-request=", "--gateway-memory-limit="},
		want: corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}},
	}} {
		o, err := parseManagerFlags(append([]string{"--gateway-image=offerfeed:test"}, tc.args...))
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := o.operator.Gateway.Resources; got == nil || !equality.Semantic.DeepEqual(*got, tc.want) {
			t.Errorf("%q: resources %v, want %v", tc.args, got, tc.want)
		}
	}
}
