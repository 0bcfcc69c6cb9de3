package render

import (
	"fmt"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/celcases"
)

// BenchmarkPolicy renders the example policy of docs/design.md#api (defaults, durations, hash).
func BenchmarkPolicy(b *testing.B) {
	p := celcases.Base()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Policy(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRender100 renders a namespace of 100 policies with disjoint selectors and 200 pods,
// what the controller does on every reconcile of such a namespace.
func BenchmarkRender100(b *testing.B) {
	var policies []v1alpha1.OfferFeedPolicy
	var pods []Pod
	for i := range 100 {
		p := celcases.Base()
		p.Name = fmt.Sprintf("p%03d", i)
		p.CreationTimestamp.Time = t0.Add(time.Duration(i) * time.Second)
		p.Spec.TargetSelector.MatchLabels = map[string]v1alpha1.LabelValue{"app": v1alpha1.LabelValue(p.Name)}
		policies = append(policies, *p)
		for j := range 2 {
			pods = append(pods, Pod{Name: fmt.Sprintf("%s-%d", p.Name, j), Labels: map[string]string{"app": p.Name}, Injected: true})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render("offers", policies, pods); err != nil {
			b.Fatal(err)
		}
	}
}
