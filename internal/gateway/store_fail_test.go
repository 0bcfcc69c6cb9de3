package gateway

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// counterValue is the value of one counter (or gauge) of the gateway's metrics.
func counterValue(t testing.TB, c prometheus.Collector) float64 {
	t.Helper()
	return testutil.ToFloat64(c)
}

// TestBreaker plays sequences of calls on the breaker with times in ms: whether each call is
// allowed, what it reports, and the state after it.
func TestBreaker(t *testing.T) {
	type step struct {
		at      int64 // ms
		allowed bool  // want: allow's answer
		ok      bool  // the call's outcome, when allowed
		state   breakerState
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"successes keep it closed", []step{{0, true, true, breakerClosed}, {1, true, true, breakerClosed}}},
		{"fewer failures than the threshold", []step{
			{0, true, false, breakerClosed}, {1, true, false, breakerClosed}, {2, true, true, breakerClosed},
			// the success reset the count: two more failures do not open it
			{3, true, false, breakerClosed}, {4, true, false, breakerClosed},
		}},
		{"threshold in a row opens it; no calls during the cool-down", []step{
			{0, true, false, breakerClosed}, {1, true, false, breakerClosed}, {2, true, false, breakerOpen},
			{3, false, false, breakerOpen}, {1001, false, false, breakerOpen},
		}},
		{"after the cool-down one probe; its success closes it", []step{
			{0, true, false, breakerClosed}, {1, true, false, breakerClosed}, {2, true, false, breakerOpen},
			{1002, true, true, breakerClosed}, {1003, true, true, breakerClosed},
		}},
		{"a failed probe opens it for another cool-down", []step{
			{0, true, false, breakerClosed}, {1, true, false, breakerClosed}, {2, true, false, breakerOpen},
			{1002, true, false, breakerOpen}, {1500, false, false, breakerOpen}, {2001, false, false, breakerOpen},
			{2002, true, true, breakerClosed},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBreaker(3, time.Second)
			var changes []string
			b.onChange = func(from, to breakerState, _ errKind, _ int64) {
				changes = append(changes, from.String()+">"+to.String())
			}
			for i, s := range tc.steps {
				now := s.at * int64(time.Millisecond)
				got := b.allow(now)
				if got != s.allowed {
					t.Fatalf("step %d at %dms: allow = %v, want %v", i, s.at, got, s.allowed)
				}
				if got {
					b.done(s.ok, errTimeout, now)
				}
				if st := breakerState(b.state.Load()); st != s.state {
					t.Fatalf("step %d at %dms: state %s, want %s", i, s.at, st, s.state)
				}
			}
			t.Logf("transitions: %v", changes)
		})
	}
	// Half-open lets exactly one probe out, whatever the number of callers.
	b := newBreaker(1, time.Second)
	b.allow(0)
	b.done(false, errConnection, 0)
	n := 0
	for range 10 {
		if b.allow(int64(2 * time.Second)) {
			n++
		}
	}
	if n != 1 || breakerState(b.state.Load()) != breakerHalfOpen {
		t.Fatalf("%d calls allowed in half-open (state %s), want 1", n, breakerState(b.state.Load()))
	}
}

// TestErrKinds: the kinds of Redis errors, which are metric labels.
func TestErrKinds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if k := kindOf(ctx.Err()); k != errTimeout {
		t.Errorf("deadline: %s", k)
	}
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true, MaxRetries: -1})
	defer c.Close()
	if k := kindOf(c.Ping(context.Background()).Err()); k != errConnection {
		t.Errorf("connection refused: %s", k)
	}
	srv := redistest.Start(t)
	c2 := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	defer c2.Close()
	if k := kindOf(c2.Do(context.Background(), "NOSUCHCOMMAND").Err()); k != errServer {
		t.Errorf("error reply: %s", k)
	}
	for k := range numErrKinds {
		if k.String() == "unknown" || k.String() == "" {
			t.Errorf("kind %d has no name", k)
		}
	}
}

// evalCalls is how many scripts Redis has run (EVALSHA and EVAL) since its start.
func evalCalls(t testing.TB, c *redis.Client) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_eval:") {
			continue
		}
		_, rest, _ := strings.Cut(line, "calls=")
		v, _, _ := strings.Cut(rest, ",")
		x, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("commandstats line %q", line)
		}
		n += x
	}
	return n
}

// TestSharedStateDenyCache: a bot refused by Redis is refused by the deny cache until its
// refusal ends, with no round trip, and the verdicts stay Redis's: the cache ends exactly when
// Redis would allow (feed), and an accept quota with an accept in flight, which may free its
// slot, is not cached.
func TestSharedStateDenyCache(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	p := quotaOnly(sharedPolicy(gatewayconfig.ModeEnforce))
	p.ShownOffers = nil
	w := newWorld(t, 2, &SharedState{Client: client, Timeout: 5 * time.Second}, configOf(p))
	a, b := w.gws[0], w.gws[1]

	// Feed: a bot polls a, then floods b.
	if o, _ := w.run(sstep{op: "feed", driver: "bot"}, a); o.status != 200 {
		t.Fatalf("first poll: %+v", o)
	}
	if o, _ := w.run(sstep{op: "feed", driver: "bot"}, a); o.status != 200 { // the burst of 2
		t.Fatalf("second poll: %+v", o)
	}
	first, _ := w.run(sstep{op: "feed", driver: "bot"}, b) // Redis refuses; b remembers
	if first.decision != FeedThrottled.String() {
		t.Fatalf("third poll: %+v", first)
	}
	before := evalCalls(t, client)
	for range 200 {
		o, _ := w.run(sstep{op: "feed", driver: "bot"}, b)
		if o != first {
			t.Fatalf("flooded poll: %+v, want %+v as Redis said", o, first)
		}
	}
	if n := evalCalls(t, client) - before; n != 0 {
		t.Fatalf("200 refused polls cost %d scripts, want 0", n)
	}
	if h := counterValue(t, b.shared.m.denyHits[routeFeed]); h != 200 {
		t.Fatalf("deny cache hits %v, want 200", h)
	}
	// The refusal ends when Redis says (minInterval 2s, burst 2: 2s after the third poll),
	// to the ms, and the poll goes to Redis again.
	w.clock.Advance(2*time.Second - time.Millisecond)
	if o, _ := w.run(sstep{op: "feed", driver: "bot"}, b); o.decision != FeedThrottled.String() || o.retryAfter != "1" {
		t.Fatalf("poll 1ms before the end: %+v", o)
	}
	w.clock.Advance(time.Millisecond)
	if o, _ := w.run(sstep{op: "feed", driver: "bot"}, b); o.status != 200 {
		t.Fatalf("poll at the end of the refusal: %+v, want allowed as by Redis", o)
	}

	// Accept: two 2xx fill the quota of 2 on a; b is refused by Redis, then by its cache.
	for _, g := range []*Gateway{a, a} {
		if o, _ := w.run(sstep{op: "accept", driver: "bot", offer: "o1"}, g); o.status != 200 {
			t.Fatalf("accept: %+v", o)
		}
	}
	first, _ = w.run(sstep{op: "accept", driver: "bot", offer: "o1"}, b)
	if first.decision != AcceptThrottled.String() || first.retryAfter != "20" {
		t.Fatalf("third accept: %+v", first)
	}
	before = evalCalls(t, client)
	for range 50 {
		if o, _ := w.run(sstep{op: "accept", driver: "bot", offer: "o2"}, b); o != first {
			t.Fatalf("flooded accept: %+v, want %+v", o, first)
		}
	}
	if n := evalCalls(t, client) - before; n != 0 {
		t.Fatalf("50 refused accepts cost %d scripts, want 0", n)
	}

	// An accept in flight when the quota is full: not cached, for its slot may be freed.
	ss := a.active.Load().policy.store.(*sharedStore)
	sb := b.active.Load().policy.store.(*sharedStore)
	pol := a.active.Load().policy
	l := &pol.base
	key := hashIdentity(a, "carol")
	v1, r1 := ss.accept(pol, driverRef{key: key}, l, 1, true, a.nowNS())
	ss.settle(r1, v1.slot, true, false, a.nowNS()) // counted
	v2, r2 := ss.accept(pol, driverRef{key: key}, l, 2, true, a.nowNS())
	if !v1.slot || !v2.slot {
		t.Fatalf("accepts %+v %+v, want slots", v1, v2)
	}
	if v, _ := sb.accept(pol, driverRef{key: key}, l, 3, true, b.nowNS()); v.decision != AcceptThrottled {
		t.Fatalf("third accept: %+v", v)
	}
	ss.settle(r2, true, false, false, a.nowNS()) // answered 5xx: the slot is free
	if v, _ := sb.accept(pol, driverRef{key: key}, l, 3, true, b.nowNS()); v.decision != Allowed {
		t.Fatalf("accept after the slot in flight was freed: %+v, want allowed (not a cached refusal)", v)
	}
}

// TestSharedStateAllow: with OnUnavailable Allow and Redis gone, governed requests go through
// (no local pacing), counted as fallbacks labelled Allow.
func TestSharedStateAllow(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	w := newWorld(t, 1, &SharedState{Client: client, Timeout: 200 * time.Millisecond,
		OnUnavailable: gatewayconfig.OnUnavailableAllow}, configOf(standardPolicy()))
	g := w.gws[0]
	srv.Stop()
	for i := range 3 {
		if o, _ := w.run(sstep{op: "feed", driver: "alice"}, g); o.status != 200 || o.rateLimit != `"feed";r=0;t=2` {
			t.Fatalf("poll %d with Redis gone: %+v, want 200 as for a new driver", i, o)
		}
	}
	// Accepts too, even of an offer never shown (requireShown cannot be checked).
	if o, _ := w.run(sstep{op: "accept", driver: "alice", offer: "never-shown"}, g); o.status != 200 {
		t.Fatalf("accept with Redis gone: %+v", o)
	}
	var fb float64
	for r := range numFallbackReasons {
		fb += counterValue(t, g.shared.m.fallbacks[r])
	}
	if fb != 4 {
		t.Fatalf("fallbacks %v, want 4", fb)
	}
	// The feeds' shown offers are recorded on Redis too, and fail: the breaker may open.
	if !strings.Contains(metricText(t, g), `offerfeed_gateway_shared_state_fallbacks_total{on_unavailable="Allow",reason="error"} `) {
		t.Error("no fallbacks labelled Allow")
	}
	if _, err := New(Options{Upstream: g.opts.Upstream, SharedState: &SharedState{Client: client, OnUnavailable: "Deny"}}); err == nil {
		t.Error("New accepted OnUnavailable Deny")
	}
	// A client that ignores the context's deadline would wait for its ReadTimeout (3 s).
	plain := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer plain.Close()
	if _, err := New(Options{Upstream: g.opts.Upstream, SharedState: &SharedState{Client: plain}}); err == nil {
		t.Error("New accepted a client without ContextTimeoutEnabled")
	}
}

// TestSharedStateBreaker: on the fake clock, with Redis killed, the breaker opens after
// BreakerFailures failed calls and no call is tried during the cool-down (decisions Local);
// /readyz and the metrics show it; a probe after the cool-down that fails opens it again; once
// Redis is back (restarted, empty) the next probe closes it and decisions are shared again.
func TestSharedStateBreaker(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	p := standardPolicy()
	w := newWorld(t, 2, &SharedState{Client: client, Timeout: time.Second, BreakerFailures: 3, BreakerCooldown: 5 * time.Second},
		configOf(p))
	g := w.gws[0]
	errs := func() float64 {
		var n float64
		for k := range numErrKinds {
			n += counterValue(t, g.shared.m.errors[k])
		}
		return n
	}
	readyz := func() SharedStateStatus {
		rec := httptest.NewRecorder()
		g.AdminHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		var s Status
		if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || s.SharedState == nil {
			t.Fatalf("/readyz: %v %s", err, rec.Body)
		}
		if strings.Contains(rec.Body.String(), srv.Addr) {
			t.Fatalf("/readyz names the server: %s", rec.Body)
		}
		return *s.SharedState
	}
	if s := readyz(); s.Breaker != "closed" || s.OnUnavailable != "Local" || s.LastErrorKind != "" {
		t.Fatalf("/readyz before: %+v", s)
	}
	srv.Kill()
	for i := range 10 {
		w.run(sstep{op: "feed", driver: "d" + strconv.Itoa(i)}, g)
	}
	if e := errs(); e != 3 {
		t.Fatalf("%v failed calls, want 3: the breaker stops calling after 3", e)
	}
	if s := readyz(); s.Breaker != "open" || s.LastErrorKind != "connection" || s.FailuresInARow != 3 || s.LastErrorTime == nil {
		t.Fatalf("/readyz with the breaker open: %+v", s)
	}
	if !hasMetric(t, g, "offerfeed_gateway_shared_state_breaker_state 2") ||
		!hasMetric(t, g, `offerfeed_gateway_shared_state_fallbacks_total{on_unavailable="Local",reason="breaker-open"} 7`) {
		t.Fatal("metrics do not show the open breaker and its 7 fallbacks")
	}
	// Local: this replica's own table paces the driver.
	if o, _ := w.run(sstep{op: "feed", driver: "d0"}, g); o.decision != FeedThrottled.String() {
		t.Fatalf("poll in the fallback: %+v, want the local table's feed-throttled", o)
	}
	w.clock.Advance(5 * time.Second)
	w.run(sstep{op: "feed", driver: "x"}, g) // the probe fails
	if e := errs(); e != 4 || readyz().Breaker != "open" {
		t.Fatalf("after a failed probe: %v errors, breaker %s; want 4, open", e, readyz().Breaker)
	}
	srv.Restart(t)
	w.run(sstep{op: "feed", driver: "x"}, g) // still in the new cool-down: not called
	if readyz().Breaker != "open" {
		t.Fatal("breaker closed before its cool-down ended")
	}
	w.clock.Advance(5 * time.Second)
	if o, _ := w.run(sstep{op: "feed", driver: "shared"}, g); o.status != 200 {
		t.Fatalf("probe: %+v", o)
	}
	if s := readyz(); s.Breaker != "closed" || s.FailuresInARow != 0 {
		t.Fatalf("/readyz after recovery: %+v", s)
	}
	// Shared again: the other gateway sees the poll the probe made.
	if o, _ := w.run(sstep{op: "feed", driver: "shared"}, w.gws[1]); o.decision != FeedThrottled.String() {
		t.Fatalf("poll on the other gateway after recovery: %+v, want feed-throttled", o)
	}
	if !hasMetric(t, g, "offerfeed_gateway_shared_state_breaker_state 0") {
		t.Fatal("breaker state metric not back to 0")
	}
}
