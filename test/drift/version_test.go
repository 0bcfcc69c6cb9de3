package drift

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/offerfeed/offerfeed/internal/testenv"
)

const root = "../.."

// k8sVersion is the Kubernetes version as hack/controlplane/k8s-version.sh reads it from
// hack/controlplane/kube/go.mod, where it is written.
func k8sVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("bash", filepath.Join(root, "hack/controlplane/k8s-version.sh")).Output()
	if err != nil {
		t.Fatalf("hack/controlplane/k8s-version.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestKubernetesVersionOnce checks that the Go code has the version of go.mod (a stale
// internal/testenv/zz_generated.version.go fails here and in hack/k8sversion) and that the
// Makefile and build.sh do not write one of their own.
func TestKubernetesVersionOnce(t *testing.T) {
	v := k8sVersion(t)
	if testenv.KubernetesVersion != v {
		t.Errorf("testenv.KubernetesVersion is %s, hack/controlplane/kube/go.mod requires %s; run make generate", testenv.KubernetesVersion, v)
	}
	literal := regexp.MustCompile(`\b[0-9]+\.[0-9]+\.[0-9]+\b`)
	for _, f := range []string{"Makefile", "hack/controlplane/build.sh"} {
		b, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		if m := literal.Find(b); m != nil {
			t.Errorf("%s writes a version (%s); it should read hack/controlplane/k8s-version.sh", f, m)
		}
	}
}

// TestDocsNameTheKubernetesVersion checks every Kubernetes version the docs name (transcripts
// and measurements included) against go.mod.
func TestDocsNameTheKubernetesVersion(t *testing.T) {
	v := k8sVersion(t)
	mention := regexp.MustCompile("(?:kube-apiserver v?|kubebuilder-envtest/k8s/|`?k8s\\.io/kubernetes`? v)([0-9]+\\.[0-9]+\\.[0-9]+)")
	docs, err := filepath.Glob(filepath.Join(root, "docs/*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append(docs, filepath.Join(root, "README.md"), filepath.Join(root, "BENCHMARKS.md"))
	found := 0
	for _, f := range docs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mention.FindAllSubmatch(b, -1) {
			found++
			if string(m[1]) != v {
				t.Errorf("%s names %q; the control plane is Kubernetes %s (hack/controlplane/kube/go.mod)", filepath.Base(f), m[0], v)
			}
		}
	}
	if found == 0 {
		t.Error("no doc names the Kubernetes version; is the pattern still right?")
	}
}
