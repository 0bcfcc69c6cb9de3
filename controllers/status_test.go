package controllers

import (
	"strings"
	"testing"

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
	}{
		{"accepted and programmed", accepted, true, metav1.ConditionTrue, v1alpha1.ReasonProgrammed, "3 pods", "sha256:ab", 3},
		{"uninjected pods are named", func() render.PolicyResult { r := accepted; r.UninjectedPods = 2; return r }(), true,
			metav1.ConditionTrue, v1alpha1.ReasonProgrammed, "2 selected pods have no gateway sidecar", "sha256:ab", 3},
		{"conflicted", render.PolicyResult{Reason: v1alpha1.ReasonConflicted, Message: "conflicts with policy a"}, true,
			metav1.ConditionFalse, v1alpha1.ReasonNotAccepted, "not accepted", "", 0},
		{"ConfigMap not ours", accepted, false, metav1.ConditionTrue, v1alpha1.ReasonConfigMapNotManaged, "not written by offerfeed", "", 3},
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

			// Computing the same status again changes nothing, transition times included.
			before := p.Status.DeepCopy()
			setStatus(p, tt.pr, tt.managed)
			if !equalStatus(before, &p.Status) {
				t.Error("status not stable")
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
	return a.ConfigHash == b.ConfigHash && a.TargetedPods == b.TargetedPods && a.ObservedGeneration == b.ObservedGeneration
}
