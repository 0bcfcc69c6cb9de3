package drift

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/config/crd"
	"github.com/offerfeed/offerfeed/internal/celcases"
	"github.com/offerfeed/offerfeed/internal/render"
	"github.com/offerfeed/offerfeed/internal/validation"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// constraint is one keyword of the CRD schema at a path of the spec: field names joined by
// '.', [] for the items of a list, as in spec.overrides[].drivers[], {} for the values of a map,
// as in spec.targetSelector.matchLabels{}.
type constraint struct {
	path    string
	keyword string
	value   any // int64, float64, string, []string or time.Duration
}

// The keywords of the label syntax that CEL rules check: format is the CEL format
// (qualifiedName or labelValue) of a string, keyFormat that of the keys of a map.
const (
	formatKeyword    = "format"
	keyFormatKeyword = "keyFormat"
)

func (c constraint) String() string { return fmt.Sprintf("%s %s %v", c.path, c.keyword, c.value) }

var (
	durationRange = regexp.MustCompile(`^duration\(self\) >= duration\('([^']+)'\) && duration\(self\) <= duration\('([^']+)'\)$`)
	durationUpTo  = regexp.MustCompile(`^duration\(self\) <= duration\('([^']+)'\)$`)
	formatOfSelf  = regexp.MustCompile(`^!format\.([A-Za-z0-9]+)\(\)\.validate\(self\)\.hasValue\(\)$`)
	formatOfKeys  = regexp.MustCompile(`^self\.all\(k, !format\.([A-Za-z0-9]+)\(\)\.validate\(k\)\.hasValue\(\)\)$`)
)

// constraints walks the schema s at path and returns every pattern, enum, bound, length and
// list size, map size, the ranges of durations and the label formats that CEL rules set.
func constraints(t *testing.T, path string, s *apiextensionsv1.JSONSchemaProps) []constraint {
	var out []constraint
	add := func(k string, v any) { out = append(out, constraint{path, k, v}) }
	if s.Pattern != "" {
		add("pattern", s.Pattern)
	}
	if len(s.Enum) > 0 {
		var vals []string
		for _, e := range s.Enum {
			v, err := strconv.Unquote(string(e.Raw))
			if err != nil {
				t.Fatalf("%s: enum value %s", path, e.Raw)
			}
			vals = append(vals, v)
		}
		add("enum", vals)
	}
	for k, p := range map[string]*int64{"minLength": s.MinLength, "maxLength": s.MaxLength, "minItems": s.MinItems, "maxItems": s.MaxItems,
		"minProperties": s.MinProperties, "maxProperties": s.MaxProperties} {
		if p != nil {
			add(k, *p)
		}
	}
	for k, p := range map[string]*float64{"minimum": s.Minimum, "maximum": s.Maximum} {
		if p != nil {
			add(k, int64(*p))
		}
	}
	for _, r := range s.XValidations {
		if m := durationRange.FindStringSubmatch(r.Rule); m != nil {
			add("durationMin", mustDuration(t, m[1]))
			add("durationMax", mustDuration(t, m[2]))
		} else if m := durationUpTo.FindStringSubmatch(r.Rule); m != nil {
			add("durationMax", mustDuration(t, m[1]))
		} else if m := formatOfSelf.FindStringSubmatch(r.Rule); m != nil {
			add(formatKeyword, m[1])
		} else if m := formatOfKeys.FindStringSubmatch(r.Rule); m != nil {
			add(keyFormatKeyword, m[1])
		}
	}
	for name, p := range s.Properties {
		out = append(out, constraints(t, path+"."+name, &p)...)
	}
	if s.Items != nil && s.Items.Schema != nil {
		out = append(out, constraints(t, path+"[]", s.Items.Schema)...)
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		out = append(out, constraints(t, path+"{}", s.AdditionalProperties.Schema)...)
	}
	return out
}

func mustDuration(t *testing.T, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func specSchema(t *testing.T) *apiextensionsv1.JSONSchemaProps {
	crds, err := crd.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range crds {
		for _, v := range c.Spec.Versions {
			if c.Spec.Names.Kind == "OfferFeedPolicy" && v.Name == v1alpha1.GroupVersion.Version {
				spec := v.Schema.OpenAPIV3Schema.Properties["spec"]
				return &spec
			}
		}
	}
	t.Fatal("no OfferFeedPolicy schema in the embedded CRD")
	return nil
}

// durationPattern is the pattern of v1alpha1.Duration.
const durationPattern = `^([0-9]{1,5}(h|m|s|ms)){1,4}$`

// notChecked are keywords of the CRD that no gateway config can break, with the reason.
func notChecked(c constraint) string {
	if (c.keyword == "pattern" && c.value == durationPattern) || (c.keyword == "maxLength" && isDuration(c.path)) {
		return "the API's spelling of a duration; the config holds durations as values (gatewayconfig.Duration, " +
			"canonical Go form), whose ranges are checked as durationMin and durationMax"
	}
	return ""
}

func isDuration(path string) bool {
	for _, d := range []string{"minInterval", "window", "minReactionTime"} {
		if strings.HasSuffix(path, "."+d) {
			return true
		}
	}
	return false
}

// base returns a valid policy for probing path: the example of docs/design.md#api, with what path needs.
func base(path string) *v1alpha1.OfferFeedPolicy {
	p := celcases.Base()
	switch {
	case path == "spec.accept.offerIdField":
		celcases.Flex(p)
	case strings.HasPrefix(path, "spec.accept.fairness"):
		p.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: "3s", Award: v1alpha1.AwardRandom}
	case strings.HasPrefix(path, "spec.botScore"):
		p.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: "3s", Award: v1alpha1.AwardRandom}
		p.Spec.BotScore = v1alpha1.BotScore{DrawWeighting: v1alpha1.DrawWeightingScore, RefuseAbovePermille: 900}
	case strings.HasPrefix(path, "spec.overrides[].accept"):
		p.Spec.Overrides[0].Accept = &v1alpha1.AcceptOverride{MaxAccepts: ptr.To[int32](5)}
	case strings.HasPrefix(path, "spec.targetSelector.matchExpressions[]"):
		p.Spec.TargetSelector.MatchExpressions = []v1alpha1.LabelSelectorRequirement{
			{Key: "track", Operator: metav1.LabelSelectorOpIn, Values: []v1alpha1.LabelValue{"canary"}}}
	case strings.HasPrefix(path, "spec.refusal"):
		// Every field set, so that each probe changes one; "{}" is a body for any content
		// type a probe sets, JSON or not.
		p.Spec.Refusal = &v1alpha1.Refusal{Status: ptr.To[int32](429), ContentType: "text/plain", Body: "{}",
			Decisions: []v1alpha1.DecisionRefusal{{Decision: "too-fast", Status: ptr.To[int32](400), ContentType: "text/plain", Body: "{}"}}}
	}
	return p
}

// fill returns a value for path of size n that is otherwise valid where it can be.
func fill(path string, n int64) any {
	rep := func(prefix, c string) string {
		if n <= int64(len(prefix)) {
			return prefix[:n]
		}
		return prefix + strings.Repeat(c, int(n)-len(prefix))
	}
	switch path {
	case "spec.clientIdentity.header":
		return rep("X", "a")
	case "spec.feed.path":
		return rep("/", "o")
	case "spec.accept.pathTemplate":
		if n < 11 {
			return rep("/", "a")
		}
		return "/" + strings.Repeat("a", int(n)-11) + "/{offerId}"
	case "spec.overrides":
		var out []any
		for i := range n {
			out = append(out, map[string]any{"drivers": []any{fmt.Sprintf("driver-%d", i)}, "feed": map[string]any{"burst": int64(2)}})
		}
		return out
	case "spec.overrides[].drivers":
		var out []any
		for i := range n {
			out = append(out, fmt.Sprintf("driver-%d", i))
		}
		return out
	case "spec.refusal.contentType", "spec.refusal.decisions[].contentType":
		return rep("a/", "b")
	case "spec.refusal.body", "spec.refusal.decisions[].body":
		// Two bytes a character: the schema counts characters, and so must Parse.
		return rep("", "é")
	case "spec.targetSelector.matchLabels":
		out := map[string]any{}
		for i := range n {
			out[fmt.Sprintf("l%d", i)] = "x"
		}
		return out
	case "spec.targetSelector.matchExpressions":
		var out []any
		for i := range n {
			out = append(out, map[string]any{"key": fmt.Sprintf("k%d", i), "operator": "Exists"})
		}
		return out
	case "spec.targetSelector.matchExpressions[].values":
		var out []any
		for i := range n {
			out = append(out, fmt.Sprintf("v%d", i))
		}
		return out
	case "spec.targetSelector.matchExpressions[].key":
		return labelKey(int(n))
	case "spec.refusal.decisions":
		// Distinct decisions up to the enum's size; a longer list repeats one.
		ds := gatewayconfig.RefusalDecisions()
		var out []any
		for i := range n {
			out = append(out, map[string]any{"decision": ds[int(i)%len(ds)], "status": int64(400)})
		}
		return out
	}
	return rep("", "a")
}

// labelKey returns a label key of n characters that is valid where a key of n can be: a name
// of up to 63, or a DNS subdomain prefix of n-64 characters (valid up to 253), '/', a name of
// 63.
func labelKey(n int) string {
	if n <= 63 {
		return strings.Repeat("k", n)
	}
	var prefix strings.Builder
	for rest := n - 64; rest > 0; {
		c := min(rest, 63)
		if rest-c == 1 {
			c-- // no label may be empty: leave two characters, '.' and one letter
		}
		prefix.WriteString(strings.Repeat("p", c))
		if rest -= c; rest > 0 {
			prefix.WriteByte('.')
			rest--
		}
	}
	return prefix.String() + "/" + strings.Repeat("k", 63)
}

// labelProbes are strings tried against the label formats: valid and invalid label keys and
// values.
var labelProbes = []string{"", "a", "A1", "app", "a-b", "a_b", "a.b", "a..b", "-a", "a-", "_a", "a_", ".a", "a b", "é", "a/b",
	"app name!", "offerfeed.dev/app", "Offerfeed.dev/app", "offerfeed_dev/app", "offer-feed.dev/a.b_c", "-x.dev/a", "/a", "a/",
	"a/b/c", "kubernetes.io/", strings.Repeat("v", 63), strings.Repeat("v", 64), "x.dev/" + strings.Repeat("k", 63),
	"x.dev/" + strings.Repeat("k", 64), labelKey(317), labelKey(318), labelKey(200)}

// duration writes d as the API spells it: up to four numbers with h, m, s and ms.
func duration(d time.Duration) string {
	var b strings.Builder
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if q := d / u.d; q > 0 {
			fmt.Fprintf(&b, "%d%s", q, u.name)
			d -= q * u.d
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}

// patternProbes are strings tried against every pattern: some match one pattern, some none.
var patternProbes = []string{"", "a", "A1", "_f-1", "1abc", "X-Driver-Id", "X Driver", "é", "a#b", "a.b", "a..b",
	"offers[].id", "[]", "[].id", "$.offers[*].id", "offers[0].id", "/", "/a", "/a/", "a/b", "/a b", "/a?b", "/a#b",
	"/{offerId}", "/o/{offerId}/accept", "/o/{id}/accept", "/o/x{offerId}", "{offerId}", "/o/{offerId}/{offerId}", "//",
	"application/json", "application/problem+json; charset=utf-8", "text/plain;charset=utf-8", "text/plain; charset=\"utf-8\"",
	"application/json\r\nSet-Cookie: a=b", "application/json;", " text/plain", "a/b c"}

// probes returns the values to try for c: at and just beyond each bound, every enum value and
// one more, the pattern probes.
func probes(c constraint) []any {
	var out []any
	switch v := c.value.(type) {
	case int64:
		switch c.keyword {
		case "minimum":
			out = []any{v, v - 1, v - 2}
		case "maximum":
			out = []any{v, v + 1}
		case "minLength", "minItems", "minProperties":
			out = []any{fill(c.path, v)}
			if v > 0 {
				out = append(out, fill(c.path, v-1))
			}
		case "maxLength", "maxItems", "maxProperties":
			out = []any{fill(c.path, v), fill(c.path, v+1)}
		}
	case time.Duration:
		out = []any{duration(v), duration(v + time.Millisecond)}
		if v > time.Millisecond {
			out = append(out, duration(v-time.Millisecond))
		}
	case []string:
		for _, e := range v {
			out = append(out, e)
		}
		out = append(out, "Bogus", strings.ToLower(v[0]))
	case string:
		switch c.keyword {
		case formatKeyword:
			for _, p := range labelProbes {
				out = append(out, p)
			}
		case keyFormatKeyword:
			for _, p := range labelProbes {
				out = append(out, map[string]any{p: "x"})
			}
		default:
			for _, p := range patternProbes {
				out = append(out, p)
			}
		}
	}
	return out
}

// set puts v at path in obj; [] is the first item of a list, {} the value of the first key of
// a map.
func set(t *testing.T, obj map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	var cur any = obj
	for i, part := range parts {
		name, items := strings.CutSuffix(part, "[]")
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: no object at %s", path, part)
		}
		last := i == len(parts)-1
		if name, values := strings.CutSuffix(name, "{}"); values {
			vals, ok := m[name].(map[string]any)
			if !ok || len(vals) == 0 || !last {
				t.Fatalf("%s: no map at %s", path, part)
			}
			vals[slices.Sorted(maps.Keys(vals))[0]] = v
			return
		}
		if last && !items {
			m[name] = v
			return
		}
		if !items {
			cur = m[name]
			continue
		}
		l, ok := m[name].([]any)
		if !ok || len(l) == 0 {
			t.Fatalf("%s: no list at %s", path, part)
		}
		if last {
			l[0] = v
			return
		}
		cur = l[0]
	}
}

// unexpressible lists values that the Go types hold but no gateway config can, with the reason.
var unexpressible = map[string]string{
	"spec.overrides[].feed.burst = 0": "0 is an absent burst in an override of the config (omitempty): the config cannot say burst 0",
}

// get returns the value at path in obj; [] is the first item of a list, {} the value of the
// first key of a map; nil when absent.
func get(obj map[string]any, path string) any {
	var cur any = obj
	for _, part := range strings.Split(path, ".") {
		name, items := strings.CutSuffix(part, "[]")
		name, values := strings.CutSuffix(name, "{}")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[name]
		if values {
			vals, ok := cur.(map[string]any)
			if !ok || len(vals) == 0 {
				return nil
			}
			cur = vals[slices.Sorted(maps.Keys(vals))[0]]
		}
		if items {
			l, ok := cur.([]any)
			if !ok || len(l) == 0 {
				return nil
			}
			cur = l[0]
		}
	}
	return cur
}

// TestCRDRulesHoldInParse walks the embedded CRD's schema of spec. For each pattern, enum,
// bound, length, list size and duration range it tries values at and beyond the bound and
// checks that the gateway's parser, given the config the policy renders to (admission
// bypassed), decides as the API server's own validation code does. A constraint the test
// cannot place fails the test, so a new marker cannot drift from the gateway unseen.
func TestCRDRulesHoldInParse(t *testing.T) {
	v, err := validation.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	cs := constraints(t, "spec", specSchema(t))
	if len(cs) < 30 {
		t.Fatalf("only %d constraints found in the CRD: %v", len(cs), cs)
	}
	for _, c := range cs {
		t.Run(c.String(), func(t *testing.T) {
			if why := notChecked(c); why != "" {
				t.Skip(why)
			}
			ps := probes(c)
			if len(ps) == 0 {
				t.Fatalf("no probes for %v", c)
			}
			checked := 0
			for _, probe := range ps {
				obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(base(c.path))
				if err != nil {
					t.Fatal(err)
				}
				delete(obj, "status")
				delete(obj["metadata"].(map[string]any), "creationTimestamp")
				set(t, obj, c.path, probe)
				var p v1alpha1.OfferFeedPolicy
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(runtime.DeepCopyJSON(obj), &p); err != nil {
					t.Fatal(err)
				}
				back, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&p)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(get(back, c.path)) != fmt.Sprint(probe) {
					// Such as burst: 0, which omitempty drops: what the operator reads from the
					// API server cannot hold it, so neither can a config it renders.
					t.Logf("%s = %s: the Go types cannot hold it (they read %v); not a config's concern", c.path, short(probe), get(back, c.path))
					continue
				}
				if why := unexpressible[c.path+" = "+short(probe)]; why != "" {
					t.Logf("%s = %s: %s", c.path, short(probe), why)
					continue
				}
				checked++
				apiErrs := v.Validate(context.Background(), runtime.DeepCopyJSON(obj), "offers")
				gp, err := render.Policy(&p)
				if r := p.Spec.Refusal; r != nil {
					// render checks a refusal with the gateway's own Refusal.Validate and must
					// decide as the API server does; then, as admission is, render is bypassed:
					// the refusal goes into the config unchecked, for Parse to decide.
					if (len(apiErrs) == 0) != (err == nil) {
						t.Errorf("%s = %s: the API server says %v, render says %v", c.path, short(probe), apiErrs, err)
					}
					q := p.DeepCopy()
					q.Spec.Refusal = nil
					if gp, err = render.Policy(q); err == nil {
						gp.Refusal, gp.Hash = render.Refusal(r), ""
					}
				}
				if err != nil {
					t.Fatalf("%s = %s: render: %v", c.path, short(probe), err)
				}
				data, err := gatewayconfig.Marshal(&gatewayconfig.Config{SchemaVersion: gatewayconfig.SchemaVersion,
					Namespace: "offers", Policies: []gatewayconfig.Policy{gp}})
				if err != nil {
					t.Fatal(err)
				}
				_, parseErr := gatewayconfig.Parse(data)
				if (len(apiErrs) == 0) != (parseErr == nil) {
					t.Errorf("%s = %s: the API server says %v, the gateway's Parse says %v", c.path, short(probe), apiErrs, parseErr)
				}
			}
			if checked == 0 {
				t.Errorf("no probe of %v could be checked", c)
			}
		})
	}
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 60 {
		n := 60
		for n > 0 && !utf8.RuneStart(b[n]) {
			n--
		}
		return fmt.Sprintf("%s… (%d bytes)", b[:n], len(b))
	}
	return string(b)
}

// jsonSchemaProperty maps a path of the CRD spec to the property of the gateway config's
// JSON Schema that carries it: a definition of $defs and a property name.
var jsonSchemaProperty = map[string][2]string{
	"spec.mode":                                       {"Policy", "mode"},
	"spec.clientIdentity.header":                      {"Policy", "identityHeader"},
	"spec.feed.method":                                {"Feed", "method"},
	"spec.feed.path":                                  {"Feed", "path"},
	"spec.feed.burst":                                 {"Feed", "burst"},
	"spec.accept.method":                              {"Accept", "method"},
	"spec.accept.pathTemplate":                        {"Accept", "pathTemplate"},
	"spec.accept.offerIdField":                        {"Accept", "offerIdField"},
	"spec.accept.maxAccepts":                          {"Accept", "maxAccepts"},
	"spec.accept.fairness.award":                      {"Fairness", "award"},
	"spec.shownOffers.jsonPath":                       {"ShownOffers", "jsonPath"},
	"spec.overrides":                                  {"Policy", "overrides"},
	"spec.overrides[].drivers":                        {"Override", "drivers"},
	"spec.overrides[].drivers[]":                      {"Override", "drivers[]"},
	"spec.overrides[].feed.burst":                     {"FeedOverride", "burst"},
	"spec.overrides[].accept.maxAccepts":              {"AcceptOverride", "maxAccepts"},
	"spec.refusal.status":                             {"Refusal", "status"},
	"spec.refusal.contentType":                        {"Refusal", "contentType"},
	"spec.refusal.body":                               {"Refusal", "body"},
	"spec.refusal.decisions":                          {"Refusal", "decisions"},
	"spec.refusal.decisions[].decision":               {"DecisionRefusal", "decision"},
	"spec.refusal.decisions[].status":                 {"DecisionRefusal", "status"},
	"spec.refusal.decisions[].contentType":            {"DecisionRefusal", "contentType"},
	"spec.refusal.decisions[].body":                   {"DecisionRefusal", "body"},
	"spec.botScore.drawWeighting":                     {"BotScore", "drawWeighting"},
	"spec.botScore.refuseAbovePermille":               {"BotScore", "refuseAbovePermille"},
	"spec.targetSelector.matchLabels":                 {"LabelSelector", "matchLabels"},
	"spec.targetSelector.matchLabels{}":               {"LabelSelector", "matchLabels{}"},
	"spec.targetSelector.matchExpressions":            {"LabelSelector", "matchExpressions"},
	"spec.targetSelector.matchExpressions[].key":      {"LabelSelectorRequirement", "key"},
	"spec.targetSelector.matchExpressions[].values":   {"LabelSelectorRequirement", "values"},
	"spec.targetSelector.matchExpressions[].values[]": {"LabelSelectorRequirement", "values[]"},
}

// jsonSchemaDiffers lists keywords where the JSON Schema says otherwise on purpose, with the
// reason.
var jsonSchemaDiffers = map[string]string{
	"spec.accept.maxAccepts minimum":             "0 is an absent maxAccepts in the config (Parse reads it so); the schema's minimum is 0",
	"spec.overrides[].accept.maxAccepts minimum": "0 is an absent maxAccepts in the config (Parse reads it so); the schema's minimum is 0",
}

// TestCRDRulesInJSONSchema checks every pattern, enum, bound, length and list size of the CRD
// against the JSON Schema of the gateway config (config/gateway/config.schema.json, which
// hack/jsonschema generates and its tests keep current). Duration ranges are Parse's alone, as
// the schema says.
func TestCRDRulesInJSONSchema(t *testing.T) {
	b, err := os.ReadFile("../../config/gateway/config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Defs map[string]map[string]any `json:"$defs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range constraints(t, "spec", specSchema(t)) {
		if notChecked(c) != "" || strings.HasPrefix(c.keyword, "duration") || c.keyword == formatKeyword || c.keyword == keyFormatKeyword {
			// The label formats are Parse's (IsQualifiedName, IsValidLabelValue, checked above
			// against the API server); the JSON Schema spells them as patterns, which
			// hack/jsonschema's tests check against Parse.
			continue
		}
		key := c.path + " " + c.keyword
		t.Run(key, func(t *testing.T) {
			where, ok := jsonSchemaProperty[c.path]
			if !ok {
				t.Fatalf("%s is not mapped to a property of the gateway config's JSON Schema", c.path)
			}
			name, items := strings.CutSuffix(where[1], "[]")
			name, values := strings.CutSuffix(name, "{}")
			props, _ := doc.Defs[where[0]]["properties"].(map[string]any)
			prop, _ := props[name].(map[string]any)
			if items {
				prop, _ = prop["items"].(map[string]any)
			}
			if values {
				prop, _ = prop["additionalProperties"].(map[string]any)
			}
			if ref, ok := prop["$ref"].(string); ok {
				prop = doc.Defs[strings.TrimPrefix(ref, "#/$defs/")]
			}
			if prop == nil {
				t.Fatalf("no property %s.%s in the JSON Schema", where[0], where[1])
			}
			raw, ok := prop[c.keyword]
			if !ok {
				// A bound may sit in one branch of anyOf, beside {"const": 0} for an absent
				// value (the refusal statuses): take it from the one branch that has it.
				var found []any
				for _, b := range asList(prop["anyOf"]) {
					if v, ok := b.(map[string]any)[c.keyword]; ok {
						found = append(found, v)
					}
				}
				if len(found) == 1 {
					raw = found[0]
				}
			}
			var got any
			switch raw := raw.(type) {
			case float64:
				got = int64(raw)
			case []any:
				var vals []string
				for _, r := range raw {
					vals = append(vals, r.(string))
				}
				got = vals
			default:
				got = raw
			}
			same := fmt.Sprint(got) == fmt.Sprint(c.value)
			if vals, ok := c.value.([]string); ok {
				gv, _ := got.([]string)
				same = slices.Equal(slices.Sorted(slices.Values(gv)), slices.Sorted(slices.Values(vals)))
			}
			if why := jsonSchemaDiffers[key]; why != "" {
				if same {
					t.Errorf("listed as differing (%s) but the JSON Schema agrees: %v", why, got)
				}
				t.Skip(why)
			}
			if !same {
				t.Errorf("the CRD says %v, the JSON Schema of %s.%s says %v", c.value, where[0], where[1], got)
			}
		})
	}
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}
