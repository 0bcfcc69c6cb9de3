package offerfeedtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
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
		offerfeedtest.WithClock(clock.Now))
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

// A downstream envtest suite: install the CRDs, start the manager, apply a policy and read the
// gateway config it was rendered into. (Not run here: it needs the envtest binaries, found
// through KUBEBUILDER_ASSETS.)
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
	defer env.Stop() //nolint:errcheck

	m, err := offerfeedtest.StartManager(ctx, restCfg)
	if err != nil {
		panic(err)
	}
	defer m.Stop() //nolint:errcheck

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
}
