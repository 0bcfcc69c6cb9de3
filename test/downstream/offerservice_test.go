package downstream

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	offerfeedv1alpha1 "github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/offerfeedtest"
)

// offerServiceLabels are the labels of our offer-service pods.
var offerServiceLabels = map[string]string{"app": "offer-service"}

// offerService stands in for our offer service: it lists two offers and accepts any, and
// remembers the requests it got.
type offerService struct {
	*httptest.Server
	mu      sync.Mutex
	seen    []http.Header       // request headers of GET /offers
	accepts map[string][]string // offer id → drivers whose accepts reached us, in order
}

func newOfferService() *offerService {
	s := &offerService{accepts: map[string][]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/offers":
			s.mu.Lock()
			s.seen = append(s.seen, r.Header.Clone())
			s.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"offers":[{"id":"o1","pay":42.5},{"id":"o2","pay":38}]}`)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/accept"):
			offer := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/offers/"), "/accept")
			s.mu.Lock()
			s.accepts[offer] = append(s.accepts[offer], r.Header.Get("X-Driver-Id"))
			s.mu.Unlock()
			w.WriteHeader(http.StatusOK)
		default:
			http.NotFound(w, r)
		}
	}))
	DeferCleanup(s.Close)
	return s
}

// acceptsOf returns the drivers whose accepts for offer reached us, in order.
func (s *offerService) acceptsOf(offer string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.accepts[offer]...)
}

// reset forgets the requests seen so far.
func (s *offerService) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen, s.accepts = nil, map[string][]string{}
}

func (s *offerService) feedRequests() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.seen...)
}

// newNamespace creates a namespace of its own for one spec.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "offers-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// standardPolicy is our platform team's policy: one poll per 2s, at most 3 accepts per 10
// minutes, never faster than 800ms after an offer was shown, only offers that were shown.
func standardPolicy(ns string, mode offerfeedv1alpha1.PolicyMode) *offerfeedv1alpha1.OfferFeedPolicy {
	return &offerfeedv1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: ns},
		Spec: offerfeedv1alpha1.OfferFeedPolicySpec{
			TargetSelector: offerfeedv1alpha1.SelectLabels(offerServiceLabels),
			Mode:           mode,
			ClientIdentity: offerfeedv1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &offerfeedv1alpha1.FeedLimits{Method: "GET", Path: "/offers", MinInterval: "2s", Burst: 1},
			Accept: &offerfeedv1alpha1.AcceptLimits{
				Method:          "POST",
				PathTemplate:    "/offers/{offerId}/accept",
				MaxAccepts:      ptr.To[int32](3),
				Window:          ptr.To[offerfeedv1alpha1.Duration]("10m"),
				MinReactionTime: ptr.To[offerfeedv1alpha1.Duration]("800ms"),
				RequireShown:    ptr.To(true),
			},
			ShownOffers: &offerfeedv1alpha1.ShownOffers{JSONPath: "offers[].id"},
		},
	}
}

// driverRequest sends a driver's request through the gateway.
func driverRequest(gw *httptest.Server, method, path, driver string) *http.Response {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, method, gw.URL+path, nil)
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("X-Driver-Id", driver)
	resp, err := gw.Client().Do(req)
	Expect(err).NotTo(HaveOccurred())
	_, _ = io.Copy(io.Discard, resp.Body)
	Expect(resp.Body.Close()).To(Succeed())
	return resp
}

var _ = Describe("our offer service behind the offerfeed gateway", func() {
	var (
		ns    string
		svc   *offerService
		clock *offerfeedtest.FakeClock
	)

	BeforeEach(func() {
		ns = newNamespace()
		svc = newOfferService()
		clock = offerfeedtest.NewFakeClock(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
	})

	// gatewayFor waits for the policy to be Programmed, reads the config rendered for the
	// namespace and serves a gateway of an offer-service pod with it in front of svc.
	gatewayFor := func(policy *offerfeedv1alpha1.OfferFeedPolicy) *httptest.Server {
		GinkgoHelper()
		Expect(k8sClient.Create(ctx, policy)).To(Succeed())
		key := types.NamespacedName{Namespace: policy.Namespace, Name: policy.Name}
		Eventually(offerfeedtest.Programmed).WithContext(ctx).WithArguments(k8sClient, key).Should(Succeed())

		cfg, err := offerfeedtest.GatewayConfig(ctx, k8sClient, policy.Namespace)
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Policies).To(HaveLen(1))
		Expect(cfg.Policies[0].Name).To(Equal(policy.Name))
		Expect(cfg.Policies[0].Mode).To(Equal(policy.Spec.Mode))
		Expect(cfg.Policies[0].Feed.MinInterval.D()).To(Equal(2 * time.Second))

		gw, err := offerfeedtest.NewGateway(cfg, svc.URL, offerServiceLabels, offerfeedtest.WithClock(clock))
		Expect(err).NotTo(HaveOccurred())
		Expect(gw.Policy()).To(Equal(policy.Name))
		srv := httptest.NewServer(gw)
		DeferCleanup(srv.Close)
		return srv
	}

	It("refuses a driver's second poll within minInterval and serves another driver", func() {
		gw := gatewayFor(standardPolicy(ns, offerfeedv1alpha1.ModeEnforce))

		Expect(driverRequest(gw, "GET", "/offers", "driver-1").StatusCode).To(Equal(http.StatusOK))

		second := driverRequest(gw, "GET", "/offers", "driver-1")
		Expect(second.StatusCode).To(Equal(http.StatusTooManyRequests))
		Expect(second.Header.Get(offerfeedtest.HeaderDecision)).To(Equal(offerfeedtest.DecisionFeedThrottled))
		Expect(second.Header.Get("Retry-After")).To(Equal("2"))

		other := driverRequest(gw, "GET", "/offers", "driver-2")
		Expect(other.StatusCode).To(Equal(http.StatusOK))
		Expect(other.Header.Get(offerfeedtest.HeaderDecision)).To(BeEmpty())

		Expect(svc.feedRequests()).To(HaveLen(2), "the refused poll never reached the offer service")

		clock.Advance(2 * time.Second)
		Expect(driverRequest(gw, "GET", "/offers", "driver-1").StatusCode).To(Equal(http.StatusOK))
	})

	It("refuses an accept faster than a person and one for an offer never shown", func() {
		gw := gatewayFor(standardPolicy(ns, offerfeedv1alpha1.ModeEnforce))
		Expect(driverRequest(gw, "GET", "/offers", "driver-1").StatusCode).To(Equal(http.StatusOK))

		tooFast := driverRequest(gw, "POST", "/offers/o1/accept", "driver-1")
		Expect(tooFast.StatusCode).To(Equal(http.StatusTooManyRequests))
		Expect(tooFast.Header.Get(offerfeedtest.HeaderDecision)).To(Equal(offerfeedtest.DecisionTooFast))

		unseen := driverRequest(gw, "POST", "/offers/o1/accept", "driver-2")
		Expect(unseen.StatusCode).To(Equal(http.StatusForbidden))
		Expect(unseen.Header.Get(offerfeedtest.HeaderDecision)).To(Equal(offerfeedtest.DecisionUnseenOffer))

		clock.Advance(time.Second)
		Expect(driverRequest(gw, "POST", "/offers/o1/accept", "driver-1").StatusCode).To(Equal(http.StatusOK))
	})

	It("in DryRun serves every poll and flags the one it would refuse to the offer service", func() {
		gw := gatewayFor(standardPolicy(ns, offerfeedv1alpha1.ModeDryRun))

		Expect(driverRequest(gw, "GET", "/offers", "driver-1").StatusCode).To(Equal(http.StatusOK))
		second := driverRequest(gw, "GET", "/offers", "driver-1")
		Expect(second.StatusCode).To(Equal(http.StatusOK))
		Expect(second.Header.Get(offerfeedtest.HeaderDecision)).To(BeEmpty())

		seen := svc.feedRequests()
		Expect(seen).To(HaveLen(2))
		Expect(seen[0].Get(offerfeedtest.HeaderFlag)).To(BeEmpty())
		Expect(seen[1].Get(offerfeedtest.HeaderFlag)).To(Equal(offerfeedtest.DecisionFeedThrottled))
	})

	It("follows a policy change once it is Programmed again", func() {
		policy := standardPolicy(ns, offerfeedv1alpha1.ModeEnforce)
		gatewayFor(policy)

		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "standard"}, policy)).To(Succeed())
		policy.Spec.Feed.MinInterval = "5s"
		Expect(k8sClient.Update(ctx, policy)).To(Succeed())

		waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cfg, err := offerfeedtest.WaitForPolicyProgrammed(waitCtx, k8sClient, types.NamespacedName{Namespace: ns, Name: "standard"})
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Policies[0].Feed.MinInterval.D()).To(Equal(5 * time.Second))
	})
})
