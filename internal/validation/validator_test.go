package validation

import (
	"os"
	"strings"
	"testing"

	"github.com/offerfeed/offerfeed/internal/celcases"
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
	files, err := Files([]string{"../../config/samples"})
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
