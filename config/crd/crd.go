// Package crd embeds the offerfeed CustomResourceDefinitions that controller-gen writes to
// bases/, so tools and test suites get them without a path into the module.
package crd

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

//go:embed bases/*.yaml
var bases embed.FS

// Files returns the CRD manifests by file name.
func Files() map[string][]byte {
	out := map[string][]byte{}
	entries, err := fs.ReadDir(bases, "bases")
	if err != nil {
		panic(fmt.Sprintf("offerfeed: embedded CRDs unreadable: %v", err))
	}
	for _, e := range entries {
		b, err := bases.ReadFile("bases/" + e.Name())
		if err != nil {
			panic(fmt.Sprintf("offerfeed: embedded CRD %s unreadable: %v", e.Name(), err))
		}
		out[e.Name()] = b
	}
	return out
}

// CRDs returns the offerfeed CustomResourceDefinitions, sorted by name. Each call returns new
// objects that the caller may change.
func CRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files := Files()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*apiextensionsv1.CustomResourceDefinition, 0, len(names))
	for _, n := range names {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(files[n], crd); err != nil {
			return nil, fmt.Errorf("decoding embedded CRD %s: %w", n, err)
		}
		out = append(out, crd)
	}
	return out, nil
}
