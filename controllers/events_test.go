package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/controllers"
	"github.com/offerfeed/offerfeed/internal/operator"
)

// staleCache is a client whose policy list is a snapshot taken earlier, as a lagging
// informer cache serves it; everything else goes to the API server.
type staleCache struct {
	client.Client
	policies []v1alpha1.OfferFeedPolicy
}

func (c staleCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if l, ok := list.(*v1alpha1.OfferFeedPolicyList); ok {
		l.Items = nil
		for _, p := range c.policies {
			l.Items = append(l.Items, *p.DeepCopy())
		}
		return nil
	}
	return c.Client.List(ctx, list, opts...)
}

// plainRecorder is a client-go events recorder without annotations, which the controller
// does not use.
type plainRecorder struct{ events.EventRecorderLogger }

func (r plainRecorder) AnnotatedEventf(regarding, related runtime.Object, _ map[string]string, eventtype, reason, action, note string, args ...any) {
	r.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

// eventCount counts the events with reason about policy name in ns, each event as often as
// its series says it happened.
func eventCount(g Gomega, ns, name string, reason v1alpha1.OfferFeedPolicyConditionReason) int32 {
	var list eventsv1.EventList
	g.Expect(k8s.List(ctx(), &list, client.InNamespace(ns))).To(Succeed())
	var n int32
	for _, e := range list.Items {
		if e.Regarding.Name != name || e.Reason != string(reason) {
			continue
		}
		n++
		if e.Series != nil {
			n += e.Series.Count - 1
		}
	}
	return n
}

var _ = Describe("OfferFeedPolicy events", func() {
	It("records a transition once, even when a reconcile decides it from a stale cache", func() {
		ns := newNamespace()
		p := newPolicy(ns, "standard", map[string]string{"app": "offer-service"})
		Expect(k8s.Create(ctx(), p)).To(Succeed())
		stale := p.DeepCopy() // the policy as a cache that missed the manager's status write holds it

		Eventually(func(g Gomega) {
			expectCondition(g, getPolicy(g, ns, "standard"), v1alpha1.ConditionProgrammed, metav1.ConditionTrue, v1alpha1.ReasonProgrammed)
			g.Expect(eventCount(g, ns, "standard", v1alpha1.ReasonProgrammed)).To(Equal(int32(1)))
		}).WithTimeout(timeout).Should(Succeed())

		// A second reconciler (another worker, or a replica that just became leader) whose
		// cache still holds the policy without status. It records to the API server under a
		// reporting controller of its own.
		cs, err := kubernetes.NewForConfig(restCfg)
		Expect(err).NotTo(HaveOccurred())
		broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
		stop := make(chan struct{})
		broadcaster.StartRecordingToSink(stop)
		DeferCleanup(func() { close(stop); broadcaster.Shutdown() })
		r := &controllers.OfferFeedPolicyReconciler{
			Client:    staleCache{Client: k8s, policies: []v1alpha1.OfferFeedPolicy{*stale}},
			APIReader: k8s,
			Recorder:  plainRecorder{broadcaster.NewRecorder(operator.NewScheme(), "offerfeed-lagging")},
		}
		// Its status write conflicts; that is no error, and the namespace is reconciled again soon.
		res, err := r.Reconcile(ctx(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: v1alpha1.GatewayConfigMapName}})
		Expect(err).NotTo(HaveOccurred())
		Expect(res.RequeueAfter).To(SatisfyAll(BeNumerically(">", 0), BeNumerically("<", time.Second)),
			"a status write based on a stale policy must conflict and be retried soon")

		Consistently(func(g Gomega) {
			g.Expect(eventCount(g, ns, "standard", v1alpha1.ReasonProgrammed)).To(Equal(int32(1)))
		}).WithTimeout(settle).Should(Succeed())
		expectCondition(Default, getPolicy(Default, ns, "standard"), v1alpha1.ConditionProgrammed, metav1.ConditionTrue, v1alpha1.ReasonProgrammed)
	})
})
