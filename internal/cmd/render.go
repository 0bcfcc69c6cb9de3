package cmd

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/controllers"
	"github.com/offerfeed/offerfeed/internal/manifest"
	"github.com/offerfeed/offerfeed/internal/render"
)

func init() {
	register("render", "print the gateway config the operator would write for policy manifests", runRender)
}

// stringList is a repeatable string flag, such as -f of render and validate.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func runRender(args []string) int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	var files stringList
	fs.Var(&files, "f", "manifest file or directory (repeatable; - for standard input)")
	namespace := fs.String("namespace", "default", "namespace of the policies that name none")
	output := fs.String("o", "json", "json: the config.json of the one namespace; configmap: ConfigMap manifests for every namespace")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: offerfeed render -f FILE|DIR [-f ...] [--namespace NS] [-o json|configmap]")
		fmt.Fprintln(fs.Output(), "\nRenders OfferFeedPolicy manifests with the operator's own render code. Other kinds are")
		fmt.Fprintln(fs.Output(), "ignored. Pods are not known offline, so only equal selectors count as conflicts.")
		fmt.Fprintln(fs.Output(), "Exit status: 0 rendered, 1 a policy is not accepted, 2 usage or input error.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(files) == 0 || (*output != "json" && *output != "configmap") {
		fs.Usage()
		return 2
	}
	code, err := renderManifests(os.Stdout, os.Stderr, files, *namespace, *output)
	if err != nil {
		fmt.Fprintf(os.Stderr, "offerfeed render: %v\n", err)
	}
	return code
}

func renderManifests(stdout, stderr io.Writer, files []string, defaultNS, output string) (int, error) {
	docs, err := manifest.Read(files...)
	if err != nil {
		return 2, err
	}
	byNS := map[string][]v1alpha1.OfferFeedPolicy{}
	for _, d := range docs {
		if d.Object.GroupVersionKind() != v1alpha1.GroupVersion.WithKind("OfferFeedPolicy") {
			continue
		}
		var p v1alpha1.OfferFeedPolicy
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(d.Object.Object, &p, true); err != nil {
			return 2, fmt.Errorf("%s: %w", d.Where(), err)
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
		return 2, fmt.Errorf("policies of %d namespaces %v: use -o configmap, or render one namespace at a time", len(namespaces), namespaces)
	}

	code := 0
	for i, ns := range namespaces {
		res, err := render.Render(ns, byNS[ns], nil)
		if err != nil {
			return 2, err
		}
		for _, p := range byNS[ns] {
			if pr := res.Policies[p.Name]; !pr.Accepted {
				fmt.Fprintf(stderr, "%s/%s: not accepted (%s): %s\n", ns, p.Name, pr.Reason, pr.Message)
				code = 1
			}
		}
		if output == "json" {
			if _, err := stdout.Write(res.Data); err != nil {
				return 2, err
			}
			continue
		}
		cm := controllers.GatewayConfigMap(ns, res.Data)
		cm.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}
		b, err := yaml.Marshal(cm)
		if err != nil {
			return 2, err
		}
		if i > 0 {
			fmt.Fprintln(stdout, "---")
		}
		if _, err := stdout.Write(b); err != nil {
			return 2, err
		}
	}
	return code, nil
}
