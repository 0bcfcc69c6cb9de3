package cmd

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/offerfeed/offerfeed/internal/kustomize"
	"github.com/offerfeed/offerfeed/internal/operator"
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
	opts, _, err := parseManagerFlags(args)
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

func TestManagerFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--gateway-image-pull-policy=Sometimes"},
		{"--gateway-image=x", "--gateway-port=8481"},
		{"--webhook-port=0"},
		{"--gateway-port=70000"},
		{"--gateway-memory-limit=lots"},
		{"--gateway-cpu-request=2", "--gateway-cpu-limit=1"},
		{"--no-such-flag"},
		{"extra"},
	} {
		if _, _, err := parseManagerFlags(args); err == nil {
			t.Errorf("%q: no error", args)
		}
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
		opts, _, err := parseManagerFlags(append([]string{"--gateway-image=offerfeed:test"}, tc.args...))
		if err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		if got := opts.Gateway.Resources; got == nil || !equality.Semantic.DeepEqual(*got, tc.want) {
			t.Errorf("%q: resources %v, want %v", tc.args, got, tc.want)
		}
	}
}
