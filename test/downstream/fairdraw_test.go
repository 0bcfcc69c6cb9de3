package downstream

import (
	"net/http"
	"net/http/httptest"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

	offerfeedv1alpha1 "github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/offerfeedtest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// drawSeed fixes the order of our Random draws, so that a failing spec fails the same way
// each time.
const drawSeed = 20261127

// fairPolicy is our standard policy with fair draws of offers: accepts for one offer that
// come within 3s of the first compete equally.
func fairPolicy(ns string, award offerfeedv1alpha1.FairnessAward) *offerfeedv1alpha1.OfferFeedPolicy {
	p := standardPolicy(ns, offerfeedv1alpha1.ModeEnforce)
	p.Spec.Accept.Fairness = &offerfeedv1alpha1.Fairness{Window: "3s", Award: award}
	return p
}

// answer is what a driver's accept got.
type answer struct {
	driver   string
	code     int
	decision string
}

// acceptAsync sends a driver's accept through the gateway from a goroutine of its own: a
// held accept is answered only when its draw has run.
func acceptAsync(gw *httptest.Server, offer, driver string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		defer GinkgoRecover()
		resp := driverRequest(gw, "POST", "/offers/"+offer+"/accept", driver)
		ch <- answer{driver, resp.StatusCode, resp.Header.Get(offerfeedtest.HeaderDecision)}
	}()
	return ch
}

var _ = Describe("fair draws of our offers, on a fake clock", func() {
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

	// programmed applies the policy and returns the gateway config rendered for it.
	programmed := func(policy *offerfeedv1alpha1.OfferFeedPolicy) *gatewayconfig.Config {
		GinkgoHelper()
		Expect(k8sClient.Create(ctx, policy)).To(Succeed())
		key := types.NamespacedName{Namespace: policy.Namespace, Name: policy.Name}
		Eventually(offerfeedtest.Programmed).WithContext(ctx).WithArguments(k8sClient, key).Should(Succeed())
		cfg, err := offerfeedtest.GatewayConfig(ctx, k8sClient, policy.Namespace)
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.Policies[0].Accept.Fairness).NotTo(BeNil())
		Expect(cfg.Policies[0].Accept.Fairness.Window.D()).To(Equal(3 * time.Second))
		return cfg
	}

	// serve puts a gateway with cfg, on our clock, in front of svc.
	serve := func(cfg *gatewayconfig.Config) (*offerfeedtest.Gateway, *httptest.Server) {
		GinkgoHelper()
		gw, err := offerfeedtest.NewGateway(cfg, svc.URL, offerServiceLabels,
			offerfeedtest.WithClock(clock), offerfeedtest.WithDrawSeed(drawSeed))
		Expect(err).NotTo(HaveOccurred())
		srv := httptest.NewServer(gw)
		DeferCleanup(srv.Close)
		return gw, srv
	}

	// hold sends the drivers' accepts for offer one after the other, each once the one before
	// is held, so that they arrive in this order.
	hold := func(gw *offerfeedtest.Gateway, srv *httptest.Server, offer string, drivers ...string) []<-chan answer {
		GinkgoHelper()
		var chs []<-chan answer
		for _, d := range drivers {
			n := gw.HeldAccepts(offer) + 1
			chs = append(chs, acceptAsync(srv, offer, d))
			Eventually(gw.HeldAccepts).WithArguments(offer).Should(Equal(n), "%s's accept held for %s", d, offer)
		}
		return chs
	}

	// answers waits for the held accepts to be answered.
	answers := func(chs []<-chan answer) []answer {
		GinkgoHelper()
		out := make([]answer, len(chs))
		for i, ch := range chs {
			Eventually(ch).Should(Receive(&out[i]))
		}
		return out
	}

	// pollAll shows the feed (offers o1 and o2) to every driver, and lets the minimum reaction
	// time pass on the clock.
	pollAll := func(srv *httptest.Server, drivers ...string) {
		GinkgoHelper()
		for _, d := range drivers {
			Expect(driverRequest(srv, "GET", "/offers", d).StatusCode).To(Equal(http.StatusOK))
		}
		clock.Advance(time.Second)
	}

	drivers := []string{"driver-1", "driver-2", "driver-3", "driver-4", "driver-5"}

	It("holds every accept within the window and gives the offer to exactly one driver, in the seeded order", func() {
		cfg := programmed(fairPolicy(ns, offerfeedv1alpha1.AwardRandom))

		// The same draw twice, on two gateways with the same seed: the same driver wins.
		var winners []string
		for range 2 {
			gw, srv := serve(cfg)
			pollAll(srv, drivers...)
			chs := hold(gw, srv, "o1", drivers...)
			Expect(clock.Waiters()).To(Equal(1), "the window's timer is on our clock, not on real time")

			clock.Advance(3*time.Second - 1) // the last nanosecond of the window
			Expect(gw.HeldAccepts("o1")).To(Equal(len(drivers)))
			for _, ch := range chs {
				Expect(ch).NotTo(Receive(), "an accept was answered while its window was open")
			}
			Expect(svc.acceptsOf("o1")).To(BeEmpty(), "no accept reached our service during the window")

			clock.Advance(1) // the window closes: the draw runs
			got := answers(chs)
			var won []string
			for _, a := range got {
				if a.code == http.StatusOK {
					won = append(won, a.driver)
					continue
				}
				Expect(a.code).To(Equal(http.StatusConflict), a.driver)
				Expect(a.decision).To(Equal(offerfeedtest.DecisionLostDraw), a.driver)
			}
			Expect(won).To(HaveLen(1), "exactly one driver wins the offer")
			Expect(svc.acceptsOf("o1")).To(Equal(won), "our service saw the winner's accept only")
			winners = append(winners, won[0])
			svc.reset()
		}
		Expect(winners[1]).To(Equal(winners[0]), "the same seed and arrivals draw the same order")

		// After the window an accept for the offer is ours to answer, as without a draw.
		gw, srv := serve(cfg)
		pollAll(srv, "driver-1", "late")
		chs := hold(gw, srv, "o2", "driver-1")
		clock.Advance(3 * time.Second)
		Expect(answers(chs)[0].code).To(Equal(http.StatusOK))
		Expect(driverRequest(srv, "POST", "/offers/o2/accept", "late").Header.Get(offerfeedtest.HeaderDecision)).To(BeEmpty())
		Expect(svc.acceptsOf("o2")).To(Equal([]string{"driver-1", "late"}))
	})

	It("with LeastRecentlyWon tries the driver who never won before the one who just won", func() {
		gw, srv := serve(programmed(fairPolicy(ns, offerfeedv1alpha1.AwardLeastRecentlyWon)))
		pollAll(srv, "driver-1", "driver-2")

		By("driver-1 wins o1, alone in its draw")
		chs := hold(gw, srv, "o1", "driver-1")
		clock.Advance(3 * time.Second)
		Expect(answers(chs)[0].code).To(Equal(http.StatusOK))

		By("driver-1 comes first for o2, but driver-2 has never won: driver-2 is tried first and wins")
		chs = hold(gw, srv, "o2", "driver-1", "driver-2")
		clock.Advance(3 * time.Second)
		got := answers(chs)
		Expect(got[0]).To(Equal(answer{"driver-1", http.StatusConflict, offerfeedtest.DecisionLostDraw}))
		Expect(got[1]).To(Equal(answer{"driver-2", http.StatusOK, ""}))
		Expect(svc.acceptsOf("o2")).To(Equal([]string{"driver-2"}))
	})
})
