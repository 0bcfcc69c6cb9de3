package gateway

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Red team, round 3: ways a bot author (or a tenant) could get around the rules that issues
// 10, 11 and 15 added (shared state, config push, the bot-likeness score).

// TestRedteamDrawStalledBody: a bot joins an offer's fair draw with an accept whose headers
// announce a body it never sends (the offer id is in the path, so the gateway did not read
// the body before holding it). When its turn came the gateway forwarded it and the offer
// service waited for the body until --body-timeout: the draw stalled that long per such
// candidate, and honest drivers whose apps give up in the meantime left the draw, to the
// benefit of the bot's other, well-formed accepts. An accept a draw would hold must have its
// body in first: one that does not come within the body deadline makes the accept one without
// a readable offer id (unreadable-offer here), never a candidate.
func TestRedteamDrawStalledBody(t *testing.T) {
	h := newDrawHarness(t, fairPolicy("Random"), func(o *Options) { o.BodyTimeout = 200 * time.Millisecond })
	srv := httptest.NewServer(h.g)
	defer srv.Close()
	defer h.clock.Advance(time.Minute) // first: a held accept is answered, so Close returns

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte("POST /offers/o1/accept HTTP/1.1\r\nHost: offers\r\nX-Driver-Id: bot\r\nContent-Length: 100\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the stalled accept got no answer (held in the draw? %d candidates): %v", h.held("o1"), err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get(HeaderDecision) != "unreadable-offer" {
		t.Fatalf("stalled accept: %d %q, want 400 unreadable-offer", resp.StatusCode, resp.Header.Get(HeaderDecision))
	}
	if n := h.held("o1"); n != 0 {
		t.Fatalf("%d candidates after the stalled accept, want 0", n)
	}

	honest := h.hold("o1", "d1")
	h.advance(3 * time.Second)
	if a := answers(t, honest); a[0].code != 200 {
		t.Fatalf("honest driver: %d %q", a[0].code, a[0].decision)
	}
	if tries := h.svc.triesOf("o1"); len(tries) != 1 || tries[0] != "d1" {
		t.Fatalf("the offer service saw %q, want only d1", tries)
	}
}

// TestRedteamDrawLargeBody: the same with a body the gateway will not buffer (over 64 KiB):
// the rest of it could stall the turn as above, so such an accept is no candidate either;
// with requireShown it is unseen-offer, as an accept whose body-held id cannot be read.
// A small body is read before the draw and passed on whole.
func TestRedteamDrawLargeBody(t *testing.T) {
	h := newDrawHarness(t, fairPolicy("Random"))
	big := httptest.NewRequest("POST", "/offers/o1/accept", strings.NewReader(strings.Repeat("x", 70<<10)))
	big.Header.Set("X-Driver-Id", "bot")
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { h.g.ServeHTTP(w, big); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.advance(time.Minute) // answers the held accept, so the test ends
		<-done
		t.Fatalf("the large-body accept was held for the draw: %d %q", w.Code, w.Header().Get(HeaderDecision))
	}
	if w.Code != 400 || w.Header().Get(HeaderDecision) != "unreadable-offer" {
		t.Fatalf("large body: %d %q, want 400 unreadable-offer", w.Code, w.Header().Get(HeaderDecision))
	}

	small := make(chan int, 1)
	go func() {
		r := httptest.NewRequest("POST", "/offers/o1/accept", strings.NewReader(`{"note":"hi"}`))
		r.Header.Set("X-Driver-Id", "d1")
		w := httptest.NewRecorder()
		h.g.ServeHTTP(w, r)
		small <- w.Code
	}()
	eventually(t, "the small-body accept to be held", func() bool { return h.held("o1") == 1 })
	h.advance(3 * time.Second)
	if code := <-small; code != 200 {
		t.Fatalf("small body: %d, want 200", code)
	}
	if tries := h.svc.triesOf("o1"); len(tries) != 1 || tries[0] != "d1" {
		t.Fatalf("the offer service saw %q, want only d1", tries)
	}
}

// TestRedteamSharedShownFold: the shared hash of offer ids is keyed with a key every replica
// derives from the policy's namespace, name and identity header (hash.go): no secret, so a bot
// can compute any id's hash offline. The shared store remembered shown offers by a 32-bit fold
// of it, as the local ring does (where a per-process seed keeps anyone from aiming at a
// match). Against an offer service that takes variants of an id for the id (case, leading
// zeros), a bot could search for a variant of a fresh offer whose fold equals that of one of
// its 64 remembered offers (2³²/64 hashes: well under a second) and accept it at once,
// with requireShown and minReactionTime both satisfied by the old offer's showing. The shared
// store now keys shown offers by the whole 64-bit hash (2⁵⁸ hashes per try).
func TestRedteamSharedShownFold(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	w := newWorld(t, 1, &SharedState{Client: client, Timeout: 5 * time.Second}, configOf(standardPolicy()))
	g := w.gws[0]
	pol := g.active.Load().policy
	ss := pol.store.(*sharedStore)
	key := hashIdentity(g, "bot")
	shown := pol.ids.sumString("o1")
	ss.recordShown(driverRef{key: key}, []uint64{shown}, g.nowNS())
	w.clock.Advance(time.Minute) // past minReactionTime
	// Another offer whose 64-bit hash differs but whose 32-bit fold is the shown offer's.
	forged := shown ^ 0x0000_1234_0000_1234
	if foldID(forged) != foldID(shown) || forged == shown {
		t.Fatal("the forged hash does not collide on the fold")
	}
	if v, _ := ss.accept(pol, driverRef{key: key}, &pol.base, forged, true, g.nowNS()); v.decision != UnseenOffer {
		t.Fatalf("accept of an offer never shown whose fold matches a shown one: %v, want unseen-offer", v.decision)
	}
	if v, _ := ss.accept(pol, driverRef{key: key}, &pol.base, shown, true, g.nowNS()); v.decision != Allowed {
		t.Fatalf("accept of the shown offer: %v, want allowed", v.decision)
	}
}

// TestRedteamAlternatingGapsEvadeScore: a finding of round 3, fixed (docs/gateway.md, "Open
// findings (red team, round 3)"). The regularity signal was the coefficient of variation of
// the gaps, a measure of spread, not of predictability: a bot that alternated two fixed gaps,
// 2 s and 5.4 s (cv 0.46, above the human end 0.45), with the compliant bot's reactions at the
// floor, trying every offer and entering every draw, never scored above RecommendedBotScore.
// Regularity now also reads the gaps' predictability (each against the nearest of the three
// before it): that bot, a cycle of three gaps, the same cycles with a few ms of jitter, and a
// bot that picks each gap at random among a few fixed ones, all pass RecommendedBotScore within
// two minutes of activity, over 20 seeds each, as the compliant bot does.
func TestRedteamAlternatingGapsEvadeScore(t *testing.T) {
	cycling := func(name string, jitter int64, gaps ...int64) func() model {
		return func() model {
			m := compliantBot
			m.name = name
			n := 0
			m.gap = func(r *rand.Rand) int64 {
				n++
				g := gaps[n%len(gaps)]
				if jitter > 0 {
					g += r.Int64N(jitter)
				}
				return g
			}
			return m
		}
	}
	picking := func(name string, gaps ...int64) func() model {
		return func() model {
			m := compliantBot
			m.name = name
			m.gap = func(r *rand.Rand) int64 { return gaps[r.IntN(len(gaps))] }
			return m
		}
	}
	formed := minScoreGaps + 1 // polls: the score forms with the 32nd gap
	for _, tc := range []struct {
		bot func() model
		// within: the bot must pass the threshold within 2 minutes of activity, or, when its
		// 32 gaps take longer, after at most polls polls (formed: as soon as its score forms).
		polls int
	}{
		{cycling("alternating bot", 0, simInterval, simInterval*27/10), formed},
		{cycling("alternating bot, 10 ms jitter", 10*ms, simInterval, simInterval*27/10), formed},
		{cycling("cycle-of-3 bot", 0, simInterval, simInterval*27/10, simInterval*7/4), formed},
		{cycling("cycle-of-3 bot, 10 ms jitter", 10*ms, simInterval, simInterval*27/10, simInterval*7/4), formed},
		{cycling("cycle-of-3 bot, wide (2 s, 8 s, 4 s)", 0, simInterval, simInterval*4, simInterval*2), formed},
		{picking("bot picking among 2 s and 5.4 s", simInterval, simInterval*27/10), formed + 8},
		// A pick among three gaps matches one of the three before only most of the time.
		{picking("bot picking among 2 s, 3.5 s and 6 s", simInterval, simInterval*7/4, simInterval*3), 100},
	} {
		t.Run(tc.bot().name, func(t *testing.T) {
			slowest, most := time.Duration(0), 0
			for seed := uint64(1); seed <= 20; seed++ {
				m := tc.bot()
				sc, flagged, in := simulate(m, seed, 200, RecommendedBotScore)
				if flagged == 0 || (in > 2*time.Minute && flagged > tc.polls) {
					t.Errorf("seed %d: %s scored at most %.3f, flagged after %d polls (%s); want above %.2f within 2m or %d polls",
						seed, m.name, sc, flagged, in, RecommendedBotScore, tc.polls)
				}
				slowest, most = max(slowest, in), max(most, flagged)
			}
			t.Logf("flagged within %s, %d polls", slowest, most)
		})
	}
}

// TestRedteamBotScoreSharedState: with shared state a compliant bot's score forms as it does
// locally (the signals live in Redis since the red team found that they did not), so botScore
// is enforced: the offer service sees the score after 40 polls through one gateway.
func TestRedteamBotScoreSharedState(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	p := standardPolicy()
	p.BotScore = &gatewayconfig.BotScore{DrawWeighting: gatewayconfig.DrawWeightingNone, RefuseAbovePermille: 300}
	w := newWorld(t, 1, &SharedState{Client: client, Timeout: 5 * time.Second}, configOf(p))
	g := w.gws[0]
	for range 40 { // a compliant bot: more than the 32 gaps that form a score
		r := httptest.NewRequest("GET", "/offers", nil)
		r.Header.Set("X-Driver-Id", "bot")
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, r)
		if rec.Code != 200 {
			t.Fatalf("poll: %d %q", rec.Code, rec.Header().Get(HeaderDecision))
		}
		w.clock.Advance(2 * time.Second)
	}
	if sc := w.up.last().Header.Get(HeaderScore); sc == "" {
		t.Fatalf("no score formed with shared state after 40 polls; signals %q", w.up.last().Header.Get(HeaderSignals))
	}
}

// TestRedteamForgedScoreHeaders: a bot with a high score sends its own OfferFeed-Score and
// OfferFeed-Signals in every spelling it can think of (case, underscores, duplicates, HTTP/2's
// lower case is Go's canonical form too) and names them in Connection, so that the offer
// service would see its value, or none (a hop-by-hop drop of the gateway's own header would
// make it a driver without a score). Over a real connection, the offer service sees exactly
// the gateway's one value of each; a header name with a trailing space is refused by the
// server before the gateway.
func TestRedteamForgedScoreHeaders(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()))
	srv := httptest.NewServer(h.g)
	defer srv.Close()
	send := func(extra string) *http.Response {
		t.Helper()
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte("GET /offers HTTP/1.1\r\nHost: offers\r\nX-Driver-Id: bot\r\n" + extra + "\r\n")); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for range 40 { // a compliant bot: its score forms after 32 gaps
		if resp := send(""); resp.StatusCode != 200 {
			t.Fatalf("poll: %d", resp.StatusCode)
		}
		h.clock.Advance(2 * time.Second)
	}
	honest := h.up.last().Header
	if len(honest.Values(HeaderScore)) != 1 || honest.Get(HeaderScore) < "0.5" {
		t.Fatalf("the bot has no high score to hide: %q", honest.Values(HeaderScore))
	}
	want := honest.Get(HeaderScore)
	forged := "OfferFeed-Score: 0.001\r\noffERfeed-score: 0.002\r\nOFFERFEED-SIGNALS: cv=0.9\r\n" +
		"OfferFeed_Score: 0.003\r\nOfferfeed-Score: 0.004\r\nofferfeed-signals: ref=0\r\n" +
		"Connection: keep-alive, offerfeed-score, OfferFeed-Signals\r\nConnection: OFFERFEED-SCORE\r\n"
	if resp := send(forged); resp.StatusCode != 200 {
		t.Fatalf("forged poll: %d", resp.StatusCode)
	}
	got := h.up.last().Header
	if vs := got.Values(HeaderScore); len(vs) != 1 || vs[0] != want {
		t.Fatalf("the offer service saw OfferFeed-Score %q, want the gateway's %q", vs, want)
	}
	if vs := got.Values(HeaderSignals); len(vs) != 1 || strings.Contains(vs[0], "cv=0.9") || strings.HasPrefix(vs[0], "ref=0") {
		t.Fatalf("the offer service saw OfferFeed-Signals %q", vs)
	}
	for k := range got {
		if strings.Contains(strings.ToLower(k), "offerfeed_") {
			t.Fatalf("the offer service saw %q", k)
		}
	}
	h.clock.Advance(2 * time.Second)
	if resp := send("OfferFeed-Score : 0.001\r\n"); resp.StatusCode != 400 {
		t.Fatalf("a header name with a trailing space: %d, want 400 from the server", resp.StatusCode)
	}
}

// TestRedteamSharedDrawSpellings: with draws across replicas, a bot sends its accept for one
// offer through each replica under another spelling of its identity ("t1", "T1", " t1, t1"),
// hoping that replicas fold identities differently and give it three places. Every replica
// names drivers with the same shared hash of the folded identity: one place, the others
// duplicate-accept.
func TestRedteamSharedDrawSpellings(t *testing.T) {
	_, client := newRedisClient(t)
	w := newSharedDrawWorld(t, 3, client, fairPolicy("Random"))
	chs := w.hold(0, "o1", "t1")
	for i, v := range []string{"T1", " t1, t1"} {
		a := answers(t, []<-chan answer{w.accept(context.Background(), i+1, v, "o1")})[0]
		if a.code != http.StatusConflict || a.decision != DecisionDuplicateAccept.String() {
			t.Errorf("%q through gateway %d: %d %q, want 409 duplicate-accept", v, i+1, a.code, a.decision)
		}
	}
	if n := w.held("o1"); n != 1 {
		t.Fatalf("%d places in the draw, want 1", n)
	}
	w.advance(3 * time.Second)
	if a := answers(t, chs); a[0].code != 200 {
		t.Fatalf("the one place: %d %q", a[0].code, a[0].decision)
	}
}

// TestRedteamSharedLongFeedCost: a bot that can ask the offer service for long pages (a
// page-size query parameter) made Redis scan the driver's shown hash once per offer beyond
// the 64 it keeps: a 3,000-offer answer cost 51 ms of Redis script time (272 µs a call of 16
// offers), so a few such polls a second from made-up identities take Redis's one thread from
// every replica's decisions, into their timeouts and the fallback. The hash is now read once
// per call: 15.5 ms (83 µs a call; BENCHMARKS.md), with the same result: the newest 64 remain.
func TestRedteamSharedLongFeedCost(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	p := standardPolicy()
	p.Accept.MaxAccepts, p.Accept.Window = 0, 0 // every check but the quota
	w := newWorld(t, 1, &SharedState{Client: client, Timeout: 5 * time.Second}, configOf(p))
	g := w.gws[0]
	pol := g.active.Load().policy
	ss := pol.store.(*sharedStore)
	key := hashIdentity(g, "bot")
	ids := make([]uint64, 100)
	for i := range ids {
		ids[i] = pol.ids.sumString(fmt.Sprintf("o%d", i))
	}
	ctx := context.Background()
	if err := client.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ids); i += 16 {
		ss.recordShown(driverRef{key: key}, ids[i:min(i+16, len(ids))], g.nowNS())
		w.clock.Advance(time.Millisecond)
	}
	stats, err := client.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	hgetall := 0
	for _, l := range strings.Split(stats, "\n") {
		if rest, ok := strings.CutPrefix(l, "cmdstat_hgetall:calls="); ok {
			hgetall, _ = strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
		}
	}
	// 7 calls of 16 (the last of 4); the hash passes 64 from the 5th call on: 3 reads.
	if hgetall > 3 {
		t.Fatalf("%d HGETALL for 100 offers in 7 calls, want at most one a call", hgetall)
	}
	if ss.errors.Load() != 0 {
		t.Fatalf("%d failed calls", ss.errors.Load())
	}
	w.clock.Advance(time.Minute) // past minReactionTime
	for i, id := range ids {
		want := Allowed
		if i < len(ids)-maxShown {
			want = UnseenOffer
		}
		if v, _ := ss.accept(pol, driverRef{key: key}, &pol.base, id, true, g.nowNS()); v.decision != want {
			t.Fatalf("offer %d of 100: %v, want %v", i, v.decision, want)
		}
	}
}

// TestRedteamSharedDrawUnderDocumentedACL: the ACL that docs/gateway.md recommends for the
// gateways' user (gatewayACL) named keys only. Redis 7 gives a new user no pub/sub channels
// (acl-pubsub-default resetchannels), so the draw script's PUBLISH on the policy's channel
// failed with NOPERM: every shared draw call failed and fell back to per-replica draws, where
// a bot that sends its accept to every replica enters every replica's draw. The ACL now grants
// offerfeed's channels too (&of:*), and a draw across replicas works under it: one place per
// driver, no failed call.
func TestRedteamSharedDrawUnderDocumentedACL(t *testing.T) {
	const user, pass = "offerfeed-gw", "s3cret-Pa55word-for-the-test"
	srv := aclServer(t, user, pass)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: user, Password: pass, ContextTimeoutEnabled: true, PoolSize: 64})
	t.Cleanup(func() { client.Close() })
	w := newSharedDrawWorld(t, 3, client, fairPolicy("Random"))
	chs := w.hold(0, "o1", "bot")
	for i := 1; i < 3; i++ {
		a := answers(t, []<-chan answer{w.accept(context.Background(), i, "bot", "o1")})[0]
		if a.code != http.StatusConflict || a.decision != DecisionDuplicateAccept.String() {
			t.Errorf("bot's accept through gateway %d: %d %q, want 409 duplicate-accept", i, a.code, a.decision)
		}
	}
	chs = append(chs, w.hold(1, "o1", "p1")...)
	w.advance(3 * time.Second)
	got := tallyAnswers(answers(t, chs))
	if got["200 "] != 1 || got["409 lost-draw"] != 1 {
		t.Errorf("answers %v, want one 200 and one lost-draw", got)
	}
	if n := w.sharedErrors(); n != 0 {
		t.Errorf("%d shared-state calls failed under the documented ACL", n)
	}
}

// TestRedteamSharedLastWinLife: under LeastRecentlyWon, drivers who never won are tried before
// every driver who did. In Redis a driver's last win lived in its driver hash, whose TTL was
// the accept window plus a minute: a bot that won, paused for that long (polls keep the hash
// alive, so it stops polling) and came back counted as never won again, ahead of every driver
// who won and kept polling. A win now keeps the driver hash for sharedWinLife.
func TestRedteamSharedLastWinLife(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	p := fairPolicy("LeastRecentlyWon")
	w := newWorld(t, 1, &SharedState{Client: client, Timeout: 5 * time.Second}, configOf(p))
	g := w.gws[0]
	pol := g.active.Load().policy
	ss := pol.store.(*sharedStore)
	key := hashIdentity(g, "bot")
	v, ref := ss.accept(pol, driverRef{key: key}, &pol.base, pol.ids.sumString("o1"), true, g.nowNS())
	if v.decision != Allowed || !v.slot {
		t.Fatalf("accept: %+v", v)
	}
	ss.settle(ref, true, true, true, g.nowNS())
	kd, _, _, _ := ss.keys(key)
	ttl, err := client.PTTL(context.Background(), kd).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl < sharedWinLife-time.Minute {
		t.Fatalf("the driver hash holding the last win lives %s, want about %s (the window is %s)", ttl, sharedWinLife, p.Accept.Window.D())
	}
	if w, err := client.HGet(context.Background(), kd, "w").Int64(); err != nil || w == 0 {
		t.Fatalf("no last win recorded: %d, %v", w, err)
	}
}

// TestDocumentedACLIsTested: the ACL docs/gateway.md tells people to give the gateways' user is
// the one the tests run the gateways under (gatewayACL), so that a missing grant shows here.
func TestDocumentedACLIsTested(t *testing.T) {
	doc, err := os.ReadFile("../../docs/gateway.md")
	if err != nil {
		t.Fatal(err)
	}
	want := "`ACL SETUSER offerfeed-gateway on >PASSWORD " + strings.Join(gatewayACL, " ") + "`"
	if !strings.Contains(string(doc), want) {
		t.Fatalf("docs/gateway.md does not recommend the tested ACL %s", want)
	}
}
