// Package helm renders, lints, packages and syncs the offerfeed Helm chart (charts/offerfeed)
// with Helm's Go SDK, for the chart's tests and for `make helm-lint` and `make helm-package`.
package helm

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	release "helm.sh/helm/v4/pkg/release/v1"

	"github.com/offerfeed/offerfeed/internal/testenv"
)

// Load reads the chart in dir.
func Load(dir string) (*chart.Chart, error) {
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", dir, err)
	}
	return ch, nil
}

// quiet is a Helm action configuration that does not log.
func quiet() *action.Configuration {
	return action.NewConfiguration(action.ConfigurationSetLogger(slog.NewTextHandler(io.Discard, nil)))
}

// Render renders ch as `helm template` does (no cluster): the install of release name into
// namespace with vals, values validated by the chart's values.schema.json. It returns the
// manifest, CRDs included.
func Render(ch *chart.Chart, name, namespace string, vals map[string]any) (string, error) {
	return render(action.NewInstall(quiet()), ch, name, namespace, vals, action.DryRunClient)
}

// RenderWithCluster renders ch like Render but with a cluster to ask (Helm's server dry run:
// lookup sees the cluster's objects, and objects that already exist outside a release are
// reported). cfg must have been initialised with Configuration.Init.
func RenderWithCluster(cfg *action.Configuration, ch *chart.Chart, name, namespace string, vals map[string]any) (string, error) {
	return render(action.NewInstall(cfg), ch, name, namespace, vals, action.DryRunServer)
}

// kubeVersion is the Kubernetes version renders and lint assume without a cluster: the one
// the tests' control plane runs. (Helm's own default, taken from the client-go version in the
// binary's build information, is not there in a test binary.)
func kubeVersion() *common.KubeVersion {
	v, err := common.ParseKubeVersion("v" + testenv.KubernetesVersion)
	if err != nil {
		panic(err)
	}
	return v
}

func render(inst *action.Install, ch *chart.Chart, name, namespace string, vals map[string]any, dryRun action.DryRunStrategy) (string, error) {
	inst.DryRunStrategy = dryRun
	inst.KubeVersion = kubeVersion()
	inst.ReleaseName = name
	inst.Namespace = namespace
	inst.Replace = true // no release history to check the name against
	inst.IncludeCRDs = true
	rel, err := inst.Run(ch, vals)
	if err != nil {
		return "", fmt.Errorf("rendering chart %s: %w", ch.Name(), err)
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return "", fmt.Errorf("rendering chart %s: unexpected release type %T", ch.Name(), rel)
	}
	return r.Manifest, nil
}

// Lint lints the chart in dir as `helm lint --strict` does, with vals over the chart's
// values; it returns every message (information too) and an error when any is a warning or
// worse.
func Lint(dir, namespace string, vals map[string]any) ([]support.Message, error) {
	l := action.NewLint()
	l.Strict = true
	l.Namespace = namespace
	l.KubeVersion = kubeVersion()
	res := l.Run([]string{dir}, vals)
	if len(res.Errors) > 0 {
		msgs := make([]string, len(res.Errors))
		for i, e := range res.Errors {
			msgs[i] = e.Error()
		}
		return res.Messages, fmt.Errorf("helm lint %s: %s", dir, strings.Join(msgs, "; "))
	}
	return res.Messages, nil
}

// Package writes the chart in dir as NAME-VERSION.tgz into outDir, as `helm package` does, and
// returns the file's path. The chart is linted first.
func Package(dir, outDir string) (string, error) {
	if _, err := Lint(dir, "default", nil); err != nil {
		return "", err
	}
	ch, err := Load(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	return chartutil.Save(ch, outDir)
}

// Synced lists the generated manifests in config/ that the chart holds copies of under
// files/ (the chart cannot read outside its directory), as chart path -> config path, both
// relative to the top of the repository. `make manifests` copies them.
var Synced = map[string]string{
	"charts/offerfeed/files/crd/offerfeed.dev_offerfeedpolicies.yaml":    "config/crd/bases/offerfeed.dev_offerfeedpolicies.yaml",
	"charts/offerfeed/files/rbac/role.yaml":                              "config/rbac/role.yaml",
	"charts/offerfeed/files/webhook/manifests.yaml":                      "config/webhook/manifests.yaml",
	"charts/offerfeed/files/gatewayaccess/role.yaml":                     "config/gatewayaccess/role.yaml",
	"charts/offerfeed/files/gatewayaccess/admission_policy.yaml":         "config/gatewayaccess/admission_policy.yaml",
	"charts/offerfeed/files/gatewayaccess/admission_policy_binding.yaml": "config/gatewayaccess/admission_policy_binding.yaml",
}

// CheckSynced reports the files of Synced whose chart copy differs from config/, under the
// repository root top.
func CheckSynced(top string) error {
	var stale []string
	for copyPath, src := range Synced {
		a, err := os.ReadFile(filepath.Join(top, src))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(top, copyPath))
		if err != nil || string(a) != string(b) {
			stale = append(stale, copyPath)
		}
	}
	if len(stale) > 0 {
		return fmt.Errorf("chart copies differ from config/ (run `make manifests`): %s", strings.Join(stale, ", "))
	}
	return nil
}
