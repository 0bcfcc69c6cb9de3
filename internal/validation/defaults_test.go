package validation

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestDefault applies the CRD's defaults to a spec that leaves them out, and leaves values
// that are set alone.
func TestDefault(t *testing.T) {
	v, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := Embedded(); again != v {
		t.Error("Embedded built a second Validator")
	}
	gvk := schema.GroupVersionKind{Group: "offerfeed.dev", Version: "v1alpha1", Kind: "OfferFeedPolicy"}
	obj := map[string]any{"spec": map[string]any{
		"feed":   map[string]any{"path": "/offers", "minInterval": "2s"},
		"accept": map[string]any{"pathTemplate": "/a/{offerId}", "method": "PUT", "fairness": map[string]any{"window": "3s"}},
	}}
	if err := v.Default(gvk, obj); err != nil {
		t.Fatal(err)
	}
	spec := obj["spec"].(map[string]any)
	feed, accept := spec["feed"].(map[string]any), spec["accept"].(map[string]any)
	for _, c := range []struct {
		field     string
		got, want any
	}{
		{"spec.mode", spec["mode"], "Enforce"},
		{"spec.feed.method", feed["method"], "GET"},
		{"spec.feed.burst", feed["burst"], int64(1)},
		{"spec.accept.method (set)", accept["method"], "PUT"},
		{"spec.accept.fairness.award", accept["fairness"].(map[string]any)["award"], "Random"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %#v, want %#v", c.field, c.got, c.want)
		}
	}
	if err := v.Default(schema.GroupVersionKind{Group: "offerfeed.dev", Version: "v9", Kind: "OfferFeedPolicy"}, obj); err == nil {
		t.Error("an unserved version was defaulted")
	}
	if err := v.Default(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, obj); err == nil {
		t.Error("an unknown kind was defaulted")
	}
}
