// Package webhook embeds the pod injection webhook's configuration: manifests.yaml, which
// controller-gen writes from the +kubebuilder:webhook marker, with the namespaceSelector patch
// that this directory's kustomization applies. envtest suites and the demo install it from
// here without running kustomize; a test checks that both give the same result. (Do not
// point envtest's WebhookInstallOptions.Paths at this directory: it would read the patch as a
// manifest. Set MutatingWebhooks to MutatingWebhookConfigurations() instead.)
//
//	env.WebhookInstallOptions.MutatingWebhooks, err = webhook.MutatingWebhookConfigurations()
package webhook

import (
	"bytes"
	"embed"
	"fmt"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"

	"github.com/offerfeed/offerfeed/internal/manifest"
)

//go:embed manifests.yaml namespace_selector_patch.yaml
var files embed.FS

// MutatingWebhookConfigurations returns the webhook configurations as `kustomize build
// config/webhook` does (without the install's name prefix, namespace and CA annotation).
// Each call returns new objects that the caller may change.
func MutatingWebhookConfigurations() ([]*admissionregistrationv1.MutatingWebhookConfiguration, error) {
	raw, err := files.ReadFile("manifests.yaml")
	if err != nil {
		return nil, err
	}
	patchYAML, err := files.ReadFile("namespace_selector_patch.yaml")
	if err != nil {
		return nil, err
	}
	patchJSON, err := yaml.YAMLToJSON(patchYAML)
	if err != nil {
		return nil, fmt.Errorf("namespace_selector_patch.yaml: %w", err)
	}
	patch, err := jsonpatch.DecodePatch(patchJSON)
	if err != nil {
		return nil, fmt.Errorf("namespace_selector_patch.yaml: %w", err)
	}
	docs, err := manifest.Decode("manifests.yaml", bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	var out []*admissionregistrationv1.MutatingWebhookConfiguration
	for _, d := range docs {
		if d.Object.GetKind() != "MutatingWebhookConfiguration" {
			continue
		}
		patched, err := patch.Apply(d.Raw)
		if err != nil {
			return nil, fmt.Errorf("patching %s: %w", d.Where(), err)
		}
		m := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := yaml.UnmarshalStrict(patched, m); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", d.Where(), err)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("manifests.yaml holds no MutatingWebhookConfiguration")
	}
	return out, nil
}
