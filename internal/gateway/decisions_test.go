package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// step is one request of a decision scenario, after advancing the clock.
type step struct {
	advance  time.Duration
	method   string
	path     string
	body     string
	hdr      []string
	status   int
	decision string
	// retryAfter is the wanted Retry-After; "-" means it must be absent, "" not checked.
	retryAfter string
	// rateLimit and rateLimitPolicy are the wanted RateLimit fields; "" not checked.
	rateLimit, rateLimitPolicy string
	// forwarded says whether the request must reach the offer service.
	forwarded bool
	// flag is the OfferFeed-Flag the offer service must see ("" none), when forwarded.
	flag string
}

func feed(adv time.Duration, d string, status int, decision string) step {
	return step{advance: adv, method: "GET", path: "/offers", hdr: drv(d), status: status, decision: decision, forwarded: status == 200}
}

func accept(adv time.Duration, d, offer string, status int, decision string) step {
	return step{advance: adv, method: "POST", path: "/offers/" + offer + "/accept", hdr: drv(d), status: status, decision: decision, forwarded: status == 200}
}

func runSteps(t *testing.T, h *harness, steps []step) {
	t.Helper()
	for i, s := range steps {
		h.clock.Advance(s.advance)
		before := len(h.up.records())
		w := h.do(s.method, s.path, s.body, s.hdr...)
		if w.Code != s.status || w.Header().Get(HeaderDecision) != s.decision {
			t.Fatalf("step %d (%s %s): got %d %q (%s), want %d %q", i, s.method, s.path, w.Code,
				w.Header().Get(HeaderDecision), strings.TrimSpace(w.Body.String()), s.status, s.decision)
		}
		ra := w.Header().Get("Retry-After")
		if s.retryAfter == "-" && ra != "" || s.retryAfter != "-" && s.retryAfter != "" && ra != s.retryAfter {
			t.Errorf("step %d: Retry-After %q, want %q", i, ra, s.retryAfter)
		}
		if s.rateLimit != "" && w.Header().Get("RateLimit") != s.rateLimit {
			t.Errorf("step %d: RateLimit %q, want %q", i, w.Header().Get("RateLimit"), s.rateLimit)
		}
		if s.rateLimitPolicy != "" && w.Header().Get("RateLimit-Policy") != s.rateLimitPolicy {
			t.Errorf("step %d: RateLimit-Policy %q, want %q", i, w.Header().Get("RateLimit-Policy"), s.rateLimitPolicy)
		}
		recs := h.up.records()
		if got := len(recs) > before; got != s.forwarded {
			t.Errorf("step %d: forwarded %v, want %v", i, got, s.forwarded)
		}
		if s.forwarded && len(recs) > before {
			if f := recs[len(recs)-1].Header.Get(HeaderFlag); f != s.flag {
				t.Errorf("step %d: upstream saw %s %q, want %q", i, HeaderFlag, f, s.flag)
			}
		}
	}
}

// TestDecisions covers every row of the decision table of docs/design.md#decisions-and-headers, in Enforce.
func TestDecisions(t *testing.T) {
	burst3 := standardPolicy()
	burst3.Feed.Burst = 3
	quota2 := standardPolicy()
	quota2.Accept.MaxAccepts, quota2.Accept.Window = 2, dur("1m")
	noShown := standardPolicy()
	noShown.Accept.RequireShown, noShown.Accept.MinReactionTime = false, 0
	prefixFeed := standardPolicy()
	prefixFeed.Feed = &gatewayconfig.Feed{Method: "POST", Path: "/offers/", MinInterval: dur("2s"), Burst: 1}

	cases := []struct {
		desc   string
		policy gatewayconfig.Policy
		steps  []step
	}{
		{"feed: poll sooner than minInterval is feed-throttled", standardPolicy(), []step{
			{method: "GET", path: "/offers", hdr: drv("d1"), status: 200, forwarded: true,
				rateLimit: `"feed";r=0;t=2`, rateLimitPolicy: `"feed";q=1;w=2`, retryAfter: "-"},
			{advance: 500 * time.Millisecond, method: "GET", path: "/offers", hdr: drv("d1"), status: 429, decision: "feed-throttled",
				retryAfter: "2", rateLimit: `"feed";r=0;t=2`, rateLimitPolicy: `"feed";q=1;w=2`},
			{advance: 1499 * time.Millisecond, method: "GET", path: "/offers", hdr: drv("d1"), status: 429, decision: "feed-throttled", retryAfter: "1"},
			feed(time.Millisecond, "d1", 200, ""),
			feed(0, "d2", 200, ""), // another driver has its own pacer
		}},
		{"feed: burst back-to-back polls, then paced", burst3, []step{
			{method: "GET", path: "/offers", hdr: drv("d1"), status: 200, forwarded: true, rateLimit: `"feed";r=2;t=2`, rateLimitPolicy: `"feed";q=3;w=6`},
			{method: "GET", path: "/offers", hdr: drv("d1"), status: 200, forwarded: true, rateLimit: `"feed";r=1;t=4`},
			{method: "GET", path: "/offers", hdr: drv("d1"), status: 200, forwarded: true, rateLimit: `"feed";r=0;t=6`},
			{method: "GET", path: "/offers", hdr: drv("d1"), status: 429, decision: "feed-throttled", retryAfter: "2", rateLimit: `"feed";r=0;t=6`},
			feed(2*time.Second, "d1", 200, ""),
			feed(0, "d1", 429, "feed-throttled"),
		}},
		{"feed: prefix path matches below it, not itself", prefixFeed, []step{
			{method: "POST", path: "/offers/today", hdr: drv("d1"), status: 200, forwarded: true},
			{method: "POST", path: "/offers/tomorrow", hdr: drv("d1"), status: 429, decision: "feed-throttled"},
			// Not the prefix itself, but a lenient router (non-strict trailing slash) takes it for it.
			{method: "POST", path: "/offers", hdr: drv("d1"), status: 400, decision: "ambiguous-request"},
			// Another method with a driver's identity: a router that ignores methods takes it
			// for the feed (redteam_test.go); without one it goes on.
			{method: "GET", path: "/offers/today", hdr: drv("d1"), status: 400, decision: "ambiguous-request"},
			{method: "GET", path: "/offers/today", status: 200, forwarded: true},
		}},
		{"accept: more than maxAccepts in window is accept-throttled", quota2, []step{
			feed(0, "d1", 200, ""),
			accept(time.Second, "d1", "o1", 200, ""),
			accept(10*time.Second, "d1", "o2", 200, ""),
			{advance: 10 * time.Second, method: "POST", path: "/offers/o1/accept", hdr: drv("d1"), status: 429, decision: "accept-throttled", retryAfter: "40"},
			accept(39*time.Second, "d1", "o1", 429, "accept-throttled"), // refused attempts do not count ...
			accept(time.Second, "d1", "o1", 200, ""),                    // ... the first accept left the window
			accept(0, "d1", "o2", 429, "accept-throttled"),
			accept(0, "d2", "o2", 403, "unseen-offer"), // state is per driver
		}},
		{"accept: sooner than minReactionTime is too-fast", standardPolicy(), []step{
			feed(0, "d1", 200, ""),
			{advance: 100 * time.Millisecond, method: "POST", path: "/offers/o1/accept", hdr: drv("d1"), status: 429, decision: "too-fast", retryAfter: "-"},
			accept(699*time.Millisecond, "d1", "o1", 429, "too-fast"),
			accept(time.Millisecond, "d1", "o1", 200, ""),
			// An offer shown again counts from its first showing.
			feed(2*time.Second, "d1", 200, ""),
			accept(0, "d1", "o2", 200, ""),
		}},
		{"accept: an offer never shown is unseen-offer", standardPolicy(), []step{
			accept(0, "d1", "o1", 403, "unseen-offer"),
			feed(0, "d1", 200, ""),
			accept(time.Second, "d1", "o9", 403, "unseen-offer"),
			accept(0, "d2", "o1", 403, "unseen-offer"), // shown to d1, not to d2
			accept(0, "d1", "o1", 200, ""),
		}},
		{"accept: without requireShown, unseen offers pass", noShown, []step{
			accept(0, "d1", "o1", 200, ""),
		}},
		{"governed route without the identity header is missing-identity", standardPolicy(), []step{
			{method: "GET", path: "/offers", status: 400, decision: "missing-identity"},
			{method: "POST", path: "/offers/o1/accept", status: 400, decision: "missing-identity"},
			{method: "GET", path: "/offers", hdr: []string{"X-Driver-Id", ""}, status: 400, decision: "missing-identity"},
			// An identity sent twice with different values is none (an appending ingress).
			{method: "GET", path: "/offers", hdr: []string{"X-Driver-Id", "bot", "X-Driver-Id", "fresh-1"}, status: 400, decision: "missing-identity"},
			{method: "GET", path: "/offers", hdr: []string{"X-Driver-Id", "d1", "X-Driver-Id", "d1"}, status: 200, forwarded: true},
			{method: "GET", path: "/health", status: 200, forwarded: true}, // not governed
		}},
		{"anything else is proxied", standardPolicy(), []step{
			{method: "GET", path: "/drivers/me", hdr: drv("d1"), status: 200, forwarded: true},
			{method: "GET", path: "/drivers/me", hdr: drv("d1"), status: 200, forwarded: true},
			// Other methods on governed paths go on without a driver's identity; with one they
			// are refused ambiguous-request (TestRedteamMethodAgnosticRouter).
			{method: "DELETE", path: "/offers", status: 200, forwarded: true},
			{method: "GET", path: "/offers/o1/accept", status: 200, forwarded: true},
		}},
		{"the accept route wins over a feed prefix", func() gatewayconfig.Policy {
			p := prefixFeed
			p.Accept.RequireShown, p.Accept.MinReactionTime = false, 0
			return p
		}(), []step{
			{method: "POST", path: "/offers/o1/accept", hdr: drv("d1"), status: 200, forwarded: true},
			{method: "POST", path: "/offers/o2/accept", hdr: drv("d1"), status: 200, forwarded: true}, // not paced as a feed
			{method: "POST", path: "/offers/o3/accept", hdr: drv("d1"), status: 200, forwarded: true},
			{method: "POST", path: "/offers/o4/accept", hdr: drv("d1"), status: 429, decision: "accept-throttled"},
		}},
		{"encoded and unclean paths, and method case, cannot slip past a route", standardPolicy(), []step{
			feed(0, "d1", 200, ""),
			{method: "GET", path: "/offers/", hdr: drv("d1"), status: 429, decision: "feed-throttled"},
			{method: "GET", path: "//offers", hdr: drv("d1"), status: 429, decision: "feed-throttled"},
			{method: "GET", path: "/x/../%6Fffers", hdr: drv("d1"), status: 429, decision: "feed-throttled"},
			{method: "POST", path: "/offers/o9/%61ccept", hdr: drv("d1"), status: 403, decision: "unseen-offer"},
			{method: "POST", path: "/offers/a%2Fb/accept", hdr: drv("d1"), status: 403, decision: "unseen-offer"},
			{method: "post", path: "/offers/o9/accept", hdr: drv("d1"), status: 403, decision: "unseen-offer"},
			{method: "get", path: "/offers", hdr: drv("d1"), status: 429, decision: "feed-throttled"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			h := newHarness(t, configOf(tc.policy))
			runSteps(t, h, tc.steps)
		})
	}
}

// TestDryRun forwards every request and flags what Enforce would have refused; flagged
// requests do not change the state.
func TestDryRun(t *testing.T) {
	p := standardPolicy()
	p.Mode = gatewayconfig.ModeDryRun
	p.Accept.MaxAccepts, p.Accept.Window = 1, dur("1m")
	h := newHarness(t, configOf(p))
	ok := func(adv time.Duration, method, path string, hdr []string, flag string) step {
		return step{advance: adv, method: method, path: path, hdr: hdr, status: 200, forwarded: true, flag: flag}
	}
	runSteps(t, h, []step{
		ok(0, "GET", "/offers", drv("d1"), ""),
		ok(0, "GET", "/offers", drv("d1"), "feed-throttled"),
		ok(0, "GET", "/offers", nil, "missing-identity"),
		ok(0, "POST", "/offers/o9/accept", drv("d1"), "unseen-offer"),
		ok(100*time.Millisecond, "POST", "/offers/o1/accept", drv("d1"), "too-fast"),
		ok(time.Second, "POST", "/offers/o1/accept", drv("d1"), ""),
		ok(0, "POST", "/offers/o2/accept", drv("d1"), "accept-throttled"),
		// The flagged polls did not move the pacer: 2s after the first allowed poll passes.
		ok(900*time.Millisecond, "GET", "/offers", drv("d1"), ""),
	})
	if !hasMetric(t, h.g, `offerfeed_gateway_decisions_total{decision="feed-throttled",policy="standard",route="feed"} 1`) {
		t.Errorf("flagged decision not counted:\n%s", metricText(t, h.g))
	}
}

// TestOverrides gives listed drivers other limits; the first override naming a driver wins.
func TestOverrides(t *testing.T) {
	p := standardPolicy()
	p.Overrides = []gatewayconfig.Override{
		{Drivers: []string{"fast", "both"}, Feed: &gatewayconfig.FeedOverride{MinInterval: dur("500ms")}},
		{Drivers: []string{"both", "burst"}, Feed: &gatewayconfig.FeedOverride{Burst: 3}},
		{Drivers: []string{"eager"}, Accept: &gatewayconfig.AcceptOverride{MinReactionTime: durp("100ms"), MaxAccepts: 1}},
		// "0s" is an override too: no reaction time at all.
		{Drivers: []string{"instant"}, Accept: &gatewayconfig.AcceptOverride{MinReactionTime: durp("0s")}},
	}
	h := newHarness(t, configOf(p))
	runSteps(t, h, []step{
		{method: "GET", path: "/offers", hdr: drv("fast"), status: 200, forwarded: true, rateLimitPolicy: `"feed";q=1;w=1`},
		feed(500*time.Millisecond, "fast", 200, ""),
		feed(0, "plain", 200, ""),
		feed(500*time.Millisecond, "plain", 429, "feed-throttled"),
		// "both" is in the first override only: interval 500ms, burst 1.
		feed(0, "both", 200, ""),
		feed(0, "both", 429, "feed-throttled"),
		{method: "GET", path: "/offers", hdr: drv("burst"), status: 200, forwarded: true, rateLimitPolicy: `"feed";q=3;w=6`},
		feed(0, "burst", 200, ""),
		feed(0, "burst", 200, ""),
		feed(0, "burst", 429, "feed-throttled"),
		feed(0, "eager", 200, ""),
		accept(200*time.Millisecond, "eager", "o1", 200, ""),
		accept(0, "eager", "o2", 429, "accept-throttled"),
		feed(2*time.Second, "instant", 200, ""),
		accept(0, "instant", "o1", 200, ""),
		feed(0, "plain2", 200, ""),
		accept(0, "plain2", "o2", 429, "too-fast"),
	})
}

// TestHeaderStripping: clients cannot send OfferFeed-* headers, in any case.
func TestHeaderStripping(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()))
	for _, path := range []string{"/offers", "/other"} {
		w := h.do("GET", path, "", "X-Driver-Id", "d1", "Offerfeed-Flag", "allowed", "offerfeed-decision", "x",
			"OFFERFEED-ANYTHING", "y", "X-Other", "kept", "OfferFeed-Score", "0.000", "offerfeed-signals", "cv=9.000")
		expect(t, w, 200, "")
		got := h.up.last().Header
		for k := range got {
			if k == keySignals && path == "/offers" && !strings.Contains(got.Get(k), "cv=9") {
				continue // the gateway's own, on a governed route
			}
			if strings.HasPrefix(strings.ToLower(k), "offerfeed-") {
				t.Errorf("%s: upstream saw client header %s", path, k)
			}
		}
		if got.Get("X-Other") != "kept" || got.Get("X-Driver-Id") != "d1" {
			t.Errorf("%s: other headers lost: %v", path, got)
		}
	}
	// Without any policy too.
	h2 := newHarness(t, nil)
	h2.do("GET", "/offers", "", "OfferFeed-Flag", "allowed")
	if h2.up.last().Header.Get(HeaderFlag) != "" {
		t.Error("header not stripped without a policy")
	}
}

func flexHdr(token string) []string { return []string{"X-Amz-Access-Token", token} }

// TestFlexShape covers the Amazon Flex API shape: a POST feed with a body, offer ids in the
// body of the accept.
func TestFlexShape(t *testing.T) {
	h := newHarness(t, configOf(flexPolicy()))
	h.up.offers = []string{"A1", "B2"}
	filters := `{"apiVersion":"V2","filters":{"serviceAreaFilter":[],"timeFilter":{}},"serviceAreaIds":["sa1"]}`
	fp := func(adv time.Duration, status int, decision string) step {
		return step{advance: adv, method: "POST", path: "/GetOffersForProviderPost", body: filters, hdr: flexHdr("tok"), status: status, decision: decision, forwarded: status == 200}
	}
	ap := func(adv time.Duration, body string, status int, decision string) step {
		return step{advance: adv, method: "POST", path: "/AcceptOffer", body: body, hdr: flexHdr("tok"), status: status, decision: decision, forwarded: status == 200}
	}
	runSteps(t, h, []step{
		ap(0, `{"offerId":"A1"}`, 403, "unseen-offer"),
		fp(0, 200, ""),
		fp(100*time.Millisecond, 429, "feed-throttled"),
		ap(0, `{"offerId":"A1"}`, 429, "too-fast"),
		ap(0, `{"offerId":"Z9"}`, 403, "unseen-offer"),
		ap(0, `not json`, 403, "unseen-offer"),
		ap(0, `{"other":"A1"}`, 403, "unseen-offer"),
		ap(0, `{"offerId":"A1","OFFERID":"Z9"}`, 403, "unseen-offer"), // ambiguous: refused
		ap(0, `{"offerId":"A1"`, 403, "unseen-offer"),                 // truncated
		ap(0, ``, 403, "unseen-offer"),
		ap(time.Second, `{"offerId":"A1","offerId":"A1","note":{"offerId":"Z9"}}`, 200, ""),
	})
	if got := h.up.last().Body; got != `{"offerId":"A1","offerId":"A1","note":{"offerId":"Z9"}}` {
		t.Errorf("upstream got body %q, want it unchanged", got)
	}
	// The feed request body reached the offer service unchanged.
	for _, r := range h.up.records() {
		if r.Path == "/GetOffersForProviderPost" && r.Body != filters {
			t.Errorf("feed body changed: %q", r.Body)
		}
	}
	// A body larger than the limit is passed on whole but has no offer id.
	big := `{"offerId":"B2","pad":"` + strings.Repeat("x", DefaultMaxAcceptBody) + `"}`
	w := h.do("POST", "/AcceptOffer", big, flexHdr("tok")...)
	expect(t, w, 403, "unseen-offer")
	h2 := newHarness(t, configOf(func() gatewayconfig.Policy {
		p := flexPolicy()
		p.Accept.RequireShown, p.Accept.MinReactionTime = false, 0
		return p
	}()))
	w = h2.do("POST", "/AcceptOffer", big, flexHdr("tok")...)
	expect(t, w, 200, "")
	if got := h2.up.last().Body; got != big {
		t.Errorf("large body changed on the way: %d bytes, want %d", len(got), len(big))
	}
}

// TestShownOffersNotJSON: a feed answer that is not application/json is not read.
func TestShownOffersNotJSON(t *testing.T) {
	p := standardPolicy()
	p.Feed.Path = "/plain"
	h := newHarness(t, configOf(p))
	w := h.do("GET", "/plain", "", drv("d1")...)
	expect(t, w, 200, "")
	if w.Body.String() != "other" {
		t.Fatalf("body %q", w.Body.String())
	}
	h.clock.Advance(time.Second)
	expect(t, h.do("POST", "/offers/o1/accept", "", drv("d1")...), 403, "unseen-offer")
}

// TestAcceptNon2xxReleases: an accept the offer service refuses does not count.
func TestAcceptNon2xxReleases(t *testing.T) {
	p := standardPolicy()
	p.Accept.MaxAccepts, p.Accept.Window = 1, dur("1m")
	h := newHarness(t, configOf(p))
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 200, "")
	h.clock.Advance(time.Second)
	h.up.mu.Lock()
	h.up.acceptStatus = 409
	h.up.mu.Unlock()
	for i := 0; i < 3; i++ {
		expect(t, h.do("POST", "/offers/o1/accept", "", drv("d1")...), 409, "")
	}
	h.up.mu.Lock()
	h.up.acceptStatus = 200
	h.up.mu.Unlock()
	expect(t, h.do("POST", "/offers/o1/accept", "", drv("d1")...), 200, "")
	expect(t, h.do("POST", "/offers/o2/accept", "", drv("d1")...), 429, "accept-throttled")
}

func TestNoPolicyProxiesEverything(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()), func(o *Options) { o.PodLabels = map[string]string{"app": "other"} })
	for i := 0; i < 3; i++ {
		expect(t, h.do("GET", "/offers", ""), 200, "") // no identity, no pacing
	}
	st := h.g.Status()
	if st.Policy != "" || !strings.Contains(st.Detail, "no policy") {
		t.Errorf("status %+v", st)
	}
	// Labels change: now the policy applies.
	if err := h.g.SetPodLabels(map[string]string{"app": "offer-service"}); err != nil {
		t.Fatal(err)
	}
	expect(t, h.do("GET", "/offers", ""), 400, "missing-identity")
}

func TestFirstMatchingPolicyWins(t *testing.T) {
	a, b := standardPolicy(), standardPolicy()
	a.Name, b.Name = "a", "b"
	a.Selector.MatchLabels = map[string]string{"app": "nope"}
	b.Feed.MinInterval = dur("5s")
	c := standardPolicy()
	c.Name = "c"
	h := newHarness(t, configOf(a, b, c))
	if got := h.g.Status().Policy; got != "b" {
		t.Fatalf("policy in force %q, want b", got)
	}
	w := h.do("GET", "/offers", "", drv("d1")...)
	if w.Header().Get("RateLimit-Policy") != `"feed";q=1;w=5` {
		t.Errorf("RateLimit-Policy %q", w.Header().Get("RateLimit-Policy"))
	}
}

func TestMetricsAndReadyz(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()))
	h.do("GET", "/offers", "", drv("d1")...)
	h.do("GET", "/offers", "", drv("d1")...)
	h.do("POST", "/offers/o7/accept", "", drv("d1")...)
	for _, want := range []string{
		`offerfeed_gateway_decisions_total{decision="allowed",policy="standard",route="feed"} 1`,
		`offerfeed_gateway_decisions_total{decision="feed-throttled",policy="standard",route="feed"} 1`,
		`offerfeed_gateway_decisions_total{decision="unseen-offer",policy="standard",route="accept"} 1`,
		`offerfeed_gateway_tracked_drivers 1`,
		`offerfeed_gateway_config_generation 1`,
		`offerfeed_gateway_config_reload_failures_total 0`,
		`offerfeed_gateway_config_last_reload_successful 1`,
		`offerfeed_gateway_tracked_drivers_limit 1e+06`, // DefaultMaxTrackedDrivers
		`offerfeed_gateway_upstream_duration_seconds_count{route="feed"} 1`,
	} {
		if !hasMetric(t, h.g, want) {
			t.Errorf("metric %s missing", want)
		}
	}
	if !strings.Contains(metricText(t, h.g), `offerfeed_gateway_policy_info{hash="sha256:`) {
		t.Error("policy info missing")
	}
	w := httptestGet(h.g.AdminHandler(), "/readyz")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"policy": "standard"`) {
		t.Errorf("readyz %d %s", w.Code, w.Body)
	}
	if w := httptestGet(h.g.AdminHandler(), "/healthz"); w.Code != 200 {
		t.Errorf("healthz %d", w.Code)
	}
	h.g.SetDraining()
	if w := httptestGet(h.g.AdminHandler(), "/readyz"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining %d", w.Code)
	}
}

func TestApplyRefusesInvalid(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()))
	bad := standardPolicy()
	bad.Feed.Burst = 0
	if err := h.g.Apply(configOf(bad)); err == nil {
		t.Fatal("Apply accepted an invalid config")
	}
	st := h.g.Status()
	if st.Policy != "standard" || st.Generation != 1 || !strings.Contains(st.LastReloadError, "feed.burst") {
		t.Errorf("status after a refused config: %+v", st)
	}
	if !hasMetric(t, h.g, "offerfeed_gateway_config_reload_failures_total 1") {
		t.Error("failure not counted")
	}
}

func TestDecisionStrings(t *testing.T) {
	want := map[Decision]string{Allowed: "allowed", FeedThrottled: "feed-throttled", AcceptThrottled: "accept-throttled",
		TooFast: "too-fast", UnseenOffer: "unseen-offer", MissingIdentity: "missing-identity"}
	for d, s := range want {
		if d.String() != s {
			t.Errorf("%d: %s, want %s", d, d, s)
		}
	}
	if fmt.Sprint(numDecisions) != "unknown" {
		t.Error("out of range decision")
	}
}

func TestPolicyNameOption(t *testing.T) {
	a, b := standardPolicy(), standardPolicy()
	a.Name, b.Name = "a", "b"
	b.Selector.MatchLabels = map[string]string{"app": "elsewhere"}
	h := newHarness(t, configOf(a, b), func(o *Options) { o.PolicyName = "b"; o.PodLabels = nil })
	if got := h.g.Status().Policy; got != "b" {
		t.Fatalf("policy %q, want b", got)
	}
	h2 := newHarness(t, configOf(a), func(o *Options) { o.PolicyName = "zz" })
	if st := h2.g.Status(); st.Policy != "" || !strings.Contains(st.Detail, "no policy named zz") {
		t.Fatalf("status %+v", st)
	}
}

// TestFeedAskedUncompressed: drivers' apps ask for gzip; the gateway asks the offer service for
// an uncompressed answer so that it can read the shown offers.
func TestFeedAskedUncompressed(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()))
	w := h.do("GET", "/offers", "", "X-Driver-Id", "d1", "Accept-Encoding", "gzip, deflate")
	expect(t, w, 200, "")
	if ae := h.up.last().Header.Get("Accept-Encoding"); ae != "" {
		t.Errorf("offer service asked for Accept-Encoding %q", ae)
	}
	h.clock.Advance(time.Second)
	expect(t, h.do("POST", "/offers/o1/accept", "", drv("d1")...), 200, "")
	// Other routes keep the header.
	h.do("GET", "/other", "", "Accept-Encoding", "gzip")
	if ae := h.up.last().Header.Get("Accept-Encoding"); ae != "gzip" {
		t.Errorf("other route: Accept-Encoding %q", ae)
	}
}

func TestSharedRegistryRefused(t *testing.T) {
	h := newHarness(t, nil)
	u, _ := url.Parse(h.up.URL)
	if _, err := New(Options{Upstream: u, Registry: h.g.Registry()}); err == nil {
		t.Error("a second gateway registered its metrics in the first one's registry")
	}
	if _, err := New(Options{}); err == nil {
		t.Error("no upstream accepted")
	}
}
