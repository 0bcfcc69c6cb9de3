package render

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/manifest"
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

func TestRenderConflicts(t *testing.T) {
	app := map[string]string{"app": "offer-service"}
	canary := map[string]string{"track": "canary"}
	pods := []Pod{
		{Name: "web-1", Labels: map[string]string{"app": "offer-service", "track": "canary"}, Injected: true},
		{Name: "web-2", Labels: map[string]string{"app": "offer-service"}, Injected: true},
		{Name: "web-3", Labels: map[string]string{"app": "offer-service"}},
		{Name: "other", Labels: map[string]string{"app": "other"}, Injected: true},
	}
	tests := []struct {
		desc     string
		policies []v1alpha1.OfferFeedPolicy
		pods     []Pod
		want     map[string]PolicyResult // Message checked by substring
		order    []string                // names in the config, in order
	}{{
		desc:     "no policies renders an empty config",
		policies: nil,
		want:     map[string]PolicyResult{},
		order:    []string{},
	}, {
		desc:     "one policy counts injected and uninjected pods",
		policies: []v1alpha1.OfferFeedPolicy{policy("a", time.Hour, app)},
		pods:     pods,
		want:     map[string]PolicyResult{"a": {Accepted: true, Reason: "Accepted", TargetedPods: 2, UninjectedPods: 1}},
		order:    []string{"a"},
	}, {
		desc:     "equal selectors: the older wins even with a larger name",
		policies: []v1alpha1.OfferFeedPolicy{policy("a", time.Minute, app), policy("z", time.Hour, app)},
		want: map[string]PolicyResult{
			"z": {Accepted: true, Reason: "Accepted"},
			"a": {Reason: "Conflicted", Message: "conflicts with policy z, which has the same targetSelector"},
		},
		order: []string{"z"},
	}, {
		desc:     "equal selectors and age: the smaller name wins",
		policies: []v1alpha1.OfferFeedPolicy{policy("b", time.Hour, app), policy("a", time.Hour, app)},
		want: map[string]PolicyResult{
			"a": {Accepted: true, Reason: "Accepted"},
			"b": {Reason: "Conflicted", Message: "policy a"},
		},
		order: []string{"a"},
	}, {
		desc:     "a common pod is a conflict",
		policies: []v1alpha1.OfferFeedPolicy{policy("all", time.Hour, app), policy("canary", time.Minute, canary)},
		pods:     pods,
		want: map[string]PolicyResult{
			"all":    {Accepted: true, Reason: "Accepted", TargetedPods: 2, UninjectedPods: 1},
			"canary": {Reason: "Conflicted", Message: "selects pod web-1 too"},
		},
		order: []string{"all"},
	}, {
		desc:     "different selectors without a common pod do not conflict",
		policies: []v1alpha1.OfferFeedPolicy{policy("all", time.Hour, app), policy("canary", time.Minute, canary)},
		pods:     pods[1:],
		want: map[string]PolicyResult{
			"all":    {Accepted: true, Reason: "Accepted", TargetedPods: 1, UninjectedPods: 1},
			"canary": {Accepted: true, Reason: "Accepted"},
		},
		order: []string{"all", "canary"},
	}, {
		desc: "a loser does not block a third policy it alone conflicts with",
		policies: []v1alpha1.OfferFeedPolicy{
			policy("first", 3*time.Hour, map[string]string{"app": "other"}),
			policy("second", 2*time.Hour, map[string]string{"app": "other"}),
			policy("third", time.Hour, map[string]string{"app": "offer-service"}),
		},
		pods: pods,
		want: map[string]PolicyResult{
			"first":  {Accepted: true, Reason: "Accepted", TargetedPods: 1},
			"second": {Reason: "Conflicted", Message: "policy first"},
			"third":  {Accepted: true, Reason: "Accepted", TargetedPods: 2, UninjectedPods: 1},
		},
		order: []string{"first", "third"},
	}, {
		desc: "an invalid selector is not accepted and blocks nobody",
		policies: []v1alpha1.OfferFeedPolicy{
			func() v1alpha1.OfferFeedPolicy {
				p := policy("bad", 2*time.Hour, nil)
				p.Spec.TargetSelector.MatchExpressions = []v1alpha1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}
				return p
			}(),
			policy("good", time.Hour, app),
		},
		want: map[string]PolicyResult{
			"bad":  {Reason: "Invalid", Message: "spec.targetSelector"},
			"good": {Accepted: true, Reason: "Accepted"},
		},
		order: []string{"good"},
	}}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			res, err := Render("offers", tt.policies, tt.pods)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Policies) != len(tt.want) {
				t.Errorf("got %d results, want %d", len(res.Policies), len(tt.want))
			}
			for name, want := range tt.want {
				got := res.Policies[name]
				if got.Accepted != want.Accepted || got.Reason != want.Reason ||
					got.TargetedPods != want.TargetedPods || got.UninjectedPods != want.UninjectedPods {
					t.Errorf("%s: got %+v, want %+v", name, got, want)
				}
				if !strings.Contains(got.Message, want.Message) {
					t.Errorf("%s: message %q does not contain %q", name, got.Message, want.Message)
				}
				if got.Accepted != (got.Hash != "") {
					t.Errorf("%s: accepted=%v but hash %q", name, got.Accepted, got.Hash)
				}
			}
			var order []string
			for _, p := range res.Config.Policies {
				order = append(order, p.Name)
			}
			if strings.Join(order, ",") != strings.Join(tt.order, ",") {
				t.Errorf("config order %v, want %v", order, tt.order)
			}
			// The bytes are what the gateway parses.
			var back gatewayconfig.Config
			if err := json.Unmarshal(res.Data, &back); err != nil {
				t.Fatalf("config does not decode: %v", err)
			}
			if back.SchemaVersion != gatewayconfig.SchemaVersion || back.Namespace != "offers" || back.Policies == nil {
				t.Errorf("config header wrong: %+v", back)
			}
		})
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
// the config bytes with testdata/*.out.json. Run with -update to rewrite the outputs.
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
			checkGolden(t, strings.TrimSuffix(in, ".in.yaml")+".out.json", res.Data)
		})
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

// TestGoldenSamples renders config/samples in namespace "offers" into testdata/samples.out.json,
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
	checkGolden(t, "testdata/samples.out.json", res.Data)
}

// checkGolden compares got with the golden file out, after rewriting it with -update.
func checkGolden(t *testing.T, out string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(out, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/render -update)", err)
	}
	if string(want) != string(got) {
		t.Errorf("%s differs from the rendered config (run go test ./internal/render -update and review the diff):\n%s", out, got)
	}
}
