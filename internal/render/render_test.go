package render

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/manifest"
	"github.com/offerfeed/offerfeed/internal/render/rendertest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current output")

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func policy(name string, age time.Duration, sel map[string]string) v1alpha1.OfferFeedPolicy {
	return v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "offers",
			CreationTimestamp: metav1.NewTime(t0.Add(-age))},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(sel),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
		},
	}
}

// TestRenderConflictMessageIgnoresPodOrder renders policies that share several pods with the
// pods in two orders: the loser's message names the same common pod (the first by name), or
// the controller would write its status again whenever the cache lists pods differently.
func TestRenderConflictMessageIgnoresPodOrder(t *testing.T) {
	pods := []Pod{
		{Name: "web-3", Labels: map[string]string{"app": "offer-service"}},
		{Name: "web-1", Labels: map[string]string{"app": "offer-service"}},
		{Name: "web-2", Labels: map[string]string{"app": "offer-service"}},
	}
	policies := []v1alpha1.OfferFeedPolicy{
		policy("all", 2*time.Hour, map[string]string{"app": "offer-service"}),
		func() v1alpha1.OfferFeedPolicy {
			p := policy("web", time.Hour, nil)
			p.Spec.TargetSelector.MatchExpressions = []v1alpha1.LabelSelectorRequirement{{Key: "app", Operator: "Exists"}}
			return p
		}(),
	}
	for _, order := range [][]Pod{pods, {pods[2], pods[1], pods[0]}, {pods[1], pods[0], pods[2]}} {
		res, err := Render("offers", policies, order)
		if err != nil {
			t.Fatal(err)
		}
		if msg := res.Policies["web"].Message; !strings.Contains(msg, "selects pod web-1 too") {
			t.Errorf("pods %v: message %q, want it to name web-1", order, msg)
		}
	}
}

func TestPolicyDefaultsAndHash(t *testing.T) {
	p := policy("std", time.Hour, map[string]string{"app": "offer-service"})
	p.Spec.Accept = &v1alpha1.AcceptLimits{PathTemplate: "/offers/{offerId}/accept", MaxAccepts: ptr.To[int32](3),
		Window: ptr.To[v1alpha1.Duration]("10m"), MinReactionTime: ptr.To[v1alpha1.Duration]("800ms")}
	got, err := Policy(&p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Mode != gatewayconfig.ModeEnforce || got.Feed.Method != "GET" || got.Feed.Burst != 1 || got.Accept.Method != "POST" {
		t.Errorf("defaults not applied: %+v", got)
	}
	if p.Spec.Mode != "" || p.Spec.Feed.Method != "" || p.Spec.Feed.Burst != 0 {
		t.Errorf("Policy changed its argument: %+v", p.Spec)
	}
	withFairness := p.DeepCopy()
	withFairness.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: "3s"}
	if f, err := Policy(withFairness); err != nil || f.Accept.Fairness.Award != gatewayconfig.AwardRandom {
		t.Errorf("fairness.award default: %+v, %v", f.Accept, err)
	}
	if got.Accept.Window.D() != 10*time.Minute || got.Accept.MinReactionTime.D() != 800*time.Millisecond {
		t.Errorf("durations: %+v", got.Accept)
	}
	again, _ := Policy(&p)
	if got.Hash != again.Hash || !strings.HasPrefix(got.Hash, "sha256:") {
		t.Errorf("hash unstable or malformed: %s %s", got.Hash, again.Hash)
	}
	p.Spec.Feed.MinInterval = "3s"
	changed, _ := Policy(&p)
	if changed.Hash == got.Hash {
		t.Error("hash did not change with the spec")
	}
	// Metadata other than the name does not change the entry.
	p.Spec.Feed.MinInterval = "2s"
	p.Labels = map[string]string{"team": "x"}
	p.CreationTimestamp = metav1.NewTime(t0)
	same, _ := Policy(&p)
	if same.Hash != got.Hash {
		t.Error("hash changed with metadata")
	}
}

// TestGolden renders testdata/*.in.yaml (policies and pods, namespace "offers") and compares
// the config and every policy's status with testdata/*.out.yaml. Run with -update to rewrite
// the outputs, and review their diff. Conflicts, invalid policies and pod counts are cases
// there, one file each.
func TestGolden(t *testing.T) {
	ins, err := filepath.Glob("testdata/*.in.yaml")
	if err != nil || len(ins) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, in := range ins {
		t.Run(filepath.Base(in), func(t *testing.T) {
			policies, pods := readInput(t, in)
			res, err := Render("offers", policies, pods)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Policies) != len(policies) {
				t.Errorf("%d results for %d policies", len(res.Policies), len(policies))
			}
			checkResult(t, res)
			checkGolden(t, strings.TrimSuffix(in, ".in.yaml")+".out.yaml", res)
		})
	}
}

// checkResult checks what every result must hold, whatever the golden says: the config holds
// exactly the accepted policies, with the hash their status reports, in precedence order, and
// parses in the gateway.
func checkResult(t *testing.T, res *Result) {
	t.Helper()
	inConfig := map[string]string{}
	for _, p := range res.Config.Policies {
		inConfig[p.Name] = p.Hash
	}
	for name, pr := range res.Policies {
		h, ok := inConfig[name]
		if pr.Accepted != ok || pr.Hash != h || pr.Accepted != (pr.Reason == v1alpha1.ReasonAccepted) {
			t.Errorf("%s: accepted %v, reason %s, hash %q; in the config: %v, hash %q", name, pr.Accepted, pr.Reason, pr.Hash, ok, h)
		}
	}
	if len(inConfig) != len(res.Config.Policies) {
		t.Errorf("the config names a policy twice: %v", inConfig)
	}
	if _, err := gatewayconfig.Parse(res.Data); err != nil {
		t.Errorf("the gateway refuses the config: %v", err)
	}
}

// readInput reads OfferFeedPolicies and Pods from a manifest; a pod is injected when it has
// the offerfeed.dev/injected annotation.
func readInput(t *testing.T, file string) ([]v1alpha1.OfferFeedPolicy, []Pod) {
	t.Helper()
	docs, err := manifest.Read(file)
	if err != nil {
		t.Fatal(err)
	}
	var policies []v1alpha1.OfferFeedPolicy
	var pods []Pod
	for _, d := range docs {
		switch d.Object.GetKind() {
		case "OfferFeedPolicy":
			var p v1alpha1.OfferFeedPolicy
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Object.Object, &p); err != nil {
				t.Fatalf("%s: %v", d.Where(), err)
			}
			policies = append(policies, p)
		case "Pod":
			var p corev1.Pod
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Object.Object, &p); err != nil {
				t.Fatalf("%s: %v", d.Where(), err)
			}
			_, injected := p.Annotations[v1alpha1.InjectedAnnotation]
			pods = append(pods, Pod{Name: p.Name, Labels: p.Labels, Injected: injected})
		default:
			t.Fatalf("%s: unexpected kind %q", d.Where(), d.Object.GetKind())
		}
	}
	return policies, pods
}

// TestGoldenSamples renders config/samples in namespace "offers" into testdata/samples.out.yaml,
// which the controller suite compares with the ConfigMap after `kubectl apply -f config/samples/`.
func TestGoldenSamples(t *testing.T) {
	policies, pods := readInput(t, "../../config/samples")
	if len(policies) < 2 || len(pods) != 0 {
		t.Fatalf("config/samples: %d policies, %d pods", len(policies), len(pods))
	}
	res, err := Render("offers", policies, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkResult(t, res)
	checkGolden(t, "testdata/samples.out.yaml", res)
}

// golden is res as a golden file holds it.
func golden(res *Result) *rendertest.Golden {
	g := &rendertest.Golden{Config: string(res.Data), Policies: map[string]rendertest.Status{}}
	for name, pr := range res.Policies {
		g.Policies[name] = rendertest.Status{Accepted: pr.Accepted, Reason: string(pr.Reason), Message: pr.Message,
			TargetedPods: pr.TargetedPods, UninjectedPods: pr.UninjectedPods, Hash: pr.Hash}
	}
	return g
}

// checkGolden compares res with the golden file out, after rewriting it with -update, and
// prints the difference.
func checkGolden(t *testing.T, out string, res *Result) {
	t.Helper()
	got := golden(res)
	if *update {
		b, err := got.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := rendertest.Read(out)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/render -update)", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s differs from what Render gives (-golden +rendered); if the change is right, run go test ./internal/render -update and review the diff:\n%s", out, diff)
	}
}

// TestConfigMap: the ConfigMap holds a render's bytes under the config key, is labelled as
// offerfeed's (the manager's cache holds only such ConfigMaps) and carries the hash of exactly
// those bytes, so the annotation changes with the config.
func TestConfigMap(t *testing.T) {
	res, err := Render("offers", []v1alpha1.OfferFeedPolicy{policy("standard", time.Hour, map[string]string{"app": "offer-service"})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := Render("offers", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc string
		data []byte
	}{{"one policy", res.Data}, {"no policy", empty.Data}} {
		t.Run(tc.desc, func(t *testing.T) {
			cm := ConfigMap("offers", tc.data)
			if cm.Name != "offerfeed-gateway" || cm.Namespace != "offers" {
				t.Errorf("ConfigMap %s/%s, want offers/offerfeed-gateway", cm.Namespace, cm.Name)
			}
			if got := cm.Data["config.json"]; got != string(tc.data) || len(cm.Data) != 1 {
				t.Errorf("data = %v, want only config.json with the rendered bytes", cm.Data)
			}
			if cm.Labels["app.kubernetes.io/managed-by"] != "offerfeed" {
				t.Errorf("labels = %v, want app.kubernetes.io/managed-by=offerfeed", cm.Labels)
			}
			want := gatewayconfig.Hash(tc.data)
			if got := cm.Annotations["offerfeed.dev/config-hash"]; got != want {
				t.Errorf("config-hash annotation = %q, want %q", got, want)
			}
		})
	}
	if ConfigMap("offers", res.Data).Annotations[v1alpha1.ConfigHashAnnotation] == ConfigMap("offers", empty.Data).Annotations[v1alpha1.ConfigHashAnnotation] {
		t.Error("two different configs have the same config-hash annotation")
	}
}

// TestRenderCountsEnforcingPods: a policy's enforced pods are the governed ones (selected and
// injected) whose gateway reports the policy's hash; every other governed pod lags, named in
// order; pods not governed (not injected, not selected, or governed by the conflict's winner)
// count for nothing.
func TestRenderCountsEnforcingPods(t *testing.T) {
	pods := []Pod{
		{Name: "web-3", Labels: map[string]string{"app": "offers"}, Injected: true},
		{Name: "web-1", Labels: map[string]string{"app": "offers"}, Injected: true},
		{Name: "web-2", Labels: map[string]string{"app": "offers"}, Injected: true, EnforcedHash: "sha256:old"},
		{Name: "plain", Labels: map[string]string{"app": "offers"}},
		{Name: "other", Labels: map[string]string{"app": "other"}, Injected: true},
	}
	policies := []v1alpha1.OfferFeedPolicy{policy("standard", time.Hour, map[string]string{"app": "offers"})}
	res, err := Render("offers", policies, pods)
	if err != nil {
		t.Fatal(err)
	}
	pr := res.Policies["standard"]
	if pr.EnforcedPods != 0 || !slices.Equal(pr.LaggingPods, []string{"web-1", "web-2", "web-3"}) {
		t.Fatalf("before any report: enforced %d, lagging %q", pr.EnforcedPods, pr.LaggingPods)
	}
	for i := range pods {
		pods[i].EnforcedHash = pr.Hash // "plain" and "other" too: they must not count
	}
	pods[2].EnforcedHash = "none"
	res, err = Render("offers", policies, pods)
	if err != nil {
		t.Fatal(err)
	}
	pr = res.Policies["standard"]
	if pr.TargetedPods != 3 || pr.EnforcedPods != 2 || !slices.Equal(pr.LaggingPods, []string{"web-2"}) {
		t.Errorf("targeted %d, enforced %d, lagging %q; want 3, 2, [web-2]", pr.TargetedPods, pr.EnforcedPods, pr.LaggingPods)
	}
}

// TestNextGeneration checks that the generation only grows: the same bytes keep the one in
// place, any change (policies, or data edited by hand) takes the next, and the annotation's
// record is a floor that a hand edit of the data cannot lower.
func TestNextGeneration(t *testing.T) {
	fresh := func(t *testing.T) *Result {
		t.Helper()
		res, err := Render("offers", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	at := func(t *testing.T, gen int64) []byte {
		t.Helper()
		res := fresh(t)
		if err := res.SetGeneration(gen); err != nil {
			t.Fatal(err)
		}
		return res.Data
	}
	edited := bytes.Replace(at(t, 4), []byte(`"policies": []`), []byte(`"policies": [] `), 1)
	for _, tt := range []struct {
		name     string
		previous []byte
		recorded int64
		want     int64
	}{
		{"no ConfigMap yet", nil, 0, 1},
		{"same bytes keep their generation", at(t, 4), 4, 4},
		{"same bytes without the annotation", at(t, 4), 0, 4},
		{"other bytes take the next", edited, 4, 5},
		{"data without a generation", []byte(`{"schemaVersion":1,"namespace":"x","policies":[]}`), 0, 1},
		{"hand edit lowering the data's generation", at(t, 2), 7, 8},
		{"hand edit dropping the generation", []byte(`{"schemaVersion":1,"namespace":"offers","policies":[]}`), 7, 8},
		{"not JSON", []byte(`}{`), 3, 4},
		{"hand edit raising the data's generation", bytes.Replace(at(t, 9), []byte(`"policies": []`), []byte(`"policies": [] `), 1), 4, 10},
		{"hand edit raising it, same bytes otherwise", at(t, 9), 4, 9},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := fresh(t)
			got, err := res.NextGeneration(tt.previous, tt.recorded)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || res.Config.Generation != tt.want || gatewayconfig.PeekGeneration(res.Data) != tt.want {
				t.Errorf("generation %d (config %d, data %d), want %d", got, res.Config.Generation, gatewayconfig.PeekGeneration(res.Data), tt.want)
			}
			if got == gatewayconfig.PeekGeneration(tt.previous) && !bytes.Equal(res.Data, tt.previous) {
				t.Errorf("kept generation %d for other bytes", got)
			}
		})
	}
	if err := fresh(t).SetGeneration(0); err == nil {
		t.Error("SetGeneration(0) accepted")
	}
	// A generation set to the maximum by hand does not wrap around to a negative one.
	if gen, err := fresh(t).NextGeneration(nil, math.MaxInt64); err == nil {
		t.Errorf("generation %d after the maximum", gen)
	}
}
