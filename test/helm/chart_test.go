package helm

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/offerfeed/offerfeed/internal/kustomize"
	"github.com/offerfeed/offerfeed/internal/manifest"
)

const (
	top         = "../.."
	chartDir    = top + "/charts/offerfeed"
	releaseName = "offerfeed"
	namespace   = "offerfeed-system"
)

// helmLabels are the labels the chart adds to what config/ has (Helm's standard labels);
// they are dropped, wherever they are, before the chart is compared with kustomize's output.
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by"}

// helmAnnotations are the annotations the chart adds: the CRD survives `helm uninstall`.
var helmAnnotations = []string{"helm.sh/resource-policy"}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// objects is a rendered install, keyed "Kind namespace/name".
type objects map[string]*unstructured.Unstructured

func key(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

func decode(t *testing.T, name, text string) objects {
	t.Helper()
	docs, err := manifest.Decode(name, strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return fromDocs(t, docs)
}

func fromDocs(t *testing.T, docs []manifest.Document) objects {
	t.Helper()
	out := objects{}
	for _, d := range docs {
		if _, dup := out[key(d.Object)]; dup {
			t.Fatalf("%s twice", key(d.Object))
		}
		out[key(d.Object)] = d.Object
	}
	return out
}

// renderChart renders the chart as release offerfeed in offerfeed-system with vals.
func renderChart(t *testing.T, ch *chart.Chart, vals map[string]any) objects {
	t.Helper()
	text, err := Render(ch, releaseName, namespace, vals)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, "chart", text)
}

func build(t *testing.T, dir string) objects {
	t.Helper()
	docs, err := kustomize.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fromDocs(t, docs)
}

// normalize returns o as plain JSON values (numbers as float64) without Helm's labels and
// annotations, for a semantic comparison.
func normalize(t *testing.T, o *unstructured.Unstructured) map[string]any {
	t.Helper()
	raw, err := json.Marshal(o.Object)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	dropKeys(v, helmLabels)
	if md, ok := v["metadata"].(map[string]any); ok {
		for _, field := range []string{"labels", "annotations"} {
			if m, ok := md[field].(map[string]any); ok {
				for _, a := range helmAnnotations {
					delete(m, a)
				}
				if len(m) == 0 {
					delete(md, field)
				}
			}
		}
	}
	return v
}

// dropKeys deletes the map keys in drop at any depth: Helm's labels also go into selectors.
func dropKeys(v any, drop []string) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range drop {
			delete(v, k)
		}
		for _, e := range v {
			dropKeys(e, drop)
		}
	case []any:
		for _, e := range v {
			dropKeys(e, drop)
		}
	}
}

// compare reports every object that differs between the chart's render and kustomize's
// build, and the objects only one of them has, except those in onlyChart.
func compare(t *testing.T, got, want objects, onlyChart ...string) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: in kustomize's build, not in the chart", k)
			continue
		}
		if d := cmp.Diff(normalize(t, want[k]), normalize(t, g)); d != "" {
			t.Errorf("%s differs from kustomize's build (-kustomize +chart):\n%s", k, d)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok && !slices.Contains(onlyChart, k) {
			t.Errorf("%s: in the chart, not in kustomize's build", k)
		}
	}
}

// withImage sets the manager's image and its GATEWAY_IMAGE in kustomize's build, which says
// offerfeed:latest (`make deploy IMG=...` rewrites it), to the chart's default.
func withImage(t *testing.T, in objects, image string) {
	t.Helper()
	d := in["Deployment "+namespace+"/offerfeed-controller-manager"]
	if d == nil {
		t.Fatal("no manager Deployment")
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	c := containers[0].(map[string]any)
	c["image"] = image
	for _, e := range c["env"].([]any) {
		if e := e.(map[string]any); e["name"] == "GATEWAY_IMAGE" {
			e["value"] = image
		}
	}
	if err := unstructured.SetNestedSlice(d.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
}

func defaultImage(ch *chart.Chart) string { return "offerfeed:" + ch.Metadata.AppVersion }

// TestDefaultIsKustomizeDefault: with its default values the chart installs what
// `kustomize build config/default` installs, object by object, field by field, but for
// Helm's labels and the image tag (the release's, not latest). The Namespace comes only with
// createNamespace, since `helm install --create-namespace` or the user makes it.
func TestDefaultIsKustomizeDefault(t *testing.T) {
	ch := loadChart(t)
	want := build(t, top+"/config/default")
	withImage(t, want, defaultImage(ch))

	compare(t, renderChart(t, ch, map[string]any{"createNamespace": true}), want)

	got := renderChart(t, ch, nil)
	crd := got["CustomResourceDefinition /offerfeedpolicies.offerfeed.dev"]
	if crd == nil || crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
		t.Errorf("the CRD is not kept on uninstall (helm.sh/resource-policy: keep)")
	}
	if _, ok := got["Namespace /"+namespace]; ok {
		t.Errorf("the default render has the Namespace")
	}
	delete(want, "Namespace /"+namespace)
	compare(t, got, want)
}

// TestNoCertManagerIsKustomizeNoCertManager: certManager.enabled=false installs what
// config/default-no-certmanager does, plus what that overlay leaves to the user (docs/install.md):
// the Secret webhook-server-cert and the CA in the webhook configuration's caBundle. The
// certificate is for the webhook Service's DNS names and is signed by that CA.
func TestNoCertManagerIsKustomizeNoCertManager(t *testing.T) {
	ch := loadChart(t)
	want := build(t, top+"/config/default-no-certmanager")
	withImage(t, want, defaultImage(ch))
	got := renderChart(t, ch, map[string]any{"createNamespace": true, "certManager": map[string]any{"enabled": false}})

	secretKey := "Secret " + namespace + "/webhook-server-cert"
	mwcKey := "MutatingWebhookConfiguration /offerfeed-mutating-webhook-configuration"
	secret, mwc := got[secretKey], got[mwcKey]
	if secret == nil || mwc == nil {
		t.Fatalf("no %s or no %s", secretKey, mwcKey)
	}
	webhooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
	caBundle, _, _ := unstructured.NestedString(webhooks[0].(map[string]any), "clientConfig", "caBundle")
	if caBundle == "" {
		t.Fatalf("no caBundle")
	}
	// Without the caBundle the webhook configuration is kustomize's.
	mwc = mwc.DeepCopy()
	unstructured.RemoveNestedField(webhooks[0].(map[string]any), "clientConfig", "caBundle")
	if err := unstructured.SetNestedSlice(mwc.Object, webhooks, "webhooks"); err != nil {
		t.Fatal(err)
	}
	got[mwcKey] = mwc
	compare(t, got, want, secretKey)

	if secret.Object["type"] != "kubernetes.io/tls" {
		t.Errorf("Secret type %v", secret.Object["type"])
	}
	data := map[string][]byte{}
	for _, k := range []string{"ca.crt", "tls.crt", "tls.key"} {
		s, _, _ := unstructured.NestedString(secret.Object, "data", k)
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			t.Fatalf("Secret data %s: %q %v", k, s, err)
		}
		data[k] = b
	}
	if got := base64.StdEncoding.EncodeToString(data["ca.crt"]); got != caBundle {
		t.Errorf("caBundle is not the Secret's ca.crt")
	}
	checkServingCert(t, data["ca.crt"], data["tls.crt"], data["tls.key"])
}

// checkServingCert: the key pair matches and the CA verifies the certificate for both DNS
// names of the webhook Service, as a server certificate.
func checkServingCert(t *testing.T, caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Errorf("tls.crt and tls.key: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("ca.crt holds no certificate")
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("tls.crt is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"offerfeed-webhook-service.offerfeed-system.svc", "offerfeed-webhook-service.offerfeed-system.svc.cluster.local"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("certificate for %s: %v", name, err)
		}
	}
}

// TestVersion: the chart's version is the VERSION file and its appVersion (the default image
// tag) is "v" + VERSION.
func TestVersion(t *testing.T) {
	raw, err := os.ReadFile(top + "/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(raw))
	ch := loadChart(t)
	if ch.Metadata.Version != version || ch.Metadata.AppVersion != "v"+version {
		t.Errorf("Chart.yaml version %q appVersion %q; VERSION says %q (want %q and %q)",
			ch.Metadata.Version, ch.Metadata.AppVersion, version, version, "v"+version)
	}
	d := renderChart(t, ch, nil)["Deployment "+namespace+"/offerfeed-controller-manager"]
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if img := containers[0].(map[string]any)["image"]; img != "offerfeed:v"+version {
		t.Errorf("default image %v, want offerfeed:v%s", img, version)
	}
}

// TestCopiesInSync: the chart's copies of generated manifests (files/) are config/'s.
func TestCopiesInSync(t *testing.T) {
	if err := CheckSynced(top); err != nil {
		t.Error(err)
	}
}

// TestLint: `helm lint --strict` finds nothing to warn about, with the default values and with
// every optional part switched on or off.
func TestLint(t *testing.T) {
	for _, vals := range []map[string]any{
		nil,
		{"createNamespace": true, "certManager": map[string]any{"enabled": false},
			"metrics": map[string]any{"serviceMonitor": map[string]any{"enabled": true, "interval": "30s"},
				"gatewayPodMonitor": map[string]any{"enabled": true, "interval": "30s"}}},
		{"crds": map[string]any{"install": false}, "podDisruptionBudget": map[string]any{"enabled": false},
			"gateway": map[string]any{"resources": map[string]any{"limits": map[string]any{"memory": "1Gi"}}}},
	} {
		msgs, err := Lint(chartDir, namespace, vals)
		for _, m := range msgs {
			t.Logf("%v: %s", vals, m)
		}
		if err != nil {
			t.Errorf("%v: %v", vals, err)
		}
	}
}

// mustYAML parses YAML values for the table tests.
func mustYAML(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSchemaRefuses: values.schema.json refuses values of the wrong type or shape, naming the
// value, before anything is rendered.
func TestSchemaRefuses(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range []struct{ values, wantErr string }{
		{`replicas: two`, "replicas"},
		{`replicas: 0`, "replicas"},
		{`replicaCount: 3`, "replicaCount"},
		{`logLevel: loud`, "logLevel"},
		{`image: {pullPolicy: Sometimes}`, "pullPolicy"},
		{`image: {repository: ""}`, "repository"},
		{`gateway: {resources: {limits: {memory: lots}}}`, "memory"},
		{`gateway: {resources: {limit: {memory: 1Gi}}}`, "limit"},
		{`certManager: {enabled: "yes"}`, "enabled"},
		{`leaderElection: true`, "leaderElection"},
		{`metrics: {serviceMonitor: {interval: soon}}`, "interval"},
		{`metrics: {gatewayPodMonitor: {interval: soon}}`, "interval"},
		{`metrics: {gatewayPodMonitor: {enable: true}}`, "enable"},
		{`podDisruptionBudget: {minAvailable: half}`, "minAvailable"},
		{`webhook: {certValidityDays: -1}`, "certValidityDays"},
	} {
		_, err := Render(ch, releaseName, namespace, mustYAML(t, tc.values))
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want one about %s", tc.values, err, tc.wantErr)
		}
	}
}

// managerArgs returns the manager container's args and env of a render.
func managerContainer(t *testing.T, in objects, name string) map[string]any {
	t.Helper()
	d := in["Deployment "+namespace+"/"+name+"-controller-manager"]
	if d == nil {
		t.Fatalf("no Deployment %s-controller-manager", name)
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	return containers[0].(map[string]any)
}

func stringsOf(v any) []string {
	var out []string
	for _, e := range v.([]any) {
		out = append(out, e.(string))
	}
	return out
}

// TestValues: each value reaches the manager's flags or the objects it is meant for.
func TestValues(t *testing.T) {
	ch := loadChart(t)
	v := "v" + strings.TrimPrefix(ch.Metadata.AppVersion, "v")
	for _, tc := range []struct {
		name   string
		values string
		check  func(t *testing.T, in objects, c map[string]any, args []string)
	}{{
		name:   "images",
		values: `{image: {repository: registry.example.com/offerfeed, tag: v9.9.9, pullPolicy: Always}, gateway: {image: {repository: mirror.example.com/offerfeed, pullPolicy: IfNotPresent}}}`,
		check: func(t *testing.T, in objects, c map[string]any, args []string) {
			if c["image"] != "registry.example.com/offerfeed:v9.9.9" || c["imagePullPolicy"] != "Always" {
				t.Errorf("image %v pull %v", c["image"], c["imagePullPolicy"])
			}
			env := c["env"].([]any)[0].(map[string]any)
			if env["name"] != "GATEWAY_IMAGE" || env["value"] != "mirror.example.com/offerfeed:"+v {
				t.Errorf("gateway image env %v", env)
			}
			if !slices.Contains(args, "--gateway-image-pull-policy=IfNotPresent") {
				t.Errorf("args %q", args)
			}
		},
	}, {
		name:   "manager flags",
		values: `{replicas: 3, leaderElection: {enabled: false}, logLevel: debug, podSelector: "app in (offer-service)"}`,
		check: func(t *testing.T, in objects, c map[string]any, args []string) {
			for _, want := range []string{"--leader-elect=false", "--zap-log-level=debug", "--pod-selector=app in (offer-service)"} {
				if !slices.Contains(args, want) {
					t.Errorf("args %q lack %q", args, want)
				}
			}
			if slices.Contains(args, "--leader-elect") {
				t.Errorf("args %q still elect a leader", args)
			}
			r, _, _ := unstructured.NestedFieldNoCopy(in["Deployment "+namespace+"/offerfeed-controller-manager"].Object, "spec", "replicas")
			if r != int64(3) {
				t.Errorf("replicas %v", r)
			}
		},
	}, {
		name:   "gateway resources",
		values: `{gateway: {resources: {requests: {cpu: 200m}, limits: {memory: 1Gi}}}}`,
		check: func(t *testing.T, in objects, c map[string]any, args []string) {
			want := []string{"--gateway-cpu-request=200m", "--gateway-memory-request=", "--gateway-cpu-limit=", "--gateway-memory-limit=1Gi"}
			for _, w := range want {
				if !slices.Contains(args, w) {
					t.Errorf("args %q lack %q", args, w)
				}
			}
		},
	}, {
		name:   "defaults leave the manager's own defaults",
		values: `{}`,
		check: func(t *testing.T, in objects, c map[string]any, args []string) {
			for _, a := range args {
				for _, p := range []string{"--gateway-cpu", "--gateway-memory", "--pod-selector", "--zap-log-level", "--gateway-image-pull-policy"} {
					if strings.HasPrefix(a, p) {
						t.Errorf("default args have %q", a)
					}
				}
			}
		},
	}, {
		name:   "optional objects off",
		values: `{crds: {install: false}, podDisruptionBudget: {enabled: false}}`,
		check: func(t *testing.T, in objects, c map[string]any, args []string) {
			for k := range in {
				if strings.HasPrefix(k, "CustomResourceDefinition ") || strings.HasPrefix(k, "PodDisruptionBudget ") {
					t.Errorf("%s rendered", k)
				}
			}
		},
	}, {
		name:   "service monitor",
		values: `{metrics: {serviceMonitor: {enabled: true, interval: 30s, labels: {release: prom}}}}`,
		check: func(t *testing.T, in objects, c map[string]any, args []string) {
			sm := in["ServiceMonitor "+namespace+"/offerfeed-controller-manager-metrics-monitor"]
			svc := in["Service "+namespace+"/offerfeed-controller-manager-metrics-service"]
			if sm == nil || svc == nil {
				t.Fatalf("no ServiceMonitor or metrics Service")
			}
			if sm.GetLabels()["release"] != "prom" {
				t.Errorf("labels %v", sm.GetLabels())
			}
			sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			for k, v := range sel {
				if svc.GetLabels()[k] != v {
					t.Errorf("ServiceMonitor selects %s=%s; the metrics Service has labels %v", k, v, svc.GetLabels())
				}
			}
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			ep := eps[0].(map[string]any)
			if ep["port"] != "https" || ep["scheme"] != "https" || ep["interval"] != "30s" {
				t.Errorf("endpoint %v", ep)
			}
			// The endpoint scrapes as config/prometheus's ServiceMonitor does, honorLabels
			// included: without it offerfeed_policy_condition's namespace label (the policy's)
			// becomes exported_namespace and the alerts and the dashboard name the wrong one.
			want := prometheusServiceMonitorEndpoint(t)
			got := maps.Clone(ep)
			delete(got, "interval")
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("the chart's ServiceMonitor endpoint differs from config/prometheus's (-config +chart):\n%s", d)
			}
		},
	}, {
		name:   "gateway pod monitor",
		values: `{metrics: {gatewayPodMonitor: {enabled: true, interval: 15s, labels: {release: prom}}}}`,
		check: func(t *testing.T, in objects, c map[string]any, args []string) {
			pm := in["PodMonitor "+namespace+"/offerfeed-gateway-metrics-monitor"]
			if pm == nil {
				t.Fatalf("no PodMonitor")
			}
			if pm.GetLabels()["release"] != "prom" || pm.GetLabels()["app.kubernetes.io/name"] != "offerfeed" {
				t.Errorf("labels %v", pm.GetLabels())
			}
			eps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
			if len(eps) != 1 || eps[0].(map[string]any)["interval"] != "15s" {
				t.Fatalf("endpoints %v", eps)
			}
			// The rest of the spec is config/prometheus's PodMonitor, which the gateway alerts
			// and the dashboard are written for: every namespace, the admin port the webhook
			// gives the sidecar.
			got := pm.DeepCopy().Object["spec"].(map[string]any)
			delete(got["podMetricsEndpoints"].([]any)[0].(map[string]any), "interval")
			if d := cmp.Diff(prometheusPodMonitorSpec(t), got); d != "" {
				t.Errorf("the chart's PodMonitor spec differs from config/prometheus's (-config +chart):\n%s", d)
			}
		},
	}, {
		name:   "monitors off by default",
		values: `{}`,
		check: func(t *testing.T, in objects, c map[string]any, args []string) {
			for k := range in {
				if strings.HasPrefix(k, "PodMonitor ") || strings.HasPrefix(k, "ServiceMonitor ") {
					t.Errorf("%s rendered", k)
				}
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			in := renderChart(t, ch, mustYAML(t, tc.values))
			c := managerContainer(t, in, "offerfeed")
			tc.check(t, in, c, stringsOf(c["args"]))
		})
	}
}

// prometheusServiceMonitorEndpoint returns the endpoint of the manager's ServiceMonitor in
// config/prometheus, which the alerts and the dashboard are written for.
func prometheusServiceMonitorEndpoint(t *testing.T) map[string]any {
	t.Helper()
	docs, err := kustomize.Build(top + "/config/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if d.Object.GetKind() != "ServiceMonitor" {
			continue
		}
		eps, _, _ := unstructured.NestedSlice(d.Object.Object, "spec", "endpoints")
		if len(eps) != 1 {
			t.Fatalf("config/prometheus's ServiceMonitor has %d endpoints", len(eps))
		}
		return eps[0].(map[string]any)
	}
	t.Fatal("config/prometheus has no ServiceMonitor")
	return nil
}

// prometheusPodMonitorSpec returns the spec of the gateway sidecars' PodMonitor in
// config/prometheus.
func prometheusPodMonitorSpec(t *testing.T) map[string]any {
	t.Helper()
	docs, err := kustomize.Build(top + "/config/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range docs {
		if d.Object.GetKind() == "PodMonitor" {
			spec, _, _ := unstructured.NestedMap(d.Object.Object, "spec")
			return spec
		}
	}
	t.Fatal("config/prometheus has no PodMonitor")
	return nil
}

// TestReleaseName: another release name prefixes every name, and every reference follows: the
// bindings name the ServiceAccount the pods run as, the webhook calls its Service, the
// Certificate is for that Service and cert-manager injects that Certificate's CA.
func TestReleaseName(t *testing.T) {
	text, err := Render(loadChart(t), "edge", "ops", nil)
	if err != nil {
		t.Fatal(err)
	}
	in := decode(t, "chart", text)
	const prefix = "edge-offerfeed-"
	// Like the CRD, the gateways' ClusterRole and admission policy are one per cluster, named
	// as the operator and the policy's parameter name them.
	clusterWide := []string{"ClusterRole /offerfeed-gateway", "ValidatingAdmissionPolicy /offerfeed-gateway-pod-report",
		"ValidatingAdmissionPolicyBinding /offerfeed-gateway-pod-report"}
	for _, k := range clusterWide {
		if in[k] == nil {
			t.Errorf("%s missing", k)
		}
	}
	for k, o := range in {
		if o.GetKind() != "CustomResourceDefinition" && !slices.Contains(clusterWide, k) && !strings.HasPrefix(o.GetName(), prefix) {
			t.Errorf("%s: name without the prefix %s", k, prefix)
		}
		if o.GetNamespace() != "" && o.GetNamespace() != "ops" {
			t.Errorf("%s: not in the release namespace", k)
		}
	}
	d := in["Deployment ops/edge-offerfeed-controller-manager"]
	if d == nil {
		t.Fatal("no Deployment")
	}
	sa, _, _ := unstructured.NestedString(d.Object, "spec", "template", "spec", "serviceAccountName")
	if in["ServiceAccount ops/"+sa] == nil {
		t.Errorf("pods run as %s, which the chart does not create", sa)
	}
	for _, k := range []string{"ClusterRoleBinding /edge-offerfeed-manager-rolebinding", "RoleBinding ops/edge-offerfeed-leader-election-rolebinding"} {
		subjects, _, _ := unstructured.NestedSlice(in[k].Object, "subjects")
		if s := subjects[0].(map[string]any); s["name"] != sa || s["namespace"] != "ops" {
			t.Errorf("%s binds %v, want ServiceAccount ops/%s", k, s, sa)
		}
		ref, _, _ := unstructured.NestedString(in[k].Object, "roleRef", "name")
		if in["ClusterRole /"+ref] == nil && in["Role ops/"+ref] == nil {
			t.Errorf("%s binds role %s, which the chart does not create", k, ref)
		}
	}
	mwc := in["MutatingWebhookConfiguration /edge-offerfeed-mutating-webhook-configuration"]
	webhooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
	svc, _, _ := unstructured.NestedString(webhooks[0].(map[string]any), "clientConfig", "service", "name")
	if in["Service ops/"+svc] == nil {
		t.Errorf("the webhook calls Service %s, which the chart does not create", svc)
	}
	cert := in["Certificate ops/edge-offerfeed-serving-cert"]
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if want := []string{svc + ".ops.svc", svc + ".ops.svc.cluster.local"}; !slices.Equal(dns, want) {
		t.Errorf("Certificate dnsNames %v, want %v", dns, want)
	}
	if got := mwc.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != "ops/"+cert.GetName() {
		t.Errorf("inject-ca-from %q", got)
	}
	issuer, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
	if in["Issuer ops/"+issuer] == nil {
		t.Errorf("Certificate's issuer %s is not in the chart", issuer)
	}
}
