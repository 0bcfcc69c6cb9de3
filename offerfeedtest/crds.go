package offerfeedtest

import (
	"context"
	"fmt"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/config/crd"
	"github.com/offerfeed/offerfeed/config/gatewayaccess"
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

// InstallGatewayAccess creates, with c (an administrator's client of the test environment),
// what config/default installs for the gateways' access to the API server: ClusterRole
// offerfeed-gateway, which the operator binds in each namespace with injected pods, and
// ValidatingAdmissionPolicy offerfeed-gateway-pod-report with its binding, which lets a
// gateway's pod-bound token change only its own pod's offerfeed.dev/enforced-* annotations.
// Objects that exist already are left as they are.
func InstallGatewayAccess(ctx context.Context, c client.Client) error {
	objs, err := gatewayaccess.Objects()
	if err != nil {
		return fmt.Errorf("offerfeedtest: %w", err)
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("offerfeedtest: creating %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}
