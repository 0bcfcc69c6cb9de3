package offerfeedtest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/offerfeedtest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

func TestCRDs(t *testing.T) {
	a, b := offerfeedtest.CRDs(), offerfeedtest.CRDs()
	if len(a) != 1 || a[0].Name != "offerfeedpolicies.offerfeed.dev" {
		t.Fatalf("CRDs() = %d CRDs, first %q; want offerfeedpolicies.offerfeed.dev", len(a), a[0].Name)
	}
	a[0].Name = "changed"
	if b[0].Name != "offerfeedpolicies.offerfeed.dev" {
		t.Fatal("CRDs() returned shared objects")
	}
	s := offerfeedtest.NewScheme()
	if !s.Recognizes(corev1.SchemeGroupVersion.WithKind("ConfigMap")) || !s.Recognizes(v1alpha1.GroupVersion.WithKind("OfferFeedPolicy")) {
		t.Fatal("NewScheme lacks the built-in or the offerfeed kinds")
	}
}

func TestDecisionNames(t *testing.T) {
	for got, want := range map[string]string{
		offerfeedtest.HeaderDecision:           gateway.HeaderDecision,
		offerfeedtest.HeaderFlag:               gateway.HeaderFlag,
		offerfeedtest.DecisionFeedThrottled:    gateway.FeedThrottled.String(),
		offerfeedtest.DecisionAcceptThrottled:  gateway.AcceptThrottled.String(),
		offerfeedtest.DecisionTooFast:          gateway.TooFast.String(),
		offerfeedtest.DecisionUnseenOffer:      gateway.UnseenOffer.String(),
		offerfeedtest.DecisionMissingIdentity:  gateway.MissingIdentity.String(),
		offerfeedtest.DecisionAmbiguousRequest: gateway.AmbiguousRequest.String(),
		offerfeedtest.DecisionUnreadableOffer:  gateway.UnreadableOffer.String(),
		offerfeedtest.DecisionLostDraw:         gateway.DecisionLostDraw.String(),
		offerfeedtest.DecisionDuplicateAccept:  gateway.DecisionDuplicateAccept.String(),
	} {
		if got != want {
			t.Errorf("offerfeedtest says %q, the gateway %q", got, want)
		}
	}
}

// offerService is an httptest offer service that records the requests it sees.
type offerService struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newOfferService(t *testing.T) *offerService {
	s := &offerService{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Clone(context.Background()))
		s.mu.Unlock()
		switch {
		case r.URL.Path == "/offers":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"offers":[{"id":"o1"},{"id":"o2"}]}`)
		case strings.HasSuffix(r.URL.Path, "/accept"):
			w.WriteHeader(http.StatusOK)
		default:
			_, _ = io.WriteString(w, "other")
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *offerService) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		return nil
	}
	return s.seen[len(s.seen)-1]
}

func (s *offerService) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

var podLabels = map[string]string{"app": "offer-service"}

func config(mode gatewayconfig.Mode) *gatewayconfig.Config {
	return &gatewayconfig.Config{SchemaVersion: gatewayconfig.SchemaVersion, Namespace: "offers",
		Policies: []gatewayconfig.Policy{{
			Name: "standard", Mode: mode,
			Selector:       metav1.LabelSelector{MatchLabels: podLabels},
			IdentityHeader: "X-Driver-Id",
			Feed: &gatewayconfig.Feed{Method: http.MethodGet, Path: "/offers",
				MinInterval: gatewayconfig.Duration(2 * time.Second), Burst: 1},
			Accept: &gatewayconfig.Accept{Method: http.MethodPost, PathTemplate: "/offers/{offerId}/accept",
				MinReactionTime: gatewayconfig.Duration(800 * time.Millisecond), RequireShown: true},
			ShownOffers: &gatewayconfig.ShownOffers{JSONPath: "offers[].id"},
		}}}
}

func do(h http.Handler, method, path, driver string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, nil)
	if driver != "" {
		r.Header.Set("X-Driver-Id", driver)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func expect(t *testing.T, w *httptest.ResponseRecorder, status int, decision string) {
	t.Helper()
	if w.Code != status || w.Header().Get(offerfeedtest.HeaderDecision) != decision {
		t.Fatalf("got %d %q, want %d %q", w.Code, w.Header().Get(offerfeedtest.HeaderDecision), status, decision)
	}
}

func TestGatewayEnforce(t *testing.T) {
	t.Parallel()
	up := newOfferService(t)
	clock := offerfeedtest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	gw, err := offerfeedtest.NewGateway(config(gatewayconfig.ModeEnforce), up.URL, podLabels, offerfeedtest.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	if gw.Policy() != "standard" || gw.Mode() != gatewayconfig.ModeEnforce {
		t.Fatalf("policy in force %q %q, want standard Enforce", gw.Policy(), gw.Mode())
	}
	expect(t, do(gw, "GET", "/offers", "d1"), 200, "")
	expect(t, do(gw, "GET", "/offers", "d1"), 429, offerfeedtest.DecisionFeedThrottled)
	expect(t, do(gw, "GET", "/offers", ""), 400, offerfeedtest.DecisionMissingIdentity)
	expect(t, do(gw, "POST", "/offers/o1/accept", "d1"), 429, offerfeedtest.DecisionTooFast)
	expect(t, do(gw, "POST", "/offers/o9/accept", "d1"), 403, offerfeedtest.DecisionUnseenOffer)
	clock.Advance(time.Second)
	expect(t, do(gw, "POST", "/offers/o1/accept", "d1"), 200, "")
	expect(t, do(gw, "GET", "/offers", "d1"), 429, offerfeedtest.DecisionFeedThrottled)
	clock.Advance(time.Second)
	expect(t, do(gw, "GET", "/offers", "d1"), 200, "")
	if n := up.count(); n != 3 {
		t.Fatalf("the offer service saw %d requests, want the 3 allowed ones", n)
	}
}

func TestGatewayDryRunAndReload(t *testing.T) {
	t.Parallel()
	up := newOfferService(t)
	clock := offerfeedtest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	gw, err := offerfeedtest.NewGateway(config(gatewayconfig.ModeDryRun), up.URL, podLabels, offerfeedtest.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	expect(t, do(gw, "GET", "/offers", "d1"), 200, "")
	expect(t, do(gw, "GET", "/offers", "d1"), 200, "")
	if f := up.last().Header.Get(offerfeedtest.HeaderFlag); f != offerfeedtest.DecisionFeedThrottled {
		t.Fatalf("upstream saw %s %q, want %q", offerfeedtest.HeaderFlag, f, offerfeedtest.DecisionFeedThrottled)
	}

	// Enforce, same policy: the driver's state stays.
	if err := gw.Apply(config(gatewayconfig.ModeEnforce)); err != nil {
		t.Fatal(err)
	}
	expect(t, do(gw, "GET", "/offers", "d1"), 429, offerfeedtest.DecisionFeedThrottled)

	// A pod the policy does not select is not governed.
	if err := gw.SetPodLabels(map[string]string{"app": "other"}); err != nil {
		t.Fatal(err)
	}
	if gw.Policy() != "" {
		t.Fatalf("policy %q in force for a pod it does not select", gw.Policy())
	}
	expect(t, do(gw, "GET", "/offers", "d1"), 200, "")

	// An invalid config is refused; the one in force stays.
	bad := config(gatewayconfig.ModeEnforce)
	bad.Policies[0].IdentityHeader = ""
	if err := gw.Apply(bad); err == nil {
		t.Fatal("Apply took a config without identityHeader")
	}
}

func TestNewGatewayErrors(t *testing.T) {
	t.Parallel()
	bad := config(gatewayconfig.ModeEnforce)
	bad.Policies[0].Feed.MinInterval = 0
	for _, tc := range []struct {
		desc, url string
		cfg       *gatewayconfig.Config
		want      string
	}{
		{"relative URL", "/offers", nil, "not absolute"},
		{"invalid config", "http://127.0.0.1:1", bad, "feed.minInterval"},
	} {
		_, err := offerfeedtest.NewGateway(tc.cfg, tc.url, podLabels)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.desc, err, tc.want)
		}
	}
	gw, err := offerfeedtest.NewGateway(nil, "http://127.0.0.1:1", nil)
	if err != nil || gw.Policy() != "" {
		t.Fatalf("nil config: %v, policy %q", err, gw.Policy())
	}
}

func TestFakeClock(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := offerfeedtest.NewFakeClock(t0)
	c.Advance(time.Minute)
	if got := c.Now(); !got.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Now() = %v after Advance(1m)", got)
	}
	// Timers move with Now: one due in 3s fires on the Advance that reaches it, not before.
	// (A timer's function runs while the clock holds its lock: it must not read the clock.)
	fired := make(chan struct{}, 1)
	c.AfterFunc(3*time.Second, func() { fired <- struct{}{} })
	c.Advance(3*time.Second - 1)
	select {
	case <-fired:
		t.Fatal("a 3s timer fired 1ns early")
	default:
	}
	c.Advance(1)
	select {
	case <-fired:
	default:
		t.Fatal("a 3s timer did not fire once the clock reached it")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("Advance(-1s) did not panic")
		}
	}()
	c.Advance(-time.Second)
}

type countingTransport struct {
	mu sync.Mutex
	n  int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func TestGatewayOptions(t *testing.T) {
	t.Parallel()
	up := newOfferService(t)
	rt := &countingTransport{}
	clock := offerfeedtest.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	gw, err := offerfeedtest.NewGateway(config(gatewayconfig.ModeEnforce), up.URL, podLabels,
		offerfeedtest.WithClock(clock), offerfeedtest.WithMaxTrackedDrivers(1), offerfeedtest.WithUpstreamTransport(rt))
	if err != nil {
		t.Fatal(err)
	}
	expect(t, do(gw, "GET", "/offers", "d1"), 200, "")
	expect(t, do(gw, "GET", "/offers", "d1"), 429, offerfeedtest.DecisionFeedThrottled)
	// One tracked driver: d2 pushes d1 out, and d1 starts afresh.
	expect(t, do(gw, "GET", "/offers", "d2"), 200, "")
	expect(t, do(gw, "GET", "/offers", "d1"), 200, "")
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.n != 3 {
		t.Fatalf("the transport forwarded %d requests, want 3", rt.n)
	}
}
