package offerfeedtest

import (
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/offerfeed/offerfeed/config/crd"
	"github.com/offerfeed/offerfeed/internal/operator"
)

// CRDs returns the offerfeed CustomResourceDefinitions, for
// envtest.Environment.CRDInstallOptions.CRDs. They are the manifests of config/crd/bases,
// embedded in this module. Each call returns new objects that the caller may change.
//
// CRDs panics only if the embedded manifests do not decode, which offerfeed's own tests rule
// out for every release.
func CRDs() []*apiextensionsv1.CustomResourceDefinition {
	crds, err := crd.CRDs()
	if err != nil {
		panic(fmt.Sprintf("offerfeedtest: %v", err))
	}
	return crds
}

// NewScheme returns a new scheme with the Kubernetes built-in kinds and the offerfeed kinds,
// for a client of the test environment.
func NewScheme() *runtime.Scheme { return operator.NewScheme() }
