// Package validation checks OfferFeedPolicy manifests offline against the rules the API server
// enforces on them. It does not re-implement those rules: it loads the embedded CRD and runs the
// Kubernetes code the API server runs for a create (k8s.io/apiextensions-apiserver): pruning of
// unknown fields (reported, as with strict field validation), defaulting, ObjectMeta validation,
// OpenAPI schema validation, list-type validation and the CEL rules (x-kubernetes-validations),
// in the order of the API server's customResourceStrategy.
package validation

import (
	"context"
	"fmt"
	"sort"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/operation"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"

	"github.com/offerfeed/offerfeed/config/crd"
)

// DefaultNamespace is the namespace assumed, for metadata validation, for a namespaced object
// without one (as `kubectl apply` without -n would).
const DefaultNamespace = "default"

// ErrorTypeUnknownField is the Type of an Error for a field the schema does not know; the API
// server refuses such objects under strict field validation (kubectl's default).
const ErrorTypeUnknownField = "FieldValueUnknown"

// Error is one reason an object is invalid, as the API server would report it.
type Error struct {
	// Field is the path of the offending field, such as spec.feed.minInterval; empty when the
	// error is about the whole document.
	Field string `json:"field,omitempty"`
	// Type is the kind of error: a k8s.io/apimachinery field.ErrorType such as
	// "FieldValueInvalid" or "FieldValueRequired", ErrorTypeUnknownField, or "DocumentInvalid".
	Type string `json:"type"`
	// Message is the API server's text after the field path, such as
	// `Invalid value: "5ms": minInterval must be between 10ms and 1h`.
	Message string `json:"message"`
}

// String is the error as the API server words it: field path, colon, message.
func (e Error) String() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// version holds what the API server builds from one served version of a CRD.
type version struct {
	structural      *structuralschema.Structural
	schemaValidator apiservervalidation.SchemaValidator
	celValidator    *cel.Validator
}

// kindInfo is one custom resource kind.
type kindInfo struct {
	namespaced bool
	versions   map[string]*version
}

// Validator validates custom resources of the CRDs it was built from. It is safe for concurrent
// use.
type Validator struct {
	kinds map[schema.GroupKind]*kindInfo
}

// New returns a Validator for the CRDs embedded in the binary (config/crd/bases).
func New() (*Validator, error) {
	crds, err := crd.CRDs()
	if err != nil {
		return nil, err
	}
	return NewForCRDs(crds)
}

// NewForCRDs returns a Validator for the served versions of crds, built as the API server builds
// its handler for them (see customresource_handler.go in k8s.io/apiextensions-apiserver).
func NewForCRDs(crds []*apiextensionsv1.CustomResourceDefinition) (*Validator, error) {
	v := &Validator{kinds: map[schema.GroupKind]*kindInfo{}}
	for _, c := range crds {
		ki := &kindInfo{
			namespaced: c.Spec.Scope == apiextensionsv1.NamespaceScoped,
			versions:   map[string]*version{},
		}
		for _, ver := range c.Spec.Versions {
			if !ver.Served {
				continue
			}
			if ver.Schema == nil || ver.Schema.OpenAPIV3Schema == nil {
				return nil, fmt.Errorf("CRD %s version %s has no schema", c.Name, ver.Name)
			}
			internal := &apiextensions.CustomResourceValidation{}
			if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(ver.Schema, internal, nil); err != nil {
				return nil, fmt.Errorf("converting the schema of CRD %s version %s: %w", c.Name, ver.Name, err)
			}
			s, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
			if err != nil {
				return nil, fmt.Errorf("CRD %s version %s has no structural schema: %w", c.Name, ver.Name, err)
			}
			s = s.DeepCopy()
			if err := structuraldefaulting.PruneDefaults(s); err != nil {
				return nil, fmt.Errorf("pruning the defaults of CRD %s version %s: %w", c.Name, ver.Name, err)
			}
			sv, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
			if err != nil {
				return nil, fmt.Errorf("building the schema validator of CRD %s version %s: %w", c.Name, ver.Name, err)
			}
			ki.versions[ver.Name] = &version{
				structural:      s,
				schemaValidator: sv,
				celValidator:    cel.NewValidator(s, true, celconfig.PerCallLimit),
			}
		}
		v.kinds[schema.GroupKind{Group: c.Spec.Group, Kind: c.Spec.Names.Kind}] = ki
	}
	return v, nil
}

// Handles reports whether the validator knows the group and kind of apiVersion and kind, in any
// version: documents of other kinds are not its business.
func (v *Validator) Handles(apiVersion, kind string) bool {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return false
	}
	_, ok := v.kinds[schema.GroupKind{Group: gv.Group, Kind: kind}]
	return ok
}

// Validate checks obj, an object as decoded from JSON (numbers as int64 or float64), as the API
// server checks it on create, and returns what the API server would refuse it for: unknown
// fields first, then the errors of validation sorted by field path. obj is changed as the API
// server changes it before validating: unknown fields pruned, defaults applied, status dropped.
// A namespaced obj without a namespace is validated as if in namespace, or DefaultNamespace when
// that is empty.
func (v *Validator) Validate(ctx context.Context, obj map[string]any, namespace string) []Error {
	u := &unstructured.Unstructured{Object: obj}
	gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
	if err != nil {
		return []Error{{Field: "apiVersion", Type: string(field.ErrorTypeInvalid), Message: err.Error()}}
	}
	ki, ok := v.kinds[schema.GroupKind{Group: gv.Group, Kind: u.GetKind()}]
	if !ok {
		return []Error{{Field: "kind", Type: string(field.ErrorTypeNotSupported), Message: fmt.Sprintf("kind %s of %s is not known", u.GetKind(), gv.Group)}}
	}
	ver, ok := ki.versions[gv.Version]
	if !ok {
		served := make([]string, 0, len(ki.versions))
		for n := range ki.versions {
			served = append(served, gv.Group+"/"+n)
		}
		sort.Strings(served)
		return []Error{{Field: "apiVersion", Type: string(field.ErrorTypeNotSupported),
			Message: fmt.Sprintf("no %s served as %s; served: %v", u.GetKind(), u.GetAPIVersion(), served)}}
	}

	// Decoding (schemaCoercingDecoder with strict field validation): ObjectMeta, pruning, then
	// defaulting (unstructuredDefaulter).
	var out []Error
	unknown, err := coerce(obj, ver.structural)
	if err != nil {
		return []Error{{Type: "DocumentInvalid", Message: err.Error()}}
	}
	for _, p := range unknown {
		out = append(out, Error{Field: p, Type: ErrorTypeUnknownField, Message: fmt.Sprintf("unknown field %q", p)})
	}
	structuraldefaulting.Default(obj, ver.structural)

	// customResourceStrategy.PrepareForCreate: a CRD with the status subresource drops status.
	// The API server sets the namespace from the request and generates names before validation.
	delete(obj, "status")
	check := &unstructured.Unstructured{Object: obj}
	restore := func() {}
	if ki.namespaced && check.GetNamespace() == "" {
		if namespace == "" {
			namespace = DefaultNamespace
		}
		check.SetNamespace(namespace)
		restore = func() { unstructured.RemoveNestedField(obj, "metadata", "namespace") }
	}
	if check.GetName() == "" && check.GetGenerateName() != "" {
		check.SetName(check.GetGenerateName() + "x0000")
		prev := restore
		restore = func() { prev(); unstructured.RemoveNestedField(obj, "metadata", "name") }
	}
	defer restore()

	// The API server's order of CEL errors follows Go map iteration; sort for stable output,
	// by field path, errors about the whole object last.
	var found []Error
	for _, e := range v.validate(ctx, check, ki, ver) {
		found = append(found, fromFieldError(e))
	}
	sort.SliceStable(found, func(i, j int) bool {
		a, b := found[i], found[j]
		if (a.Field == "") != (b.Field == "") {
			return b.Field == ""
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Message < b.Message
	})
	return append(out, found...)
}

// validate is customResourceStrategy.Validate for a create.
func (v *Validator) validate(ctx context.Context, u *unstructured.Unstructured, ki *kindInfo, ver *version) field.ErrorList {
	var errs field.ErrorList

	// customResourceValidator.Validate: ObjectMeta, then the OpenAPI schema.
	meta, metaErrs := objectMeta(u)
	if len(metaErrs) > 0 {
		errs = append(errs, metaErrs...)
	} else {
		errs = append(errs, apimachineryvalidation.ValidateObjectMetaDeclaratively(ctx, operation.Create, meta, nil, ki.namespaced,
			apimachineryvalidation.NameIsDNSSubdomain, field.NewPath("metadata"),
			utilfeature.DefaultFeatureGate.Enabled(features.DeclarativeValidationBeta))...)
	}
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, u.UnstructuredContent(), ver.schemaValidator)...)

	// Embedded resources, list-type invariants, then CEL unless an error blocks it.
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, u.Object, ver.structural, false)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, ver.structural, u.Object)...)
	if blocking, err := hasBlockingErr(errs); blocking {
		errs = append(errs, err)
	} else {
		celErrs, _ := ver.celValidator.Validate(ctx, nil, ver.structural, u.Object, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	return errs
}

// coerce is unstructuredSchemaCoercer.apply of the API server with strict field validation: it
// decodes ObjectMeta, prunes fields unknown to the schema and returns their paths.
func coerce(obj map[string]any, s *structuralschema.Structural) ([]string, error) {
	u := &unstructured.Unstructured{Object: obj}
	kind, foundKind := u.GetKind(), obj["kind"] != nil
	apiVersion, foundAPIVersion := u.GetAPIVersion(), obj["apiVersion"] != nil
	meta, foundMeta, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	unknown = append(unknown, structuralpruning.PruneWithOptions(obj, s, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, s)
	ferr, paths := schemaobjectmeta.CoerceWithOptions(nil, obj, s, false, schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if ferr != nil {
		return nil, ferr
	}
	unknown = append(unknown, paths...)
	if foundKind {
		u.SetKind(kind)
	}
	if foundAPIVersion {
		u.SetAPIVersion(apiVersion)
	}
	if foundMeta {
		if err := schemaobjectmeta.SetObjectMeta(obj, meta); err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
	}
	sort.Strings(unknown)
	return unknown, nil
}

// hasBlockingErr is the API server's rule (customresource strategy.go): CEL rules are not
// evaluated when the schema found errors that may leave them with wrong types or unbounded cost.
func hasBlockingErr(errs field.ErrorList) (bool, *field.Error) {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true, field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")
		}
	}
	return false, nil
}

// objectMeta is getObjectMeta of the API server's customResourceValidator.
func objectMeta(u *unstructured.Unstructured) (*metav1.ObjectMeta, field.ErrorList) {
	raw := u.Object["metadata"]
	if raw == nil {
		return &metav1.ObjectMeta{}, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, fmt.Sprintf("expected map[string]interface{}, got %T", raw))}
	}
	meta := &metav1.ObjectMeta{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, meta); err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, err.Error())}
	}
	return meta, nil
}

func fromFieldError(e *field.Error) Error {
	f := e.Field
	if f == "<nil>" {
		f = ""
	}
	return Error{Field: f, Type: string(e.Type), Message: e.ErrorBody()}
}
