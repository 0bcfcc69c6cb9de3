package main

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// goListDeps returns the packages that pkg links, as `go list -deps` lists them.
func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	return strings.Fields(string(out))
}

// TestBinaryDeps keeps the test control plane, the demo and the market simulator out of the
// production binary; they belong to cmd/offerfeed-demo (which must link them, or this test
// would prove nothing).
func TestBinaryDeps(t *testing.T) {
	banned := []string{
		"sigs.k8s.io/controller-runtime/pkg/envtest",
		"github.com/offerfeed/offerfeed/internal/demo",
		"github.com/offerfeed/offerfeed/internal/market",
		"github.com/offerfeed/offerfeed/internal/testenv",
	}
	offerfeed := goListDeps(t, "github.com/offerfeed/offerfeed")
	if !slices.Contains(offerfeed, "github.com/offerfeed/offerfeed/internal/cmd") {
		t.Fatalf("go list -deps gave no internal/cmd for the offerfeed binary:\n%s", strings.Join(offerfeed, "\n"))
	}
	for _, p := range banned {
		if slices.Contains(offerfeed, p) {
			t.Errorf("the offerfeed binary links %s", p)
		}
	}
	demo := goListDeps(t, "github.com/offerfeed/offerfeed/cmd/offerfeed-demo")
	for _, p := range banned {
		if !slices.Contains(demo, p) {
			t.Errorf("offerfeed-demo does not link %s; is the list out of date?", p)
		}
	}
}
