package v1alpha1

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestLabelSelectorAsMetav1(t *testing.T) {
	tests := []struct {
		desc    string
		in      LabelSelector
		want    *metav1.LabelSelector
		matches labels.Set
		misses  labels.Set
	}{
		{"matchLabels", SelectLabels(map[string]string{"app": "offer-service", "tier": ""}),
			&metav1.LabelSelector{MatchLabels: map[string]string{"app": "offer-service", "tier": ""}},
			labels.Set{"app": "offer-service", "tier": "", "x": "y"}, labels.Set{"app": "offer-service"}},
		{"matchExpressions", LabelSelector{MatchExpressions: []LabelSelectorRequirement{
			{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []LabelValue{"a", "b"}},
			{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist},
		}},
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}},
				{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist},
			}},
			labels.Set{"app": "b"}, labels.Set{"app": "b", "canary": "1"}},
		{"empty", LabelSelector{}, &metav1.LabelSelector{}, labels.Set{"a": "b"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got := tt.in.AsMetav1()
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("AsMetav1 (-want +got):\n%s", diff)
			}
			sel, err := metav1.LabelSelectorAsSelector(got)
			if err != nil {
				t.Fatal(err)
			}
			if !sel.Matches(tt.matches) {
				t.Errorf("%s does not match %v", sel, tt.matches)
			}
			if tt.misses != nil && sel.Matches(tt.misses) {
				t.Errorf("%s matches %v", sel, tt.misses)
			}
			// The copy shares nothing with the policy's selector.
			if len(got.MatchLabels) > 0 {
				for k := range got.MatchLabels {
					got.MatchLabels[k] = "changed"
				}
				for k, v := range tt.in.MatchLabels {
					if v == "changed" {
						t.Errorf("label %s of the policy changed through the copy", k)
					}
				}
			}
		})
	}
}
