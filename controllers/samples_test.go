package controllers_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/render/rendertest"
	"github.com/offerfeed/offerfeed/internal/testenv"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// kubectl runs the envtest control plane's kubectl as its admin and returns its output.
func kubectl(args ...string) (string, error) {
	dir, err := testenv.AssetsDir()
	Expect(err).NotTo(HaveOccurred())
	k := env.ControlPlane.KubeCtl() //nolint:staticcheck // SA1019: the admin's kubectl is the one wanted; AddUser would add a user for nothing
	k.Path = filepath.Join(dir, "kubectl")
	stdout, stderr, err := k.Run(args...)
	out, _ := io.ReadAll(stdout)
	errOut, _ := io.ReadAll(stderr)
	return string(out) + string(errOut), err
}

var _ = Describe("kubectl and the samples", func() {
	It("programs config/samples as the golden file says", func() {
		const ns = "offers" // the namespace of internal/render/testdata/samples.out.yaml
		Expect(k8s.Create(ctx(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		out, err := kubectl("apply", "-n", ns, "-f", "../config/samples/")
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(out).To(ContainSubstring("offerfeedpolicy.offerfeed.dev/standard created"))

		golden, err := rendertest.Read("../internal/render/testdata/samples.out.yaml")
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) {
			for _, name := range []string{"standard", "flex"} {
				p := getPolicy(g, ns, name)
				expectCondition(g, p, v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
				expectCondition(g, p, v1alpha1.ConditionProgrammed, metav1.ConditionTrue, v1alpha1.ReasonProgrammed)
				g.Expect(p.Status.ConfigHash).To(Equal(golden.Policies[name].Hash), "the golden status of %s", name)
				expectCondition(g, p, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
			}
			cm := &corev1.ConfigMap{}
			g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: v1alpha1.GatewayConfigMapName}, cm)).To(Succeed())
			// The controller numbers each config it writes (two policies may take two writes);
			// render's golden file is the first generation.
			data := cm.Data[v1alpha1.GatewayConfigKey]
			gen := gatewayconfig.PeekGeneration([]byte(data))
			g.Expect(gen).To(BeNumerically(">=", 1))
			g.Expect(data).To(Equal(strings.Replace(golden.Config, `"generation": 1,`, fmt.Sprintf(`"generation": %d,`, gen), 1)))
		}).WithTimeout(timeout).Should(Succeed())

		By("kubectl get shows the printer columns")
		out, err = kubectl("get", "ofp", "-n", ns)
		Expect(err).NotTo(HaveOccurred(), out)
		Expect(strings.Fields(strings.SplitN(out, "\n", 2)[0])).To(Equal([]string{"NAME", "MODE", "READY", "ACCEPTED", "PROGRAMMED", "TARGETED", "ENFORCED", "AGE"}))
		Expect(out).To(MatchRegexp(`standard\s+Enforce\s+True\s+True\s+True\s+0\s+0\s+\d+s\n`), "no pods run here: Targeted and Enforced are 0")

		By("kubectl wait for Enforced returns: no governed pod lags")
		out, err = kubectl("wait", "--for=condition=Enforced", "ofp/standard", "-n", ns, "--timeout=60s")
		Expect(err).NotTo(HaveOccurred(), out)
	})

	It("refuses an invalid policy with a message naming the field", func() {
		bad := `apiVersion: offerfeed.dev/v1alpha1
kind: OfferFeedPolicy
metadata: {name: too-fast-window, namespace: default}
spec:
  targetSelector: {matchLabels: {app: offer-service}}
  clientIdentity: {header: X-Driver-Id}
  feed: {path: /offers, minInterval: 2s}
  shownOffers: {jsonPath: "offers[].id"}
  accept: {pathTemplate: "/offers/{offerId}/accept", maxAccepts: 3, window: 1s, minReactionTime: 2s}
`
		f := filepath.Join(GinkgoT().TempDir(), "bad.yaml")
		Expect(os.WriteFile(f, []byte(bad), 0o644)).To(Succeed())
		out, err := kubectl("apply", "-f", f)
		Expect(err).To(HaveOccurred())
		Expect(out).To(ContainSubstring(`The OfferFeedPolicy "too-fast-window" is invalid`))
		Expect(out).To(ContainSubstring("spec.accept"))
		Expect(out).To(ContainSubstring("window must be at least minReactionTime"))
		GinkgoWriter.Println(out)
	})
})
