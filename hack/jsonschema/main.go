// Command jsonschema writes the JSON Schema of the gateway config file (package
// pkg/gatewayconfig) to standard output. `make generate` runs it:
//
//	go run ./hack/jsonschema > config/gateway/config.schema.json
//
// The schema is derived from the Go types by reflection: json tags name the properties, fields
// without omitempty (or omitzero) are required, unknown properties are refused (as Parse
// refuses them), gatewayconfig.Duration is a string with a pattern, metav1.LabelSelector is
// spelled out, string types with constants become enums, and the doc comments of the package
// source become descriptions. Bounds that the types cannot carry (lengths, patterns, ranges)
// come from the exported constants of gatewayconfig, which hack/gatewayrules generates from the
// CRD, listed in constraints (test/drift checks them against the CRD); rules across fields and
// duration ranges are checked by gatewayconfig.Parse only, as the descriptions say.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "jsonschema:", err)
		os.Exit(1)
	}
	out, err := Generate(filepath.Join(root, "pkg", "gatewayconfig"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "jsonschema:", err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		fmt.Fprintln(os.Stderr, "jsonschema:", err)
		os.Exit(1)
	}
}

// modulePath is the module whose gatewayconfig package this command describes.
const modulePath = "github.com/offerfeed/offerfeed"

// moduleRoot returns the directory of the offerfeed module's go.mod, the working directory or
// one of its parents.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			first, _, _ := bytes.Cut(b, []byte("\n"))
			if strings.TrimSpace(string(first)) == "module "+modulePath {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside module " + modulePath)
		}
		dir = parent
	}
}
