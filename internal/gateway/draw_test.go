package gateway

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// offerService is an offer service for draws: an accept for an offer is answered by status
// (nil: 200 for the first accept of the offer, 410 once it is taken). It records the drivers
// whose accepts it saw, per offer, and the most accepts of one offer it was working on at
// once: an accept counts as in flight for offerServiceWork before it is answered, so that a
// second try of the same offer forwarded before the first one's answer is seen.
type offerService struct {
	*httptest.Server
	mu          sync.Mutex
	status      func(offer, driver string, try int) int
	taken       map[string]bool
	wins        map[string]int
	tries       map[string][]string
	flags       map[string][]string
	inflight    map[string]int
	maxInflight int
}

func newOfferService(t testing.TB) *offerService {
	s := &offerService{taken: map[string]bool{}, wins: map[string]int{}, tries: map[string][]string{},
		flags: map[string][]string{}, inflight: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		offer, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/offers/"), "/accept")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		driver := r.Header.Get("X-Driver-Id")
		s.mu.Lock()
		s.inflight[offer]++
		s.maxInflight = max(s.maxInflight, s.inflight[offer])
		s.tries[offer] = append(s.tries[offer], driver)
		s.flags[offer] = append(s.flags[offer], r.Header.Get(HeaderFlag))
		code := http.StatusGone
		if s.status != nil {
			code = s.status(offer, driver, len(s.tries[offer])-1)
		} else if !s.taken[offer] {
			code = http.StatusOK
		}
		if code >= 200 && code < 300 {
			s.taken[offer] = true
			s.wins[offer]++
		}
		s.mu.Unlock()
		time.Sleep(offerServiceWork) // in flight: a concurrent try of this offer would show now
		s.mu.Lock()
		s.inflight[offer]--
		s.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(s.Close)
	return s
}

// offerServiceWork is how long the offer service works on an accept before it answers.
const offerServiceWork = 20 * time.Millisecond

// mostInflight is the most accepts of one offer the offer service worked on at once.
func (s *offerService) mostInflight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInflight
}

func (s *offerService) triesOf(offer string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tries[offer])
}

func (s *offerService) flagsOf(offer string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.flags[offer])
}

// fairPolicy is the standard policy with a fair draw, without the shown-offer checks (so that
// accepts need no feed poll first).
func fairPolicy(award gatewayconfig.Award) gatewayconfig.Policy {
	p := standardPolicy()
	p.Accept.RequireShown, p.Accept.MinReactionTime = false, 0
	p.Accept.Fairness = &gatewayconfig.Fairness{Window: dur("3s"), Award: award}
	return p
}

const testDrawSeed = 42

type drawHarness struct {
	t     testing.TB
	clock *fakeClock
	svc   *offerService
	g     *Gateway
}

func newDrawHarness(t testing.TB, p gatewayconfig.Policy, mod ...func(*Options)) *drawHarness {
	t.Helper()
	h := &drawHarness{t: t, clock: newFakeClock(), svc: newOfferService(t)}
	u, _ := url.Parse(h.svc.URL)
	opts := Options{Upstream: u, Clock: h.clock, DrawSeed: testDrawSeed,
		PodLabels: map[string]string{"app": "offer-service"}}
	for _, m := range mod {
		m(&opts)
	}
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Apply(configOf(p)); err != nil {
		t.Fatal(err)
	}
	h.g = g
	return h
}

type answer struct {
	code      int
	decision  string
	driver    string
	rateLimit string
}

// accept sends an accept of driver for offer in a goroutine of its own; its answer comes on
// the channel.
func (h *drawHarness) accept(ctx context.Context, driver, offer string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		r := httptest.NewRequest("POST", "/offers/"+offer+"/accept", nil).WithContext(ctx)
		r.Header.Set("X-Driver-Id", driver)
		w := httptest.NewRecorder()
		h.g.ServeHTTP(w, r)
		ch <- answer{w.Code, w.Header().Get(HeaderDecision), driver, w.Header().Get("RateLimit") + w.Header().Get("Retry-After")}
	}()
	return ch
}

// advance moves the clock by d and waits until the draw windows whose timers fired have
// closed (their draws started).
func (h *drawHarness) advance(d time.Duration) {
	h.clock.Advance(d)
	if p := h.g.active.Load().policy; p != nil && p.draws != nil {
		p.draws.closing.Wait()
	}
}

// held is the number of candidates that joined the open draw of offer.
func (h *drawHarness) held(offer string) int { return h.g.HeldAccepts(offer) }

// hold sends the accepts of drivers for offer one after the other, each once the previous one
// is held (so that they arrive in this order).
func (h *drawHarness) hold(offer string, drivers ...string) []<-chan answer {
	h.t.Helper()
	var chs []<-chan answer
	n := h.held(offer)
	for _, d := range drivers {
		chs = append(chs, h.accept(context.Background(), d, offer))
		n++
		eventually(h.t, fmt.Sprintf("%s to be held for %s", d, offer), func() bool { return h.held(offer) == n })
	}
	return chs
}

// answers waits for the answers (a test deadlock shows as the eventually timeout).
func answers(t testing.TB, chs []<-chan answer) []answer {
	t.Helper()
	var out []answer
	for _, ch := range chs {
		select {
		case a := <-ch:
			out = append(out, a)
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer after %d of %d", len(out), len(chs))
		}
	}
	return out
}

// notAnswered checks that none of chs has an answer now.
func notAnswered(t testing.TB, chs ...<-chan answer) {
	t.Helper()
	for i, ch := range chs {
		select {
		case a := <-ch:
			t.Fatalf("accept %d answered %d %q while it should be held", i, a.code, a.decision)
		default:
		}
	}
}

// seededOrder is the Random award order of n candidates of the first draw of a policy, for
// the gateway's DrawSeed: what the draw's shuffle gives.
func seededOrder(n int) []int {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], testDrawSeed)
	rng := rand.New(rand.NewChaCha8(seed))
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	rng.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	return idx
}

func drawMetric(name string, labels ...string) string {
	return name + "{" + strings.Join(labels, ",") + "}"
}

// TestDrawWindow: the first accept opens the window and is held with the others until it
// closes; an accept after the window is forwarded at once.
func TestDrawWindow(t *testing.T) {
	cases := []struct {
		desc    string
		joins   []time.Duration // when each accept comes, after the first
		closeAt time.Duration   // when the window closes after the last join
		held    int             // accepts held in the draw
	}{
		{"one accept, held for the whole window", []time.Duration{0}, 3 * time.Second, 1},
		{"three accepts within the window", []time.Duration{0, time.Second, 1999 * time.Millisecond}, 1001 * time.Millisecond, 3},
		{"an accept at the last nanosecond of the window joins", []time.Duration{0, 3*time.Second - 1}, 1, 2},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			h := newDrawHarness(t, fairPolicy("Random"))
			var chs []<-chan answer
			at := time.Duration(0)
			for i, j := range c.joins {
				h.advance(j - at)
				at = j
				chs = append(chs, h.hold("o1", fmt.Sprint("d", i))...)
			}
			if n := len(h.svc.triesOf("o1")); n != 0 {
				t.Fatalf("%d accepts reached the offer service while the window is open", n)
			}
			h.advance(c.closeAt - 1)
			if h.held("o1") != c.held {
				t.Fatalf("held %d, want %d", h.held("o1"), c.held)
			}
			notAnswered(t, chs...)
			h.advance(1)
			got := answers(t, chs)
			won := 0
			for _, a := range got {
				switch {
				case a.code == 200:
					won++
				case a.code != 409 || a.decision != DecisionLostDraw.String():
					t.Errorf("%s: %d %q", a.driver, a.code, a.decision)
				}
			}
			if won != 1 || len(h.svc.triesOf("o1")) != 1 {
				t.Errorf("%d won, %d tried; want one of each", won, len(h.svc.triesOf("o1")))
			}
			// After the window: forwarded at once (and the offer is gone).
			h.advance(time.Millisecond)
			late := answers(t, []<-chan answer{h.accept(context.Background(), "late", "o1")})[0]
			if late.code != http.StatusGone || late.decision != "" {
				t.Errorf("late accept: %d %q, want the offer service's 410", late.code, late.decision)
			}
			if !hasMetric(t, h.g, drawMetric("offerfeed_gateway_draw_accepts_total", `policy="standard"`, `result="window-closed"`)+" 1") {
				t.Error("late accept not counted as window-closed")
			}
			if !hasMetric(t, h.g, drawMetric("offerfeed_gateway_draws_total", `award="Random"`, `outcome="won"`, `policy="standard"`)+" 1") ||
				!hasMetric(t, h.g, `offerfeed_gateway_draws_opened_total{policy="standard"} 1`) ||
				!hasMetric(t, h.g, fmt.Sprintf(`offerfeed_gateway_draw_candidates_sum{policy="standard"} %d`, c.held)) {
				t.Error(metricText(t, h.g))
			}
		})
	}
}

// TestDrawAwardOrder: Random tries the candidates in the seeded order; LeastRecentlyWon puts
// the drivers who never won first, then the oldest win.
func TestDrawAwardOrder(t *testing.T) {
	fail := func(string, string, int) int { return http.StatusInternalServerError }
	t.Run("Random", func(t *testing.T) {
		h := newDrawHarness(t, fairPolicy("Random"))
		h.svc.status = fail
		drivers := []string{"d0", "d1", "d2", "d3", "d4", "d5"}
		chs := h.hold("o1", drivers...)
		h.advance(3 * time.Second)
		answers(t, chs)
		var want []string
		for _, i := range seededOrder(len(drivers)) {
			want = append(want, drivers[i])
		}
		if got := h.svc.triesOf("o1"); !slices.Equal(got, want) {
			t.Errorf("tried %v, want the seeded order %v", got, want)
		}
	})
	t.Run("LeastRecentlyWon", func(t *testing.T) {
		h := newDrawHarness(t, fairPolicy("LeastRecentlyWon"))
		// "old" wins o1 in a draw; "recent" wins o2 a minute later outside a draw (after its
		// window closed).
		ch := h.hold("o1", "old")
		h.advance(3 * time.Second)
		answers(t, ch)
		h.advance(time.Minute)
		h.svc.status = func(offer, driver string, _ int) int {
			if driver == "recent" {
				return 200
			}
			return 410
		}
		ch = h.hold("o2", "x")
		h.advance(3 * time.Second)
		answers(t, ch)
		if a := answers(t, []<-chan answer{h.accept(context.Background(), "recent", "o2")})[0]; a.code != 200 {
			t.Fatalf("recent: %d", a.code)
		}
		h.advance(time.Minute)
		h.svc.status = fail
		chs := h.hold("o3", "recent", "old", "new1", "new2")
		h.advance(3 * time.Second)
		answers(t, chs)
		got := h.svc.triesOf("o3")
		if len(got) != 4 || !(got[0] == "new1" || got[0] == "new2") || !(got[1] == "new1" || got[1] == "new2") ||
			got[2] != "old" || got[3] != "recent" {
			t.Errorf("tried %v, want new1 and new2 (never won, in random order), old, recent", got)
		}
	})
}

// TestDrawTries: a failing first candidate passes the turn; when all fail each gets the
// offer service's answer; never two tries at once.
func TestDrawTries(t *testing.T) {
	cases := []struct {
		desc   string
		status func(offer, driver string, try int) int
		want   map[int]int // answers: code → how many
		result string      // a draw_accepts_total result that must be counted ...
		n      int         // ... this many times
		out    string      // the draw's outcome
	}{
		{"first try 410, second wins", func(_, _ string, try int) int {
			return map[bool]int{true: 410, false: 200}[try == 0]
		}, map[int]int{410: 1, 200: 1, 409: 3}, "failed", 1, "won"},
		{"first two 500, third wins", func(_, _ string, try int) int {
			return map[bool]int{true: 500, false: 200}[try < 2]
		}, map[int]int{500: 2, 200: 1, 409: 2}, "lost", 2, "won"},
		{"all fail: each gets the service's answer", func(_, _ string, try int) int { return 503 },
			map[int]int{503: 5}, "failed", 5, "unwon"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			h := newDrawHarness(t, fairPolicy("Random"))
			h.svc.status = c.status
			chs := h.hold("o1", "a", "b", "c", "d", "e")
			h.advance(3 * time.Second)
			got := map[int]int{}
			for _, a := range answers(t, chs) {
				got[a.code]++
				if a.code == 409 && a.decision != DecisionLostDraw.String() || a.code != 409 && a.decision != "" || a.rateLimit != "" {
					t.Errorf("%d with decision %q", a.code, a.decision)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("answers %v, want %v", got, c.want)
			}
			if n := h.svc.mostInflight(); n != 1 {
				t.Errorf("%d accepts of one draw at the offer service at once", n)
			}
			if !hasMetric(t, h.g, drawMetric("offerfeed_gateway_draw_accepts_total", `policy="standard"`, `result="`+c.result+`"`)+fmt.Sprint(" ", c.n)) ||
				!hasMetric(t, h.g, drawMetric("offerfeed_gateway_draws_total", `award="Random"`, `outcome="`+c.out+`"`, `policy="standard"`)+" 1") {
				t.Error(metricText(t, h.g))
			}
			if h.g.active.Load().policy.draws.live.Load() != 0 {
				t.Error("draw still live")
			}
		})
	}
}

// TestDrawCandidateLeaves: a client that gives up before the window closes leaves the draw:
// it is never tried, and its slot is free.
func TestDrawCandidateLeaves(t *testing.T) {
	h := newDrawHarness(t, fairPolicy("Random"))
	h.svc.status = func(string, string, int) int { return 500 }
	ctx, cancel := context.WithCancel(context.Background())
	quitter := h.accept(ctx, "quitter", "o1")
	eventually(t, "quitter held", func() bool { return h.held("o1") == 1 })
	chs := h.hold("o1", "a", "b")
	cancel()
	<-quitter
	eventually(t, "quitter to leave", func() bool {
		return hasMetric(t, h.g, drawMetric("offerfeed_gateway_draw_accepts_total", `policy="standard"`, `result="left"`)+" 1")
	})
	h.advance(3 * time.Second)
	for _, a := range answers(t, chs) {
		if a.code != 500 {
			t.Errorf("%s: %d, want the service's 500", a.driver, a.code)
		}
	}
	if got := h.svc.triesOf("o1"); len(got) != 2 || slices.Contains(got, "quitter") {
		t.Errorf("tried %v", got)
	}
	// The quitter's slot was freed: three accepts of it are held at once (maxAccepts 3).
	var more []<-chan answer
	for _, o := range []string{"o2", "o3", "o4"} {
		more = append(more, h.hold(o, "quitter")...)
	}
	h.svc.status = nil
	h.advance(3 * time.Second)
	for _, a := range answers(t, more) {
		if a.code != 200 {
			t.Errorf("quitter's later accept: %d %q", a.code, a.decision)
		}
	}
}

// TestDrawSlots: a held accept holds its maxAccepts slot; a lost draw frees it.
func TestDrawSlots(t *testing.T) {
	p := fairPolicy("Random")
	p.Accept.MaxAccepts = 1
	h := newDrawHarness(t, p)
	// d1 never gets the offer: tried, it gets 410; otherwise it loses the draw.
	h.svc.status = func(_, driver string, _ int) int { return map[bool]int{true: 410, false: 200}[driver == "d1"] }
	lost := 0
	for i := 0; i < 4; i++ {
		offer := fmt.Sprint("o", i)
		chs := h.hold(offer, "d1")
		// While d1 is held its slot is taken: another accept is throttled.
		a := answers(t, []<-chan answer{h.accept(context.Background(), "d1", "other")})[0]
		if a.code != 429 || a.decision != "accept-throttled" {
			t.Fatalf("second accept while held: %d %q, want 429 accept-throttled", a.code, a.decision)
		}
		chs = append(chs, h.hold(offer, fmt.Sprint("w", i))...)
		h.advance(3 * time.Second)
		for _, a := range answers(t, chs) {
			switch {
			case a.driver != "d1":
			case a.code == 409:
				lost++
			case a.code != 410:
				t.Fatalf("d1: %d %q", a.code, a.decision)
			}
		}
	}
	if lost == 0 {
		t.Fatal("d1 never lost a draw with this seed: the test proves nothing")
	}
	// d1's slot is free: it wins the next offer.
	h.svc.status = nil
	chs := h.hold("mine", "d1")
	h.advance(3 * time.Second)
	if a := answers(t, chs)[0]; a.code != 200 {
		t.Fatalf("d1 after lost draws: %d %q, want 200", a.code, a.decision)
	}
}

// TestDrawShutdown: draining answers every held accept at once; later accepts are forwarded
// as usual.
func TestDrawShutdown(t *testing.T) {
	h := newDrawHarness(t, fairPolicy("LeastRecentlyWon"))
	var chs []<-chan answer
	for _, o := range []string{"o1", "o2", "o3"} {
		chs = append(chs, h.hold(o, "a", "b", "c")...)
	}
	h.g.SetDraining()
	got := answers(t, chs) // the clock did not move
	codes := map[int]int{}
	for _, a := range got {
		codes[a.code]++
	}
	if codes[200] != 3 || codes[409] != 6 {
		t.Errorf("answers %v, want three 200 and six 409", codes)
	}
	if a := answers(t, []<-chan answer{h.accept(context.Background(), "z", "o9")})[0]; a.code != 200 {
		t.Errorf("accept while draining: %d", a.code)
	}
	if !hasMetric(t, h.g, drawMetric("offerfeed_gateway_draw_accepts_total", `policy="standard"`, `result="stopped"`)+" 1") {
		t.Error(metricText(t, h.g))
	}
	// A config applied while draining makes no draws either.
	p := fairPolicy("Random")
	if err := h.g.Apply(configOf(p)); err != nil {
		t.Fatal(err)
	}
	if a := answers(t, []<-chan answer{h.accept(context.Background(), "z", "o10")})[0]; a.code != 200 {
		t.Errorf("accept while draining, new policy: %d", a.code)
	}
}

// TestDrawReload: a reload that keeps the policy keeps its open draws; one that changes it
// runs them at once.
func TestDrawReload(t *testing.T) {
	p := fairPolicy("Random")
	h := newDrawHarness(t, p)
	if d := h.g.Status().Detail; !strings.Contains(d, "fair draws: window 3s, award Random") {
		t.Errorf("detail %q", d)
	}
	chs := h.hold("o1", "a", "b")
	h.advance(time.Second)
	if err := h.g.Apply(configOf(p)); err != nil { // the same policy
		t.Fatal(err)
	}
	chs = append(chs, h.hold("o1", "c")...) // joins the same draw
	notAnswered(t, chs...)
	h.advance(2 * time.Second)
	if got := answers(t, chs); len(got) != 3 || len(h.svc.triesOf("o1")) != 1 {
		t.Fatalf("kept draw: %v, tried %v", got, h.svc.triesOf("o1"))
	}

	chs = h.hold("o2", "a", "b")
	p.Accept.Fairness.Window = dur("5s") // another policy hash
	if err := h.g.Apply(configOf(p)); err != nil {
		t.Fatal(err)
	}
	codes := map[int]int{}
	for _, a := range answers(t, chs) { // the clock did not move
		codes[a.code]++
	}
	if codes[200] != 1 || codes[409] != 1 {
		t.Errorf("changed policy: %v", codes)
	}
	// The new policy draws with its own window.
	chs = h.hold("o3", "a")
	h.advance(3 * time.Second)
	notAnswered(t, chs...)
	h.advance(2 * time.Second)
	answers(t, chs)

	// A config without the policy runs its draws too.
	chs = h.hold("o4", "a")
	if err := h.g.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if a := answers(t, chs)[0]; a.code != 200 {
		t.Errorf("policy gone: %d", a.code)
	}
}

// TestDrawDryRun: nothing is held; the accepts that would have been are flagged "draw", and
// the draw is counted when its window closes.
func TestDrawDryRun(t *testing.T) {
	p := fairPolicy("Random")
	p.Mode = gatewayconfig.ModeDryRun
	h := newDrawHarness(t, p)
	var got []answer
	for i := 0; i < 4; i++ {
		got = append(got, answers(t, []<-chan answer{h.accept(context.Background(), fmt.Sprint("d", i), "o1")})...)
		h.advance(500 * time.Millisecond)
	}
	if got[0].code != 200 || got[1].code != 410 || got[1].decision != "" {
		t.Errorf("answers %v: want first come, first served", got)
	}
	if f := h.svc.flagsOf("o1"); !slices.Equal(f, []string{"draw", "draw", "draw", "draw"}) {
		t.Errorf("flags %q", f)
	}
	h.advance(time.Second) // 3s after the first: the window closes
	answers(t, []<-chan answer{h.accept(context.Background(), "late", "o1")})
	if f := h.svc.flagsOf("o1"); f[4] != "" {
		t.Errorf("late accept flagged %q", f[4])
	}
	// The seeded order's first of 4: the first to come, or another.
	out := "dry-run-reordered"
	if seededOrder(4)[0] == 0 {
		out = "dry-run-first-came"
	}
	if !hasMetric(t, h.g, drawMetric("offerfeed_gateway_draws_total", `award="Random"`, `outcome="`+out+`"`, `policy="standard"`)+" 1") ||
		!hasMetric(t, h.g, drawMetric("offerfeed_gateway_draw_accepts_total", `policy="standard"`, `result="dry-run"`)+" 4") {
		t.Error(metricText(t, h.g))
	}
	// A duplicate is flagged with what Enforce would have answered.
	h.accept(context.Background(), "x", "o5")
	answers(t, []<-chan answer{h.accept(context.Background(), "x", "o5")})
	eventually(t, "both accepts of x", func() bool { return len(h.svc.flagsOf("o5")) == 2 })
	if f := h.svc.flagsOf("o5"); !slices.Contains(f, DecisionDuplicateAccept.String()) {
		t.Errorf("duplicate flagged %q", f)
	}
}

// TestDrawBounds: beyond MaxDraws an accept is forwarded as usual; beyond MaxDrawCandidates
// it is answered lost-draw at once; a driver has one place in a draw.
func TestDrawBounds(t *testing.T) {
	h := newDrawHarness(t, fairPolicy("Random"), func(o *Options) { o.MaxDraws, o.MaxDrawCandidates = 2, 3 })
	chs := h.hold("o1", "a", "b", "c")
	chs = append(chs, h.hold("o2", "x")...)
	// A third draw: forwarded as usual.
	if a := answers(t, []<-chan answer{h.accept(context.Background(), "y", "o3")})[0]; a.code != 200 || a.decision != "" {
		t.Errorf("over MaxDraws: %d %q, want forwarded", a.code, a.decision)
	}
	// A fourth candidate: lost-draw at once.
	if a := answers(t, []<-chan answer{h.accept(context.Background(), "d", "o1")})[0]; a.code != 409 || a.decision != DecisionLostDraw.String() {
		t.Errorf("over MaxDrawCandidates: %d %q", a.code, a.decision)
	}
	// A second accept of a candidate: duplicate.
	if a := answers(t, []<-chan answer{h.accept(context.Background(), "x", "o2")})[0]; a.code != 409 || a.decision != DecisionDuplicateAccept.String() {
		t.Errorf("duplicate: %d %q", a.code, a.decision)
	}
	for r, n := range map[string]int{"max-draws": 1, "full": 1, "duplicate": 1} {
		if !hasMetric(t, h.g, drawMetric("offerfeed_gateway_draw_accepts_total", `policy="standard"`, `result="`+r+`"`)+fmt.Sprint(" ", n)) {
			t.Errorf("%s not counted", r)
		}
	}
	if !hasMetric(t, h.g, "offerfeed_gateway_draws_live 2") {
		t.Error("live draws")
	}
	h.advance(3 * time.Second)
	answers(t, chs)
	if !hasMetric(t, h.g, "offerfeed_gateway_draws_live 0") {
		t.Error("live draws after")
	}
	// Closed windows are remembered for drawMemory, then forgotten.
	h.advance(drawMemory)
	chs = h.hold("o1", "e")
	h.advance(3 * time.Second)
	answers(t, chs)
}

// TestDrawUnreadableOfferID: with the offer id in the body, an accept whose id cannot be read
// cannot be drawn; it is refused (unreadable-offer) rather than forwarded at once, which would
// let a bot skip the draw with a body only the offer service can read. DryRun flags it.
func TestDrawUnreadableOfferID(t *testing.T) {
	for _, mode := range []gatewayconfig.Mode{gatewayconfig.ModeEnforce, gatewayconfig.ModeDryRun} {
		p := flexPolicy()
		p.Mode = mode
		p.Accept.RequireShown, p.Accept.MinReactionTime = false, 0
		p.Accept.Fairness = &gatewayconfig.Fairness{Window: dur("3s"), Award: "Random"}
		h := newDrawHarness(t, p)
		r := httptest.NewRequest("POST", "/AcceptOffer", strings.NewReader(`{"offerId":"A1","OFFERID":"B2"}`))
		r.Header.Set("X-Amz-Access-Token", "t1")
		w := httptest.NewRecorder()
		h.g.ServeHTTP(w, r)
		want, decision := 400, "unreadable-offer"
		if mode == gatewayconfig.ModeDryRun {
			want, decision = 404, "" // the test service does not know /AcceptOffer: it was forwarded
		}
		if w.Code != want || w.Header().Get(HeaderDecision) != decision {
			t.Errorf("%s: %d %q, want %d %q", mode, w.Code, w.Header().Get(HeaderDecision), want, decision)
		}
		if !hasMetric(t, h.g, `offerfeed_gateway_decisions_total{decision="unreadable-offer",policy="flex",route="accept"} 1`) {
			t.Errorf("%s: not counted", mode)
		}
	}
}

// TestDrawOrderUniform: over 6,000 Random draws of three candidates (fixed seed), each of the
// six orders comes about equally often; LeastRecentlyWon sorts by last win, never-won first,
// and breaks ties both ways.
func TestDrawOrderUniform(t *testing.T) {
	h := newDrawHarness(t, fairPolicy("Random"))
	tb := h.g.active.Load().policy.draws
	cands := []*candidate{{key: 0}, {key: 1}, {key: 2}}
	counts := map[string]int{}
	tb.mu.Lock()
	for i := 0; i < 6000; i++ {
		var k string
		for _, c := range tb.orderLocked(cands) {
			k += fmt.Sprint(c.key)
		}
		counts[k]++
	}
	tb.mu.Unlock()
	for _, k := range []string{"012", "021", "102", "120", "201", "210"} {
		if counts[k] < 850 || counts[k] > 1150 { // 1000 ± 4.9σ
			t.Errorf("order %s came %d times of 6000: %v", k, counts[k], counts)
		}
	}

	tb.lrw = true
	lrw := []*candidate{{key: 0, lastWin: 50}, {key: 1, lastWin: 0}, {key: 2, lastWin: 10}, {key: 3, lastWin: 0}}
	firsts := map[uint64]int{}
	tb.mu.Lock()
	for i := 0; i < 100; i++ {
		o := tb.orderLocked(lrw)
		if o[2].key != 2 || o[3].key != 0 {
			t.Fatalf("order %v %v %v %v", o[0].key, o[1].key, o[2].key, o[3].key)
		}
		firsts[o[0].key]++
	}
	tb.mu.Unlock()
	if firsts[1] == 0 || firsts[3] == 0 {
		t.Errorf("never-won ties always broken one way: %v", firsts)
	}
}

// lateTimerClock is a fake clock whose timers run late: Now reads ahead by skew while the
// timers still wait for Step, as when a loaded machine runs a timer's goroutine late.
type lateTimerClock struct {
	*fakeClock
	mu   sync.Mutex
	skew time.Duration
}

func (c *lateTimerClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fakeClock.Now().Add(c.skew)
}

// TestDrawWindowOnTheClock: the window is over when the gateway's clock says so, even before
// its timer ran the draw: a later accept is forwarded as usual, not held.
func TestDrawWindowOnTheClock(t *testing.T) {
	clock := &lateTimerClock{fakeClock: newFakeClock()}
	h := newDrawHarness(t, fairPolicy("Random"), func(o *Options) { o.Clock = clock })
	chs := h.hold("o1", "early")
	clock.mu.Lock()
	clock.skew = 3 * time.Second
	clock.mu.Unlock()
	late := answers(t, []<-chan answer{h.accept(context.Background(), "late", "o1")})[0]
	if late.code != http.StatusOK || late.decision != "" {
		t.Errorf("late accept: %d %q, want forwarded at once (200)", late.code, late.decision)
	}
	if !hasMetric(t, h.g, drawMetric("offerfeed_gateway_draw_accepts_total", `policy="standard"`, `result="window-closed"`)+" 1") {
		t.Error("late accept not counted as window-closed")
	}
	notAnswered(t, chs...)
	clock.Advance(3 * time.Second) // the timer fires: the draw of "early" runs
	if a := answers(t, chs)[0]; a.code != http.StatusGone {
		t.Errorf("early: %d %q, want the offer service's 410 (taken by late)", a.code, a.decision)
	}
	if got := h.svc.triesOf("o1"); !slices.Equal(got, []string{"late", "early"}) {
		t.Errorf("tries %v", got)
	}
}
