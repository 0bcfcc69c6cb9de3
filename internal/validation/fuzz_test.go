package validation

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzCheck feeds arbitrary bytes to Check: it must not panic, and every document it reports
// must have a known status, and errors exactly when invalid.
func FuzzCheck(f *testing.F) {
	seeds, _ := filepath.Glob("../../config/samples/*.yaml")
	more, _ := filepath.Glob("../cmd/testdata/validate/*.yaml")
	for _, name := range append(seeds, more...) {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("[1, 2]\n---\n\"text\"\n---\n{apiVersion: offerfeed.dev/v1alpha1, kind: Other}"))
	f.Add([]byte(`{"apiVersion":"offerfeed.dev/v1alpha1","kind":"OfferFeedPolicy","metadata":{"name":7},"spec":[]}`))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [1, {kind: OfferFeedPolicy}]"))
	v, err := New()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, r := range v.Check(t.Context(), "fuzz.yaml", data, "") {
			switch r.Status {
			case StatusValid, StatusIgnored:
				if len(r.Errors) > 0 {
					t.Fatalf("%s document with errors: %+v", r.Status, r)
				}
			case StatusInvalid:
				if len(r.Errors) == 0 {
					t.Fatalf("invalid document without errors: %+v", r)
				}
			default:
				t.Fatalf("unknown status: %+v", r)
			}
			if r.Document < 1 {
				t.Fatalf("document number %d", r.Document)
			}
		}
	})
}
