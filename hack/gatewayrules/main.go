// Command gatewayrules writes pkg/gatewayconfig/zz_generated.rules.go: the patterns, bounds and
// enums of the gateway config, read from the OfferFeedPolicy CRD (config/crd/bases, which
// controller-gen writes from the markers of api/v1alpha1). `make generate` runs it:
//
//	go run ./hack/gatewayrules > pkg/gatewayconfig/zz_generated.rules.go
//
// A rule is thus written once, as a marker; the CRD carries it to the API server (and to
// `offerfeed validate`), this generator carries it to gatewayconfig.Parse (the gateway's parser)
// and, through gatewayconfig's constants, to the JSON Schema of the config (hack/jsonschema).
// Bounds of durations are CEL rules in the CRD (duration(self) >= duration('10ms') && ...);
// the generator reads them from the rule text and fails on a rule of another shape, as it
// fails when a listed field or keyword is missing. The label keys and values of
// spec.targetSelector must be checked by CEL formats qualifiedName and labelValue, which
// gatewayconfig checks with k8s.io/apimachinery/pkg/util/validation; it fails otherwise. Rules across fields are code in
// gatewayconfig.Validate; the render tests check them against every invalid case of
// internal/celcases, and test/drift checks every bound of the CRD against Parse.
package main

import (
	"bytes"
	"fmt"
	"go/format"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/offerfeed/offerfeed/config/crd"
)

// CRDName and Version name the schema the rules come from.
const (
	CRDName = "offerfeedpolicies.offerfeed.dev"
	Version = "v1alpha1"
)

// keyword is a schema keyword a constant is read from; the duration ones are CEL rules.
type keyword string

const (
	minLength   keyword = "minLength"
	maxLength   keyword = "maxLength"
	pattern     keyword = "pattern"
	minimum     keyword = "minimum"
	maximum     keyword = "maximum"
	minItems    keyword = "minItems"
	maxItems    keyword = "maxItems"
	maxProps    keyword = "maxProperties"
	durationMin keyword = "duration minimum (CEL)"
	durationMax keyword = "duration maximum (CEL)"
)

// Constant is one generated constant: Name holds keyword Keyword of the schema at Path
// (field names joined by '.', [] for the items of a list, {} for the values of a map).
type Constant struct {
	Name    string
	Path    string
	Keyword keyword
}

// Constants lists what gatewayconfig needs of the CRD. The same bounds on other fields (the
// overrides repeat the limits of feed and accept, the entries of spec.refusal.decisions those
// of spec.refusal) are checked with these constants too;
// test/drift checks that the CRD gives them the same values.
var Constants = []Constant{
	{"MinHeaderLen", "spec.clientIdentity.header", minLength},
	{"MaxHeaderLen", "spec.clientIdentity.header", maxLength},
	{"HeaderPattern", "spec.clientIdentity.header", pattern},
	{"MinPathLen", "spec.feed.path", minLength},
	{"MaxPathLen", "spec.feed.path", maxLength},
	{"FeedPathPattern", "spec.feed.path", pattern},
	{"MinFeedInterval", "spec.feed.minInterval", durationMin},
	{"MaxFeedInterval", "spec.feed.minInterval", durationMax},
	{"MinBurst", "spec.feed.burst", minimum},
	{"MaxBurst", "spec.feed.burst", maximum},
	{"MinPathTemplateLen", "spec.accept.pathTemplate", minLength},
	{"MaxPathTemplateLen", "spec.accept.pathTemplate", maxLength},
	{"PathTemplatePattern", "spec.accept.pathTemplate", pattern},
	{"MinFieldLen", "spec.accept.offerIdField", minLength},
	{"MaxFieldLen", "spec.accept.offerIdField", maxLength},
	{"FieldPattern", "spec.accept.offerIdField", pattern},
	{"MinMaxAccepts", "spec.accept.maxAccepts", minimum},
	{"MaxMaxAccepts", "spec.accept.maxAccepts", maximum},
	{"MinWindow", "spec.accept.window", durationMin},
	{"MaxWindow", "spec.accept.window", durationMax},
	{"MaxMinReactionTime", "spec.accept.minReactionTime", durationMax},
	{"MinFairnessWindow", "spec.accept.fairness.window", durationMin},
	{"MaxFairnessWindow", "spec.accept.fairness.window", durationMax},
	{"MinJSONPathLen", "spec.shownOffers.jsonPath", minLength},
	{"MaxJSONPathLen", "spec.shownOffers.jsonPath", maxLength},
	{"JSONPathPattern", "spec.shownOffers.jsonPath", pattern},
	{"MaxOverrides", "spec.overrides", maxItems},
	{"MinOverrideDrivers", "spec.overrides[].drivers", minItems},
	{"MaxOverrideDrivers", "spec.overrides[].drivers", maxItems},
	{"MinDriverLen", "spec.overrides[].drivers[]", minLength},
	{"MaxDriverLen", "spec.overrides[].drivers[]", maxLength},
	{"MinRefusalStatus", "spec.refusal.status", minimum},
	{"MaxRefusalStatus", "spec.refusal.status", maximum},
	{"MinContentTypeLen", "spec.refusal.contentType", minLength},
	{"MaxContentTypeLen", "spec.refusal.contentType", maxLength},
	{"ContentTypePattern", "spec.refusal.contentType", pattern},
	{"MinRefusalBodyLen", "spec.refusal.body", minLength},
	{"MaxRefusalBodyLen", "spec.refusal.body", maxLength},
	{"MaxRefusalDecisions", "spec.refusal.decisions", maxItems},
	{"MinRefuseAbovePermille", "spec.botScore.refuseAbovePermille", minimum},
	{"MaxRefuseAbovePermille", "spec.botScore.refuseAbovePermille", maximum},
	{"MaxSelectorLabels", "spec.targetSelector.matchLabels", maxProps},
	{"MaxLabelValueLen", "spec.targetSelector.matchLabels{}", maxLength},
	{"MaxSelectorExpressions", "spec.targetSelector.matchExpressions", maxItems},
	{"MaxLabelKeyLen", "spec.targetSelector.matchExpressions[].key", maxLength},
	{"MaxSelectorValues", "spec.targetSelector.matchExpressions[].values", maxItems},
}

// LabelFormats lists the label keys and values of the selector, each with the CEL format
// (format.qualifiedName or format.labelValue) its rule must check. gatewayconfig checks the
// same syntax with k8s.io/apimachinery/pkg/util/validation (IsQualifiedName,
// IsValidLabelValue, the functions behind those CEL formats); the generator fails when a rule
// there is of another shape, so that the API's label syntax cannot change unseen.
var LabelFormats = []struct{ Path, Format string }{
	{"spec.targetSelector.matchLabels", "qualifiedName"}, // the keys of the map
	{"spec.targetSelector.matchLabels{}", "labelValue"},
	{"spec.targetSelector.matchExpressions[].key", "qualifiedName"},
	{"spec.targetSelector.matchExpressions[].values[]", "labelValue"},
}

// Enum is a function returning the values of an enum.
type Enum struct {
	Func string
	Path string
}

// Enums lists the enums gatewayconfig checks.
var Enums = []Enum{
	{"Modes", "spec.mode"},
	{"Methods", "spec.feed.method"},
	{"Awards", "spec.accept.fairness.award"},
	{"RefusalDecisions", "spec.refusal.decisions[].decision"},
	{"DrawWeightings", "spec.botScore.drawWeighting"},
}

// HeaderPath is the field whose CEL rules reserve header names.
const HeaderPath = "spec.clientIdentity.header"

var (
	durationRange = regexp.MustCompile(`^duration\(self\) >= duration\('([^']+)'\) && duration\(self\) <= duration\('([^']+)'\)$`)
	durationUpTo  = regexp.MustCompile(`^duration\(self\) <= duration\('([^']+)'\)$`)
	headerPrefix  = regexp.MustCompile(`^!self\.lowerAscii\(\)\.startsWith\('([^']+)'\)$`)
	headerNames   = regexp.MustCompile(`^!\(self\.lowerAscii\(\) in \[('[^']*'(?:, '[^']*')*)\]\)$`)
	formatOfSelf  = regexp.MustCompile(`^!format\.([A-Za-z0-9]+)\(\)\.validate\(self\)\.hasValue\(\)$`)
	formatOfKeys  = regexp.MustCompile(`^self\.all\(k, !format\.([A-Za-z0-9]+)\(\)\.validate\(k\)\.hasValue\(\)\)$`)
)

func main() {
	out, err := Generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gatewayrules:", err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		fmt.Fprintln(os.Stderr, "gatewayrules:", err)
		os.Exit(1)
	}
}

// Schema returns the OpenAPI schema of the served OfferFeedPolicy version in the embedded CRD.
func Schema() (*apiextensionsv1.JSONSchemaProps, error) {
	crds, err := crd.CRDs()
	if err != nil {
		return nil, err
	}
	for _, c := range crds {
		if c.Name != CRDName {
			continue
		}
		for _, v := range c.Spec.Versions {
			if v.Name == Version && v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
				return v.Schema.OpenAPIV3Schema, nil
			}
		}
	}
	return nil, fmt.Errorf("no schema of %s %s in config/crd/bases", CRDName, Version)
}

// At returns the schema at path in root.
func At(root *apiextensionsv1.JSONSchemaProps, path string) (*apiextensionsv1.JSONSchemaProps, error) {
	s := root
	for _, part := range strings.Split(path, ".") {
		name, items := strings.CutSuffix(part, "[]")
		name, values := strings.CutSuffix(name, "{}")
		p, ok := s.Properties[name]
		if !ok {
			return nil, fmt.Errorf("%s: no property %q", path, name)
		}
		s = &p
		if items {
			if s.Items == nil || s.Items.Schema == nil {
				return nil, fmt.Errorf("%s: %s is not a list", path, name)
			}
			s = s.Items.Schema
		}
		if values {
			if s.AdditionalProperties == nil || s.AdditionalProperties.Schema == nil {
				return nil, fmt.Errorf("%s: %s is not a map", path, name)
			}
			s = s.AdditionalProperties.Schema
		}
	}
	return s, nil
}

// LabelFormat returns the CEL format that the rules of s check: of the field itself
// (!format.F().validate(self).hasValue()) or, with keys, of the keys of a map
// (self.all(k, !format.F().validate(k).hasValue())). A rule of another shape, or none, is an
// error.
func LabelFormat(s *apiextensionsv1.JSONSchemaProps, keys bool) (string, error) {
	re := formatOfSelf
	if keys {
		re = formatOfKeys
	}
	format := ""
	for _, r := range s.XValidations {
		m := re.FindStringSubmatch(r.Rule)
		if m == nil || format != "" {
			return "", fmt.Errorf("rule %q is not a label format rule this generator reads", r.Rule)
		}
		format = m[1]
	}
	if format == "" {
		return "", fmt.Errorf("no label format rule")
	}
	return format, nil
}

// DurationBounds returns the bounds that the CEL rules of a duration field set; zero when a
// side is open. A rule on the field of another shape is an error.
func DurationBounds(s *apiextensionsv1.JSONSchemaProps) (lo, hi time.Duration, err error) {
	parse := func(v string) time.Duration {
		d, perr := time.ParseDuration(v)
		if perr != nil && err == nil {
			err = perr
		}
		return d
	}
	for _, r := range s.XValidations {
		if m := durationRange.FindStringSubmatch(r.Rule); m != nil {
			lo, hi = parse(m[1]), parse(m[2])
		} else if m := durationUpTo.FindStringSubmatch(r.Rule); m != nil {
			hi = parse(m[1])
		} else {
			return 0, 0, fmt.Errorf("rule %q is not a duration range this generator reads", r.Rule)
		}
	}
	return lo, hi, err
}

// ReservedHeaders returns what the CEL rules of the identity header refuse: a name prefix and
// names, both lower case.
func ReservedHeaders(s *apiextensionsv1.JSONSchemaProps) (prefix string, names []string, err error) {
	for _, r := range s.XValidations {
		if m := headerPrefix.FindStringSubmatch(r.Rule); m != nil {
			prefix = m[1]
		} else if m := headerNames.FindStringSubmatch(r.Rule); m != nil {
			for _, q := range strings.Split(m[1], ", ") {
				names = append(names, strings.Trim(q, "'"))
			}
		} else {
			return "", nil, fmt.Errorf("rule %q is not a header rule this generator reads", r.Rule)
		}
	}
	if prefix == "" || len(names) == 0 {
		return "", nil, fmt.Errorf("the header rules name no reserved prefix or names")
	}
	return prefix, names, nil
}

// Generate returns the Go source of zz_generated.rules.go.
func Generate() ([]byte, error) {
	root, err := Schema()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`// Code generated by hack/gatewayrules from config/crd/bases (the markers of api/v1alpha1). DO NOT EDIT.

package gatewayconfig

import "time"

// Bounds and patterns of the OfferFeedPolicy schema, which Parse holds a config to.
const (
`)
	for _, c := range Constants {
		s, err := At(root, c.Path)
		if err != nil {
			return nil, err
		}
		var v string
		switch c.Keyword {
		case minLength:
			v, err = intOf(s.MinLength)
		case maxLength:
			v, err = intOf(s.MaxLength)
		case minItems:
			v, err = intOf(s.MinItems)
		case maxItems:
			v, err = intOf(s.MaxItems)
		case maxProps:
			v, err = intOf(s.MaxProperties)
		case minimum:
			v, err = floatOf(s.Minimum)
		case maximum:
			v, err = floatOf(s.Maximum)
		case pattern:
			if s.Pattern == "" || strings.Contains(s.Pattern, "`") {
				err = fmt.Errorf("no pattern that fits a raw string")
			}
			v = "`" + s.Pattern + "`"
		case durationMin, durationMax:
			lo, hi, derr := DurationBounds(s)
			d := map[keyword]time.Duration{durationMin: lo, durationMax: hi}[c.Keyword]
			if derr != nil {
				err = derr
			} else if d == 0 {
				err = fmt.Errorf("no %s", c.Keyword)
			}
			v = durationExpr(d)
		}
		if err != nil {
			return nil, fmt.Errorf("%s (%s of %s): %w", c.Name, c.Keyword, c.Path, err)
		}
		fmt.Fprintf(&b, "\t// %s is the %s of %s.\n\t%s = %s\n", c.Name, c.Keyword, c.Path, c.Name, v)
	}
	for _, f := range LabelFormats {
		s, err := At(root, f.Path)
		if err != nil {
			return nil, err
		}
		got, err := LabelFormat(s, s.Type == "object")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Path, err)
		}
		if got != f.Format {
			return nil, fmt.Errorf("%s: the rule checks format.%s, gatewayconfig checks %s", f.Path, got, f.Format)
		}
	}
	hs, err := At(root, HeaderPath)
	if err != nil {
		return nil, err
	}
	prefix, names, err := ReservedHeaders(hs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", HeaderPath, err)
	}
	fmt.Fprintf(&b, "\t// ReservedHeaderPrefix starts the header names (lower case) that %s must not have.\n\tReservedHeaderPrefix = %q\n)\n", HeaderPath, prefix)
	fmt.Fprintf(&b, "\n// ReservedHeaders returns the header names (lower case) that %s must not be.\nfunc ReservedHeaders() []string { return %#v }\n", HeaderPath, names)
	for _, e := range Enums {
		s, err := At(root, e.Path)
		if err != nil {
			return nil, err
		}
		var vals []string
		for _, j := range s.Enum {
			v, err := strconv.Unquote(string(j.Raw))
			if err != nil {
				return nil, fmt.Errorf("%s: enum value %s is not a string", e.Path, j.Raw)
			}
			vals = append(vals, v)
		}
		if len(vals) == 0 {
			return nil, fmt.Errorf("%s: no enum", e.Path)
		}
		fmt.Fprintf(&b, "\n// %s returns the enum of %s.\nfunc %s() []string { return %#v }\n", e.Func, e.Path, e.Func, vals)
	}
	return format.Source(b.Bytes())
}

func intOf(p *int64) (string, error) {
	if p == nil {
		return "", fmt.Errorf("not set")
	}
	return strconv.FormatInt(*p, 10), nil
}

func floatOf(p *float64) (string, error) {
	if p == nil {
		return "", fmt.Errorf("not set")
	}
	if *p != float64(int64(*p)) {
		return "", fmt.Errorf("%v is not an integer", *p)
	}
	return strconv.FormatInt(int64(*p), 10), nil
}

// durationExpr writes d as a Go expression in its largest whole unit: 10 * time.Millisecond.
func durationExpr(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "Hour"}, {time.Minute, "Minute"}, {time.Second, "Second"}, {time.Millisecond, "Millisecond"}} {
		if d%u.d == 0 {
			return fmt.Sprintf("%d * time.%s", d/u.d, u.name)
		}
	}
	return fmt.Sprintf("%d * time.Nanosecond", d)
}
