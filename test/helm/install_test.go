package helm

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"helm.sh/helm/v4/pkg/chart/common"

	"github.com/offerfeed/offerfeed/internal/testenv"
)

// startAPIServer starts a kube-apiserver and etcd (envtest) without any CRD: the chart brings
// its own. It returns a client and the path of an admin kubeconfig.
func startAPIServer(t *testing.T) (client.Client, string) {
	t.Helper()
	dir, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: dir}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	user, err := env.AddUser(envtest.User{Name: "helm", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return c, path
}

// dryRunApply sends every object to the API server as `kubectl apply --server-side
// --dry-run=server` does: the server decodes, defaults, validates (schemas, CEL, admission)
// and answers, without storing anything. Objects of kinds in skip are left out.
func dryRunApply(ctx context.Context, t *testing.T, c client.Client, in objects, skip ...string) (applied []string) {
	t.Helper()
	for _, k := range sortedKeys(in) {
		o := in[k].DeepCopy()
		if slices.Contains(skip, o.GetKind()) {
			continue
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.DryRunAll, client.FieldOwner("helm-test"), client.ForceOwnership); err != nil {
			t.Errorf("%s: server-side dry run: %v", k, err)
			continue
		}
		applied = append(applied, k)
	}
	return applied
}

func sortedKeys(in objects) []string {
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestInstallOnAPIServer installs the chart's renders on a real kube-apiserver with a
// server-side dry run, with the default values (all but cert-manager's objects: its CRDs are
// not on this control plane) and with the chart's own certificate. A broken object is refused,
// so the dry run does check. Then, with Helm's server dry run, an upgrade keeps the
// certificate of the install (lookup) rather than making a new CA the pods have not mounted.
func TestInstallOnAPIServer(t *testing.T) {
	ctx := t.Context()
	c, kubeconfig := startAPIServer(t)
	ch := loadChart(t)

	// The namespace, as `helm install --create-namespace` (or createNamespace) makes it.
	nsObj := renderChart(t, ch, map[string]any{"createNamespace": true})["Namespace /"+namespace]
	if nsObj == nil {
		t.Fatal("no Namespace with createNamespace")
	}
	if err := c.Create(ctx, nsObj.DeepCopy()); err != nil {
		t.Fatal(err)
	}

	def := renderChart(t, ch, nil)
	applied := dryRunApply(ctx, t, c, def, "Certificate", "Issuer")
	if len(applied) != len(def)-2 {
		t.Errorf("dry-run applied %d of %d objects (all but the Certificate and the Issuer)", len(applied), len(def))
	}

	noCM := renderChart(t, ch, map[string]any{"certManager": map[string]any{"enabled": false}})
	if applied := dryRunApply(ctx, t, c, noCM); len(applied) != len(noCM) {
		t.Errorf("dry-run applied %d of %d objects", len(applied), len(noCM))
	}

	// The dry run is not a formality: an invalid Deployment is refused.
	broken := objects{}
	for k, o := range noCM {
		if o.GetKind() == "Deployment" {
			o = o.DeepCopy()
			if err := unstructured.SetNestedField(o.Object, int64(-1), "spec", "replicas"); err != nil {
				t.Fatal(err)
			}
			broken[k] = o
		}
	}
	if len(broken) != 1 {
		t.Fatalf("%d Deployments", len(broken))
	}
	err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(broken[sortedKeys(broken)[0]]), client.DryRunAll, client.FieldOwner("helm-test"))
	if err == nil || !strings.Contains(err.Error(), "replicas") {
		t.Errorf("replicas -1: %v, want refused", err)
	}

	// The certificate of an install is kept on upgrade: create the install's Secret for real,
	// render again against the cluster, and get the same certificate and caBundle.
	secret := noCM["Secret "+namespace+"/webhook-server-cert"].DeepCopy()
	// As `helm install` stores it: owned by the release.
	secret.SetAnnotations(map[string]string{"meta.helm.sh/release-name": releaseName, "meta.helm.sh/release-namespace": namespace})
	if err := c.Create(ctx, secret.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	cfg := quiet()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &kubeconfig
	ns := namespace
	flags.Namespace = &ns
	if err := cfg.Init(flags, namespace, "memory"); err != nil {
		t.Fatal(err)
	}
	// The control plane built from Go modules (hack/controlplane) reports version
	// v0.0.0-master, which the chart's kubeVersion (>=1.29) refuses; tell Helm the version it
	// is built from instead of asking it.
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kubeVersion()
	cfg.Capabilities = caps
	text, err := RenderWithCluster(cfg, ch, releaseName, namespace, map[string]any{"certManager": map[string]any{"enabled": false}})
	if err != nil {
		t.Fatal(err)
	}
	again := decode(t, "upgrade", text)
	want, _, _ := unstructured.NestedStringMap(secret.Object, "data")
	got, _, _ := unstructured.NestedStringMap(again["Secret "+namespace+"/webhook-server-cert"].Object, "data")
	if len(got) != 3 || got["ca.crt"] != want["ca.crt"] || got["tls.crt"] != want["tls.crt"] || got["tls.key"] != want["tls.key"] {
		t.Errorf("a render against the cluster made a new certificate instead of keeping the install's")
	}
	webhooks, _, _ := unstructured.NestedSlice(again["MutatingWebhookConfiguration /offerfeed-mutating-webhook-configuration"].Object, "webhooks")
	if ca, _, _ := unstructured.NestedString(webhooks[0].(map[string]any), "clientConfig", "caBundle"); ca != want["ca.crt"] {
		t.Errorf("caBundle is not the kept CA")
	}

	// Sanity: nothing of the dry runs was stored.
	var sas corev1.ServiceAccountList
	if err := c.List(ctx, &sas, client.InNamespace(namespace)); err != nil {
		t.Fatal(err)
	}
	for _, sa := range sas.Items {
		if strings.HasPrefix(sa.Name, "offerfeed-") {
			t.Errorf("ServiceAccount %s stored by a dry run", sa.Name)
		}
	}
}
