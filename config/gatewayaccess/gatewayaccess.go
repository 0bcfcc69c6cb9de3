// Package gatewayaccess embeds the manifests that give the injected gateways their access to
// the API server (docs/design.md#security): ClusterRole offerfeed-gateway, which the operator
// binds per namespace, and ValidatingAdmissionPolicy offerfeed-gateway-pod-report with its
// binding, which narrows the gateways' pod patches to their own report. kustomize installs
// them with config/default, the Helm chart from copies, and test suites with Objects.
package gatewayaccess

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// NamePrefix is what config/default puts before each name, as Objects does.
const NamePrefix = "offerfeed-"

var (
	//go:embed role.yaml
	roleYAML []byte
	//go:embed admission_policy.yaml
	policyYAML []byte
	//go:embed admission_policy_binding.yaml
	bindingYAML []byte
)

// Objects returns the ClusterRole, the ValidatingAdmissionPolicy and its binding, named as
// config/default names them. Each call returns new objects.
func Objects() ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, doc := range [][]byte{roleYAML, policyYAML, bindingYAML} {
		d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(doc), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := d.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("gateway access manifests: %w", err)
			}
			if len(u.Object) == 0 {
				continue
			}
			u.SetName(NamePrefix + u.GetName())
			if u.GetKind() == "ValidatingAdmissionPolicyBinding" {
				name, _, _ := unstructured.NestedString(u.Object, "spec", "policyName")
				if err := unstructured.SetNestedField(u.Object, NamePrefix+name, "spec", "policyName"); err != nil {
					return nil, err
				}
			}
			out = append(out, u)
		}
	}
	return out, nil
}
