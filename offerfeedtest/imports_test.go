package offerfeedtest_test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDownstreamSuiteUsesPublicPackages keeps test/downstream honest: it is written as another
// team would write it, so of offerfeed it may import only what another module can.
func TestDownstreamSuiteUsesPublicPackages(t *testing.T) {
	files, err := filepath.Glob("../test/downstream/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no files in test/downstream: %v", err)
	}
	allowed := map[string]bool{
		"github.com/offerfeed/offerfeed/api/v1alpha1":      true,
		"github.com/offerfeed/offerfeed/offerfeedtest":     true,
		"github.com/offerfeed/offerfeed/pkg/gatewayconfig": true,
	}
	for _, f := range files {
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range af.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/offerfeed/offerfeed") && !allowed[p] {
				t.Errorf("%s imports %s; a downstream suite can import only api/v1alpha1, offerfeedtest and pkg/gatewayconfig", f, p)
			}
		}
	}
}
