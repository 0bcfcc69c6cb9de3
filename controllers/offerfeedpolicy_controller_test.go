package controllers_test

import (
	"context"
	"encoding/json"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

const (
	timeout = 20 * time.Second
	// settle is how long "nothing happens" is watched for.
	settle = 3 * time.Second
)

func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "offers-"}}
	Expect(k8s.Create(ctx(), ns)).To(Succeed())
	return ns.Name
}

func ctx() context.Context { return context.Background() }

func newPolicy(ns, name string, sel map[string]string) *v1alpha1.OfferFeedPolicy {
	return &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(sel),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
			Accept: &v1alpha1.AcceptLimits{PathTemplate: "/offers/{offerId}/accept",
				MaxAccepts: ptr.To[int32](3), Window: ptr.To[v1alpha1.Duration]("10m")},
		},
	}
}

func newPod(ns, name string, lbls map[string]string, injected bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "offer-service:1"}}},
	}
	if injected {
		p.Annotations = map[string]string{v1alpha1.InjectedAnnotation: "true"}
	}
	return p
}

// gatewayConfig returns the parsed config of ns's ConfigMap.
func gatewayConfig(g Gomega, ns string) *gatewayconfig.Config {
	cm := &corev1.ConfigMap{}
	g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: v1alpha1.GatewayConfigMapName}, cm)).To(Succeed())
	cfg := &gatewayconfig.Config{}
	g.Expect(json.Unmarshal([]byte(cm.Data[v1alpha1.GatewayConfigKey]), cfg)).To(Succeed())
	return cfg
}

func policyNames(cfg *gatewayconfig.Config) []string {
	names := []string{}
	for _, p := range cfg.Policies {
		names = append(names, p.Name)
	}
	return names
}

func getPolicy(g Gomega, ns, name string) *v1alpha1.OfferFeedPolicy {
	p := &v1alpha1.OfferFeedPolicy{}
	g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, p)).To(Succeed())
	return p
}

func expectCondition(g Gomega, p *v1alpha1.OfferFeedPolicy, typ v1alpha1.OfferFeedPolicyConditionType, status metav1.ConditionStatus,
	reason v1alpha1.OfferFeedPolicyConditionReason) *metav1.Condition {
	c := meta.FindStatusCondition(p.Status.Conditions, string(typ))
	g.Expect(c).NotTo(BeNil(), "condition %s missing", typ)
	g.Expect(c.Status).To(Equal(status), "condition %s: %s", typ, c.Message)
	g.Expect(c.Reason).To(Equal(string(reason)))
	g.Expect(c.ObservedGeneration).To(Equal(p.Generation))
	return c
}

var _ = Describe("OfferFeedPolicy controller", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("programs a policy, follows its updates and leaves an empty config when it is deleted", func() {
		p := newPolicy(ns, "standard", map[string]string{"app": "offer-service"})
		Expect(k8s.Create(ctx(), p)).To(Succeed())

		var firstHash string
		Eventually(func(g Gomega) {
			got := getPolicy(g, ns, "standard")
			expectCondition(g, got, v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
			expectCondition(g, got, v1alpha1.ConditionProgrammed, metav1.ConditionTrue, v1alpha1.ReasonProgrammed)
			expectCondition(g, got, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			cfg := gatewayConfig(g, ns)
			g.Expect(cfg.SchemaVersion).To(Equal(gatewayconfig.SchemaVersion))
			g.Expect(cfg.Namespace).To(Equal(ns))
			g.Expect(policyNames(cfg)).To(Equal([]string{"standard"}))
			g.Expect(cfg.Policies[0].Feed.MinInterval.D()).To(Equal(2 * time.Second))
			g.Expect(got.Status.ConfigHash).To(Equal(cfg.Policies[0].Hash))
			firstHash = got.Status.ConfigHash
		}).WithTimeout(timeout).Should(Succeed())

		By("updating the spec")
		Eventually(func(g Gomega) {
			got := getPolicy(g, ns, "standard")
			got.Spec.Feed.MinInterval = "5s"
			g.Expect(k8s.Update(ctx(), got)).To(Succeed())
		}).WithTimeout(timeout).Should(Succeed())
		Eventually(func(g Gomega) {
			got := getPolicy(g, ns, "standard")
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(got.Status.ConfigHash).NotTo(Equal(firstHash))
			cfg := gatewayConfig(g, ns)
			g.Expect(cfg.Policies[0].Feed.MinInterval.D()).To(Equal(5 * time.Second))
			g.Expect(got.Status.ConfigHash).To(Equal(cfg.Policies[0].Hash))
		}).WithTimeout(timeout).Should(Succeed())

		By("recording the Programmed transition as an event")
		Eventually(func(g Gomega) {
			var events eventsv1.EventList
			g.Expect(k8s.List(ctx(), &events, client.InNamespace(ns))).To(Succeed())
			reasons := []string{}
			for _, e := range events.Items {
				if e.Regarding.Name == "standard" {
					reasons = append(reasons, e.Reason)
				}
			}
			g.Expect(reasons).To(ConsistOf(string(v1alpha1.ReasonProgrammed)))
		}).WithTimeout(timeout).Should(Succeed())

		By("deleting the last policy")
		Expect(k8s.Delete(ctx(), p)).To(Succeed())
		Eventually(func(g Gomega) {
			cfg := gatewayConfig(g, ns)
			g.Expect(cfg.Policies).To(BeEmpty())
			g.Expect(cfg.Policies).NotTo(BeNil(), "an empty config lists no policies but keeps the field")
			g.Expect(cfg.Namespace).To(Equal(ns))
		}).WithTimeout(timeout).Should(Succeed())
	})

	It("resolves a conflict by age and hands over when the winner goes away", func() {
		sel := map[string]string{"app": "offer-service"}
		Expect(k8s.Create(ctx(), newPolicy(ns, "zz-old", sel))).To(Succeed())
		Eventually(func(g Gomega) {
			expectCondition(g, getPolicy(g, ns, "zz-old"), v1alpha1.ConditionProgrammed, metav1.ConditionTrue, v1alpha1.ReasonProgrammed)
		}).WithTimeout(timeout).Should(Succeed())
		// creationTimestamp has a resolution of one second: make "aa-new" younger for sure.
		time.Sleep(1100 * time.Millisecond)
		Expect(k8s.Create(ctx(), newPolicy(ns, "aa-new", sel))).To(Succeed())

		Eventually(func(g Gomega) {
			loser := getPolicy(g, ns, "aa-new")
			c := expectCondition(g, loser, v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonConflicted)
			g.Expect(c.Message).To(ContainSubstring("zz-old"))
			expectCondition(g, loser, v1alpha1.ConditionProgrammed, metav1.ConditionFalse, v1alpha1.ReasonNotAccepted)
			expectCondition(g, loser, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonConflicted)
			expectCondition(g, loser, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonConflicted)
			g.Expect(loser.Status.ConfigHash).To(BeEmpty())
			g.Expect(policyNames(gatewayConfig(g, ns))).To(Equal([]string{"zz-old"}))
		}).WithTimeout(timeout).Should(Succeed())

		By("a Conflicted warning event")
		Eventually(func(g Gomega) {
			var events eventsv1.EventList
			g.Expect(k8s.List(ctx(), &events, client.InNamespace(ns))).To(Succeed())
			found := false
			for _, e := range events.Items {
				found = found || (e.Regarding.Name == "aa-new" && e.Reason == string(v1alpha1.ReasonConflicted) && e.Type == corev1.EventTypeWarning)
			}
			g.Expect(found).To(BeTrue())
		}).WithTimeout(timeout).Should(Succeed())

		By("deleting the winner")
		Expect(k8s.Delete(ctx(), newPolicy(ns, "zz-old", nil))).To(Succeed())
		Eventually(func(g Gomega) {
			p := getPolicy(g, ns, "aa-new")
			expectCondition(g, p, v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
			expectCondition(g, p, v1alpha1.ConditionProgrammed, metav1.ConditionTrue, v1alpha1.ReasonProgrammed)
			expectCondition(g, p, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
			g.Expect(meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionStalled))).To(BeNil())
			g.Expect(policyNames(gatewayConfig(g, ns))).To(Equal([]string{"aa-new"}))
		}).WithTimeout(timeout).Should(Succeed())
	})

	It("treats a pod selected by two policies as a conflict", func() {
		Expect(k8s.Create(ctx(), newPolicy(ns, "all", map[string]string{"app": "offer-service"}))).To(Succeed())
		Expect(k8s.Create(ctx(), newPolicy(ns, "canary", map[string]string{"track": "canary"}))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(gatewayConfig(g, ns).Policies).To(HaveLen(2))
		}).WithTimeout(timeout).Should(Succeed())

		Expect(k8s.Create(ctx(), newPod(ns, "web-canary", map[string]string{"app": "offer-service", "track": "canary"}, true))).To(Succeed())
		Eventually(func(g Gomega) {
			cfg := gatewayConfig(g, ns)
			g.Expect(cfg.Policies).To(HaveLen(1))
			// Both were created within a second or two; whichever is older wins, and the
			// other names it.
			winner := cfg.Policies[0].Name
			loser := map[string]string{"all": "canary", "canary": "all"}[winner]
			c := expectCondition(g, getPolicy(g, ns, loser), v1alpha1.ConditionAccepted, metav1.ConditionFalse, v1alpha1.ReasonConflicted)
			g.Expect(c.Message).To(ContainSubstring("web-canary"))
			g.Expect(c.Message).To(ContainSubstring(winner))
		}).WithTimeout(timeout).Should(Succeed())
	})

	It("counts the injected pods a policy governs and names the uninjected ones", func() {
		sel := map[string]string{"app": "offer-service"}
		Expect(k8s.Create(ctx(), newPolicy(ns, "standard", sel))).To(Succeed())
		Expect(k8s.Create(ctx(), newPod(ns, "web-1", sel, true))).To(Succeed())
		Expect(k8s.Create(ctx(), newPod(ns, "web-2", sel, true))).To(Succeed())
		Expect(k8s.Create(ctx(), newPod(ns, "web-3", sel, false))).To(Succeed())
		Expect(k8s.Create(ctx(), newPod(ns, "other", map[string]string{"app": "other"}, true))).To(Succeed())
		Eventually(func(g Gomega) {
			p := getPolicy(g, ns, "standard")
			g.Expect(p.Status.TargetedPods).To(Equal(int32(2)))
			c := expectCondition(g, p, v1alpha1.ConditionProgrammed, metav1.ConditionTrue, v1alpha1.ReasonProgrammed)
			g.Expect(c.Message).To(ContainSubstring("1 selected pods have no gateway sidecar"))
		}).WithTimeout(timeout).Should(Succeed())

		By("a pod going away")
		Expect(k8s.Delete(ctx(), newPod(ns, "web-1", nil, false))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getPolicy(g, ns, "standard").Status.TargetedPods).To(Equal(int32(1)))
		}).WithTimeout(timeout).Should(Succeed())

		By("a pod's labels changing")
		Eventually(func(g Gomega) {
			pod := &corev1.Pod{}
			g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "other"}, pod)).To(Succeed())
			pod.Labels = sel
			g.Expect(k8s.Update(ctx(), pod)).To(Succeed())
		}).WithTimeout(timeout).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(getPolicy(g, ns, "standard").Status.TargetedPods).To(Equal(int32(2)))
		}).WithTimeout(timeout).Should(Succeed())
	})

	It("counts the pods that report enforcing the policy's hash, and names the others", func() {
		sel := map[string]string{"app": "offer-service"}
		Expect(k8s.Create(ctx(), newPolicy(ns, "standard", sel))).To(Succeed())
		for _, name := range []string{"web-1", "web-2", "web-3"} {
			Expect(k8s.Create(ctx(), newPod(ns, name, sel, true))).To(Succeed())
		}
		var hash string
		Eventually(func(g Gomega) {
			p := getPolicy(g, ns, "standard")
			g.Expect(p.Status.TargetedPods).To(Equal(int32(3)))
			g.Expect(p.Status.EnforcedPods).To(BeZero())
			c := expectCondition(g, p, v1alpha1.ConditionEnforced, metav1.ConditionFalse, v1alpha1.ReasonLagging)
			g.Expect(c.Message).To(HaveSuffix("yet: web-1, web-2 and web-3"))
			expectCondition(g, p, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonReady)
			hash = p.Status.ConfigHash
		}).WithTimeout(timeout).Should(Succeed())

		report := func(pod, value string) {
			Eventually(func(g Gomega) {
				p := &corev1.Pod{}
				g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: pod}, p)).To(Succeed())
				p.Annotations[v1alpha1.EnforcedPolicyHashAnnotation] = value
				g.Expect(k8s.Update(ctx(), p)).To(Succeed())
			}).WithTimeout(timeout).Should(Succeed())
		}
		By("two pods report the hash, one an older one")
		report("web-1", hash)
		report("web-3", hash)
		report("web-2", "sha256:older")
		Eventually(func(g Gomega) {
			p := getPolicy(g, ns, "standard")
			g.Expect(p.Status.EnforcedPods).To(Equal(int32(2)))
			c := expectCondition(g, p, v1alpha1.ConditionEnforced, metav1.ConditionFalse, v1alpha1.ReasonLagging)
			g.Expect(c.Message).To(HaveSuffix("yet: web-2"))
		}).WithTimeout(timeout).Should(Succeed())

		By("the last one catches up")
		report("web-2", hash)
		Eventually(func(g Gomega) {
			p := getPolicy(g, ns, "standard")
			g.Expect(p.Status.EnforcedPods).To(Equal(int32(3)))
			expectCondition(g, p, v1alpha1.ConditionEnforced, metav1.ConditionTrue, v1alpha1.ReasonEnforced)
		}).WithTimeout(timeout).Should(Succeed())

		By("a report of the generation alone writes nothing")
		waitQuiet()
		before := writes.Load()
		Eventually(func(g Gomega) {
			p := &corev1.Pod{}
			g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "web-1"}, p)).To(Succeed())
			p.Annotations[v1alpha1.EnforcedGenerationAnnotation] = "9"
			g.Expect(k8s.Update(ctx(), p)).To(Succeed())
		}).WithTimeout(timeout).Should(Succeed())
		Consistently(func() int64 { return writes.Load() - before }).WithTimeout(settle).Should(BeZero())

		By("an edit of the policy: every pod lags until it reports the new hash")
		Eventually(func(g Gomega) {
			p := getPolicy(g, ns, "standard")
			p.Spec.Feed.MinInterval = "5s"
			g.Expect(k8s.Update(ctx(), p)).To(Succeed())
		}).WithTimeout(timeout).Should(Succeed())
		Eventually(func(g Gomega) {
			p := getPolicy(g, ns, "standard")
			g.Expect(p.Status.ConfigHash).NotTo(Equal(hash))
			g.Expect(p.Status.EnforcedPods).To(BeZero())
			expectCondition(g, p, v1alpha1.ConditionEnforced, metav1.ConditionFalse, v1alpha1.ReasonLagging)
		}).WithTimeout(timeout).Should(Succeed())
	})

	It("binds the gateway ClusterRole to the injected pods' ServiceAccounts while the namespace has policies", func() {
		sel := map[string]string{"app": "offer-service"}
		withSA := func(name, sa string, injected bool) *corev1.Pod {
			p := newPod(ns, name, sel, injected)
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations[v1alpha1.ServiceAccountAnnotation] = sa
			return p
		}
		Expect(k8s.Create(ctx(), withSA("web-1", "offers", true))).To(Succeed())
		Expect(k8s.Create(ctx(), withSA("web-2", "offers", true))).To(Succeed())
		Expect(k8s.Create(ctx(), withSA("plain", "plain", false))).To(Succeed())
		binding := func(g Gomega) *rbacv1.RoleBinding {
			rb := &rbacv1.RoleBinding{}
			g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: v1alpha1.GatewayRoleBindingName}, rb)).To(Succeed())
			return rb
		}
		subjects := func(names ...string) []rbacv1.Subject {
			var out []rbacv1.Subject
			for _, n := range names {
				out = append(out, rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: n, Namespace: ns})
			}
			return out
		}
		By("no policy, no binding")
		Consistently(func() error {
			return k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: v1alpha1.GatewayRoleBindingName}, &rbacv1.RoleBinding{})
		}).WithTimeout(settle).ShouldNot(Succeed())

		Expect(k8s.Create(ctx(), newPolicy(ns, "standard", sel))).To(Succeed())
		Eventually(func(g Gomega) {
			rb := binding(g)
			g.Expect(rb.RoleRef).To(Equal(rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: v1alpha1.GatewayClusterRoleName}))
			g.Expect(rb.Subjects).To(Equal(subjects("offers")))
		}).WithTimeout(timeout).Should(Succeed())

		By("a pod of another ServiceAccount joins")
		Expect(k8s.Create(ctx(), withSA("web-3", "canary", true))).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(binding(g).Subjects).To(Equal(subjects("canary", "offers"))) }).WithTimeout(timeout).Should(Succeed())

		By("someone removes a subject: it is put back")
		Eventually(func(g Gomega) {
			rb := binding(g)
			rb.Subjects = subjects("offers")
			g.Expect(k8s.Update(ctx(), rb)).To(Succeed())
		}).WithTimeout(timeout).Should(Succeed())
		Eventually(func(g Gomega) { g.Expect(binding(g).Subjects).To(Equal(subjects("canary", "offers"))) }).WithTimeout(timeout).Should(Succeed())

		By("the pod goes away")
		Expect(k8s.Delete(ctx(), newPod(ns, "web-3", nil, false), client.GracePeriodSeconds(0))).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(binding(g).Subjects).To(Equal(subjects("offers"))) }).WithTimeout(timeout).Should(Succeed())

		By("the last policy goes: the binding goes")
		Expect(k8s.Delete(ctx(), &v1alpha1.OfferFeedPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "standard"}})).To(Succeed())
		Eventually(func() error {
			return k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: v1alpha1.GatewayRoleBindingName}, &rbacv1.RoleBinding{})
		}).WithTimeout(timeout).Should(MatchError(ContainSubstring("not found")))
	})

	It("puts back a gateway config that someone else edited", func() {
		Expect(k8s.Create(ctx(), newPolicy(ns, "standard", map[string]string{"app": "offer-service"}))).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(gatewayConfig(g, ns).Policies).To(HaveLen(1)) }).WithTimeout(timeout).Should(Succeed())
		Eventually(func(g Gomega) {
			cm := &corev1.ConfigMap{}
			g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: v1alpha1.GatewayConfigMapName}, cm)).To(Succeed())
			cm.Data[v1alpha1.GatewayConfigKey] = `{"schemaVersion":1,"namespace":"x","policies":[]}`
			g.Expect(k8s.Update(ctx(), cm)).To(Succeed())
		}).WithTimeout(timeout).Should(Succeed())
		Eventually(func(g Gomega) { g.Expect(gatewayConfig(g, ns).Policies).To(HaveLen(1)) }).WithTimeout(timeout).Should(Succeed())
	})

	It("leaves a ConfigMap it did not write alone and says so", func() {
		Expect(k8s.Create(ctx(), &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: v1alpha1.GatewayConfigMapName},
			Data:       map[string]string{"mine": "yes"},
		})).To(Succeed())
		Expect(k8s.Create(ctx(), newPolicy(ns, "standard", map[string]string{"app": "offer-service"}))).To(Succeed())
		Eventually(func(g Gomega) {
			p := getPolicy(g, ns, "standard")
			expectCondition(g, p, v1alpha1.ConditionAccepted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
			expectCondition(g, p, v1alpha1.ConditionProgrammed, metav1.ConditionFalse, v1alpha1.ReasonConfigMapNotManaged)
			expectCondition(g, p, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonConfigMapNotManaged)
		}).WithTimeout(timeout).Should(Succeed())
		cm := &corev1.ConfigMap{}
		Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: v1alpha1.GatewayConfigMapName}, cm)).To(Succeed())
		Expect(cm.Data).To(Equal(map[string]string{"mine": "yes"}))

		By("not trying to create it again on every reconcile")
		waitQuiet()
		before := writes.Load()
		Eventually(func(g Gomega) {
			p := getPolicy(g, ns, "standard")
			p.Spec.Feed.MinInterval = "3s" // a reconcile that renders something new
			g.Expect(k8s.Update(ctx(), p)).To(Succeed())
		}).WithTimeout(timeout).Should(Succeed())
		Eventually(func(g Gomega) {
			p := getPolicy(g, ns, "standard")
			g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
		}).WithTimeout(timeout).Should(Succeed())
		// One status patch for the new generation, and no POST of the ConfigMap.
		Consistently(func() int64 { return writes.Load() - before }).WithTimeout(settle).Should(BeNumerically("<=", 1))
	})

	It("makes no API writes once converged", func() {
		sel := map[string]string{"app": "offer-service"}
		Expect(k8s.Create(ctx(), newPod(ns, "web-1", sel, true))).To(Succeed())
		for _, name := range []string{"a", "b", "c"} {
			p := newPolicy(ns, name, map[string]string{"app": "offer-service", "shard": name})
			Expect(k8s.Create(ctx(), p)).To(Succeed())
		}
		Expect(k8s.Create(ctx(), newPolicy(ns, "d", sel))).To(Succeed())
		Eventually(func(g Gomega) {
			for _, name := range []string{"a", "b", "c", "d"} {
				p := getPolicy(g, ns, name)
				g.Expect(p.Status.ObservedGeneration).To(Equal(p.Generation))
				expectCondition(g, p, v1alpha1.ConditionProgrammed, metav1.ConditionTrue, v1alpha1.ReasonProgrammed)
			}
		}).WithTimeout(timeout).Should(Succeed())
		waitQuiet() // let the last events and status writes land, then count

		before := writes.Load()
		By("events that change nothing: a pod annotation and label, a policy label")
		Eventually(func(g Gomega) {
			pod := &corev1.Pod{}
			g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "web-1"}, pod)).To(Succeed())
			pod.Annotations["note"] = "unrelated"
			pod.Labels["version"] = "2" // reconciles the namespace; the render is the same
			g.Expect(k8s.Update(ctx(), pod)).To(Succeed())
			p := getPolicy(g, ns, "d")
			p.Labels = map[string]string{"team": "offers"}
			g.Expect(k8s.Update(ctx(), p)).To(Succeed())
		}).WithTimeout(timeout).Should(Succeed())
		Consistently(func() int64 { return writes.Load() - before }).WithTimeout(settle).Should(BeZero())
	})
})

// waitQuiet waits until the manager made no API write for a second.
func waitQuiet() {
	GinkgoHelper()
	Eventually(func() int64 {
		before := writes.Load()
		time.Sleep(time.Second)
		return writes.Load() - before
	}).WithTimeout(timeout).Should(BeZero())
}
