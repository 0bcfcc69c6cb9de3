package prometheus_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/offerfeed/offerfeed/config/prometheus"
	"github.com/offerfeed/offerfeed/internal/kustomize"
	"github.com/offerfeed/offerfeed/internal/manifest"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

type rule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

type group struct {
	Name  string `json:"name"`
	Rules []rule `json:"rules"`
}

// TestPrometheusRuleAgrees: the committed PrometheusRule is what PrometheusRule makes of the
// rules file, and its spec.groups are the rules file's groups, value for value.
func TestPrometheusRuleAgrees(t *testing.T) {
	committed, err := os.ReadFile("prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := prometheus.PrometheusRule(prometheus.Rules)
	if err != nil {
		t.Fatal(err)
	}
	if string(committed) != string(want) {
		t.Errorf("prometheusrule.yaml is stale; run 'make generate':\n%s", cmp.Diff(string(want), string(committed)))
	}

	var file struct {
		Groups []any `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(prometheus.Rules, &file); err != nil {
		t.Fatalf("offerfeed.rules.yaml: %v", err)
	}
	var pr struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(committed, &pr); err != nil {
		t.Fatalf("prometheusrule.yaml: %v", err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" || pr.Metadata.Name != prometheus.PrometheusRuleName {
		t.Errorf("prometheusrule.yaml is %s %s %s", pr.APIVersion, pr.Kind, pr.Metadata.Name)
	}
	if len(file.Groups) == 0 {
		t.Fatal("the rules file has no groups")
	}
	if d := cmp.Diff(file.Groups, pr.Spec.Groups); d != "" {
		t.Errorf("the PrometheusRule's groups differ from the rules file's (-file +PrometheusRule):\n%s", d)
	}
}

// TestPrometheusRuleWrapsAnyRulesFile: the wrapping keeps block scalars and comments, and
// refuses a file without top-level groups.
func TestPrometheusRuleWrapsAnyRulesFile(t *testing.T) {
	in := "# c\ngroups:\n- name: g\n  rules:\n  - alert: A\n    expr: up == 0\n\n    annotations:\n      d: >-\n        two\n        lines\n"
	out, err := prometheus.PrometheusRule([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Spec struct {
			Groups []group `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(out, &pr); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(pr.Spec.Groups) != 1 || pr.Spec.Groups[0].Rules[0].Annotations["d"] != "two lines" {
		t.Errorf("wrapped groups = %+v", pr.Spec.Groups)
	}
	if _, err := prometheus.PrometheusRule([]byte("rules: []\n")); err == nil {
		t.Error("a file without groups was wrapped")
	}
}

// TestRules: every alert is named once, has a severity, a summary and a description, and
// every expression names at least one offerfeed or controller-runtime metric.
func TestRules(t *testing.T) {
	var file struct {
		Groups []group `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(prometheus.Rules, &file); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule that is not an alert: %+v", g.Name, r)
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s twice", r.Alert)
			}
			seen[r.Alert] = true
			if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary or description missing", r.Alert)
			}
			if !strings.Contains(r.Expr, "offerfeed_") && !strings.Contains(r.Expr, "controller_runtime_") {
				t.Errorf("%s: expression names no offerfeed metric: %s", r.Alert, r.Expr)
			}
		}
	}
	if len(seen) < 5 {
		t.Errorf("only %d alerts", len(seen))
	}
}

// TestKustomization: config/prometheus builds, and its monitors find what the install serves:
// the ServiceMonitor selects the manager's metrics Service by its labels and port name, the
// PodMonitor scrapes the admin port the webhook gives the gateway.
func TestKustomization(t *testing.T) {
	docs, err := kustomize.Build(".")
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string]manifest.Document{}
	for _, d := range docs {
		if d.Object.GetNamespace() != "offerfeed-system" || !strings.HasPrefix(d.Object.GetName(), "offerfeed-") {
			t.Errorf("%s %s/%s: not in offerfeed-system with the offerfeed- prefix", d.Object.GetKind(), d.Object.GetNamespace(), d.Object.GetName())
		}
		byKind[d.Object.GetKind()] = d
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range byKind {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, []string{"PodMonitor", "PrometheusRule", "ServiceMonitor"}) {
		t.Fatalf("kinds = %v", got)
	}

	svcDocs, err := manifest.Read(filepath.Join("..", "manager", "metrics_service.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	svc := svcDocs[0].Object
	sm := byKind["ServiceMonitor"].Object.Object
	sel := labels.Set{}
	for k, v := range sm["spec"].(map[string]any)["selector"].(map[string]any)["matchLabels"].(map[string]any) {
		sel[k] = v.(string)
	}
	if !labels.SelectorFromSet(sel).Matches(labels.Set(svc.GetLabels())) {
		t.Errorf("ServiceMonitor selector %v does not select the metrics Service (labels %v)", sel, svc.GetLabels())
	}
	ep := sm["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)
	ports := svc.Object["spec"].(map[string]any)["ports"].([]any)
	if ports[0].(map[string]any)["name"] != ep["port"] || ep["honorLabels"] != true {
		t.Errorf("ServiceMonitor endpoint %v, Service ports %v", ep, ports)
	}

	pm := byKind["PodMonitor"].Object.Object
	pep := pm["spec"].(map[string]any)["podMetricsEndpoints"].([]any)[0].(map[string]any)
	if pep["port"] != webhook.AdminPortName {
		t.Errorf("PodMonitor scrapes port %v, the gateway's admin port is %s", pep["port"], webhook.AdminPortName)
	}
}
