package controllers

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/render"
)

func TestSetStatus(t *testing.T) {
	accepted := render.PolicyResult{Accepted: true, Reason: v1alpha1.ReasonAccepted, Message: "ok", TargetedPods: 3, Hash: "sha256:ab"}
	tests := []struct {
		desc           string
		pr             render.PolicyResult
		managed        bool
		wantAccepted   metav1.ConditionStatus
		wantProgrammed v1alpha1.OfferFeedPolicyConditionReason
		wantMessage    string // in Programmed
		wantHash       string
		wantTargeted   int32
		wantReady      metav1.ConditionStatus
		wantReadyWhy   v1alpha1.OfferFeedPolicyConditionReason // Ready's reason; Stalled=True with it when wantStalled
		wantReadyMsg   string                                  // in Ready's message
		wantStalled    bool
	}{
		{"accepted and programmed", accepted, true, metav1.ConditionTrue, v1alpha1.ReasonProgrammed, "3 pods", "sha256:ab", 3,
			metav1.ConditionTrue, v1alpha1.ReasonReady, "accepted and in the gateway config", false},
		{"uninjected pods are named", func() render.PolicyResult { r := accepted; r.UninjectedPods = 2; return r }(), true,
			metav1.ConditionTrue, v1alpha1.ReasonProgrammed, "2 selected pods have no gateway sidecar", "sha256:ab", 3,
			metav1.ConditionTrue, v1alpha1.ReasonReady, "accepted", false},
		{"conflicted", render.PolicyResult{Reason: v1alpha1.ReasonConflicted, Message: "conflicts with policy a"}, true,
			metav1.ConditionFalse, v1alpha1.ReasonNotAccepted, "not accepted", "", 0,
			metav1.ConditionFalse, v1alpha1.ReasonConflicted, "Accepted=False: conflicts with policy a", true},
		{"invalid", render.PolicyResult{Reason: v1alpha1.ReasonInvalid, Message: "selector does not parse"}, true,
			metav1.ConditionFalse, v1alpha1.ReasonNotAccepted, "not accepted", "", 0,
			metav1.ConditionFalse, v1alpha1.ReasonInvalid, "Accepted=False: selector does not parse", true},
		{"ConfigMap not ours", accepted, false, metav1.ConditionTrue, v1alpha1.ReasonConfigMapNotManaged, "not written by offerfeed", "", 3,
			metav1.ConditionFalse, v1alpha1.ReasonConfigMapNotManaged, "Programmed=False: ConfigMap offerfeed-gateway exists", true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			p := &v1alpha1.OfferFeedPolicy{ObjectMeta: metav1.ObjectMeta{Generation: 7}}
			setStatus(p, tt.pr, tt.managed)
			a := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionAccepted))
			pc := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionProgrammed))
			if a == nil || pc == nil {
				t.Fatalf("conditions missing: %+v", p.Status.Conditions)
			}
			if a.Status != tt.wantAccepted || a.Reason != string(tt.pr.Reason) || a.Message != tt.pr.Message {
				t.Errorf("Accepted = %+v", a)
			}
			if pc.Reason != string(tt.wantProgrammed) || !strings.Contains(pc.Message, tt.wantMessage) {
				t.Errorf("Programmed = %+v", pc)
			}
			if (pc.Status == metav1.ConditionTrue) != (tt.wantProgrammed == v1alpha1.ReasonProgrammed) {
				t.Errorf("Programmed status %s with reason %s", pc.Status, pc.Reason)
			}
			if p.Status.ConfigHash != tt.wantHash || p.Status.TargetedPods != tt.wantTargeted || p.Status.ObservedGeneration != 7 {
				t.Errorf("status = %+v", p.Status)
			}
			if a.ObservedGeneration != 7 || pc.ObservedGeneration != 7 {
				t.Error("conditions lack observedGeneration")
			}
			rc := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionReady))
			if rc == nil || rc.Status != tt.wantReady || rc.Reason != string(tt.wantReadyWhy) || rc.ObservedGeneration != 7 ||
				!strings.Contains(rc.Message, tt.wantReadyMsg) {
				t.Errorf("Ready = %+v, want %s, reason %s, message with %q", rc, tt.wantReady, tt.wantReadyWhy, tt.wantReadyMsg)
			}
			sc := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionStalled))
			switch {
			case tt.wantStalled && (sc == nil || sc.Status != metav1.ConditionTrue || sc.Reason != string(tt.wantReadyWhy) || sc.ObservedGeneration != 7):
				t.Errorf("Stalled = %+v, want True with reason %s", sc, tt.wantReadyWhy)
			case !tt.wantStalled && sc != nil:
				t.Errorf("Stalled = %+v, want none", sc)
			}

			// Computing the same status again changes nothing, transition times included.
			before := p.Status.DeepCopy()
			setStatus(p, tt.pr, tt.managed)
			if !equalStatus(before, &p.Status) {
				t.Error("status not stable")
			}
		})
	}
}

// TestSetStatusTransitions: Ready follows its inputs from one render to the next, Stalled goes
// away with its cause, and Ready keeps its transition time while its status holds.
func TestSetStatusTransitions(t *testing.T) {
	ok := render.PolicyResult{Accepted: true, Reason: v1alpha1.ReasonAccepted, Message: "ok", TargetedPods: 1, Hash: "sha256:ab"}
	conflicted := render.PolicyResult{Reason: v1alpha1.ReasonConflicted, Message: "conflicts with policy a"}
	p := &v1alpha1.OfferFeedPolicy{ObjectMeta: metav1.ObjectMeta{Generation: 1}}

	setStatus(p, conflicted, true)
	if !meta.IsStatusConditionTrue(p.Status.Conditions, string(v1alpha1.ConditionStalled)) ||
		!meta.IsStatusConditionFalse(p.Status.Conditions, string(v1alpha1.ConditionReady)) {
		t.Fatalf("conflicted: %+v", p.Status.Conditions)
	}

	p.Generation = 2 // the winner went away and the spec changed
	setStatus(p, ok, true)
	if meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionStalled)) != nil {
		t.Errorf("Stalled stays after its cause went: %+v", p.Status.Conditions)
	}
	rc := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionReady))
	if rc.Status != metav1.ConditionTrue || rc.ObservedGeneration != 2 {
		t.Fatalf("Ready = %+v, want True at generation 2", rc)
	}
	since := rc.LastTransitionTime

	p.Generation = 3
	setStatus(p, ok, true)
	rc = meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionReady))
	if rc.ObservedGeneration != 3 || !rc.LastTransitionTime.Equal(&since) {
		t.Errorf("Ready = %+v, want generation 3 and the transition time of generation 2", rc)
	}
}

// TestSetReadyCondition: Ready summarises the conditions in readyInputs, in order, and is
// Unknown while one of them is missing or of an older generation.
func TestSetReadyCondition(t *testing.T) {
	cond := func(typ v1alpha1.OfferFeedPolicyConditionType, status metav1.ConditionStatus, reason v1alpha1.OfferFeedPolicyConditionReason,
		gen int64) metav1.Condition {
		return metav1.Condition{Type: string(typ), Status: status, Reason: string(reason),
			Message: string(typ) + " says " + string(reason), ObservedGeneration: gen}
	}
	accepted := cond(v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted, 5)
	programmed := cond(v1alpha1.ConditionProgrammed, metav1.ConditionTrue, v1alpha1.ReasonProgrammed, 5)
	tests := []struct {
		desc        string
		conds       []metav1.Condition
		want        metav1.ConditionStatus
		wantReason  v1alpha1.OfferFeedPolicyConditionReason
		wantMessage string
		wantStalled bool
	}{
		{"all True", []metav1.Condition{accepted, programmed}, metav1.ConditionTrue, v1alpha1.ReasonReady, "accepted", false},
		{"none yet", nil, metav1.ConditionUnknown, v1alpha1.ReasonReconciling, "Accepted is not computed for generation 5", false},
		{"Programmed of an older generation", []metav1.Condition{accepted, cond(v1alpha1.ConditionProgrammed, metav1.ConditionTrue, v1alpha1.ReasonProgrammed, 4)},
			metav1.ConditionUnknown, v1alpha1.ReasonReconciling, "Programmed is not computed for generation 5", false},
		{"the first False gives the reason", []metav1.Condition{
			cond(v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonConflicted, 5),
			cond(v1alpha1.ConditionProgrammed, metav1.ConditionFalse, v1alpha1.ReasonNotAccepted, 5)},
			metav1.ConditionFalse, v1alpha1.ReasonConflicted, "Accepted=False: Accepted says Conflicted", true},
		{"a reason no one must act on does not stall", []metav1.Condition{accepted,
			cond(v1alpha1.ConditionProgrammed, metav1.ConditionFalse, "Pending", 5)},
			metav1.ConditionFalse, "Pending", "Programmed=False: Programmed says Pending", false},
		{"a leftover Stalled is removed", []metav1.Condition{accepted, programmed,
			cond(v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonConflicted, 4)},
			metav1.ConditionTrue, v1alpha1.ReasonReady, "accepted", false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			p := &v1alpha1.OfferFeedPolicy{ObjectMeta: metav1.ObjectMeta{Generation: 5}}
			p.Status.Conditions = append([]metav1.Condition(nil), tt.conds...)
			setReadyCondition(p)
			rc := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionReady))
			if rc == nil || rc.Status != tt.want || rc.Reason != string(tt.wantReason) || !strings.Contains(rc.Message, tt.wantMessage) || rc.ObservedGeneration != 5 {
				t.Errorf("Ready = %+v, want %s %s %q", rc, tt.want, tt.wantReason, tt.wantMessage)
			}
			if got := meta.IsStatusConditionTrue(p.Status.Conditions, string(v1alpha1.ConditionStalled)); got != tt.wantStalled {
				t.Errorf("Stalled = %v, want %v: %+v", got, tt.wantStalled, p.Status.Conditions)
			}
			if !tt.wantStalled && meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionStalled)) != nil {
				t.Errorf("Stalled present: %+v", p.Status.Conditions)
			}
		})
	}
}

func equalStatus(a, b *v1alpha1.OfferFeedPolicyStatus) bool {
	if len(a.Conditions) != len(b.Conditions) {
		return false
	}
	for i := range a.Conditions {
		if a.Conditions[i] != b.Conditions[i] {
			return false
		}
	}
	return a.ConfigHash == b.ConfigHash && a.TargetedPods == b.TargetedPods && a.EnforcedPods == b.EnforcedPods &&
		a.ObservedGeneration == b.ObservedGeneration
}

// TestConditionSeries: the gauge holds one series per policy and condition with its current
// status, drops the series of a status that changed and of a policy that went, and leaves
// other namespaces alone.
func TestConditionSeries(t *testing.T) {
	s := &conditionSeries{byNS: map[string]map[[4]string]struct{}{}}
	ok := render.PolicyResult{Accepted: true, Reason: v1alpha1.ReasonAccepted, Message: "ok", TargetedPods: 1}
	conflicted := render.PolicyResult{Reason: v1alpha1.ReasonConflicted, Message: "conflicts with policy a"}
	policy := func(name string, pr render.PolicyResult) v1alpha1.OfferFeedPolicy {
		p := v1alpha1.OfferFeedPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1}}
		setStatus(&p, pr, true)
		return p
	}
	value := func(ns, name string, typ v1alpha1.OfferFeedPolicyConditionType, status metav1.ConditionStatus,
		reason v1alpha1.OfferFeedPolicyConditionReason) float64 {
		return testutil.ToFloat64(policyConditions.WithLabelValues(ns, name, string(typ), string(status), string(reason)))
	}
	series := func(ns string) int {
		n := 0
		for _, p := range []string{"a", "b"} {
			n += policyConditions.DeletePartialMatch(prometheus.Labels{"namespace": ns, "policy": p})
		}
		return n
	}
	t.Cleanup(func() { series("obs-1"); series("obs-2") })

	s.record("obs-1", []v1alpha1.OfferFeedPolicy{policy("a", ok), policy("b", conflicted)})
	s.record("obs-2", []v1alpha1.OfferFeedPolicy{policy("a", ok)})
	if got := value("obs-1", "b", v1alpha1.ConditionStalled, "True", v1alpha1.ReasonConflicted); got != 1 {
		t.Errorf("Stalled of obs-1/b = %v, want 1", got)
	}
	if n := len(s.byNS["obs-1"]); n != 4+5 {
		t.Errorf("obs-1 has %d series, want 4 for a and 5 for b", n)
	}
	if got := value("obs-1", "b", v1alpha1.ConditionEnforced, "False", v1alpha1.ReasonNotProgrammed); got != 1 {
		t.Errorf("Enforced of obs-1/b = %v, want 1", got)
	}

	// b wins after all, a goes away.
	s.record("obs-1", []v1alpha1.OfferFeedPolicy{policy("b", ok)})
	if n := len(s.byNS["obs-1"]); n != 4 {
		t.Errorf("obs-1 has %d series after the change, want 4: %v", n, s.byNS["obs-1"])
	}
	if got := value("obs-1", "b", v1alpha1.ConditionReady, "True", v1alpha1.ReasonReady); got != 1 {
		t.Errorf("Ready of obs-1/b = %v, want 1", got)
	}
	// The stale series are gone: reading them again creates them at 0.
	for _, k := range []struct {
		policy string
		typ    v1alpha1.OfferFeedPolicyConditionType
		status metav1.ConditionStatus
	}{{"b", v1alpha1.ConditionReady, metav1.ConditionFalse}, {"a", v1alpha1.ConditionReady, metav1.ConditionTrue}} {
		reason := v1alpha1.ReasonConflicted
		if k.status == metav1.ConditionTrue {
			reason = v1alpha1.ReasonReady
		}
		if got := value("obs-1", k.policy, k.typ, k.status, reason); got != 0 {
			t.Errorf("stale series %v = %v, want it removed", k, got)
		}
	}
	// The other namespace is untouched; an empty namespace is forgotten.
	if got := value("obs-2", "a", v1alpha1.ConditionReady, "True", v1alpha1.ReasonReady); got != 1 {
		t.Errorf("obs-2/a Ready = %v, want 1", got)
	}
	s.record("obs-2", nil)
	if _, ok := s.byNS["obs-2"]; ok {
		t.Error("obs-2 still tracked without policies")
	}
}

// TestSetEnforcedCondition: Enforced is True only when the policy is Programmed and no governed
// pod lags; a lagging message counts the pods and names at most five, sorted as render gives
// them; enforcedPods is zero unless the policy is programmed; Ready does not follow Enforced.
func TestSetEnforcedCondition(t *testing.T) {
	lagging := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("offers-%02d", i))
		}
		return out
	}
	ok := render.PolicyResult{Accepted: true, Reason: v1alpha1.ReasonAccepted, Hash: "sha256:ab"}
	with := func(targeted, enforced int32, lag []string) render.PolicyResult {
		r := ok
		r.TargetedPods, r.EnforcedPods, r.LaggingPods = targeted, enforced, lag
		return r
	}
	for _, tt := range []struct {
		desc         string
		pr           render.PolicyResult
		managed      bool
		wantStatus   metav1.ConditionStatus
		wantReason   v1alpha1.OfferFeedPolicyConditionReason
		wantMessage  string
		wantEnforced int32
	}{
		{"all enforce", with(3, 3, nil), true, metav1.ConditionTrue, v1alpha1.ReasonEnforced, "all 3 governed pods enforce sha256:ab", 3},
		{"no governed pod", with(0, 0, nil), true, metav1.ConditionTrue, v1alpha1.ReasonEnforced, "governs no pod", 0},
		{"one lags", with(3, 2, []string{"offers-2"}), true, metav1.ConditionFalse, v1alpha1.ReasonLagging,
			"1 of 3 governed pods do not report enforcing sha256:ab yet: offers-2", 2},
		{"three lag", with(3, 0, lagging(3)), true, metav1.ConditionFalse, v1alpha1.ReasonLagging,
			"3 of 3 governed pods do not report enforcing sha256:ab yet: offers-00, offers-01 and offers-02", 0},
		{"twelve lag: five named", with(20, 8, lagging(12)), true, metav1.ConditionFalse, v1alpha1.ReasonLagging,
			"12 of 20 governed pods do not report enforcing sha256:ab yet: offers-00, offers-01, offers-02, offers-03, offers-04 and 7 more", 8},
		{"not accepted", render.PolicyResult{Reason: v1alpha1.ReasonConflicted, TargetedPods: 2}, true,
			metav1.ConditionFalse, v1alpha1.ReasonNotProgrammed, "not Programmed", 0},
		{"ConfigMap not ours", with(2, 2, nil), false, metav1.ConditionFalse, v1alpha1.ReasonNotProgrammed, "not Programmed", 0},
	} {
		t.Run(tt.desc, func(t *testing.T) {
			p := &v1alpha1.OfferFeedPolicy{ObjectMeta: metav1.ObjectMeta{Generation: 4}}
			setStatus(p, tt.pr, tt.managed)
			c := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionEnforced))
			if c == nil {
				t.Fatalf("no Enforced condition: %+v", p.Status.Conditions)
			}
			if c.Status != tt.wantStatus || c.Reason != string(tt.wantReason) || c.ObservedGeneration != 4 ||
				!strings.Contains(c.Message, tt.wantMessage) {
				t.Errorf("Enforced = %+v, want %s %s with %q", c, tt.wantStatus, tt.wantReason, tt.wantMessage)
			}
			if p.Status.EnforcedPods != tt.wantEnforced {
				t.Errorf("enforcedPods = %d, want %d", p.Status.EnforcedPods, tt.wantEnforced)
			}
			if tt.wantReason == v1alpha1.ReasonLagging && !meta.IsStatusConditionTrue(p.Status.Conditions, string(v1alpha1.ConditionReady)) {
				t.Errorf("Ready follows Enforced: %+v", p.Status.Conditions)
			}
		})
	}
}

func TestNamedList(t *testing.T) {
	for _, tt := range []struct {
		names []string
		want  string
	}{
		{nil, ""},
		{[]string{"a"}, "a"},
		{[]string{"a", "b"}, "a and b"},
		{[]string{"a", "b", "c"}, "a, b and c"},
		{[]string{"a", "b", "c", "d"}, "a, b, c and 1 more"},
	} {
		if got := namedList(tt.names, 3); got != tt.want {
			t.Errorf("namedList(%q, 3) = %q, want %q", tt.names, got, tt.want)
		}
	}
}
