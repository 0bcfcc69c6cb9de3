package gateway

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Fair draws (accept.fairness): the first accept for an offer that passed every check opens
// the offer's window; the accepts for that offer that arrive within it are held, each in its
// own request goroutine, with its in-flight slot. When the window closes (one timer per draw)
// the candidates are put in award order and tried one at a time: the candidate whose turn it
// is forwards its own request; a 2xx answer wins and the candidates not tried yet are answered
// 409 lost-draw, anything else goes back to its driver and the next candidate is tried. So the
// gateway never forwards two accepts of one draw at the same time.
//
// All the state of a policy's draws is in its drawTable, under one mutex; a candidate is
// signalled once, through a channel with room for that one signal, so that a signal never
// blocks while the mutex is held.

// Defaults of the draw bounds.
const (
	// DefaultMaxDraws bounds the draws a policy runs at once (window open, or candidates
	// still being tried). An accept that would open one more is forwarded as usual.
	DefaultMaxDraws = 10_000
	// DefaultMaxDrawCandidates bounds the candidates of one draw. An accept for an offer
	// whose draw is full is answered 409 lost-draw at once.
	DefaultMaxDrawCandidates = 1_000

	// drawMemory is how long the gateway remembers that an offer's window closed: accepts
	// for it are forwarded as usual, rather than opening another window. At most
	// 4 × MaxDraws offers are remembered; beyond that the oldest are forgotten first.
	drawMemory = 5 * time.Minute
)

// DrawDecision is a value of the OfferFeed-Decision or OfferFeed-Flag header that a fair draw
// answers or flags an accept with; a policy's refusal shapes the two refusals among them by
// their names, gatewayconfig's. The other decisions are Decision's.
type DrawDecision string

// String returns the header value.
func (d DrawDecision) String() string { return string(d) }

// Values of the OfferFeed-Decision and OfferFeed-Flag headers for fair draws.
const (
	// DecisionLostDraw answers (409) an accept that was held for its offer's draw and not
	// tried, because another candidate won; also an accept for an offer whose draw is full.
	DecisionLostDraw = DrawDecision(gatewayconfig.DecisionLostDraw)
	// DecisionDuplicateAccept answers (409) an accept of a driver that is already a
	// candidate of the offer's open draw: a driver has one place in a draw.
	DecisionDuplicateAccept = DrawDecision(gatewayconfig.DecisionDuplicateAccept)
	// FlagDraw is the OfferFeed-Flag, in DryRun, of an accept that Enforce would have held
	// for a draw (the accept that opens the window included).
	FlagDraw DrawDecision = "draw"
)

// drawResult is what a draw did with an accept of a policy with fairness; its String is the
// label value "result" of offerfeed_gateway_draw_accepts_total.
type drawResult uint8

const (
	resWon          drawResult = iota // tried; the offer service answered 2xx
	resLost                           // held, not tried: 409 lost-draw
	resFailed                         // tried; the offer service answered something else
	resLeft                           // the client gave up before its turn
	resDuplicate                      // the driver was a candidate already: 409 duplicate-accept
	resFull                           // the draw had MaxDrawCandidates: 409 lost-draw
	resMaxDraws                       // MaxDraws draws ran: forwarded as usual
	resWindowClosed                   // the offer's window had closed: forwarded as usual
	resStopped                        // draining, or the policy was replaced: forwarded as usual
	resNoOfferID                      // no offer id: forwarded as usual
	resDryRun                         // DryRun: forwarded at once, flagged "draw"
	numDrawResults
)

var drawResultNames = [numDrawResults]string{"won", "lost", "failed", "left", "duplicate", "full",
	"max-draws", "window-closed", "stopped", "no-offer-id", "dry-run"}

// String returns the result's name.
func (r drawResult) String() string {
	if r < numDrawResults {
		return drawResultNames[r]
	}
	return "unknown"
}

// drawOutcome is how a draw ended; its String is the label value "outcome" of
// offerfeed_gateway_draws_total.
type drawOutcome uint8

// Outcomes of a draw, counted when its last candidate was settled.
const (
	outWon          drawOutcome = iota // a candidate was answered 2xx
	outUnwon                           // every candidate failed or left
	outDryFirstCame                    // DryRun: the award order's first candidate was the first to come
	outDryReordered                    // DryRun: another candidate would have been tried first
	numDrawOutcomes
)

var drawOutcomeNames = [numDrawOutcomes]string{"won", "unwon", "dry-run-first-came", "dry-run-reordered"}

// String returns the outcome's name.
func (o drawOutcome) String() string {
	if o < numDrawOutcomes {
		return drawOutcomeNames[o]
	}
	return "unknown"
}

// drawMetrics are the fair draw metrics, in the gateway's registry.
type drawMetrics struct {
	opened     *prometheus.CounterVec
	draws      *prometheus.CounterVec
	candidates *prometheus.HistogramVec
	hold       *prometheus.HistogramVec
	accepts    *prometheus.CounterVec
}

func newDrawMetrics(reg prometheus.Registerer, g *Gateway) (*drawMetrics, error) {
	m := &drawMetrics{
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offerfeed_gateway_draws_opened_total",
			Help: "Fair draws opened: the first accept for an offer that passed every check opened its window.",
		}, []string{"policy"}),
		draws: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offerfeed_gateway_draws_total",
			Help: "Fair draws finished, by policy, award rule and outcome (won, unwon; in DryRun dry-run-first-came or dry-run-reordered).",
		}, []string{"policy", "award", "outcome"}),
		candidates: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "offerfeed_gateway_draw_candidates",
			Help:    "Candidates of a fair draw when its window closed.",
			Buckets: []float64{1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000},
		}, []string{"policy"}),
		hold: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "offerfeed_gateway_draw_hold_seconds",
			Help:    "Time an accept was held for its fair draw, from its arrival to its turn, its lost-draw answer or its client giving up.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 3, 5, 10, 20, 30, 60},
		}, []string{"policy"}),
		accepts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offerfeed_gateway_draw_accepts_total",
			Help: "Accepts of policies with fairness that passed every check, by what the draw did with them: won, lost, failed, left, duplicate, full (refused by the candidate bound), max-draws (forwarded as usual: the draw bound), window-closed, stopped, no-offer-id (forwarded as usual), dry-run.",
		}, []string{"policy", "result"}),
	}
	live := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "offerfeed_gateway_draws_live",
		Help: "Fair draws of the policy in force with an open window or candidates still being tried (at most MaxDraws).",
	}, func() float64 {
		if p := g.active.Load().policy; p != nil && p.draws != nil {
			return float64(p.draws.live.Load())
		}
		return 0
	})
	if err := registerAll(reg, m.opened, m.draws, m.candidates, m.hold, m.accepts, live); err != nil {
		return nil, err
	}
	return m, nil
}

// drawTable holds the fair draws of one policy.
type drawTable struct {
	lrw      bool // LeastRecentlyWon; else Random
	window   time.Duration
	dry      bool
	dt       *driverTable
	now      func() int64
	clock    clock.WithDelayedExecution
	maxDraws int
	maxCands int
	maxShut  int
	policy   string
	log      logr.Logger

	// metrics, bound at creation
	mOpened     prometheus.Counter
	mCandidates prometheus.Observer
	mHold       prometheus.Observer
	mDraws      [numDrawOutcomes]prometheus.Counter
	mResults    [numDrawResults]prometheus.Counter

	live atomic.Int64 // draws opened and not finished
	// opened counts the draws opened (wrapping), for the drivers' draw share (signals.go).
	opened atomic.Uint32
	// weighted: candidates are weighed by their bot-likeness score (botScore.drawWeighting).
	weighted bool
	// closing counts the window closes that timers started and that have not finished
	// (tests wait on it after they moved a fake clock).
	closing sync.WaitGroup

	mu      sync.Mutex
	stopped bool
	open    map[uint64]*draw // offers whose window is open
	shut    map[uint64]int64 // offers whose window closed, and when (ns)
	shutQ   []shutMark       // shut in closing order, from shutHd
	shutHd  int
	rng     *rand.Rand

	// shared runs the draws across replicas when the policy's state is shared
	// (draw_shared.go); nil keeps them per replica.
	shared *sharedDraws
}

type shutMark struct {
	id uint64
	at int64
}

// draw is the draw of one offer.
type draw struct {
	id     uint64
	opened int64
	cands  []*candidate // in arrival order
	order  []*candidate // award order, once the window closed
	pos    int          // the next candidate of order to try
	timer  clock.Timer
	closed bool // the window closed
}

// Candidate states.
const (
	candWaiting = iota
	candTrying
	candDone // tried, answered lost-draw, or left
)

// candidate is a held accept.
type candidate struct {
	key     uint64
	joined  int64
	lastWin int64     // when the driver last won (0: never), for LeastRecentlyWon
	score   int32     // the driver's bot-likeness score at its accept, permille; -1: none
	turn    chan bool // one signal: true to forward now, false for lost-draw (nil in DryRun)
	state   uint8

	// A candidate of a shared draw (draw_shared.go): its draw, its name there, and whether
	// a claim of its turn is under way.
	sh       *sharedDraw
	member   string
	claiming bool
}

// newDrawTable makes the draw table of policy p (nil when p has no fairness).
func (g *Gateway) newDrawTable(p *policy, gp *gatewayconfig.Policy) *drawTable {
	if gp.Accept == nil || gp.Accept.Fairness == nil || p.accept == nil {
		return nil
	}
	f := gp.Accept.Fairness
	t := &drawTable{
		policy:   p.name,
		log:      g.log,
		lrw:      f.Award == gatewayconfig.AwardLeastRecentlyWon,
		weighted: p.scoreWeighted,
		window:   f.Window.D(),
		dry:      p.dryRun,
		dt:       p.table,
		now:      g.nowNS,
		clock:    g.clock,
		maxDraws: g.opts.MaxDraws,
		maxCands: g.opts.MaxDrawCandidates,
		open:     make(map[uint64]*draw),
		shut:     make(map[uint64]int64),
		stopped:  g.draining.Load(),
	}
	if t.maxDraws <= 0 {
		t.maxDraws = DefaultMaxDraws
	}
	if t.maxCands <= 0 {
		t.maxCands = DefaultMaxDrawCandidates
	}
	t.maxShut = 4 * t.maxDraws
	var seed [32]byte
	if g.opts.DrawSeed != 0 {
		binary.LittleEndian.PutUint64(seed[:], g.opts.DrawSeed)
	} else if _, err := io.ReadFull(crand.Reader, seed[:]); err != nil {
		binary.LittleEndian.PutUint64(seed[:], uint64(time.Now().UnixNano()))
	}
	t.rng = rand.New(rand.NewChaCha8(seed))
	if ss, ok := p.store.(*sharedStore); ok {
		t.shared = g.newSharedDraws(t, ss)
	}
	m := g.dm
	t.mOpened = m.opened.WithLabelValues(p.name)
	t.mCandidates = m.candidates.WithLabelValues(p.name)
	t.mHold = m.hold.WithLabelValues(p.name)
	for o := range t.mDraws {
		t.mDraws[o] = m.draws.WithLabelValues(p.name, string(f.Award), drawOutcome(o).String())
	}
	for r := range t.mResults {
		t.mResults[r] = m.accepts.WithLabelValues(p.name, drawResult(r).String())
	}
	return t
}

// bindDraws gives the new policy p its draw table: the one in force when p is the same
// policy (same hash, same driver state), so that its open draws go on; a new one otherwise.
// It runs under g.mu, before p is put in force.
func (g *Gateway) bindDraws(prev, p *policy, gp *gatewayconfig.Policy) {
	if prev != nil && prev.draws != nil && prev.hash == p.hash && prev.table == p.table {
		p.draws = prev.draws
		return
	}
	p.draws = g.newDrawTable(p, gp)
}

// stopReplacedDraws runs at once the open draws of the policy that was in force, when the
// policy now in force does not keep them. It runs under g.mu, after next is in force.
func stopReplacedDraws(prev, next *policy) {
	if prev == nil || prev.draws == nil || next != nil && next.draws == prev.draws {
		return
	}
	prev.draws.stop()
}

// stopDraws closes every open window of the policy in force at once (draining).
func (g *Gateway) stopDraws() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.active.Load().policy; p != nil && p.draws != nil {
		p.draws.stop()
	}
}

// stop closes every open window now and runs its draw; accepts that come later are forwarded
// as usual. Held accepts are all answered: each draw runs until it is won or every candidate
// was tried.
func (t *drawTable) stop() {
	t.mu.Lock()
	t.stopped = true
	ds := make([]*draw, 0, len(t.open))
	for _, d := range t.open {
		ds = append(ds, d)
	}
	t.mu.Unlock()
	for _, d := range ds {
		d.timer.Stop()
		t.close(d)
	}
}

// HeldAccepts returns the accepts for offerID (as it appears in the accept path, or as the
// string value of the body's offer id field) held by the open fair draw of the policy in
// force: 0 when no window is open for the offer. With shared state it counts the candidates
// this gateway holds in the offer's shared draw. Tests read it to know that a driver's accept
// is held before they move a fake clock past the window.
func (g *Gateway) HeldAccepts(offerID string) int {
	p := g.active.Load().policy
	if p == nil || p.draws == nil {
		return 0
	}
	t := p.draws
	t.mu.Lock()
	defer t.mu.Unlock()
	id := p.ids.sumString(offerID)
	n := 0
	if d := t.open[id]; d != nil {
		n = len(d.cands)
	}
	if t.shared != nil {
		n += t.shared.heldLocked(id)
	}
	return n
}

// join puts the accept of driver key for offer id in the offer's draw, opening it when
// needed. It returns the draw and the candidate, or nil and why the accept is not held.
func (t *drawTable) join(id, key uint64, lastWin int64, score int32, now int64) (*draw, *candidate, drawResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return nil, nil, resStopped
	}
	t.forgetShut(now)
	if _, ok := t.shut[id]; ok {
		return nil, nil, resWindowClosed
	}
	d := t.open[id]
	if d == nil {
		if t.live.Load() >= int64(t.maxDraws) {
			return nil, nil, resMaxDraws
		}
		d = &draw{id: id, opened: now}
		t.open[id] = d
		t.live.Add(1)
		t.opened.Add(1)
		t.mOpened.Inc()
		// The timer's function only starts the close: a fake clock (k8s.io/utils/clock/testing)
		// calls it while it holds its lock, and close reads the clock and takes t.mu, which
		// join holds while it sets a timer.
		d.timer = t.clock.AfterFunc(t.window, func() {
			t.closing.Add(1)
			go func() {
				defer t.closing.Done()
				t.close(d)
			}()
		})
	} else {
		if now-d.opened >= int64(t.window) {
			// The window is over on the gateway's clock; its timer has not run the draw yet.
			return nil, nil, resWindowClosed
		}
		for _, c := range d.cands {
			if c.key == key {
				return nil, nil, resDuplicate
			}
		}
		if len(d.cands) >= t.maxCands {
			return nil, nil, resFull
		}
	}
	c := &candidate{key: key, joined: now, lastWin: lastWin, score: score}
	if !t.dry {
		c.turn = make(chan bool, 1)
	}
	d.cands = append(d.cands, c)
	return d, c, 0
}

// forgetShut forgets the closed windows older than drawMemory. The caller holds t.mu.
func (t *drawTable) forgetShut(now int64) {
	for t.shutHd < len(t.shutQ) && (t.shutQ[t.shutHd].at+int64(drawMemory) <= now || len(t.shutQ)-t.shutHd > t.maxShut) {
		t.popShut()
	}
}

func (t *drawTable) popShut() {
	m := t.shutQ[t.shutHd]
	if at, ok := t.shut[m.id]; ok && at == m.at {
		delete(t.shut, m.id)
	}
	t.shutQ[t.shutHd] = shutMark{}
	t.shutHd++
	if t.shutHd > len(t.shutQ)/2 {
		n := copy(t.shutQ, t.shutQ[t.shutHd:])
		t.shutQ = t.shutQ[:n]
		t.shutHd = 0
	}
}

// close closes the window of d (once) and starts its draw: the candidates in award order, the
// first one signalled to forward.
func (t *drawTable) close(d *draw) {
	now := t.now()
	t.mu.Lock()
	if d.closed {
		t.mu.Unlock()
		return
	}
	d.closed = true
	delete(t.open, d.id)
	t.shut[d.id] = now
	t.shutQ = append(t.shutQ, shutMark{d.id, now})
	if len(t.shutQ)-t.shutHd > t.maxShut {
		t.popShut()
	}
	cands := d.cands // no candidate joins a closed window
	t.mu.Unlock()

	if t.lrw && !t.dry {
		// The last wins now: a candidate may have won another draw while held.
		for _, c := range cands {
			c.lastWin = t.lastWin(c.key)
		}
	}
	t.mCandidates.Observe(float64(len(cands)))

	t.mu.Lock()
	defer t.mu.Unlock()
	d.order = t.orderLocked(cands)
	if t.dry {
		if len(d.order) > 0 && d.order[0] == cands[0] {
			t.finishLocked(d, outDryFirstCame)
		} else {
			t.finishLocked(d, outDryReordered)
		}
		return
	}
	t.advanceLocked(d)
}

// lastWin reads when driver key last won (0: never, or forgotten).
func (t *drawTable) lastWin(key uint64) int64 {
	s := t.dt.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.lookup(key); e != nil && e.ext != nil {
		return e.ext.lastWin
	}
	return 0
}

// orderLocked returns the candidates in award order: a uniformly random permutation
// (Random), or the oldest last win first, never-won first, ties in random order
// (LeastRecentlyWon). With score weighting (botScore.drawWeighting Score), Random draws a
// permutation weighted by 1 − score (scoreWeight), and LeastRecentlyWon puts the candidates
// in score bands first (scoreBand). The caller holds t.mu (the random source).
func (t *drawTable) orderLocked(cands []*candidate) []*candidate {
	order := slices.Clone(cands)
	t.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	switch {
	case t.weighted && t.lrw:
		slices.SortStableFunc(order, func(a, b *candidate) int {
			return cmp.Or(cmp.Compare(scoreBand(a.score), scoreBand(b.score)), cmp.Compare(a.lastWin, b.lastWin))
		})
	case t.weighted:
		// A weighted permutation without replacement (Efraimidis–Spirakis): each candidate
		// draws an exponential key of rate w; the smallest key goes first. A weight of 0 gives
		// +Inf: such candidates come last, in the shuffle's random order.
		keys := make(map[*candidate]float64, len(order))
		for _, c := range order {
			keys[c] = t.rng.ExpFloat64() / scoreWeight(c.score)
		}
		slices.SortStableFunc(order, func(a, b *candidate) int { return cmp.Compare(keys[a], keys[b]) })
	case t.lrw:
		slices.SortStableFunc(order, func(a, b *candidate) int { return cmp.Compare(a.lastWin, b.lastWin) })
	}
	return order
}

// scoreWeight is a candidate's weight in a score-weighted Random draw: 1 − score up to
// RecommendedBotScore, steeper above it, (1 − score) × (2 × (1 − score))², continuous at 0.5
// (0.256 at 0.6, 0.0625 at 0.75, 0.004 at 0.9); and 1 for a driver without a score
// (permille; -1: none). Between drivers without a score, or of equal scores, the draw is
// uniform. The steeper part only touches scores people do not reach (docs/gateway.md): with
// 1 − score alone a compliant bot at 0.7 still won 1.32 × its fair share in the demo market.
func scoreWeight(permille int32) float64 {
	if permille < 0 {
		return 1
	}
	w := float64(1000-min(permille, 1000)) / 1000
	if f := 2 * w; f < 1 {
		w *= f * f
	}
	return w
}

// scoreBand is a candidate's band in a score-weighted LeastRecentlyWon draw: 0 for a driver
// without a score or below RecommendedBotScore, then one band per tenth above it (0.5–0.6
// is 1, ..., 0.9–1 is 5). Lower bands go first; within a band, the least recent win.
func scoreBand(permille int32) int32 {
	const from = int32(RecommendedBotScore * 1000)
	if permille < from {
		return 0
	}
	return 1 + min(permille-from, 499)/100
}

// advanceLocked signals the next waiting candidate to forward its accept, or finishes the
// draw when none is left. The caller holds t.mu.
func (t *drawTable) advanceLocked(d *draw) {
	for d.pos < len(d.order) {
		c := d.order[d.pos]
		d.pos++
		if c.state != candWaiting {
			continue // left
		}
		c.state = candTrying
		c.turn <- true
		return
	}
	t.finishLocked(d, outUnwon)
}

// settle records the answer to the candidate whose turn it was: a win answers the other
// waiting candidates lost-draw; anything else passes the turn on.
func (t *drawTable) settle(d *draw, c *candidate, won bool) {
	if c.sh != nil {
		t.shared.settle(c, won)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settleLocked(d, c, won)
}

// settleLocked is settle; the caller holds t.mu.
func (t *drawTable) settleLocked(d *draw, c *candidate, won bool) {
	if c.state != candTrying {
		return
	}
	c.state = candDone
	if !won {
		t.advanceLocked(d)
		return
	}
	for _, o := range d.order[d.pos:] {
		if o.state == candWaiting {
			o.state = candDone
			o.turn <- false
		}
	}
	d.pos = len(d.order)
	t.finishLocked(d, outWon)
}

// leave takes a waiting candidate whose client gave up out of the draw. It reports false when
// the candidate was signalled already (its signal is in its channel).
func (t *drawTable) leave(c *candidate) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.state != candWaiting {
		return false
	}
	c.state = candDone
	return true
}

// finishLocked counts a draw whose every candidate is settled and frees its place.
func (t *drawTable) finishLocked(d *draw, outcome drawOutcome) {
	if l := t.log.V(1); l.Enabled() {
		l.Info("fair draw finished", "policy", t.policy, "outcome", outcome.String(),
			"candidates", len(d.cands), "tried", d.pos, "heldSeconds", float64(t.now()-d.opened)/1e9)
	}
	d.cands, d.order = nil, nil
	t.live.Add(-1)
	t.mDraws[outcome].Inc()
}

// serveFairAccept serves an accept of a policy with fairness, after its checks (decision d;
// in Enforce it is Allowed) and the admission that may have taken an in-flight slot. st holds
// the accept's answer, which serveAccept settles when this does not forward the accept;
// lastWin and now were read with the checks.
func (g *Gateway) serveFairAccept(w http.ResponseWriter, r *http.Request, p *policy, d Decision, st *reqState,
	key, id uint64, hasID bool, lastWin int64, score int32, now int64) {
	t := p.draws
	if d != Allowed {
		g.forwardAccept(w, r, st) // DryRun: flagged with the decision already
		return
	}
	if !hasID {
		t.mResults[resNoOfferID].Inc()
		g.forwardAccept(w, r, st)
		return
	}
	if t.shared != nil && g.serveSharedAccept(w, r, p, st, key, id, lastWin, score) {
		return
	}
	dr, c, res := t.join(id, key, lastWin, score, now)
	if dr == nil {
		t.mResults[res].Inc()
		switch res {
		case resDuplicate, resFull:
			dec := DecisionLostDraw
			if res == resDuplicate {
				dec = DecisionDuplicateAccept
			}
			if !p.dryRun {
				answerDraw(w, p, dec)
				return
			}
			r.Header.Set(HeaderFlag, dec.String())
		}
		g.forwardAccept(w, r, st)
		return
	}
	// The driver entered the draw (in DryRun: would have): its draw share (signals.go).
	st.accept.store.enteredDraw(st.accept.ref, t.opened.Load())
	if t.dry {
		t.mResults[resDryRun].Inc()
		r.Header.Set(HeaderFlag, FlagDraw.String())
		g.forwardAccept(w, r, st)
		return
	}
	var turn bool
	select {
	case turn = <-c.turn:
	case <-r.Context().Done():
		if t.leave(c) {
			t.mHold.Observe(float64(g.nowNS()-c.joined) / 1e9)
			t.mResults[resLeft].Inc()
			answerDraw(w, p, DecisionLostDraw) // to no one, but logs see what happened
			return
		}
		turn = <-c.turn
	}
	t.mHold.Observe(float64(g.nowNS()-c.joined) / 1e9)
	if !turn {
		t.mResults[resLost].Inc()
		answerDraw(w, p, DecisionLostDraw)
		return
	}
	if r.Context().Err() != nil {
		// The client gave up as its turn came: it leaves, and the next candidate is tried.
		t.mResults[resLeft].Inc()
		t.settle(dr, c, false)
		answerDraw(w, p, DecisionLostDraw)
		return
	}
	st.accept.d, st.accept.c = dr, c
	g.forwardAccept(w, r, st)
}

// forwardAccept forwards an accept, for serveAccept and for a draw's tries. One that holds a
// slot or is a draw's try waits for the offer service's answer even when its driver hangs up
// (at most the upstream timeout): its 2xx must count, and a draw must know whether its offer
// was taken.
func (g *Gateway) forwardAccept(w http.ResponseWriter, r *http.Request, st *reqState) {
	// Otherwise a bot could send accepts and hang up at once to keep its slots free.
	if a := st.accept; a != nil && (a.slot || a.d != nil) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), g.opts.UpstreamTimeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	g.forward(w, r, st)
}

// answerDraw answers an accept that is not forwarded because of a draw: 409 with the decision,
// or the policy's refusal shape.
func answerDraw(w http.ResponseWriter, p *policy, decision DrawDecision) {
	h := w.Header()
	h.Set(HeaderDecision, decision.String())
	h.Set("Cache-Control", "no-store")
	p.refusals.write(w, decision.String(), http.StatusConflict, 0) // spec.refusal's shape
}
