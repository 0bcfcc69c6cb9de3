package webhook

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/offerfeed/offerfeed/internal/kustomize"
)

// TestSameAsKustomize: the embedded configuration is what `kustomize build config/webhook`
// gives.
func TestSameAsKustomize(t *testing.T) {
	got, err := MutatingWebhookConfigurations()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := kustomize.Build(".")
	if err != nil {
		t.Fatal(err)
	}
	var want []*admissionregistrationv1.MutatingWebhookConfiguration
	for _, d := range docs {
		if d.Object.GetKind() != "MutatingWebhookConfiguration" {
			continue
		}
		m := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(d.Object.Object, m); err != nil {
			t.Fatal(err)
		}
		want = append(want, m)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("embedded configuration differs from kustomize build (-kustomize +embedded):\n%s", diff)
	}
	if len(got) != 1 || got[0].Webhooks[0].NamespaceSelector == nil {
		t.Errorf("want one configuration with a namespaceSelector: %+v", got)
	}
}
