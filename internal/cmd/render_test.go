package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/manifest"
	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/testenv"
	"github.com/offerfeed/offerfeed/offerfeedtest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

func TestRenderExitCodes(t *testing.T) {
	dir := t.TempDir()
	dup := filepath.Join(dir, "dup.yaml")
	policy := `apiVersion: offerfeed.dev/v1alpha1
kind: OfferFeedPolicy
metadata: {name: NAME}
spec:
  targetSelector: {matchLabels: {app: offer-service}}
  clientIdentity: {header: X-Driver-Id}
  feed: {path: /offers, minInterval: 2s}
`
	if err := os.WriteFile(dup, []byte(strings.ReplaceAll(policy, "NAME", "a")+"---\n"+strings.ReplaceAll(policy, "NAME", "b")), 0o644); err != nil {
		t.Fatal(err)
	}
	twoNS := filepath.Join(dir, "two.yaml")
	if err := os.WriteFile(twoNS, []byte(strings.ReplaceAll(policy, "{name: NAME}", "{name: a, namespace: ns-x}")+"---\n"+strings.ReplaceAll(policy, "{name: NAME}", "{name: a, namespace: ns-y}")), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc       string
		files      []string
		output     string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"conflict is reported and fails", []string{dup}, "json", 1, `"name": "a"`, "default/b: not accepted (Conflicted): conflicts with policy a"},
		{"several namespaces need -o configmap", []string{twoNS}, "json", 2, "", ""},
		{"several namespaces as ConfigMaps", []string{twoNS}, "configmap", 0, "namespace: ns-y", ""},
		{"missing file", []string{filepath.Join(dir, "nope.yaml")}, "json", 2, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code, err := renderManifests(strings.NewReader(""), &out, &errOut, tt.files, "default", tt.output, 1)
			if code != tt.wantCode {
				t.Fatalf("code %d (err %v), want %d", code, err, tt.wantCode)
			}
			if !strings.Contains(out.String(), tt.wantStdout) || !strings.Contains(errOut.String(), tt.wantStderr) {
				t.Errorf("stdout %q\nstderr %q", out.String(), errOut.String())
			}
		})
	}
}

// TestRenderCommand runs offerfeed render through the command line: the kubectl-style flags,
// the spellings the flag package took, and the usage errors.
func TestRenderCommand(t *testing.T) {
	in := "../render/testdata/rest-and-flex.in.yaml"
	var want bytes.Buffer
	if code, err := renderManifests(strings.NewReader(""), &want, &bytes.Buffer{}, []string{in}, "offers", "configmap", 1); code != 0 {
		t.Fatalf("code %d: %v", code, err)
	}
	for _, args := range [][]string{
		{"--filename", in, "--namespace", "offers", "--output", "configmap"},
		{"-f", in, "-n", "offers", "-o", "configmap"},
		{"-f", in, "-namespace", "offers", "-o", "configmap"}, // the flag package's one dash
		{"-f=" + in, "--namespace=offers", "--o=configmap"},   // and its two dashes before -o
		{"-o", "configmap", "-n", "offers", "-f", "-"},        // standard input
	} {
		code, stdout, stderr := runOfferfeed(t, mustRead(t, in), append([]string{"render"}, args...)...)
		if code != 0 || stdout != want.String() {
			t.Errorf("offerfeed render %q: exit %d, stderr %s\nstdout:\n%s\nwant:\n%s", args, code, stderr, stdout, want.String())
		}
	}
	for _, tc := range []struct {
		args       []string
		wantStderr string
	}{
		{[]string{}, "no manifests: give -f FILE|DIR"},
		{[]string{"-f", in, "-o", "yaml"}, `--output must be json or configmap, not "yaml"`},
		{[]string{"-f", in, "extra"}, `unexpected argument "extra"`},
		{[]string{"-f", in, "--generation", "0"}, "--generation must be at least 1"},
	} {
		code, _, stderr := runOfferfeed(t, "", append([]string{"render"}, tc.args...)...)
		if code != ExitUsage || !strings.Contains(stderr, tc.wantStderr) || !strings.Contains(stderr, "Usage:") {
			t.Errorf("offerfeed render %q: exit %d, stderr:\n%s", tc.args, code, stderr)
		}
	}
}

// TestRenderGeneration checks --generation: the config and the ConfigMap's annotation carry it.
func TestRenderGeneration(t *testing.T) {
	in := "../render/testdata/rest-and-flex.in.yaml"
	code, stdout, stderr := runOfferfeed(t, "", "render", "-f", in, "-n", "offers", "-o", "configmap", "--generation", "7")
	if code != 0 || !strings.Contains(stdout, `"generation": 7,`) || !strings.Contains(stdout, v1alpha1.ConfigGenerationAnnotation+`: "7"`) {
		t.Errorf("exit %d, stderr %s\nstdout:\n%s", code, stderr, stdout)
	}
	code, stdout, _ = runOfferfeed(t, "", "render", "-f", in, "-n", "offers")
	if code != 0 || !strings.Contains(stdout, `"generation": 1,`) {
		t.Errorf("without --generation: exit %d, stdout:\n%s", code, stdout)
	}
}

// TestRenderMatchesOperator applies manifests to a real API server with the manager running and
// checks that `offerfeed render` prints exactly the bytes of the ConfigMap the operator writes.
func TestRenderMatchesOperator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	logf.SetLogger(logr.Discard())
	env, err := testenv.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	mgr, err := offerfeedtest.StartManager(ctx, testenv.Unthrottled(cfg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mgr.Stop() })
	c, err := client.New(cfg, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}

	for _, files := range [][]string{
		{"../render/testdata/rest-and-flex.in.yaml"},
		{"../render/testdata/conflict.in.yaml"},
		{"../../config/samples"},
	} {
		t.Run(files[0], func(t *testing.T) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "render-"}}
			if err := c.Create(ctx, ns); err != nil {
				t.Fatal(err)
			}
			docs, err := manifest.Read(files...)
			if err != nil {
				t.Fatal(err)
			}
			// Both order policies by age, then name; render takes the age from the manifests'
			// creationTimestamp. Creating them in that order, a second apart, makes the API
			// server's timestamps agree with it.
			slices.SortFunc(docs, func(a, b manifest.Document) int {
				if c := a.Object.GetCreationTimestamp().Compare(b.Object.GetCreationTimestamp().Time); c != 0 {
					return c
				}
				return strings.Compare(a.Object.GetName(), b.Object.GetName())
			})
			policies := 0
			for _, d := range docs {
				if d.Object.GetKind() != "OfferFeedPolicy" {
					continue // pods would change conflicts, which render cannot know offline
				}
				obj := d.Object.DeepCopy()
				obj.SetNamespace(ns.Name)
				obj.SetCreationTimestamp(metav1.Time{})
				if err := c.Create(ctx, obj); err != nil {
					t.Fatal(err)
				}
				policies++
				time.Sleep(1100 * time.Millisecond)
			}
			if policies == 0 {
				t.Fatalf("no policies in %v", files)
			}
			deadline := time.Now().Add(time.Minute)
			var want bytes.Buffer
			for {
				got, programmed := operatorConfig(t, c, ns.Name)
				// The operator numbered each config it wrote; render prints the same bytes
				// when told the generation (the first, 1, by default).
				want.Reset()
				if _, err := renderManifests(strings.NewReader(""), &want, &bytes.Buffer{}, files, ns.Name, "json", max(1, gatewayconfig.PeekGeneration([]byte(got)))); err != nil {
					t.Fatal(err)
				}
				if programmed && got == want.String() {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("ConfigMap differs from render output:\n--- ConfigMap\n%s\n--- render\n%s", got, want.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// operatorConfig returns the ConfigMap's config.json and whether every policy of ns has been
// rendered at its generation.
func operatorConfig(t *testing.T, c client.Client, ns string) (string, bool) {
	var list v1alpha1.OfferFeedPolicyList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		if meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionAccepted)) == nil || p.Status.ObservedGeneration != p.Generation {
			return "", false
		}
	}
	cm := &corev1.ConfigMap{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: v1alpha1.GatewayConfigMapName}, cm); err != nil {
		return "", false
	}
	return cm.Data[v1alpha1.GatewayConfigKey], true
}
