package validation

import (
	"fmt"
	"sync"

	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Default applies the defaults of the schema of gvk to obj, an object as decoded from JSON, as
// the API server does when it decodes a request or reads a stored object (structural
// defaulting: the +default markers, nowhere else). obj may hold only some of the
// object's fields, such as just its spec.
func (v *Validator) Default(gvk schema.GroupVersionKind, obj map[string]any) error {
	ki, ok := v.kinds[gvk.GroupKind()]
	if !ok {
		return fmt.Errorf("kind %s is not known", gvk.GroupKind())
	}
	ver, ok := ki.versions[gvk.Version]
	if !ok {
		return fmt.Errorf("%s is not served", gvk)
	}
	structuraldefaulting.Default(obj, ver.structural)
	return nil
}

// embedded is the Validator of the embedded CRDs, built once: it never changes.
var embedded = sync.OnceValues(New)

// Embedded returns the Validator of the CRDs embedded in the binary (see New), built on the
// first call and shared: a Validator is safe for concurrent use.
func Embedded() (*Validator, error) { return embedded() }
