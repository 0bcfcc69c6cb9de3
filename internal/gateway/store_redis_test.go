package gateway

import (
	"context"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// world is one or more gateways of one policy in front of one offer service, on one fake
// clock: the local world is one gateway with its own state, the shared world three gateways
// sharing a real Redis.
type world struct {
	t     *testing.T
	clock *fakeClock
	up    *fakeUpstream
	gws   []*Gateway
}

func newWorld(t *testing.T, n int, shared *SharedState, cfg *gatewayconfig.Config) *world {
	w := &world{t: t, clock: newFakeClock(), up: newFakeUpstream(t)}
	u, _ := url.Parse(w.up.URL)
	for i := range n {
		// Every gateway has a seed of its own, as separate pods do: shared state names drivers
		// and offers by a hash that does not depend on it (hash.go).
		seed := maphash.MakeSeed()
		g, err := New(Options{Upstream: u, Clock: w.clock, PodLabels: map[string]string{"app": "offer-service"},
			SharedState: shared, HashSeed: &seed})
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && maphash.String(g.seed, "driver-1") == maphash.String(w.gws[0].seed, "driver-1") {
			t.Fatal("two gateways share a hash seed: the test would not show that replicas agree without one")
		}
		if err := g.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		w.gws = append(w.gws, g)
	}
	return w
}

func (w *world) apply(cfg *gatewayconfig.Config) {
	for _, g := range w.gws {
		if err := g.Apply(cfg); err != nil {
			w.t.Fatal(err)
		}
	}
}

// sstep is one scripted request, or a change of the world (clock, offers, accept answers).
type sstep struct {
	op      string // feed, accept, advance, offers, status, reload
	driver  string
	offer   string
	advance time.Duration
	offers  []string
	status  int
	cfg     *gatewayconfig.Config
}

// outcome is what a request got: its status, decision, Retry-After and RateLimit fields, and
// what the offer service saw: the flag (DryRun) and the driver's bot-likeness score and
// signals (OfferFeed-Score, OfferFeed-Signals).
type outcome struct {
	status                int
	decision, flag        string
	retryAfter, rateLimit string
	score, signals        string
}

// run plays one sstep on gateway g of the world and returns the outcome of a request.
func (w *world) run(s sstep, g *Gateway) (outcome, bool) {
	switch s.op {
	case "advance":
		w.clock.Advance(s.advance)
		return outcome{}, false
	case "offers":
		w.up.mu.Lock()
		w.up.offers = s.offers
		w.up.mu.Unlock()
		return outcome{}, false
	case "status":
		w.up.mu.Lock()
		w.up.acceptStatus = s.status
		w.up.mu.Unlock()
		return outcome{}, false
	case "reload":
		w.apply(s.cfg)
		return outcome{}, false
	}
	var r *http.Request
	if s.op == "feed" {
		r = httptest.NewRequest("GET", "/offers", nil)
	} else {
		r = httptest.NewRequest("POST", "/offers/"+s.offer+"/accept", nil)
	}
	r.Header.Set("X-Driver-Id", s.driver)
	n := len(w.up.records())
	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, r)
	h := rec.Header()
	o := outcome{status: rec.Code, decision: h.Get(HeaderDecision), retryAfter: h.Get("Retry-After"),
		rateLimit: h.Get("Ratelimit")}
	if recs := w.up.records(); len(recs) > n {
		h := recs[len(recs)-1].Header
		o.flag, o.score, o.signals = h.Get(HeaderFlag), h.Get(HeaderScore), h.Get(HeaderSignals)
	}
	return o, true
}

// script makes a random request sequence over a few drivers and offers: polls, accepts of
// offers shown or not, soon after a poll or later, answered 2xx or not, with the clock moving
// in ms steps, the offers changing and, half way, a reload that changes the limits.
func script(seed uint64, n int, reload *gatewayconfig.Config) []sstep {
	rng := rand.New(rand.NewPCG(seed, 1))
	drivers := []string{"alice", "bob", "carol", "vip"}
	offers := []string{"o1", "o2", "o3", "o4", "o5", "o6"}
	current := []string{"o1", "o2"} // newFakeUpstream's
	fresh := 0
	var ss []sstep
	for i := range n {
		if i == n/2 && reload != nil {
			ss = append(ss, sstep{op: "reload", cfg: reload})
		}
		d := drivers[rng.IntN(len(drivers))]
		switch k := rng.IntN(20); {
		case k < 7:
			ss = append(ss, sstep{op: "feed", driver: d})
		case k < 13:
			o := offers[rng.IntN(len(offers))]
			if rng.IntN(5) > 0 { // mostly an offer of the current feed
				o = current[rng.IntN(len(current))]
			}
			ss = append(ss, sstep{op: "accept", driver: d, offer: o})
		case k < 17:
			// Steps around every limit: reaction times (300ms, 800ms), intervals (500ms, 1s, 2s).
			ms := []int{0, 1, 100, 299, 300, 450, 650, 799, 800, 999, 1500, 2500}[rng.IntN(12)]
			ss = append(ss, sstep{op: "advance", advance: time.Duration(ms) * time.Millisecond})
		case k < 18:
			a, b := rng.IntN(len(offers)), rng.IntN(len(offers))
			current = []string{offers[a], offers[b]}
			ss = append(ss, sstep{op: "offers", offers: current})
		case k < 19:
			// A new offer shown, then accepted around the reaction time.
			fresh++
			current = []string{fmt.Sprintf("n%d", fresh), current[0]}
			ms := []int{0, 150, 299, 300, 450, 650, 799, 800, 1200}[rng.IntN(9)]
			ss = append(ss, sstep{op: "offers", offers: current}, sstep{op: "feed", driver: d},
				sstep{op: "advance", advance: time.Duration(ms) * time.Millisecond},
				sstep{op: "accept", driver: d, offer: current[0]})
		default:
			st := 200
			if rng.IntN(3) == 0 {
				st = 500
			}
			ss = append(ss, sstep{op: "status", status: st})
		}
	}
	return ss
}

// sharedPolicy is standardPolicy with a burst, an override and a fair share of every check.
func sharedPolicy(mode gatewayconfig.Mode) gatewayconfig.Policy {
	p := standardPolicy()
	p.Mode = mode
	p.Feed.Burst = 2
	p.Accept.MaxAccepts = 2
	p.Accept.Window = dur("20s")
	p.Overrides = []gatewayconfig.Override{{Drivers: []string{"vip"},
		Feed:   &gatewayconfig.FeedOverride{MinInterval: dur("500ms")},
		Accept: &gatewayconfig.AcceptOverride{MaxAccepts: 4}}}
	return p
}

// quotaOnly makes p a policy whose accepts are checked against the quota alone (no
// requireShown, no minReactionTime): the shape whose accept-throttled refusals the deny cache
// answers.
func quotaOnly(p gatewayconfig.Policy) gatewayconfig.Policy {
	p.Accept.RequireShown = false
	p.Accept.MinReactionTime = dur("0s")
	p.Overrides[0].Accept.MinReactionTime = nil
	return p
}

// TestSharedStateDifferential plays the same request sequences through one gateway with
// local state and through three gateways sharing one real Redis, the requests assigned
// round-robin or at random: every request must get the same status and decision (and in
// DryRun the offer service the same flag), whichever gateway it reaches, and every forwarded
// request the same OfferFeed-Score and OfferFeed-Signals, to the digit: the signals live in
// Redis, updated by the scripts in the local store's fixed point. In the shape
// "quota", accepts are checked against the quota alone, so the deny cache answers both feed
// and accept refusals: it must have answered some of each, with the same verdicts. In
// "shown" (requireShown, no reaction time) it must not answer an accept before its check. In
// "botlike" a low botScore.refuseAbovePermille refuses (flags) some accepts bot-like: from the
// score read from Redis as from the local table.
func TestSharedStateDifferential(t *testing.T) {
	srv := redistest.Start(t)
	for _, shape := range []string{"standard", "quota", "shown", "botlike"} {
		for _, mode := range []gatewayconfig.Mode{gatewayconfig.ModeEnforce, gatewayconfig.ModeDryRun} {
			for _, assign := range []string{"round-robin", "random"} {
				t.Run(shape+"/"+string(mode)+"/"+assign, func(t *testing.T) {
					differential(t, srv, shape, mode, assign)
				})
			}
		}
	}
}

func differential(t *testing.T, srv *redistest.Server, shape string, mode gatewayconfig.Mode, assign string) {
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	if err := client.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	p1 := sharedPolicy(mode)
	p2 := sharedPolicy(mode)
	p2.Feed.MinInterval = dur("1s")
	p2.Accept.MaxAccepts = 3
	p2.Accept.MinReactionTime = dur("300ms")
	want := []Decision{Allowed, FeedThrottled, AcceptThrottled, TooFast, UnseenOffer}
	switch shape {
	case "quota":
		p1, p2 = quotaOnly(p1), quotaOnly(p2)
		want = []Decision{Allowed, FeedThrottled, AcceptThrottled}
	case "shown": // requireShown without a reaction time: accept refusals still not cached
		p1, p2 = quotaOnly(p1), quotaOnly(p2)
		p1.Accept.RequireShown, p2.Accept.RequireShown = true, true
		want = []Decision{Allowed, FeedThrottled, AcceptThrottled, UnseenOffer}
	case "botlike":
		for _, p := range []*gatewayconfig.Policy{&p1, &p2} {
			p.BotScore = &gatewayconfig.BotScore{DrawWeighting: gatewayconfig.DrawWeightingNone, RefuseAbovePermille: 300}
		}
		want = append(want, BotLike)
	}
	cfg, reload := configOf(p1), configOf(p2)
	local := newWorld(t, 1, nil, cfg)
	shared := newWorld(t, 3, &SharedState{Client: client, Timeout: 5 * time.Second}, cfg)
	rng := rand.New(rand.NewPCG(7, 7))
	seen := map[string]int{}
	scored, signalled := 0, 0
	next := 0
	steps := script(42, 1500, reload)
	if shape == "botlike" {
		// A scheduler first: 40 polls 2.5 s apart (its score forms, well above 0.3), then
		// accepts of an offer its polls were shown.
		var bot []sstep
		for range 40 {
			bot = append(bot, sstep{op: "feed", driver: "bot"}, sstep{op: "advance", advance: 2500 * time.Millisecond})
		}
		for range 3 {
			bot = append(bot, sstep{op: "accept", driver: "bot", offer: "o1"}, sstep{op: "advance", advance: time.Second})
		}
		steps = append(bot, steps...)
	}
	for i, s := range steps {
		if i == 700 {
			// Scripts dropped from Redis's cache are loaded again (NOSCRIPT).
			if err := client.ScriptFlush(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
		}
		want, req := local.run(s, local.gws[0])
		g := shared.gws[next%3]
		if assign == "random" {
			g = shared.gws[rng.IntN(3)]
		}
		got, _ := shared.run(s, g)
		if !req {
			continue
		}
		next++
		if got != want {
			t.Fatalf("sstep %d %+v: shared %+v, local %+v", i, s, got, want)
		}
		seen[want.decision+want.flag]++
		if want.score != "" {
			scored++
		}
		if strings.Contains(want.signals, "cv=") && strings.Contains(want.signals, "floor=") {
			signalled++
		}
	}
	t.Logf("decisions: %v; forwarded with a score %d, with cv and floor %d", seen, scored, signalled)
	// The headers must carry formed scores and every kind of signal, or their comparison
	// proves little.
	if scored == 0 || signalled == 0 {
		t.Errorf("%d forwarded requests had a score, %d cv and floor signals: the sequences formed none", scored, signalled)
	}
	// The sequences must exercise every decision, or the test proves little.
	for _, d := range want {
		name := d.String()
		if d == Allowed {
			name = ""
		}
		if seen[name] == 0 {
			t.Errorf("no request decided %q; seen %v", d, seen)
		}
	}
	var hits [numRoutes]float64
	for _, g := range shared.gws {
		ss := g.active.Load().policy.store.(*sharedStore)
		if e := ss.errors.Load(); e != 0 {
			t.Errorf("%d Redis calls failed", e)
		}
		for _, r := range []route{routeFeed, routeAccept} {
			hits[r] += counterValue(t, g.shared.m.denyHits[r])
		}
	}
	t.Logf("deny cache hits: feed %v, accept %v", hits[routeFeed], hits[routeAccept])
	// In DryRun a refused request is forwarded with the driver's signals: no deny cache.
	if mode == gatewayconfig.ModeEnforce && hits[routeFeed] == 0 {
		t.Error("no poll was refused from the deny cache")
	}
	if mode == gatewayconfig.ModeDryRun && hits[routeFeed]+hits[routeAccept] != 0 {
		t.Errorf("the deny cache answered %v requests in DryRun", hits[routeFeed]+hits[routeAccept])
	}
	if shape == "quota" && mode == gatewayconfig.ModeEnforce && hits[routeAccept] == 0 {
		t.Error("no accept was refused from the deny cache")
	}
	assertTTLs(t, client)
}

// assertTTLs checks that every key in Redis has a TTL (memory bounded by active drivers), and
// that each driver's keys share one hash tag.
func assertTTLs(t *testing.T, client *redis.Client) {
	t.Helper()
	ctx := context.Background()
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no keys in Redis: the gateways did not share state")
	}
	for _, k := range keys {
		ttl, err := client.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 {
			t.Errorf("key %s has no TTL (%v)", k, ttl)
		}
		if !strings.HasPrefix(k, "of:{") || !strings.Contains(k, "}") {
			t.Errorf("key %s has no hash tag", k)
		}
	}
}

// TestSharedStateFallback: with Redis gone, requests are decided by the gateway's own state
// (the Local fallback) within the timeout, and the failures are counted.
func TestSharedStateFallback(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	w := newWorld(t, 1, &SharedState{Client: client, Timeout: 200 * time.Millisecond}, configOf(standardPolicy()))
	g := w.gws[0]
	ss := g.active.Load().policy.store.(*sharedStore)
	if o, _ := w.run(sstep{op: "feed", driver: "alice"}, g); o.status != 200 {
		t.Fatalf("first poll: %+v", o)
	}
	srv.Stop()
	// Redis has alice's poll; the local table does not: the fallback allows this one...
	if o, _ := w.run(sstep{op: "feed", driver: "alice"}, g); o.status != 200 {
		t.Fatalf("poll with Redis gone: %+v, want 200 from the local fallback", o)
	}
	// ... and paces the next one itself.
	if o, _ := w.run(sstep{op: "feed", driver: "alice"}, g); o.decision != FeedThrottled.String() {
		t.Fatalf("second poll with Redis gone: %+v, want feed-throttled", o)
	}
	// Shown offers and accepts go to the local state too.
	w.clock.Advance(time.Second)
	if o, _ := w.run(sstep{op: "accept", driver: "alice", offer: "o1"}, g); o.status != 200 {
		t.Fatalf("accept with Redis gone: %+v", o)
	}
	if ss.fallbacks.Load() < 3 || ss.errors.Load() < 3 {
		t.Fatalf("fallbacks %d, errors %d; want at least 3", ss.fallbacks.Load(), ss.errors.Load())
	}
}

// TestSharedStateKeys: one driver's keys share a hash tag, two policies' keys differ.
func TestSharedStateKeys(t *testing.T) {
	g, err := New(Options{Upstream: &url.URL{Scheme: "http", Host: "x"}, SharedState: &SharedState{Client: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})}})
	if err != nil {
		t.Fatal(err)
	}
	a := g.newSharedStore("ns/a\x00x-driver-id", newDriverTable("a", 16), g.shared)
	b := g.newSharedStore("ns/b\x00x-driver-id", newDriverTable("b", 16), g.shared)
	kd, ki, kdone, ks := a.keys(0xabc)
	tag := func(k string) string { return k[strings.IndexByte(k, '{') : strings.IndexByte(k, '}')+1] }
	for _, k := range []string{ki, kdone, ks} {
		if tag(k) != tag(kd) {
			t.Errorf("%s and %s have different hash tags", k, kd)
		}
	}
	if kb, _, _, _ := b.keys(0xabc); kb == kd {
		t.Errorf("two policies share key %s", kd)
	}
	if k2, _, _, _ := a.keys(0xabd); tag(k2) == tag(kd) {
		t.Errorf("two drivers share hash tag %s", tag(kd))
	}
	if _, err := New(Options{Upstream: &url.URL{Scheme: "http", Host: "x"}, SharedState: &SharedState{}}); err == nil {
		t.Error("New accepted SharedState without a Client")
	}
}

// TestSharedStateInFlightSlots: accepts in flight on one gateway hold their driver's slots on
// the others; answered 2xx they count there; and a slot that no answer settles (its gateway
// died) lapses after the upstream timeout plus sharedTTLSlack.
func TestSharedStateInFlightSlots(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	release := make(chan struct{})
	arrived := make(chan struct{}, 8)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	t.Cleanup(up.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	p := standardPolicy()
	p.Accept.MaxAccepts, p.Accept.RequireShown, p.Accept.MinReactionTime = 2, false, dur("0s")
	p.ShownOffers = nil
	cfg := configOf(p)
	clock := newFakeClock()
	u, _ := url.Parse(up.URL)
	var gws []*Gateway
	for range 3 {
		g, err := New(Options{Upstream: u, Clock: clock, PodLabels: map[string]string{"app": "offer-service"},
			SharedState: &SharedState{Client: client, Timeout: 5 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		gws = append(gws, g)
	}
	accept := func(g *Gateway, offer string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/offers/"+offer+"/accept", nil)
		r.Header.Set("X-Driver-Id", "alice")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		return w
	}
	done := make(chan *httptest.ResponseRecorder, 2)
	for i, o := range []string{"o1", "o2"} {
		go func() { done <- accept(gws[i], o) }()
		<-arrived // held by the offer service: in flight
	}
	w := accept(gws[2], "o3")
	expect(t, w, http.StatusTooManyRequests, "accept-throttled")
	close(release)
	for range 2 {
		if w := <-done; w.Code != http.StatusOK {
			t.Fatalf("held accept: %d %q", w.Code, w.Header().Get(HeaderDecision))
		}
	}
	// Both counted: the quota is used up on every gateway.
	expect(t, accept(gws[2], "o3"), http.StatusTooManyRequests, "accept-throttled")
	if w := accept(gws[0], "o3"); w.Header().Get("Retry-After") != "600" {
		t.Fatalf("Retry-After %q, want 600 (the window of the first counted accept)", w.Header().Get("Retry-After"))
	}

	// A slot taken and never settled lapses.
	clock.Advance(11 * time.Minute) // the counted accepts leave the window
	ss := gws[0].active.Load().policy.store.(*sharedStore)
	l := &gws[0].active.Load().policy.base
	key := hashIdentity(gws[0], "alice")
	pol := gws[0].active.Load().policy
	for range 2 {
		if v, _ := ss.accept(pol, driverRef{key: key}, l, 0, false, gws[0].nowNS()); !v.slot {
			t.Fatalf("accept: %+v, want a slot", v)
		}
	}
	if v, _ := ss.accept(pol, driverRef{key: key}, l, 0, false, gws[0].nowNS()); v.decision != AcceptThrottled {
		t.Fatalf("third accept: %+v, want accept-throttled", v)
	}
	clock.Advance(DefaultUpstreamTimeout + sharedTTLSlack + time.Second)
	if v, _ := ss.accept(pol, driverRef{key: key}, l, 0, false, gws[0].nowNS()); !v.slot {
		t.Fatalf("accept after the slots lapsed: %+v, want a slot", v)
	}
}
