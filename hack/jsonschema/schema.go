package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"io/fs"
	"reflect"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// SchemaID is the $id of the published schema.
const SchemaID = "https://offerfeed.dev/schemas/gateway-config/v1/config.schema.json"

// Schema is the subset of JSON Schema 2020-12 that the generator writes, in the order its
// keywords are written.
type Schema struct {
	Schema               string    `json:"$schema,omitempty"`
	ID                   string    `json:"$id,omitempty"`
	Ref                  string    `json:"$ref,omitempty"`
	Title                string    `json:"title,omitempty"`
	Description          string    `json:"description,omitempty"`
	Type                 string    `json:"type,omitempty"`
	Const                any       `json:"const,omitempty"`
	Enum                 []string  `json:"enum,omitempty"`
	Pattern              string    `json:"pattern,omitempty"`
	MinLength            *int      `json:"minLength,omitempty"`
	MaxLength            *int      `json:"maxLength,omitempty"`
	Minimum              *int64    `json:"minimum,omitempty"`
	Maximum              *int64    `json:"maximum,omitempty"`
	AnyOf                []*Schema `json:"anyOf,omitempty"`
	Items                *Schema   `json:"items,omitempty"`
	MinItems             *int      `json:"minItems,omitempty"`
	MaxItems             *int      `json:"maxItems,omitempty"`
	MaxProperties        *int      `json:"maxProperties,omitempty"`
	UniqueItems          bool      `json:"uniqueItems,omitempty"`
	Properties           *Named    `json:"properties,omitempty"`
	Required             []string  `json:"required,omitempty"`
	PropertyNames        *Schema   `json:"propertyNames,omitempty"`
	AdditionalProperties any       `json:"additionalProperties,omitempty"`
	Defs                 *Named    `json:"$defs,omitempty"`
}

// Named is a JSON object of schemas that keeps the order of its entries.
type Named struct {
	names   []string
	schemas map[string]*Schema
}

// Set adds or replaces the schema of name.
func (n *Named) Set(name string, s *Schema) {
	if n.schemas == nil {
		n.schemas = map[string]*Schema{}
	}
	if _, ok := n.schemas[name]; !ok {
		n.names = append(n.names, name)
	}
	n.schemas[name] = s
}

// Get returns the schema of name, nil if none.
func (n *Named) Get(name string) *Schema { return n.schemas[name] }

// MarshalJSON writes the entries in the order they were added.
func (n *Named) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, name := range n.names {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		v, err := marshal(n.schemas[name])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// durationPattern matches what time.ParseDuration reads, without a sign: the canonical form
// gatewayconfig writes ("2s", "800ms", "10m0s", "1h0m0s") and forms such as "1h30m" or "1.5s".
const durationPattern = `^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$`

// The patterns and enums come from gatewayconfig, which checks them in Parse;
// TestSchemaAgreesWithParse checks what the schema and Parse decide on the same documents.
var methods = gatewayconfig.Methods()

func ptr[T any](v T) *T { return &v }

// constraints add to the schema of a property, keyed by Go type name and JSON name, what the
// Go types cannot say.
var constraints = map[string]func(*Schema){
	"Config.generation": func(s *Schema) { s.Minimum = ptr[int64](1) },
	"Config.policies":   func(s *Schema) { s.MaxItems = ptr(gatewayconfig.MaxPolicies) },
	"Policy.name":       func(s *Schema) { s.MinLength = ptr(1) },
	"Policy.hash":       func(s *Schema) { s.Pattern = gatewayconfig.HashPattern },
	"Policy.identityHeader": func(s *Schema) {
		s.MinLength, s.MaxLength, s.Pattern = ptr(gatewayconfig.MinHeaderLen), ptr(gatewayconfig.MaxHeaderLen), gatewayconfig.HeaderPattern
	},
	"Policy.overrides": func(s *Schema) { s.MaxItems = ptr(gatewayconfig.MaxOverrides) },
	"Feed.method":      func(s *Schema) { s.Enum = methods },
	"Feed.path": func(s *Schema) {
		s.MinLength, s.MaxLength, s.Pattern = ptr(gatewayconfig.MinPathLen), ptr(gatewayconfig.MaxPathLen), gatewayconfig.FeedPathPattern
	},
	"Feed.burst":    burst,
	"Accept.method": func(s *Schema) { s.Enum = methods },
	"Accept.pathTemplate": func(s *Schema) {
		s.MinLength, s.MaxLength = ptr(gatewayconfig.MinPathTemplateLen), ptr(gatewayconfig.MaxPathTemplateLen)
		s.Pattern = gatewayconfig.PathTemplatePattern
	},
	"Accept.offerIdField": func(s *Schema) {
		s.MinLength, s.MaxLength, s.Pattern = ptr(gatewayconfig.MinFieldLen), ptr(gatewayconfig.MaxFieldLen), gatewayconfig.FieldPattern
	},
	"Accept.maxAccepts": maxAccepts,
	"ShownOffers.jsonPath": func(s *Schema) {
		s.MinLength, s.MaxLength = ptr(gatewayconfig.MinJSONPathLen), ptr(gatewayconfig.MaxJSONPathLen)
		s.Pattern = gatewayconfig.JSONPathPattern
	},
	"Override.drivers": func(s *Schema) {
		s.MinItems, s.MaxItems, s.UniqueItems = ptr(gatewayconfig.MinOverrideDrivers), ptr(gatewayconfig.MaxOverrideDrivers), true
		s.Items.MinLength, s.Items.MaxLength = ptr(gatewayconfig.MinDriverLen), ptr(gatewayconfig.MaxDriverLen)
	},
	"Refusal.status":              refusalStatus,
	"Refusal.contentType":         contentType,
	"Refusal.body":                refusalBody,
	"Refusal.decisions":           func(s *Schema) { s.MaxItems = ptr(gatewayconfig.MaxRefusalDecisions) },
	"DecisionRefusal.status":      refusalStatus,
	"DecisionRefusal.contentType": contentType,
	"DecisionRefusal.body":        refusalBody,
	"FeedOverride.burst":          burst,
	"AcceptOverride.maxAccepts":   maxAccepts,
}

func keysOf[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func burst(s *Schema) {
	s.Minimum, s.Maximum = ptr[int64](gatewayconfig.MinBurst), ptr[int64](gatewayconfig.MaxBurst)
}

func refusalStatus(s *Schema) {
	// 0 (or absent) keeps the decision's own status.
	s.AnyOf = []*Schema{{Const: int64(0)}, {Minimum: ptr[int64](gatewayconfig.MinRefusalStatus), Maximum: ptr[int64](gatewayconfig.MaxRefusalStatus)}}
}

func contentType(s *Schema) {
	s.MinLength, s.MaxLength = ptr(gatewayconfig.MinContentTypeLen), ptr(gatewayconfig.MaxContentTypeLen)
	s.Pattern = gatewayconfig.ContentTypePattern
}

func refusalBody(s *Schema) {
	s.MinLength, s.MaxLength = ptr(gatewayconfig.MinRefusalBodyLen), ptr(gatewayconfig.MaxRefusalBodyLen)
}

func maxAccepts(s *Schema) {
	// 0 is an absent maxAccepts (the config leaves it out); the CRD's minimum is MinMaxAccepts.
	s.Minimum, s.Maximum = ptr[int64](0), ptr[int64](gatewayconfig.MaxMaxAccepts)
}

// optional lists properties that are not required although their field has no omitempty,
// because Parse fills them in.
var optional = map[string]bool{
	"Policy.hash": true, // Parse computes it when absent
}

// docs holds the doc comments of a package: of its types, their fields and their constants.
type docs struct {
	types  map[string]string            // type name -> doc
	fields map[string]map[string]string // type name -> Go field name -> doc
	consts map[string][]string          // type name -> values of its string constants
}

// readDocs parses the Go source in dir (tests excluded).
func readDocs(dir string) (*docs, error) {
	fset := token.NewFileSet()
	//nolint:staticcheck // SA1019 (ParseDir): one directory of plain files, no build tags to consider.
	pkgs, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", dir, err)
	}
	var files []*ast.File
	for _, p := range pkgs {
		for _, f := range p.Files {
			files = append(files, f)
		}
	}
	p, err := doc.NewFromFiles(fset, files, modulePath+"/pkg/gatewayconfig")
	if err != nil {
		return nil, err
	}
	d := &docs{types: map[string]string{}, fields: map[string]map[string]string{}, consts: map[string][]string{}}
	for _, t := range p.Types {
		d.types[t.Name] = t.Doc
		for _, spec := range t.Decl.Specs {
			ts, ok := spec.(*ast.TypeSpec)
			if !ok {
				continue
			}
			if st, ok := ts.Type.(*ast.StructType); ok {
				d.fields[t.Name] = map[string]string{}
				for _, f := range st.Fields.List {
					for _, n := range f.Names {
						d.fields[t.Name][n.Name] = f.Doc.Text()
					}
				}
			}
		}
		for _, c := range t.Consts {
			for _, spec := range c.Decl.Specs {
				vs := spec.(*ast.ValueSpec)
				for _, v := range vs.Values {
					if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						s, err := strconv.Unquote(lit.Value)
						if err != nil {
							return nil, err
						}
						d.consts[t.Name] = append(d.consts[t.Name], s)
					}
				}
			}
		}
	}
	return d, nil
}

// description turns a doc comment into a description: lines of a paragraph joined. Paragraphs
// of markers (lines starting with '+', such as the CRD's +kubebuilder:validation:Enum on the
// types the API shares with the config) are left out.
func description(text string) string {
	var paras []string
	for _, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if strings.HasPrefix(strings.TrimSpace(p), "+") {
			continue
		}
		paras = append(paras, strings.Join(strings.Fields(p), " "))
	}
	return strings.Join(paras, "\n\n")
}

// generator builds the schema of a type and the $defs it refers to.
type generator struct {
	docs *docs
	defs *Named
	pkg  string          // import path of gatewayconfig
	used map[string]bool // keys of constraints and optional that were applied
}

var (
	durationType = reflect.TypeFor[gatewayconfig.Duration]()
	selectorType = reflect.TypeFor[metav1.LabelSelector]()
)

// Generate returns the schema of gatewayconfig.Config, documented from the source in srcDir,
// as indented JSON ending in a newline.
func Generate(srcDir string) ([]byte, error) {
	d, err := readDocs(srcDir)
	if err != nil {
		return nil, err
	}
	root := reflect.TypeFor[gatewayconfig.Config]()
	g := &generator{docs: d, defs: &Named{}, pkg: root.PkgPath(), used: map[string]bool{}}
	s, err := g.object(root)
	if err != nil {
		return nil, err
	}
	for _, keys := range []map[string]bool{keysOf(constraints), optional} {
		for k := range keys {
			if !g.used[k] {
				return nil, fmt.Errorf("%s names no property of the gateway config", k)
			}
		}
	}
	s.Schema = "https://json-schema.org/draft/2020-12/schema"
	s.ID = SchemaID
	s.Title = fmt.Sprintf("offerfeed gateway config, schemaVersion %d", gatewayconfig.SchemaVersion)
	s.Description = description(d.types[root.Name()]) + "\n\n" +
		"The operator renders it into ConfigMap offerfeed-gateway (key config.json); the gateway sidecar reads it. " +
		"The gateway's parser (gatewayconfig.Parse) also checks rules across fields and the ranges of durations, " +
		"which this schema does not express."
	s.Defs = g.defs
	var b bytes.Buffer
	raw, err := marshal(s)
	if err != nil {
		return nil, err
	}
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// object returns the schema of struct type t, its properties in field order.
func (g *generator) object(t reflect.Type) (*Schema, error) {
	s := &Schema{Type: "object", Properties: &Named{}, AdditionalProperties: false}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		if f.Anonymous {
			return nil, fmt.Errorf("%s.%s: embedded fields are not supported", t.Name(), f.Name)
		}
		ps, err := g.schema(f.Type)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t.Name(), f.Name, err)
		}
		key := t.Name() + "." + name
		if t.PkgPath() == g.pkg {
			if ps.Ref != "" {
				// Keep the referenced definition's own description; add the field's.
				ps = &Schema{Ref: ps.Ref}
			}
			ps.Description = description(g.docs.fields[t.Name()][f.Name])
		}
		if c := constraints[key]; c != nil {
			c(ps)
			g.used[key] = true
		}
		if name == "schemaVersion" && t == reflect.TypeFor[gatewayconfig.Config]() {
			ps.Const = gatewayconfig.SchemaVersion
		}
		s.Properties.Set(name, ps)
		omit := false
		for o := range strings.SplitSeq(opts, ",") {
			omit = omit || o == "omitempty" || o == "omitzero"
		}
		if optional[key] {
			g.used[key] = true
		} else if !omit {
			s.Required = append(s.Required, name)
		}
	}
	return s, nil
}

// schema returns the schema of a property of type t: a $ref for named types of gatewayconfig.
func (g *generator) schema(t reflect.Type) (*Schema, error) {
	switch {
	case t == durationType:
		return g.ref("Duration", func() (*Schema, error) {
			return &Schema{Type: "string", Pattern: durationPattern, Description: description(g.docs.types["Duration"]) +
				` Canonical form, as the operator writes it: "2s", "800ms", "10m0s", "1h0m0s". Not negative.`}, nil
		})
	case t == selectorType:
		return g.ref("LabelSelector", g.labelSelector)
	case t.Kind() == reflect.Pointer:
		return g.schema(t.Elem())
	case t.Kind() == reflect.Struct && t.PkgPath() == g.pkg:
		return g.ref(t.Name(), func() (*Schema, error) {
			s, err := g.object(t)
			if err != nil {
				return nil, err
			}
			s.Description = description(g.docs.types[t.Name()])
			return s, nil
		})
	case t.Kind() == reflect.String && t.PkgPath() == g.pkg:
		return g.ref(t.Name(), func() (*Schema, error) {
			return &Schema{Type: "string", Enum: g.docs.consts[t.Name()], Description: description(g.docs.types[t.Name()])}, nil
		})
	case t.Kind() == reflect.String:
		return &Schema{Type: "string"}, nil
	case t.Kind() == reflect.Bool:
		return &Schema{Type: "boolean"}, nil
	case t.Kind() == reflect.Int32:
		return &Schema{Type: "integer", Minimum: ptr[int64](-1 << 31), Maximum: ptr[int64](1<<31 - 1)}, nil
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		return &Schema{Type: "integer"}, nil
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		return &Schema{Type: "integer", Minimum: ptr[int64](0)}, nil
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return &Schema{Type: "number"}, nil
	case t.Kind() == reflect.Slice:
		items, err := g.schema(t.Elem())
		if err != nil {
			return nil, err
		}
		return &Schema{Type: "array", Items: items}, nil
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String:
		v, err := g.schema(t.Elem())
		if err != nil {
			return nil, err
		}
		return &Schema{Type: "object", AdditionalProperties: v}, nil
	}
	return nil, fmt.Errorf("type %s is not supported", t)
}

// ref returns a reference to definition name, made by def on first use.
func (g *generator) ref(name string, def func() (*Schema, error)) (*Schema, error) {
	if g.defs.Get(name) == nil {
		g.defs.Set(name, &Schema{}) // placeholder: recursion ends here
		s, err := def()
		if err != nil {
			return nil, err
		}
		g.defs.Set(name, s)
	}
	return &Schema{Ref: "#/$defs/" + name}, nil
}

// labelKeyPattern and labelValuePattern spell the label syntax of
// k8s.io/apimachinery/pkg/util/validation (IsQualifiedName, IsValidLabelValue), which Parse
// checks, as patterns. The value pattern with its maxLength is exact; the key pattern leaves the
// lengths of the prefix (at most 253) and of the name (at most 63) to Parse.
const (
	labelKeyPattern   = `^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`
	labelValuePattern = `^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`
)

// labelSelector is the schema of metav1.LabelSelector, as Kubernetes documents it, with the
// bounds of the CRD's spec.targetSelector (gatewayconfig.MaxSelectorLabels and the others,
// which hack/gatewayrules generates) and the label syntax that Parse checks.
func (g *generator) labelSelector() (*Schema, error) {
	key := func(desc string) *Schema {
		return &Schema{Type: "string", MinLength: ptr(1), MaxLength: ptr(gatewayconfig.MaxLabelKeyLen), Pattern: labelKeyPattern,
			Description: desc + " A label key: an optional DNS subdomain prefix (at most 253 characters) and '/', " +
				"then a name of at most 63 letters, digits, '-', '_' or '.' that starts and ends with a letter or digit."}
	}
	value := func() *Schema {
		return &Schema{Type: "string", MaxLength: ptr(gatewayconfig.MaxLabelValueLen), Pattern: labelValuePattern,
			Description: "A label value: empty, or at most 63 letters, digits, '-', '_' or '.' that start and end with a letter or digit."}
	}
	reqRef, err := g.ref("LabelSelectorRequirement", func() (*Schema, error) {
		req := &Schema{
			Type:                 "object",
			Description:          "A label selector requirement: a key, an operator and values.",
			Properties:           &Named{},
			Required:             []string{"key", "operator"},
			AdditionalProperties: false,
		}
		req.Properties.Set("key", key("The label key the selector applies to."))
		req.Properties.Set("operator", &Schema{Type: "string", Enum: []string{"In", "NotIn", "Exists", "DoesNotExist"},
			Description: "How the key relates to the values."})
		req.Properties.Set("values", &Schema{Type: "array", Items: value(), MaxItems: ptr(gatewayconfig.MaxSelectorValues),
			Description: "The values: not empty for In and NotIn, empty for Exists and DoesNotExist."})
		return req, nil
	})
	if err != nil {
		return nil, err
	}
	s := &Schema{
		Type: "object",
		Description: "A Kubernetes label selector (metav1.LabelSelector): matchLabels and matchExpressions are ANDed; " +
			"an empty selector matches every pod.",
		Properties:           &Named{},
		AdditionalProperties: false,
	}
	s.Properties.Set("matchLabels", &Schema{Type: "object", PropertyNames: key("A label a pod must have."), AdditionalProperties: value(),
		MaxProperties: ptr(gatewayconfig.MaxSelectorLabels), Description: "Labels a pod must have, key and value."})
	s.Properties.Set("matchExpressions", &Schema{Type: "array", Items: reqRef, MaxItems: ptr(gatewayconfig.MaxSelectorExpressions),
		Description: "Requirements a pod's labels must meet."})
	return s, nil
}
