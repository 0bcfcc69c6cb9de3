package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// sharedDraws is n gateways of one policy with fairness sharing one real Redis, in front of
// one offer service, on one fake clock.
type sharedDrawWorld struct {
	t      testing.TB
	clock  *fakeClock
	svc    *offerService
	client redis.UniversalClient
	gws    []*Gateway
}

func newSharedDrawWorld(t testing.TB, n int, client redis.UniversalClient, p gatewayconfig.Policy) *sharedDrawWorld {
	t.Helper()
	w := &sharedDrawWorld{t: t, clock: newFakeClock(), svc: newOfferService(t), client: client}
	u, _ := url.Parse(w.svc.URL)
	for i := range n {
		g, err := New(Options{Upstream: u, Clock: w.clock, DrawSeed: uint64(testDrawSeed + i),
			PodLabels:   map[string]string{"app": "offer-service"},
			SharedState: &SharedState{Client: client, Timeout: 5 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Apply(configOf(p)); err != nil {
			t.Fatal(err)
		}
		w.gws = append(w.gws, g)
	}
	return w
}

func newRedisClient(t testing.TB) (*redistest.Server, *redis.Client) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, PoolSize: 64})
	t.Cleanup(func() { c.Close() })
	return srv, c
}

// accept sends an accept of driver for offer through gateway i; its answer comes on the
// channel.
func (w *sharedDrawWorld) accept(ctx context.Context, i int, driver, offer string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		r := httptest.NewRequest("POST", "/offers/"+offer+"/accept", nil).WithContext(ctx)
		r.Header.Set("X-Driver-Id", driver)
		rec := httptest.NewRecorder()
		w.gws[i].ServeHTTP(rec, r)
		ch <- answer{rec.Code, rec.Header().Get(HeaderDecision), driver, ""}
	}()
	return ch
}

// held is the number of candidates of offer's draw held over all gateways.
func (w *sharedDrawWorld) held(offer string) int {
	n := 0
	for _, g := range w.gws {
		n += g.HeldAccepts(offer)
	}
	return n
}

// hold sends the accepts of drivers for offer through gateway i, each once the previous one
// is held.
func (w *sharedDrawWorld) hold(i int, offer string, drivers ...string) []<-chan answer {
	w.t.Helper()
	var chs []<-chan answer
	n := w.held(offer)
	for _, d := range drivers {
		chs = append(chs, w.accept(context.Background(), i, d, offer))
		n++
		eventually(w.t, fmt.Sprintf("%s to be held for %s", d, offer), func() bool { return w.held(offer) == n })
	}
	return chs
}

// advance moves the clock and waits for the polls its timers started.
func (w *sharedDrawWorld) advance(d time.Duration) {
	w.clock.Advance(d)
	for _, g := range w.gws {
		if p := g.active.Load().policy; p != nil && p.draws != nil {
			p.draws.closing.Wait()
		}
	}
}

// sharedErrors is the number of Redis calls that failed on the world's gateways.
func (w *sharedDrawWorld) sharedErrors() uint64 {
	var n uint64
	for _, g := range w.gws {
		n += g.active.Load().policy.store.(*sharedStore).errors.Load()
	}
	return n
}

// liveDraws is the number of draws the world's gateways still hold.
func (w *sharedDrawWorld) liveDraws() int64 {
	var n int64
	for _, g := range w.gws {
		n += g.active.Load().policy.draws.live.Load()
	}
	return n
}

func tallyAnswers(as []answer) map[string]int {
	m := map[string]int{}
	for _, a := range as {
		m[fmt.Sprint(a.code, " ", a.decision)]++
	}
	return m
}

// TestSharedDrawOneWinner: 300 accepts for one offer, spread over 3 gateways and sent at
// once, make one draw: the first candidate tried wins, so exactly one accept reaches the offer
// service, and every other one is answered 409 lost-draw.
func TestSharedDrawOneWinner(t *testing.T) {
	_, client := newRedisClient(t)
	w := newSharedDrawWorld(t, 3, client, fairPolicy("Random"))
	const n = 300
	// Loaded first, so that every call is one EVALSHA (no NOSCRIPT then EVAL to count).
	for _, s := range []*redis.Script{acceptScript, settleScript, drawJoinScript, drawScript} {
		if err := s.Load(context.Background(), client).Err(); err != nil {
			t.Fatal(err)
		}
	}
	before := redisCalls(t, client)
	var chs []<-chan answer
	for i := range n {
		chs = append(chs, w.accept(context.Background(), i%3, fmt.Sprint("d", i), "o1"))
	}
	eventually(t, "300 accepts held", func() bool { return w.held("o1") == n })
	for _, g := range w.gws {
		if g.HeldAccepts("o1") != n/3 {
			t.Fatalf("a gateway holds %d, want %d", g.HeldAccepts("o1"), n/3)
		}
	}
	w.advance(3 * time.Second)
	got := tallyAnswers(answers(t, chs))
	if got["200 "] != 1 || got["409 lost-draw"] != n-1 {
		t.Errorf("answers %v, want one 200 and %d lost-draw", got, n-1)
	}
	if tries := w.svc.triesOf("o1"); len(tries) != 1 {
		t.Errorf("the offer service saw %d accepts, want 1", len(tries))
	}
	if e := w.sharedErrors(); e != 0 {
		t.Errorf("%d Redis calls failed", e)
	}
	eventually(t, "draws to end", func() bool { return w.liveDraws() == 0 })
	// Round trips (script calls): per accept its check, its join and its slot's settle (the
	// winner's records its win too); per draw a close per gateway, the winner's claim and
	// the settle of its turn. No poll
	// ran: the clock did not move after the close, the turns went by pub/sub.
	after := redisCalls(t, client)
	scripts := after["evalsha"] + after["eval"] - before["evalsha"] - before["eval"]
	t.Logf("script calls: %d for %d accepts (eval %d)", scripts, n, after["eval"]-before["eval"])
	if scripts > 3*n+3+2 {
		t.Errorf("%d script calls for %d held accepts, want at most %d", scripts, n, 3*n+5)
	}
	// The subscriptions outlive the draw by drawSubLinger, then close.
	for _, g := range w.gws {
		if !g.active.Load().policy.draws.shared.subscribed() {
			t.Error("a gateway unsubscribed at once")
		}
	}
	w.advance(drawSubLinger)
	eventually(t, "the subscriptions to close", func() bool {
		for _, g := range w.gws {
			if g.active.Load().policy.draws.shared.subscribed() {
				return false
			}
		}
		return true
	})
	won := 0
	for _, g := range w.gws {
		if hasMetric(t, g, drawMetric("offerfeed_gateway_draws_total", `award="Random"`, `outcome="won"`, `policy="standard"`)+" 1") {
			won++
		}
	}
	if won != 1 {
		t.Errorf("%d gateways counted the draw won, want 1", won)
	}
	assertTTLs(t, client)
}

// TestSharedDrawFailingWinner: a candidate whose try fails passes the offer to the next, on
// whichever gateway it is held; the tries are one at a time.
func TestSharedDrawFailingWinner(t *testing.T) {
	_, client := newRedisClient(t)
	w := newSharedDrawWorld(t, 3, client, fairPolicy("Random"))
	w.svc.status = func(_, _ string, try int) int {
		if try < 2 {
			return []int{500, 410}[try]
		}
		return 200
	}
	var chs []<-chan answer
	for i := range 9 {
		chs = append(chs, w.hold(i%3, "o1", fmt.Sprint("d", i))...)
	}
	w.advance(3 * time.Second)
	got := answers(t, chs)
	if c := tallyAnswers(got); c["500 "] != 1 || c["410 "] != 1 || c["200 "] != 1 || c["409 lost-draw"] != 6 {
		t.Errorf("answers %v", c)
	}
	tries := w.svc.triesOf("o1")
	if len(tries) != 3 {
		t.Fatalf("tries %v, want 3", tries)
	}
	for _, a := range got {
		if a.code != 409 && !slices.Contains(tries, a.driver) {
			t.Errorf("%s answered %d without a try", a.driver, a.code)
		}
	}
	if n := w.svc.mostInflight(); n != 1 {
		t.Errorf("%d tries of one draw at once", n)
	}
	if e := w.sharedErrors(); e != 0 {
		t.Errorf("%d Redis calls failed", e)
	}
}

// TestSharedDrawAllFail: when every candidate fails, each gets the offer service's answer and
// the draw ends unwon.
func TestSharedDrawAllFail(t *testing.T) {
	_, client := newRedisClient(t)
	w := newSharedDrawWorld(t, 3, client, fairPolicy("Random"))
	w.svc.status = func(string, string, int) int { return 503 }
	var chs []<-chan answer
	for i := range 6 {
		chs = append(chs, w.hold(i%3, "o1", fmt.Sprint("d", i))...)
	}
	w.advance(3 * time.Second)
	if c := tallyAnswers(answers(t, chs)); c["503 "] != 6 {
		t.Errorf("answers %v, want six 503", c)
	}
	if n := w.svc.mostInflight(); n != 1 {
		t.Errorf("%d tries of one draw at once", n)
	}
	eventually(t, "draws to end", func() bool { return w.liveDraws() == 0 })
}

// TestSharedDrawLeastRecentlyWon: the last win is shared. A driver who won on gateway A loses
// to a fresh driver on gateway B; and a driver who wins another draw while held goes behind
// one who won long ago, although its last win was older when it joined.
func TestSharedDrawLeastRecentlyWon(t *testing.T) {
	_, client := newRedisClient(t)
	w := newSharedDrawWorld(t, 3, client, fairPolicy("LeastRecentlyWon"))
	// "old" wins o1 through gateway 2.
	ch := w.hold(2, "o1", "old")
	w.advance(3 * time.Second)
	answers(t, ch)
	w.advance(time.Minute)
	// "recent" wins o2 through gateway 0.
	ch = w.hold(0, "o2", "recent")
	w.advance(3 * time.Second)
	answers(t, ch)
	w.advance(time.Minute)

	// o3: "recent" on gateway 0, "fresh" on gateway 1: fresh goes first.
	w.svc.status = func(string, string, int) int { return 500 }
	chs := append(w.hold(0, "o3", "recent"), w.hold(1, "o3", "fresh")...)
	w.advance(3 * time.Second)
	answers(t, chs)
	if got := w.svc.triesOf("o3"); !slices.Equal(got, []string{"fresh", "recent"}) {
		t.Errorf("o3 tried %v, want fresh (never won, gateway 1) before recent (won on gateway 0)", got)
	}

	// o4: "bot" (never won) joins through gateway 0 and "old" (won two minutes ago) through
	// gateway 1; o5's window opened first, with bot alone, through gateway 2: bot wins o5
	// before o4 closes, so o4 must try old first.
	w.svc.status = nil
	ch5 := w.hold(2, "o5", "bot")
	w.advance(time.Second)
	chs = append(w.hold(0, "o4", "bot"), w.hold(1, "o4", "old")...)
	w.advance(2 * time.Second) // o5 closes: bot wins it
	if a := answers(t, ch5)[0]; a.code != 200 {
		t.Fatalf("bot on o5: %+v", a)
	}
	w.svc.status = func(string, string, int) int { return 500 }
	w.advance(time.Second) // o4 closes
	answers(t, chs)
	if got := w.svc.triesOf("o4"); !slices.Equal(got, []string{"old", "bot"}) {
		t.Errorf("o4 tried %v, want old before bot (who won o5 while held)", got)
	}
	if e := w.sharedErrors(); e != 0 {
		t.Errorf("%d Redis calls failed", e)
	}
}

// TestSharedDrawOnePlacePerDriver: a driver entering one draw through all three gateways is
// one candidate: its other accepts are answered 409 duplicate-accept at once, with their
// in-flight slots freed, and the driver is tried at most once.
func TestSharedDrawOnePlacePerDriver(t *testing.T) {
	_, client := newRedisClient(t)
	w := newSharedDrawWorld(t, 3, client, fairPolicy("Random"))
	w.svc.status = func(string, string, int) int { return 500 }
	chs := w.hold(0, "o1", "bot")
	for i := 1; i < 3; i++ {
		a := answers(t, []<-chan answer{w.accept(context.Background(), i, "bot", "o1")})[0]
		if a.code != http.StatusConflict || a.decision != DecisionDuplicateAccept.String() {
			t.Errorf("bot's accept through gateway %d: %d %q, want 409 duplicate-accept", i, a.code, a.decision)
		}
	}
	// Twice through the same gateway too.
	if a := answers(t, []<-chan answer{w.accept(context.Background(), 0, "bot", "o1")})[0]; a.decision != DecisionDuplicateAccept.String() {
		t.Errorf("bot's second accept through gateway 0: %d %q", a.code, a.decision)
	}
	chs = append(chs, w.hold(1, "o1", "p1")...)
	chs = append(chs, w.hold(2, "o1", "p2")...)
	w.advance(3 * time.Second)
	answers(t, chs)
	got := w.svc.triesOf("o1")
	slices.Sort(got)
	if !slices.Equal(got, []string{"bot", "p1", "p2"}) {
		t.Errorf("tried %v, want bot, p1 and p2 once each", got)
	}
	// Thirty accepts of one driver at once over the three gateways: one place.
	var burst []<-chan answer
	for i := range 30 {
		burst = append(burst, w.accept(context.Background(), i%3, "burst", "o2"))
	}
	eventually(t, "burst's place held", func() bool { return w.held("o2") == 1 })
	// The other 29 are answered at once: duplicate-accept, or accept-throttled once the
	// driver's three in-flight slots are taken.
	dups := burst
	eventually(t, "burst's other accepts answered", func() bool {
		var left []<-chan answer
		for _, ch := range dups {
			select {
			case a := <-ch:
				if a.decision != DecisionDuplicateAccept.String() && a.decision != AcceptThrottled.String() {
					t.Errorf("burst: %d %q, want 409 duplicate-accept or 429 accept-throttled", a.code, a.decision)
				}
			default:
				left = append(left, ch)
			}
		}
		dups = left
		return len(dups) == 1
	})
	// A candidate who hangs up cannot come back through another gateway for a new place
	// (and a new random number).
	ctx, cancel := context.WithCancel(context.Background())
	quitter := w.accept(ctx, 0, "quitter", "o2")
	eventually(t, "quitter held", func() bool { return w.held("o2") == 2 })
	cancel()
	<-quitter
	if a := answers(t, []<-chan answer{w.accept(context.Background(), 1, "quitter", "o2")})[0]; a.decision != DecisionDuplicateAccept.String() {
		t.Errorf("quitter back through gateway 1: %d %q, want duplicate-accept", a.code, a.decision)
	}
	w.advance(3 * time.Second)
	answers(t, dups)
	if got := w.svc.triesOf("o2"); !slices.Equal(got, []string{"burst"}) {
		t.Errorf("o2 tried %v, want burst once", got)
	}

	// The duplicates' slots were freed: bot has 3 accepts left (maxAccepts 3, none counted).
	w.svc.status = nil
	for i := range 3 {
		ch := w.hold(i, fmt.Sprint("q", i), "bot")
		w.advance(3 * time.Second)
		if a := answers(t, ch)[0]; a.code != 200 {
			t.Fatalf("bot's accept %d: %+v", i, a)
		}
	}
}

// crashDraws stops gateway g's part in shared draws as a crash would: no more polls, no
// messages, no claims; its held requests are let go (their clients would see the connection
// close).
func crashDraws(g *Gateway) {
	sd := g.active.Load().policy.draws.shared
	t := sd.t
	t.mu.Lock()
	for _, h := range sd.handles {
		h.done = true
		if h.timer != nil {
			h.timer.Stop()
		}
		for _, c := range h.cands {
			if c.state == candWaiting {
				c.state = candDone
				c.turn <- false
			}
		}
	}
	clear(sd.handles)
	t.mu.Unlock()
	sd.sync()
}

// TestSharedDrawReplicaGone: a gateway shut down mid-draw answers its candidates as the draw
// ends and the others get a winner; a gateway that crashes while its candidate's turn comes
// stalls the draw only for the claim lease, after which the others get a winner.
func TestSharedDrawReplicaGone(t *testing.T) {
	t.Run("shutdown", func(t *testing.T) {
		_, client := newRedisClient(t)
		w := newSharedDrawWorld(t, 3, client, fairPolicy("Random"))
		w.svc.status = func(_, _ string, try int) int { return map[bool]int{true: 500, false: 200}[try < 2] }
		var chs []<-chan answer
		for i := range 6 {
			chs = append(chs, w.hold(i%3, "o1", fmt.Sprint("d", i))...)
		}
		w.advance(time.Second)
		w.gws[1].SetDraining()
		// A draining gateway still takes part: its accepts join the offer's draw, rather than
		// reach the offer service before it.
		chs = append(chs, w.hold(1, "o1", "d6")...)
		w.advance(2 * time.Second)
		got := answers(t, chs) // every candidate of gateway 1 (d1, d4, d6) answered too
		if c := tallyAnswers(got); c["200 "] != 1 || c["500 "] != 2 || c["409 lost-draw"] != 4 {
			t.Errorf("answers %v", c)
		}
		if n := w.svc.mostInflight(); n != 1 {
			t.Errorf("%d tries at once", n)
		}
	})
	t.Run("crash", func(t *testing.T) {
		_, client := newRedisClient(t)
		w := newSharedDrawWorld(t, 3, client, fairPolicy("LeastRecentlyWon"))
		// Every driver but "first" won once, so that first (on gateway 1) has the first turn.
		for i, d := range []string{"a", "b", "c", "e"} {
			ch := w.hold(i%3, "warm"+d, d)
			w.advance(3 * time.Second)
			answers(t, ch)
		}
		chs := append(w.hold(0, "o1", "a"), w.hold(2, "o1", "b")...)
		w.hold(1, "o1", "first", "e") // answered by no one: gateway 1 crashes
		crashDraws(w.gws[1])
		w.advance(3 * time.Second) // the window closes: first's turn, on the gateway that is gone
		if n := len(w.svc.triesOf("o1")); n != 0 {
			t.Fatalf("%d tries before the claim lease lapsed", n)
		}
		w.advance(drawClaimTTL + drawPollEvery)
		got := answers(t, chs)
		if c := tallyAnswers(got); c["200 "] != 1 || c["409 lost-draw"] != 1 {
			t.Errorf("answers %v, want a winner among a and b", c)
		}
		if tries := w.svc.triesOf("o1"); len(tries) != 1 || tries[0] == "first" || tries[0] == "e" {
			t.Errorf("tries %v: the crashed gateway's candidates must be skipped", tries)
		}
	})
}

// TestSharedDrawDryRun: in DryRun the shared window decides the flags across gateways, and
// nothing is held.
func TestSharedDrawDryRun(t *testing.T) {
	_, client := newRedisClient(t)
	p := fairPolicy("Random")
	p.Mode = gatewayconfig.ModeDryRun
	w := newSharedDrawWorld(t, 3, client, p)
	for i, d := range []string{"a", "b", "c", "a"} {
		if a := answers(t, []<-chan answer{w.accept(context.Background(), i%3, d, "o1")})[0]; a.code == 0 {
			t.Fatal("no answer")
		}
	}
	flags := w.svc.flagsOf("o1")
	want := []string{"draw", "draw", "draw", "duplicate-accept"}
	if !slices.Equal(flags, want) {
		t.Errorf("flags %v, want %v", flags, want)
	}
	w.advance(3 * time.Second)
	answers(t, []<-chan answer{w.accept(context.Background(), 2, "z", "o1")})
	if f := w.svc.flagsOf("o1"); f[len(f)-1] != "" {
		t.Errorf("after the window: flag %q, want none", f[len(f)-1])
	}
}

// TestSharedDrawFallback: with Redis gone, a draw is held by each gateway on its own (the
// Local fallback): its accepts are still answered, by a draw of its own candidates.
func TestSharedDrawFallback(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	w := newSharedDrawWorld(t, 2, client, fairPolicy("Random"))
	chs := w.hold(0, "o1", "a", "b")
	srv.Stop()
	chs = append(chs, w.hold(1, "o1", "c", "d")...) // join fails: held in gateway 1's own draw
	w.advance(3 * time.Second)                      // gateway 0's close fails: its own draw too
	got := answers(t, chs)
	c := tallyAnswers(got)
	if c["200 "] < 1 || c["200 "]+c["410 "]+c["409 lost-draw"] != 4 {
		t.Errorf("answers %v", c)
	}
	if n := w.sharedErrors(); n == 0 {
		t.Error("no failed Redis call counted")
	}
	eventually(t, "draws to end", func() bool { return w.liveDraws() == 0 })
}

// TestSharedDrawLostMessage: a gateway that misses the message of its candidate's turn learns
// it by its poll (drawPollEvery, within the claim lease), and the draw goes on.
func TestSharedDrawLostMessage(t *testing.T) {
	_, client := newRedisClient(t)
	w := newSharedDrawWorld(t, 2, client, fairPolicy("Random"))
	w.svc.status = func(_, _ string, try int) int { return map[bool]int{true: 500, false: 200}[try == 0] }
	chs := map[string]<-chan answer{"a": w.hold(0, "o1", "a")[0], "b": w.hold(1, "o1", "b")[0]}
	// Both gateways stop hearing the channel: only their own calls and polls tell them.
	for _, g := range w.gws {
		sd := g.active.Load().policy.draws.shared
		sd.subMu.Lock()
		err := sd.ps.Unsubscribe(context.Background(), sd.channel)
		sd.subMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	w.advance(3 * time.Second) // the close: the first try fails, the turn passes unheard
	eventually(t, "the first try", func() bool { return len(w.svc.triesOf("o1")) == 1 })
	first, second := w.svc.triesOf("o1")[0], "a"
	if first == "a" {
		second = "b"
	}
	if a := answers(t, []<-chan answer{chs[first]})[0]; a.code != 500 {
		t.Fatalf("first try %s: %+v", first, a)
	}
	if n := len(w.svc.triesOf("o1")); n != 1 {
		t.Fatalf("%d tries before the poll: the turn was heard", n)
	}
	w.advance(drawPollEvery) // the other gateway's poll finds its turn
	if a := answers(t, []<-chan answer{chs[second]})[0]; a.code != 200 {
		t.Errorf("second try %s: %+v, want 200", second, a)
	}
	if e := w.sharedErrors(); e != 0 {
		t.Errorf("%d Redis calls failed", e)
	}
}

// TestSharedDrawRaceManyOffers: 300 drivers accept six offers at once over HTTP, through three
// gateways sharing Redis on the real clock (window 100ms, real timers, polls and pub/sub);
// the offer service fails each offer's first accept (503), gives 200 to the next and 410 once
// the offer is taken. Each offer gets exactly one 2xx, each driver exactly one answer.
// (Accepts that come after the window are forwarded as usual, so the offer service may see
// several at once: the tries of the draw are one at a time, TestSharedDrawFailingWinner.)
func TestSharedDrawRaceManyOffers(t *testing.T) {
	_, client := newRedisClient(t)
	p := fairPolicy("LeastRecentlyWon")
	p.Accept.Fairness.Window = dur("100ms")
	w := newSharedDrawWorld(t, 0, client, p)
	u, _ := url.Parse(w.svc.URL)
	var srvs []*httptest.Server
	for i := range 3 {
		g, err := New(Options{Upstream: u, PodLabels: map[string]string{"app": "offer-service"},
			SharedState: &SharedState{Client: client, Timeout: 5 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			g.seed = w.gws[0].seed
		}
		if err := g.Apply(configOf(p)); err != nil {
			t.Fatal(err)
		}
		w.gws = append(w.gws, g)
		srv := httptest.NewServer(g)
		t.Cleanup(srv.Close)
		srvs = append(srvs, srv)
	}
	w.svc.status = func(offer, _ string, try int) int {
		switch {
		case try == 0:
			return http.StatusServiceUnavailable
		case w.svc.taken[offer]: // the service's lock is held
			return http.StatusGone
		}
		return http.StatusOK
	}
	const n, offers = 300, 6
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer hc.CloseIdleConnections()
	var mu sync.Mutex
	got := map[string][]string{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := fmt.Sprint("o", i%offers)
			req, _ := http.NewRequest("POST", srvs[(i/offers)%3].URL+"/offers/"+o+"/accept", nil)
			req.Header.Set("X-Driver-Id", fmt.Sprint("d", i))
			resp, err := hc.Do(req)
			a := "error"
			if err == nil {
				resp.Body.Close()
				a = fmt.Sprint(resp.StatusCode, " ", resp.Header.Get(HeaderDecision))
			}
			mu.Lock()
			got[o] = append(got[o], a)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total := 0
	for o, as := range got {
		c := map[string]int{}
		for _, a := range as {
			c[a]++
		}
		total += len(as)
		if c["200 "] != 1 || c["503 "] != 1 || c["200 "]+c["503 "]+c["410 "]+c["409 "+DecisionLostDraw.String()] != len(as) {
			t.Errorf("%s: answers %v; want one 200, one 503, the rest 410 or 409 lost-draw", o, c)
		}
		w.svc.mu.Lock()
		if w.svc.wins[o] != 1 {
			t.Errorf("%s: %d 2xx from the offer service", o, w.svc.wins[o])
		}
		w.svc.mu.Unlock()
	}
	if total != n {
		t.Errorf("%d answers, want %d", total, n)
	}
	eventually(t, "draws to end", func() bool { return w.liveDraws() == 0 })
	if e := w.sharedErrors(); e != 0 {
		t.Errorf("%d Redis calls failed", e)
	}
}
