package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/offerfeed/offerfeed/internal/render/rendertest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

const (
	schemaFile = "../../config/gateway/config.schema.json"
	goldenGlob = "../../internal/render/testdata/*.out.yaml"
)

func generate(t *testing.T) []byte {
	t.Helper()
	out, err := Generate("../../pkg/gatewayconfig")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCommittedSchemaIsCurrent fails when config/gateway/config.schema.json is stale.
func TestCommittedSchemaIsCurrent(t *testing.T) {
	committed, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, generate(t)) {
		t.Fatalf("%s differs from the generator's output; run `make generate` and commit it", schemaFile)
	}
}

// compile compiles the generated schema, checking it against the JSON Schema 2020-12
// meta-schema on the way.
func compile(t *testing.T) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(generate(t)))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, data []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(v)
}

// TestGoldenOutputsValidate checks that every config the render golden files hold (the
// operator's output byte for byte) is valid under the schema.
func TestGoldenOutputsValidate(t *testing.T) {
	s := compile(t)
	files, err := filepath.Glob(goldenGlob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden outputs match %s: %v", goldenGlob, err)
	}
	for _, f := range files {
		g, err := rendertest.Read(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(t, s, []byte(g.Config)); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}

// TestSchemaAgreesWithParse changes one field of a valid config at a time and checks that the
// schema and gatewayconfig.Parse agree on whether the result is valid. (Rules across fields and
// duration ranges are Parse's alone and not listed here.)
func TestSchemaAgreesWithParse(t *testing.T) {
	s := compile(t)
	g, err := rendertest.Read("../../internal/render/testdata/rest-and-flex.out.yaml")
	if err != nil {
		t.Fatal(err)
	}
	base := []byte(g.Config)
	p0 := func(m map[string]any) map[string]any { return m["policies"].([]any)[0].(map[string]any) }
	sub := func(m map[string]any, keys ...string) map[string]any {
		for _, k := range keys {
			m = m[k].(map[string]any)
		}
		return m
	}
	labels := func(n int) map[string]any {
		out := map[string]any{}
		for i := range n {
			out[fmt.Sprintf("l%d", i)] = "x"
		}
		return out
	}
	for _, tc := range []struct {
		desc   string
		mutate func(m map[string]any)
		valid  bool
	}{
		{"as rendered", func(map[string]any) {}, true},
		{"unknown field", func(m map[string]any) { m["extra"] = 1 }, false},
		{"unknown field in a selector", func(m map[string]any) { sub(p0(m), "selector")["matchFoo"] = 1 }, false},
		{"schemaVersion 2", func(m map[string]any) { m["schemaVersion"] = 2 }, false},
		{"no schemaVersion", func(m map[string]any) { delete(m, "schemaVersion") }, false},
		{"no hash", func(m map[string]any) { delete(p0(m), "hash") }, true},
		{"short hash", func(m map[string]any) { p0(m)["hash"] = "sha256:abc" }, false},
		{"no name", func(m map[string]any) { delete(p0(m), "name") }, false},
		{"mode Audit", func(m map[string]any) { p0(m)["mode"] = "Audit" }, false},
		{"identity header with a space", func(m map[string]any) { p0(m)["identityHeader"] = "X Driver" }, false},
		{"no identity header", func(m map[string]any) { delete(p0(m), "identityHeader") }, false},
		{"minInterval 1m30s", func(m map[string]any) { sub(p0(m), "feed")["minInterval"] = "1m30s" }, true},
		{"minInterval 1.5s", func(m map[string]any) { sub(p0(m), "feed")["minInterval"] = "1.5s" }, true},
		{"minInterval 2 seconds", func(m map[string]any) { sub(p0(m), "feed")["minInterval"] = "2 seconds" }, false},
		{"minInterval -2s", func(m map[string]any) { sub(p0(m), "feed")["minInterval"] = "-2s" }, false},
		{"minInterval a number", func(m map[string]any) { sub(p0(m), "feed")["minInterval"] = 2 }, false},
		{"burst 0", func(m map[string]any) { sub(p0(m), "feed")["burst"] = 0 }, false},
		{"burst 101", func(m map[string]any) { sub(p0(m), "feed")["burst"] = 101 }, false},
		{"feed method DELETE", func(m map[string]any) { sub(p0(m), "feed")["method"] = "DELETE" }, false},
		{"feed path without /", func(m map[string]any) { sub(p0(m), "feed")["path"] = "offers" }, false},
		{"feed path prefix", func(m map[string]any) { sub(p0(m), "feed")["path"] = "/offers/" }, true},
		{"path template {id}", func(m map[string]any) { sub(p0(m), "accept")["pathTemplate"] = "/offers/{id}/accept" }, false},
		{"maxAccepts 10001", func(m map[string]any) { sub(p0(m), "accept")["maxAccepts"] = 10001 }, false},
		{"jsonPath offers..id", func(m map[string]any) { sub(p0(m), "shownOffers")["jsonPath"] = "offers..id" }, false},
		{"jsonPath data.offers[].offer_id", func(m map[string]any) {
			sub(p0(m), "shownOffers")["jsonPath"] = "data.offers[].offer_id"
		}, true},
		{"selector expression", func(m map[string]any) {
			sub(p0(m), "selector")["matchExpressions"] = []any{map[string]any{"key": "track", "operator": "In", "values": []any{"canary"}}}
		}, true},
		{"selector expression with operator Foo", func(m map[string]any) {
			sub(p0(m), "selector")["matchExpressions"] = []any{map[string]any{"key": "track", "operator": "Foo"}}
		}, false},
		{"selector of 32 labels", func(m map[string]any) { sub(p0(m), "selector")["matchLabels"] = labels(32) }, true},
		{"selector of 33 labels", func(m map[string]any) { sub(p0(m), "selector")["matchLabels"] = labels(33) }, false},
		{"selector label key with a prefix", func(m map[string]any) {
			sub(p0(m), "selector")["matchLabels"] = map[string]any{"offerfeed.dev/app": "x"}
		}, true},
		{"selector label key with a space", func(m map[string]any) { sub(p0(m), "selector")["matchLabels"] = map[string]any{"app name": "x"} }, false},
		{"selector label key with an upper-case prefix", func(m map[string]any) {
			sub(p0(m), "selector")["matchLabels"] = map[string]any{"Offerfeed.dev/app": "x"}
		}, false},
		{"selector label value empty", func(m map[string]any) { sub(p0(m), "selector")["matchLabels"] = map[string]any{"app": ""} }, true},
		{"selector label value of 64", func(m map[string]any) {
			sub(p0(m), "selector")["matchLabels"] = map[string]any{"app": strings.Repeat("a", 64)}
		}, false},
		{"selector label value ending in -", func(m map[string]any) { sub(p0(m), "selector")["matchLabels"] = map[string]any{"app": "a-"} }, false},
		{"selector of 17 expressions", func(m map[string]any) {
			var es []any
			for i := range 17 {
				es = append(es, map[string]any{"key": fmt.Sprintf("k%d", i), "operator": "Exists"})
			}
			sub(p0(m), "selector")["matchExpressions"] = es
		}, false},
		{"selector expression of 65 values", func(m map[string]any) {
			var vs []any
			for i := range 65 {
				vs = append(vs, fmt.Sprintf("v%d", i))
			}
			sub(p0(m), "selector")["matchExpressions"] = []any{map[string]any{"key": "track", "operator": "In", "values": vs}}
		}, false},
		{"selector expression key of a name of 63", func(m map[string]any) {
			sub(p0(m), "selector")["matchExpressions"] = []any{map[string]any{"key": strings.Repeat("k", 63), "operator": "Exists"}}
		}, true},
		{"selector expression key -track", func(m map[string]any) {
			sub(p0(m), "selector")["matchExpressions"] = []any{map[string]any{"key": "-track", "operator": "Exists"}}
		}, false},
		{"selector expression value with a slash", func(m map[string]any) {
			sub(p0(m), "selector")["matchExpressions"] = []any{map[string]any{"key": "track", "operator": "In", "values": []any{"a/b"}}}
		}, false},
		{"fairness", func(m map[string]any) {
			sub(p0(m), "accept")["fairness"] = map[string]any{"window": "3s", "award": "LeastRecentlyWon"}
		}, true},
		{"fairness award Fastest", func(m map[string]any) {
			sub(p0(m), "accept")["fairness"] = map[string]any{"window": "3s", "award": "Fastest"}
		}, false},
		{"fairness without award", func(m map[string]any) {
			sub(p0(m), "accept")["fairness"] = map[string]any{"window": "3s"}
		}, false},
		{"override without drivers", func(m map[string]any) {
			p0(m)["overrides"].([]any)[0].(map[string]any)["drivers"] = []any{}
		}, false},
		{"override naming a driver twice", func(m map[string]any) {
			p0(m)["overrides"].([]any)[0].(map[string]any)["drivers"] = []any{"d1", "d1"}
		}, false},
		{"override burst 101", func(m map[string]any) {
			p0(m)["overrides"].([]any)[0].(map[string]any)["feed"] = map[string]any{"burst": 101}
		}, false},
		{"refusal in the Flex shape", func(m map[string]any) {
			p0(m)["refusal"] = map[string]any{"status": 400, "contentType": "application/json", "body": `{"message":"Rate exceeded"}`,
				"decisions": []any{map[string]any{"decision": "unseen-offer", "status": 410}}}
		}, true},
		{"refusal status 302", func(m map[string]any) { p0(m)["refusal"] = map[string]any{"status": 302} }, false},
		{"refusal content type with a line break", func(m map[string]any) {
			p0(m)["refusal"] = map[string]any{"contentType": "application/json\r\nX: y", "body": "{}"}
		}, false},
		{"refusal body of 4097 bytes", func(m map[string]any) {
			p0(m)["refusal"] = map[string]any{"contentType": "text/plain", "body": strings.Repeat("x", 4097)}
		}, false},
		{"refusal for decision allowed", func(m map[string]any) {
			p0(m)["refusal"] = map[string]any{"decisions": []any{map[string]any{"decision": "allowed", "status": 400}}}
		}, false},
		{"refusal for decision bot-like", func(m map[string]any) {
			p0(m)["refusal"] = map[string]any{"decisions": []any{map[string]any{"decision": "bot-like", "status": 429}}}
		}, true},
		{"botScore refusing above 0.9", func(m map[string]any) {
			p0(m)["botScore"] = map[string]any{"drawWeighting": "None", "refuseAbovePermille": 900}
		}, true},
		{"botScore without drawWeighting", func(m map[string]any) { p0(m)["botScore"] = map[string]any{"refuseAbovePermille": 900} }, false},
		{"botScore refusing above 1.0", func(m map[string]any) {
			p0(m)["botScore"] = map[string]any{"drawWeighting": "None", "refuseAbovePermille": 1000}
		}, false},
		{"botScore refusing above 0.2", func(m map[string]any) {
			p0(m)["botScore"] = map[string]any{"drawWeighting": "None", "refuseAbovePermille": 200}
		}, false},
		{"botScore drawWeighting Inverse", func(m map[string]any) { p0(m)["botScore"] = map[string]any{"drawWeighting": "Inverse"} }, false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(base, &m); err != nil {
				t.Fatal(err)
			}
			tc.mutate(m)
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			schemaErr := validate(t, s, data)
			_, parseErr := gatewayconfig.Parse(data)
			if (schemaErr == nil) != tc.valid || (parseErr == nil) != tc.valid {
				t.Fatalf("want valid=%v; schema: %v; Parse: %v", tc.valid, schemaErr, parseErr)
			}
		})
	}
}

// TestGenerateIsDeterministic guards against map order leaking into the output.
func TestGenerateIsDeterministic(t *testing.T) {
	a, b := generate(t), generate(t)
	if !bytes.Equal(a, b) {
		t.Fatal("two runs of the generator differ")
	}
}

// TestDurationPattern checks that every duration the gateway config writes matches the pattern
// of Duration, and some it cannot read do not.
func TestDurationPattern(t *testing.T) {
	re := regexp.MustCompile(durationPattern)
	for _, d := range []time.Duration{0, 1, 999, time.Microsecond, 1500 * time.Microsecond, 800 * time.Millisecond,
		2 * time.Second, 2500 * time.Millisecond, 10 * time.Minute, time.Hour, 36*time.Hour + 90*time.Second} {
		if s := d.String(); !re.MatchString(s) {
			t.Errorf("%q (written for %d) does not match %s", s, int64(d), durationPattern)
		}
		b, _ := gatewayconfig.Duration(d).MarshalJSON()
		var s string
		if err := json.Unmarshal(b, &s); err != nil || !re.MatchString(s) {
			t.Errorf("Duration(%d) is written as %s, which does not match", int64(d), b)
		}
	}
	for _, s := range []string{"", "2", "-2s", "2 s", "2S", "s", "1d", "2s "} {
		if re.MatchString(s) {
			t.Errorf("%q matches %s", s, durationPattern)
		}
	}
}

// TestRequired checks that fields without omitempty are required, except those Parse fills in.
func TestRequired(t *testing.T) {
	var s struct {
		Required []string `json:"required"`
		Defs     map[string]struct {
			Required []string `json:"required"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(generate(t), &s); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"":         {"schemaVersion", "namespace", "policies"},
		"Policy":   {"name", "mode", "selector", "identityHeader"},
		"Accept":   {"method", "pathTemplate"},
		"Feed":     {"method", "path", "minInterval", "burst"},
		"Override": {"drivers"},
	} {
		got := s.Required
		if name != "" {
			got = s.Defs[name].Required
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: required %v, want %v", cmp.Or(name, "Config"), got, want)
		}
	}
}
