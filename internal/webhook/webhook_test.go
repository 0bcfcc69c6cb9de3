package webhook_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

const timeout = 20 * time.Second

func ctx() context.Context { return context.Background() }

// newNamespace creates a namespace with the given labels and returns its name.
func newNamespace(labels map[string]string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "offers-", Labels: labels}}
	Expect(k8s.Create(ctx(), ns)).To(Succeed())
	return ns.Name
}

// injectionEnabled labels a namespace for injection and enforces the restricted Pod Security
// Standard in it.
var injectionEnabled = map[string]string{
	v1alpha1.InjectionLabel:              "enabled",
	"pod-security.kubernetes.io/enforce": "restricted",
}

// offerService returns a restricted-compliant offer-service pod whose app serves port "http".
func offerService(ns, name string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: ns,
			Labels:      map[string]string{"app": "offer-service"},
			Annotations: map[string]string{v1alpha1.UpstreamPortAnnotation: "http"},
		},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](1000),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "app", Image: "offer-service:1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func getPod(ns, name string) *corev1.Pod {
	p := &corev1.Pod{}
	ExpectWithOffset(1, k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: name}, p)).To(Succeed())
	return p
}

// gatewayContainers counts the pod's containers named like the sidecar.
func gatewayContainers(p *corev1.Pod) int {
	n := 0
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Name == webhook.ContainerName {
			n++
		}
	}
	return n
}

func expectNotInjected(p *corev1.Pod) {
	GinkgoHelper()
	Expect(p.Annotations).NotTo(HaveKey(v1alpha1.InjectedAnnotation))
	Expect(p.Spec.InitContainers).To(BeEmpty())
	Expect(p.Spec.Volumes).To(BeEmpty())
}

var _ = Describe("Pod injection webhook", func() {
	BeforeEach(func() { warnings.take() })

	It("gives the gateway, and only the gateway, a token of its own, also in a pod with automountServiceAccountToken false", func() {
		ns := newNamespace(injectionEnabled)
		Expect(k8s.Create(ctx(), offerService(ns, "no-token", func(p *corev1.Pod) {
			p.Spec.AutomountServiceAccountToken = ptr.To(false)
		}))).To(Succeed())
		Expect(warnings.take()).To(BeEmpty())
		pod := getPod(ns, "no-token")
		Expect(webhook.Injected(pod)).To(BeTrue())
		Expect(pod.Spec.AutomountServiceAccountToken).To(HaveValue(BeFalse()), "the pod's own choice stands")

		var token *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == webhook.TokenVolumeName {
				token = &pod.Spec.Volumes[i]
			}
		}
		Expect(token).NotTo(BeNil())
		Expect(token.Projected).NotTo(BeNil())
		Expect(token.Projected.Sources).To(ContainElement(HaveField("ServiceAccountToken", And(
			Not(BeNil()), HaveField("Audience", BeEmpty()), HaveField("ExpirationSeconds", HaveValue(Equal(webhook.TokenExpirationSeconds))),
		))), "a token for the API server's own audience")

		sc := pod.Spec.InitContainers[0]
		Expect(sc.VolumeMounts).To(ContainElement(And(HaveField("Name", webhook.TokenVolumeName), HaveField("ReadOnly", BeTrue()))))
		Expect(sc.Env).To(ContainElement(HaveField("Name", "POD_NAME")))
		Expect(sc.Args).To(ContainElements("--kube-token-file", webhook.TokenDir+"/token"))
		for _, c := range pod.Spec.Containers {
			Expect(c.VolumeMounts).NotTo(ContainElement(HaveField("Name", webhook.TokenVolumeName)), "the app container %s gains no token", c.Name)
			Expect(c.VolumeMounts).NotTo(ContainElement(HaveField("MountPath", webhook.TokenDir)))
		}
	})

	It("injects the gateway into a pod of a labelled namespace, and the pod passes the restricted Pod Security Standard", func() {
		ns := newNamespace(injectionEnabled)
		Expect(k8s.Create(ctx(), offerService(ns, "offers-1"))).To(Succeed())
		Expect(warnings.take()).To(BeEmpty())

		pod := getPod(ns, "offers-1")
		Expect(webhook.Injected(pod)).To(BeTrue())
		Expect(pod.Annotations).To(HaveKeyWithValue(v1alpha1.InjectedAnnotation, webhook.InjectedValue))
		Expect(pod.Spec.InitContainers).To(HaveLen(1))
		sc := pod.Spec.InitContainers[0]
		Expect(sc.Image).To(Equal(gatewayImage))
		Expect(sc.RestartPolicy).To(HaveValue(Equal(corev1.ContainerRestartPolicyAlways)))
		Expect(sc.Args).To(ContainElements("--upstream", "http://127.0.0.1:8080"))
		Expect(sc.Ports).To(ContainElement(HaveField("Name", webhook.PortName)))
		Expect(pod.Spec.Containers).To(HaveLen(1), "the app's container is untouched")
		Expect(pod.Spec.Volumes).To(ConsistOf(HaveField("Name", webhook.ConfigVolumeName), HaveField("Name", webhook.PodInfoVolumeName),
			HaveField("Name", webhook.TokenVolumeName)))

		By("checking that the namespace really enforces the restricted standard")
		bad := offerService(ns, "privileged", func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
		})
		err := k8s.Create(ctx(), bad)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("violates PodSecurity"))
	})

	It("infers the upstream port of a pod without offerfeed.dev/upstream-port whose app declares one port", func() {
		ns := newNamespace(injectionEnabled)
		Expect(k8s.Create(ctx(), offerService(ns, "inferred", func(p *corev1.Pod) {
			p.Annotations = nil
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 9000}}
		}))).To(Succeed())
		Expect(warnings.take()).To(BeEmpty())
		pod := getPod(ns, "inferred")
		Expect(webhook.Injected(pod)).To(BeTrue())
		Expect(pod.Spec.InitContainers[0].Args).To(ContainElements("--upstream", "http://127.0.0.1:9000"))
	})

	It("leaves the pods of other namespaces alone", func() {
		for _, labels := range []map[string]string{nil, {v1alpha1.InjectionLabel: "disabled"}} {
			ns := newNamespace(labels)
			Expect(k8s.Create(ctx(), offerService(ns, "offers-1"))).To(Succeed())
			expectNotInjected(getPod(ns, "offers-1"))
			Expect(warnings.take()).To(BeEmpty())
		}
	})

	It("respects offerfeed.dev/inject: \"false\"", func() {
		ns := newNamespace(injectionEnabled)
		Expect(k8s.Create(ctx(), offerService(ns, "opted-out", func(p *corev1.Pod) {
			p.Annotations[v1alpha1.InjectAnnotation] = "false"
		}))).To(Succeed())
		expectNotInjected(getPod(ns, "opted-out"))
		Expect(warnings.take()).To(BeEmpty())
	})

	It("never injects a pod twice", func() {
		ns := newNamespace(injectionEnabled)
		Expect(k8s.Create(ctx(), offerService(ns, "offers-1"))).To(Succeed())
		stored := getPod(ns, "offers-1")
		Expect(gatewayContainers(stored)).To(Equal(1))

		By("running the mutation again on the stored pod")
		again := stored.DeepCopy()
		changed, warning := webhook.Inject(again, webhook.Config{Image: gatewayImage})
		Expect(changed).To(BeFalse())
		Expect(warning).To(BeEmpty())
		Expect(again).To(Equal(stored))

		By("creating a pod that already has the sidecar (a copy of the stored one)")
		copied := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "copy", Namespace: ns, Labels: stored.Labels, Annotations: stored.Annotations},
			Spec:       *stored.Spec.DeepCopy(),
		}
		copied.Spec.NodeName = ""
		Expect(k8s.Create(ctx(), copied, client.DryRunAll)).To(Succeed())
		Expect(gatewayContainers(copied)).To(Equal(1))
		Expect(k8s.Create(ctx(), copied.DeepCopy())).To(Succeed())
		Expect(gatewayContainers(getPod(ns, "copy"))).To(Equal(1))
		Expect(warnings.take()).To(BeEmpty())

		By("creating a pod with a container of the sidecar's name but without the annotation")
		Expect(k8s.Create(ctx(), offerService(ns, "clash", func(p *corev1.Pod) {
			c := p.Spec.Containers[0].DeepCopy()
			c.Name, c.Ports = webhook.ContainerName, nil
			p.Spec.Containers = append(p.Spec.Containers, *c)
		}))).To(Succeed())
		clash := getPod(ns, "clash")
		Expect(gatewayContainers(clash)).To(Equal(1))
		Expect(clash.Annotations).NotTo(HaveKey(v1alpha1.InjectedAnnotation))
		Expect(warnings.take()).To(ConsistOf(ContainSubstring("already has a container named offerfeed-gateway")))
	})

	It("admits a pod it cannot inject unchanged, with a warning to the client and an event", func() {
		ns := newNamespace(injectionEnabled)
		Expect(k8s.Create(ctx(), offerService(ns, "no-port", func(p *corev1.Pod) {
			delete(p.Annotations, v1alpha1.UpstreamPortAnnotation)
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 9090})
		}))).To(Succeed())
		expectNotInjected(getPod(ns, "no-port"))
		Expect(warnings.take()).To(ConsistOf(And(
			ContainSubstring("gateway sidecar not injected"),
			ContainSubstring("annotation offerfeed.dev/upstream-port is missing and the app's port is ambiguous"),
			ContainSubstring(`for example offerfeed.dev/upstream-port: "http"`))))

		Expect(k8s.Create(ctx(), offerService(ns, "", func(p *corev1.Pod) {
			p.Name, p.GenerateName = "", "offers-7d9f-"
			p.Annotations[v1alpha1.UpstreamPortAnnotation] = "grpc"
			p.OwnerReferences = []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "offers-7d9f", UID: "4c0d9ff1-5d1c-4b8e-9d3e-2b0a5f6f3a11",
				Controller: ptr.To(true),
			}}
		}))).To(Succeed())
		Expect(warnings.take()).To(ConsistOf(ContainSubstring(`names port "grpc"`)))

		By("finding the events: on the bare pod by name, on the owned pod's ReplicaSet")
		Eventually(func(g Gomega) {
			var list eventsv1.EventList
			g.Expect(k8s.List(ctx(), &list, client.InNamespace(ns))).To(Succeed())
			regarding := map[string]string{}
			for _, e := range list.Items {
				if e.Reason == webhook.ReasonInjectionSkipped && e.Type == corev1.EventTypeWarning {
					regarding[e.Regarding.Kind+"/"+e.Regarding.Name] = e.Note
				}
			}
			g.Expect(regarding).To(HaveKeyWithValue("Pod/no-port", ContainSubstring("upstream-port is missing")))
			g.Expect(regarding).To(HaveKeyWithValue("ReplicaSet/offers-7d9f", ContainSubstring(`names port "grpc"`)))
		}).WithTimeout(timeout).Should(Succeed())
	})

	It("counts an injected pod in its policy's targetedPods", func() {
		ns := newNamespace(injectionEnabled)
		sel := map[string]string{"app": "offer-service"}
		Expect(k8s.Create(ctx(), &v1alpha1.OfferFeedPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: ns},
			Spec: v1alpha1.OfferFeedPolicySpec{
				TargetSelector: v1alpha1.SelectLabels(sel),
				ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
				Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
			},
		})).To(Succeed())
		Expect(k8s.Create(ctx(), offerService(ns, "injected"))).To(Succeed())
		Expect(k8s.Create(ctx(), offerService(ns, "opted-out", func(p *corev1.Pod) {
			p.Annotations[v1alpha1.InjectAnnotation] = "false"
		}))).To(Succeed())

		Eventually(func(g Gomega) {
			p := &v1alpha1.OfferFeedPolicy{}
			g.Expect(k8s.Get(ctx(), client.ObjectKey{Namespace: ns, Name: "standard"}, p)).To(Succeed())
			g.Expect(p.Status.TargetedPods).To(Equal(int32(1)))
			c := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionProgrammed))
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Message).To(ContainSubstring("enforced by the gateway of 1 pods"))
			g.Expect(c.Message).To(ContainSubstring("1 selected pods have no gateway sidecar"))
		}).WithTimeout(timeout).Should(Succeed())
	})
})
