package main

import (
	"bytes"
	"os"
	"testing"
)

// TestCommittedVersionIsCurrent fails when internal/testenv/zz_generated.version.go is stale.
func TestCommittedVersionIsCurrent(t *testing.T) {
	const file = "../../internal/testenv/zz_generated.version.go"
	committed, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Generate("../..")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, out) {
		t.Fatalf("%s differs from the generator's output; run `make generate` and commit it", file)
	}
}

func TestVersion(t *testing.T) {
	for _, tc := range []struct {
		desc, gomod, want string
	}{
		{"one line", "module x\n\nrequire k8s.io/kubernetes v1.37.2\n", "1.37.2"},
		{"in a block, replace ignored", "module x\nrequire (\n\tk8s.io/api v0.37.2\n\tk8s.io/kubernetes v1.38.0 // indirect\n)\nreplace k8s.io/kubernetes => ../k\n", "1.38.0"},
		{"missing", "module x\nrequire k8s.io/api v0.37.2\n", ""},
		{"twice", "module x\nrequire k8s.io/kubernetes v1.37.2\nrequire k8s.io/kubernetes v1.37.3\n", ""},
		{"pre-release", "module x\nrequire k8s.io/kubernetes v1.38.0-alpha.1\n", ""},
	} {
		got, err := Version([]byte(tc.gomod))
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%s: got %q, %v; want %q", tc.desc, got, err, tc.want)
		}
	}
}
