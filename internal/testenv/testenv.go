// Package testenv starts the envtest control plane (a real kube-apiserver and etcd, built from
// Go modules by hack/controlplane/build.sh) for offerfeed's own test suites and demo.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/offerfeed/offerfeed/config/crd"
)

// AssetsDir returns the directory holding kube-apiserver, etcd and kubectl: $KUBEBUILDER_ASSETS
// when set, else $ENVTEST_ASSETS_DIR (as for hack/controlplane/build.sh), else the directory
// setup-envtest uses, where hack/controlplane/build.sh puts them by default.
func AssetsDir() (string, error) {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d, nil
	}
	dir := os.Getenv("ENVTEST_ASSETS_DIR")
	if dir == "" {
		base, err := envtest.SetupEnvtestDefaultBinaryAssetsDirectory()
		if err != nil {
			return "", fmt.Errorf("locating envtest binaries: %w", err)
		}
		dir = filepath.Join(base, KubernetesVersion+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("envtest binary %s missing in %s; run `make controlplane` (hack/controlplane/build.sh): %w", b, dir, err)
		}
	}
	return dir, nil
}

// New returns an envtest environment with the offerfeed CRDs installed. Callers may set more
// fields (for example WebhookInstallOptions) before Start.
func New() (*envtest.Environment, error) {
	dir, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	crds, err := crd.CRDs()
	if err != nil {
		return nil, err
	}
	return &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDInstallOptions:     envtest.CRDInstallOptions{CRDs: crds},
		ErrorIfCRDPathMissing: true,
	}, nil
}

// Unthrottled returns a copy of cfg without client-side rate limiting, as the manager runs.
func Unthrottled(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS = -1
	c.Burst = 0
	return c
}
