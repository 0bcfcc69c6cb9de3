package cmd

import (
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/manifest"
	"github.com/offerfeed/offerfeed/internal/render"
)

// renderOptions are the flags of offerfeed render.
type renderOptions struct {
	manifestOptions
	generation int64
}

func newRenderCommand() *cobra.Command {
	o := &renderOptions{}
	cmd := &cobra.Command{
		Use:   "render -f FILE|DIR [-f ...]",
		Short: "print the gateway config the operator would write for policy manifests",
		Long: `Renders OfferFeedPolicy manifests with the operator's own render code. Other kinds are
ignored. Pods are not known offline, so only equal selectors count as conflicts.

Exit status: 0 rendered, 1 a policy is not accepted, 2 usage or input error.`,
		Example: `  offerfeed render -f policies/ -n offers            # config.json of namespace offers
  offerfeed render -f policies/ -o configmap > rendered.yaml`,
		Args: noArgs("name files with -f"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if o.generation < render.FirstGeneration {
				return usageErrorf("--generation must be at least %d", render.FirstGeneration)
			}
			code, err := renderManifests(cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o.filenames, o.namespace, o.output, o.generation)
			if code != ExitOK {
				return exitWith(code, err)
			}
			return nil
		},
	}
	o.addFlags(cmd.Flags(), "default", "namespace of the policies that name none",
		[]string{"json", "configmap"}, "json is the config.json of the one namespace, configmap ConfigMap manifests (YAML) for every namespace",
		nil)
	cmd.Flags().Int64Var(&o.generation, "generation", render.FirstGeneration, "the config's generation: 1, as the operator writes a namespace's first config; the operator numbers each later change with the next one")
	return cmd
}

// renderManifests renders the policies of files ("-" reads stdin) and returns the exit code.
// Each config is numbered generation.
func renderManifests(stdin io.Reader, stdout, stderr io.Writer, files []string, defaultNS, output string, generation int64) (int, error) {
	docs, err := manifest.ReadFrom(stdin, files)
	if err != nil {
		return ExitUsage, err
	}
	byNS := map[string][]v1alpha1.OfferFeedPolicy{}
	for _, d := range docs {
		if d.Object.GroupVersionKind() != v1alpha1.GroupVersion.WithKind("OfferFeedPolicy") {
			continue
		}
		var p v1alpha1.OfferFeedPolicy
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(d.Object.Object, &p, true); err != nil {
			return ExitUsage, fmt.Errorf("%s: %w", d.Where(), err)
		}
		if p.Namespace == "" {
			p.Namespace = defaultNS
		}
		byNS[p.Namespace] = append(byNS[p.Namespace], p)
	}
	if len(byNS) == 0 {
		byNS[defaultNS] = nil
	}
	namespaces := make([]string, 0, len(byNS))
	for ns := range byNS {
		namespaces = append(namespaces, ns)
	}
	slices.Sort(namespaces)
	if output == "json" && len(namespaces) > 1 {
		return ExitUsage, fmt.Errorf("policies of %d namespaces %v: use -o configmap, or render one namespace at a time", len(namespaces), namespaces)
	}

	code := ExitOK
	for i, ns := range namespaces {
		res, err := render.Render(ns, byNS[ns], nil)
		if err != nil {
			return ExitUsage, err
		}
		if err := res.SetGeneration(generation); err != nil {
			return ExitUsage, err
		}
		for _, p := range byNS[ns] {
			if pr := res.Policies[p.Name]; !pr.Accepted {
				fmt.Fprintf(stderr, "%s/%s: not accepted (%s): %s\n", ns, p.Name, pr.Reason, pr.Message)
				code = ExitFailed
			}
		}
		if output == "json" {
			if _, err := stdout.Write(res.Data); err != nil {
				return ExitUsage, err
			}
			continue
		}
		cm := render.ConfigMap(ns, res.Data)
		cm.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
		b, err := yaml.Marshal(cm)
		if err != nil {
			return ExitUsage, err
		}
		if i > 0 {
			fmt.Fprintln(stdout, "---")
		}
		if _, err := stdout.Write(b); err != nil {
			return ExitUsage, err
		}
	}
	return code, nil
}
