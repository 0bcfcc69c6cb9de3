// Package kustomize builds the kustomizations in config/ in process (the kustomize API that
// `kustomize build` (hack/gen/go.mod) runs), for tests that check or install what they produce.
package kustomize

import (
	"bytes"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/offerfeed/offerfeed/internal/manifest"
)

// Build runs `kustomize build dir` and returns the resulting objects in output order.
func Build(dir string) ([]manifest.Document, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	res, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	docs, err := manifest.Decode("kustomize build "+dir, bytes.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("decoding kustomize build %s: %w", dir, err)
	}
	return docs, nil
}

// ExpandedArgs returns the args of c as the kubelet passes them: each $(VAR) replaced with
// the value of c's env entry VAR.
func ExpandedArgs(c corev1.Container) []string {
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		for _, e := range c.Env {
			a = strings.ReplaceAll(a, "$("+e.Name+")", e.Value)
		}
		args[i] = a
	}
	return args
}
