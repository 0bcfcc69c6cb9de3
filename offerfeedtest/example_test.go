package offerfeedtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/offerfeedtest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// The gateway in front of an offer service, without any cluster: a driver's second poll within
// minInterval is refused, another driver is served, and once the clock has moved on the first
// driver is served again.
func ExampleNewGateway() {
	offers := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"offers":[{"id":"o1"}]}`)
	}))
	defer offers.Close()

	cfg := &gatewayconfig.Config{
		SchemaVersion: gatewayconfig.SchemaVersion,
		Namespace:     "offers",
		Policies: []gatewayconfig.Policy{{
			Name:           "standard",
			Mode:           gatewayconfig.ModeEnforce,
			Selector:       metav1.LabelSelector{MatchLabels: map[string]string{"app": "offer-service"}},
			IdentityHeader: "X-Driver-Id",
			Feed: &gatewayconfig.Feed{Method: http.MethodGet, Path: "/offers",
				MinInterval: gatewayconfig.Duration(2 * time.Second), Burst: 1},
		}},
	}
	clock := offerfeedtest.NewFakeClock(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
	gw, err := offerfeedtest.NewGateway(cfg, offers.URL, map[string]string{"app": "offer-service"},
		offerfeedtest.WithClock(clock))
	if err != nil {
		panic(err)
	}

	poll := func(driver string) {
		r := httptest.NewRequest(http.MethodGet, "/offers", nil)
		r.Header.Set("X-Driver-Id", driver)
		w := httptest.NewRecorder()
		gw.ServeHTTP(w, r)
		if d := w.Header().Get(offerfeedtest.HeaderDecision); d != "" {
			fmt.Println(driver, w.Code, d, "Retry-After:", w.Header().Get("Retry-After"))
			return
		}
		fmt.Println(driver, w.Code)
	}
	poll("driver-1")
	poll("driver-1")
	poll("driver-2")
	clock.Advance(2 * time.Second)
	poll("driver-1")
	// Output:
	// driver-1 200
	// driver-1 429 feed-throttled Retry-After: 2
	// driver-2 200
	// driver-1 200
}

// A fair draw on a fake clock, deterministic: three drivers accept offer o1 within its 3s
// window and are held; the test moves the clock past the window and the draw, in the order
// that DrawSeed gives, hands the offer to one driver; the others get 409 lost-draw. No real
// time passes for the window: before Advance the accepts wait however long the test takes.
func Example_fairDraw() {
	var mu sync.Mutex
	taken := map[string]bool{}
	offers := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if taken[r.URL.Path] {
			w.WriteHeader(http.StatusGone)
			return
		}
		taken[r.URL.Path] = true
	}))
	defer offers.Close()

	cfg := &gatewayconfig.Config{
		SchemaVersion: gatewayconfig.SchemaVersion,
		Namespace:     "offers",
		Policies: []gatewayconfig.Policy{{
			Name:           "fair",
			Mode:           gatewayconfig.ModeEnforce,
			Selector:       metav1.LabelSelector{MatchLabels: map[string]string{"app": "offer-service"}},
			IdentityHeader: "X-Driver-Id",
			Accept: &gatewayconfig.Accept{Method: http.MethodPost, PathTemplate: "/offers/{offerId}/accept",
				Fairness: &gatewayconfig.Fairness{Window: gatewayconfig.Duration(3 * time.Second), Award: gatewayconfig.AwardRandom}},
		}},
	}
	clock := offerfeedtest.NewFakeClock(time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC))
	gw, err := offerfeedtest.NewGateway(cfg, offers.URL, map[string]string{"app": "offer-service"},
		offerfeedtest.WithClock(clock), offerfeedtest.WithDrawSeed(42))
	if err != nil {
		panic(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drivers := []string{"driver-1", "driver-2", "driver-3"}
	answers := make([]string, len(drivers))
	var wg sync.WaitGroup
	for i, driver := range drivers {
		wg.Go(func() { // a held accept's ServeHTTP returns once the draw has answered it
			r := httptest.NewRequest(http.MethodPost, "/offers/o1/accept", nil)
			r.Header.Set("X-Driver-Id", driver)
			w := httptest.NewRecorder()
			gw.ServeHTTP(w, r)
			answers[i] = strings.TrimSpace(fmt.Sprint(w.Code, " ", w.Header().Get(offerfeedtest.HeaderDecision)))
		})
		// Each accept is held before the next one comes: the draw's order depends on arrivals.
		if err := gw.WaitHeld(ctx, "o1", i+1); err != nil {
			panic(err)
		}
		clock.Advance(time.Second / 2)
	}
	fmt.Println("held:", gw.HeldAccepts("o1"))
	clock.Advance(2 * time.Second) // 3s after the first accept: the window closes
	wg.Wait()
	for i, driver := range drivers {
		fmt.Println(driver, answers[i])
	}
	// Output:
	// held: 3
	// driver-1 409 lost-draw
	// driver-2 200
	// driver-3 409 lost-draw
}

// A downstream envtest suite: install the CRDs, start the manager, apply a policy and read the
// gateway config it was rendered into. It runs with the package's tests and, like them,
// needs the envtest binaries, found through KUBEBUILDER_ASSETS (`make test` sets it).
func ExampleStartManager() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	env := &envtest.Environment{
		CRDInstallOptions:     envtest.CRDInstallOptions{CRDs: offerfeedtest.CRDs()},
		ErrorIfCRDPathMissing: true,
	}
	restCfg, err := env.Start()
	if err != nil {
		panic(err)
	}
	defer env.Stop() //nolint:errcheck // the example ends here; a stop error has no one to tell

	m, err := offerfeedtest.StartManager(ctx, restCfg)
	if err != nil {
		panic(err)
	}
	defer m.Stop() //nolint:errcheck // the example ends here; a stop error has no one to tell

	k8s, err := client.New(restCfg, client.Options{Scheme: offerfeedtest.NewScheme()})
	if err != nil {
		panic(err)
	}
	policy := &v1alpha1.OfferFeedPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: "default"},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(map[string]string{"app": "offer-service"}),
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
		},
	}
	if err := k8s.Create(ctx, policy); err != nil {
		panic(err)
	}
	cfg, err := offerfeedtest.WaitForPolicyProgrammed(ctx, k8s, types.NamespacedName{Namespace: "default", Name: "standard"})
	if err != nil {
		panic(err)
	}
	fmt.Println(cfg.Policies[0].Name, cfg.Policies[0].Feed.MinInterval.D())
	// Output:
	// standard 2s
}
