package validation

import (
	"os"
	"strings"
	"testing"

	"github.com/offerfeed/offerfeed/internal/celcases"
	"github.com/offerfeed/offerfeed/internal/manifest"
)

func newValidator(t *testing.T) *Validator {
	t.Helper()
	v, err := New()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func joinErrors(errs []Error) string {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.String()
	}
	return strings.Join(lines, "\n")
}

// TestInvalidCases runs every invalid case of the CEL test table (internal/celcases, also
// created on a real API server by test/cel) through the offline validator: each must be refused
// with each of the messages the API server refuses it with.
func TestInvalidCases(t *testing.T) {
	v := newValidator(t)
	for _, c := range celcases.Invalid() {
		t.Run(c.Desc, func(t *testing.T) {
			u, err := c.Object()
			if err != nil {
				t.Fatal(err)
			}
			errs := v.Validate(t.Context(), u.Object, "")
			if len(errs) == 0 {
				t.Fatalf("accepted; want errors %q", c.WantErrors)
			}
			got := joinErrors(errs)
			for _, want := range c.WantErrors {
				if !strings.Contains(got, want) {
					t.Errorf("error lacks %q; got:\n%s", want, got)
				}
			}
		})
	}
}

// TestValidCases runs every valid case of the CEL test table through the offline validator.
func TestValidCases(t *testing.T) {
	v := newValidator(t)
	for _, c := range celcases.Valid() {
		t.Run(c.Desc, func(t *testing.T) {
			u, err := c.Object()
			if err != nil {
				t.Fatal(err)
			}
			if errs := v.Validate(t.Context(), u.Object, ""); len(errs) > 0 {
				t.Fatalf("refused:\n%s", joinErrors(errs))
			}
		})
	}
}

// TestSamples checks the sample manifests of config/samples offline.
func TestSamples(t *testing.T) {
	v := newValidator(t)
	files, err := manifest.Files([]string{"../../config/samples"})
	if err != nil {
		t.Fatal(err)
	}
	policies := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range v.Check(t.Context(), f, data, "") {
			switch r.Status {
			case StatusInvalid:
				t.Errorf("%s:DOC#%d: %s: %s", f, r.Document, r.Object(), joinErrors(r.Errors))
			case StatusValid:
				policies++
			}
		}
	}
	if policies < 2 {
		t.Errorf("found %d valid policies in config/samples, want at least 2", policies)
	}
}

// TestObjectLevel covers what the case table does not: metadata, apiVersion and kind.
func TestObjectLevel(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name   string
		change func(obj map[string]any)
		want   []string // substrings of the joined errors; none for a valid object
	}{
		{name: "valid", change: func(map[string]any) {}},
		{name: "no namespace", change: func(obj map[string]any) { delete(obj["metadata"].(map[string]any), "namespace") }},
		{name: "generateName instead of name", change: func(obj map[string]any) {
			md := obj["metadata"].(map[string]any)
			delete(md, "name")
			md["generateName"] = "standard-"
		}},
		{name: "no name", change: func(obj map[string]any) { delete(obj["metadata"].(map[string]any), "name") },
			want: []string{"metadata.name: Required value: name or generateName is required"}},
		{name: "name not a DNS subdomain", change: func(obj map[string]any) { obj["metadata"].(map[string]any)["name"] = "Standard_Policy" },
			want: []string{`metadata.name: Invalid value: "Standard_Policy"`, "RFC 1123 subdomain"}},
		{name: "label value too long", change: func(obj map[string]any) {
			obj["metadata"].(map[string]any)["labels"] = map[string]any{"team": strings.Repeat("x", 64)}
		}, want: []string{"metadata.labels", "must be no more than 63"}},
		{name: "unknown metadata field", change: func(obj map[string]any) { obj["metadata"].(map[string]any)["owner"] = "team-a" },
			want: []string{`metadata.owner: unknown field "metadata.owner"`}},
		{name: "unknown top-level field", change: func(obj map[string]any) { obj["specs"] = map[string]any{} },
			want: []string{`specs: unknown field "specs"`}},
		{name: "status is dropped, as on create", change: func(obj map[string]any) {
			obj["status"] = map[string]any{"targetedPods": "many"}
		}},
		{name: "version not served", change: func(obj map[string]any) { obj["apiVersion"] = "offerfeed.dev/v1" },
			want: []string{"apiVersion: no OfferFeedPolicy served as offerfeed.dev/v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := celcases.Case{}.Object()
			if err != nil {
				t.Fatal(err)
			}
			tt.change(u.Object)
			got := joinErrors(v.Validate(t.Context(), u.Object, ""))
			if len(tt.want) == 0 && got != "" {
				t.Fatalf("refused:\n%s", got)
			}
			if len(tt.want) > 0 && got == "" {
				t.Fatalf("accepted; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("errors lack %q; got:\n%s", w, got)
				}
			}
		})
	}
}

// TestDefaults checks that Validate applies the schema's defaults to the object.
func TestDefaults(t *testing.T) {
	v := newValidator(t)
	u, err := celcases.Case{Mutate: celcases.FeedOnly}.Object()
	if err != nil {
		t.Fatal(err)
	}
	if errs := v.Validate(t.Context(), u.Object, ""); len(errs) > 0 {
		t.Fatal(joinErrors(errs))
	}
	spec := u.Object["spec"].(map[string]any)
	feed := spec["feed"].(map[string]any)
	if spec["mode"] != "Enforce" || feed["method"] != "GET" || feed["burst"] != int64(1) {
		t.Errorf("defaults not applied: mode %v, feed %v", spec["mode"], feed)
	}
}
