// Package rendertest reads and writes the golden files of internal/render: testdata/NAME.out.yaml
// holds what rendering testdata/NAME.in.yaml in namespace "offers" gives, the gateway config
// (the bytes of ConfigMap offerfeed-gateway, key config.json) and the status of every policy.
// `go test ./internal/render -update` rewrites them; other suites (the controller's, the JSON
// Schema's) read them with Read.
package rendertest

import (
	"bytes"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// Golden is the content of a golden file.
type Golden struct {
	// Config is the rendered gateway config, byte for byte.
	Config string `json:"config"`
	// Policies are the outcomes of every policy, by name.
	Policies map[string]Status `json:"policies"`
}

// Status is what a policy's status says after rendering.
type Status struct {
	Accepted       bool   `json:"accepted"`
	Reason         string `json:"reason"`
	Message        string `json:"message"`
	TargetedPods   int32  `json:"targetedPods"`
	UninjectedPods int32  `json:"uninjectedPods"`
	Hash           string `json:"hash"`
}

// header starts every golden file.
const header = "# Written by `go test ./internal/render -update` from the .in.yaml of the same name: the gateway\n" +
	"# config rendered in namespace offers (config.json byte for byte) and every policy's status.\n"

// Marshal returns g as the bytes of a golden file.
func (g *Golden) Marshal() ([]byte, error) {
	if g.Policies == nil {
		g.Policies = map[string]Status{}
	}
	b, err := yaml.Marshal(g)
	if err != nil {
		return nil, fmt.Errorf("encoding golden: %w", err)
	}
	return append([]byte(header), b...), nil
}

// Read reads a golden file strictly.
func Read(file string) (*Golden, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var g Golden
	if err := yaml.UnmarshalStrict(bytes.TrimPrefix(b, []byte(header)), &g); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &g, nil
}
