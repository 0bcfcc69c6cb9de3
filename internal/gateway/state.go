package gateway

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// driverTable holds the state of at most max drivers of one policy, keyed by a 64-bit hash of
// the identity header value. It is split in shards, each under its own mutex, so that requests
// of different drivers rarely wait for each other.
//
// Each shard has two areas, in the manner of S3-FIFO and 2Q, so that identities made up by the
// thousand cannot push out the drivers whose state matters:
//
//   - probation, a FIFO of about a tenth of the shard, where every new identity starts. When it
//     is full, a new identity pushes out the oldest one, which leaves probation: it moves to the
//     main area, or is forgotten (see leave).
//   - main, the rest, where drivers that proved themselves live, under CLOCK (second chance): a
//     hit only sets the driver's reference bit, so it writes nothing but the driver's own entry
//     — unlike an LRU list, whose move-to-front writes three neighbours, cache lines that
//     bounce between cores. A driver that moves in takes the place of the main driver whose
//     state is worth least (see value and mainVictim), and only if its own is worth more, or
//     as much when it was seen twice.
//
// So a flood of one-shot identities churns through probation and through main entries whose
// state has expired (forgetting those changes no decision), and never forgets a driver with a
// live quota, shown offers or pacing state to make room for one.
//
// A feed-only driver costs one entry (72 bytes: 40 of them its bot-likeness signals) plus its
// map slot; see BenchmarkBytesPerDriver.
type driverTable struct {
	key      string // the policy state this table holds; see stateKey
	shards   []shard
	mask     uint64
	perShard int32
	// window is the longest accept window of the policy in force (ns; 0 without accepts): how
	// long a counted accept, a win or a shown offer keeps a driver's state valuable.
	window atomic.Int64
	// evicted counts the drivers forgotten, by the area they were forgotten from.
	evicted [numAreas]atomic.Uint64
}

// area is where a driver's entry lives in its shard.
type area uint8

const (
	areaProbation area = iota
	areaMain
	numAreas
)

var areaNames = [numAreas]string{"probation", "main"}

type shard struct {
	mu sync.Mutex
	// idx finds a driver: i >= 0 is main[i], i < 0 is prob[^i].
	idx     map[uint64]int32
	prob    []entry // a ring once full: phand is the oldest entry
	main    []entry
	probCap int32
	mainCap int32
	phand   int32 // the oldest entry of prob, the next to leave it
	mhand   int32 // the CLOCK hand of main: the next entry to consider for eviction
	count   atomic.Int32
	_       [64]byte // keep shards on separate cache lines
}

// entry is one driver. ext is allocated only for drivers that accept or are shown offers.
type entry struct {
	key uint64
	tat int64 // GCRA theoretical arrival time of the next feed poll, ns on the gateway clock
	ext *driverExt
	ref bool // seen again since it entered probation, or since main's CLOCK hand last passed
	// sig are the driver's bot-likeness signals (signals.go): 40 bytes.
	sig signals
}

// driverExt is the accept and shown-offers state of a driver. It is guarded by the mutex of
// the shard the driver was in when it was made; a request keeps a pointer to it, so a driver
// evicted while its accept is in flight only loses the slot bookkeeping, never corrupts
// another driver.
type driverExt struct {
	// done are the times (ns) of the 2xx accepts still inside the window, oldest first.
	done []int64
	// inflight is the number of forwarded accepts without an answer yet.
	inflight int32
	// lastWin is when the offer service last answered an accept of the driver with 2xx, ns
	// on the gateway clock plus one; 0 means never (fair draws, LeastRecentlyWon).
	lastWin int64
	// shown is a ring of the last maxShown offers first shown to the driver, compact: a
	// 32-bit fold of the offer id's hash and the time in ms after shownBase.
	shown     []shownOffer
	shownNext int32
	shownBase int64 // ns
}

// shownOffer is one remembered offer: 8 bytes.
type shownOffer struct {
	id uint32 // fold of the 64-bit offer id hash
	at uint32 // ms after shownBase, rounded up
}

// foldID folds a 64-bit offer id hash to the 32 bits the ring keeps. With a random seed per
// process, an offer never shown matches one of a driver's 64 remembered offers with
// probability 64/2³² ≈ 1.5·10⁻⁸, and an outsider cannot aim for a match.
func foldID(h uint64) uint32 { return uint32(h) ^ uint32(h>>32) }

// maxShown is how many offers the gateway remembers per driver.
const maxShown = 64

func newDriverTable(key string, max int) *driverTable {
	if max < 1 {
		max = 1
	}
	n := 1
	for n < 64 && n*2*16 <= max {
		n *= 2
	}
	t := &driverTable{key: key, shards: make([]shard, n), mask: uint64(n - 1), perShard: int32(max / n)}
	pc := max32(t.perShard/probationShare, 1)
	for i := range t.shards {
		s := &t.shards[i]
		s.idx = make(map[uint64]int32)
		s.probCap, s.mainCap = pc, t.perShard-pc
	}
	return t
}

// probationShare: probation is 1/probationShare of a shard (at least one entry).
const probationShare = 10

// mainScan is the most main entries that one eviction from main considers for a candidate
// seen twice; mainScanOnce for one seen once, the path of a flood of one-shot identities,
// which should cost little.
const (
	mainScan     = 32
	mainScanOnce = 8
)

// minShownLife is the least time shown offers keep a driver's state valuable: an offer of a
// gig feed is rarely open longer.
const minShownLife = int64(10 * time.Minute)

func max32(a, b int32) int32 {
	if a > b {
		return a
	}
	return b
}

// capacity is the most drivers the table holds (at most the max it was made with).
func (t *driverTable) capacity() int { return int(t.perShard) * len(t.shards) }

// len is the number of drivers tracked.
func (t *driverTable) len() int {
	n := 0
	for i := range t.shards {
		n += int(t.shards[i].count.Load())
	}
	return n
}

// evictions is the number of drivers forgotten, from both areas.
func (t *driverTable) evictions() uint64 {
	return t.evicted[areaProbation].Load() + t.evicted[areaMain].Load()
}

// bindPolicy sets what the table needs to know of the policy in force: its longest accept
// window. Called when the policy is put in force.
func (t *driverTable) bindPolicy(p *policy) {
	w := p.base.window
	for _, l := range p.overrides {
		w = max(w, l.window)
	}
	if p.accept == nil {
		w = 0
	}
	t.window.Store(w)
}

func (t *driverTable) shard(key uint64) *shard {
	// The low bits pick the map bucket; use the high bits for the shard.
	return &t.shards[(key>>58)&t.mask]
}

// get returns the entry of key at now, made in probation if needed, and marks it seen. The
// caller holds s.mu. The entry is valid until s.mu is released.
func (t *driverTable) get(s *shard, key uint64, now int64) *entry {
	if i, ok := s.idx[key]; ok {
		var e *entry
		if i >= 0 {
			e = &s.main[i]
		} else {
			e = &s.prob[^i]
		}
		if !e.ref {
			e.ref = true
		}
		return e
	}
	if int32(len(s.prob)) < s.probCap {
		s.prob = append(s.prob, entry{key: key})
		i := int32(len(s.prob) - 1)
		s.idx[key] = ^i
		s.count.Add(1)
		return &s.prob[i]
	}
	i := s.phand
	if s.phand++; s.phand == s.probCap {
		s.phand = 0
	}
	t.leave(s, &s.prob[i], now)
	s.prob[i] = entry{key: key}
	s.idx[key] = ^i
	return &s.prob[i]
}

// leave moves c, the oldest probation entry, out of probation: into main while main has room;
// else in place of main's least valuable driver v when c is worth more than v — or as much,
// when c was seen again while in probation. Otherwise c is forgotten. c's slot in prob is
// free afterwards.
func (t *driverTable) leave(s *shard, c *entry, now int64) {
	if int32(len(s.main)) < s.mainCap {
		s.main = append(s.main, *c)
		i := int32(len(s.main) - 1)
		s.main[i].ref = false
		s.idx[c.key] = i
		s.count.Add(1)
		return
	}
	w := t.window.Load()
	// The candidate may replace a driver worth less than limit.
	limit := c.value(now, w)
	scan := mainScanOnce
	if c.ref {
		limit++
		scan = mainScan
	}
	if limit > valueNone && len(s.main) > 0 {
		if v, ok := s.mainVictim(scan, limit, now, w); ok {
			delete(s.idx, s.main[v].key)
			s.main[v] = *c
			s.main[v].ref = false
			s.idx[c.key] = v
			t.evicted[areaMain].Add(1)
			return
		}
	}
	delete(s.idx, c.key)
	t.evicted[areaProbation].Add(1)
}

// mainVictim moves main's CLOCK hand over at most scan entries, clearing the reference bits it
// passes, and returns the one of least value among them if that is below limit (of equal
// value, the one not seen since the hand last passed first, then the first passed). It stops
// early at an entry of no value not seen since the hand last passed. The caller holds s.mu.
func (s *shard) mainVictim(scan int, limit stateValue, now, window int64) (int32, bool) {
	best, bestScore := int32(-1), int(2*limit)
	for n := 0; n < scan && n < len(s.main); n++ {
		i := s.mhand
		if s.mhand++; int(s.mhand) == len(s.main) {
			s.mhand = 0
		}
		e := &s.main[i]
		score := 0
		if e.ref {
			score = 1
			e.ref = false
		}
		if e.tat > now && limit <= valuePacing {
			continue // worth pacing at least: no need to look at its accepts and offers
		}
		if score += 2 * int(e.value(now, window)); score < bestScore {
			best, bestScore = i, score
			if score == 0 {
				break
			}
		}
	}
	return best, best >= 0
}

// stateValue ranks what forgetting a driver would give away; eviction takes the lowest first.
type stateValue uint8

const (
	// valueNone: nothing live. Forgetting the driver changes no decision: its next poll
	// would be allowed anyway (tat ≤ now), no accept of its counts in the window.
	valueNone stateValue = iota
	// valuePacing: a poll inside the pacing interval (tat > now); forgetting it gives the
	// driver its burst back early.
	valuePacing
	// valueShown: offers shown in the last max(window, 10m); forgetting them refuses the
	// driver's accepts as unseen-offer (or, without requireShown, skips its reaction time
	// check). A made-up identity that the offer service refuses is shown nothing.
	valueShown
	// valueAccepts: an accept in flight, or counted (or won) in the window; forgetting it
	// gives the driver its quota back (or its place in LeastRecentlyWon).
	valueAccepts
)

// value is what forgetting e at now would give away; window is the table's.
func (e *entry) value(now, window int64) stateValue {
	if x := e.ext; x != nil {
		if x.inflight > 0 || len(x.done) > 0 && x.done[len(x.done)-1] > now-window ||
			x.lastWin != 0 && x.lastWin-1 > now-window {
			return valueAccepts
		}
		if len(x.shown) > 0 && x.newestShown() > now-max(window, minShownLife) {
			return valueShown
		}
	}
	if e.tat > now {
		return valuePacing
	}
	return valueNone
}

// lookup returns the entry of key without making one, or nil. The caller holds s.mu.
func (s *shard) lookup(key uint64) *entry {
	if i, ok := s.idx[key]; ok {
		if i >= 0 {
			return &s.main[i]
		}
		return &s.prob[^i]
	}
	return nil
}

// ext returns the entry's accept and shown-offers state, made if needed.
func (e *entry) extState() *driverExt {
	if e.ext == nil {
		e.ext = &driverExt{}
	}
	return e.ext
}

// recordShown remembers that offer id was shown at now, unless it is remembered already (the
// first showing counts). It reports whether the offer is new.
func (x *driverExt) recordShown(id uint64, now int64) bool {
	f := foldID(id)
	for i := range x.shown {
		if x.shown[i].id == f {
			return false
		}
	}
	if x.shown == nil {
		x.shownBase = now
	}
	at := (now - x.shownBase + 1e6 - 1) / 1e6 // rounded up: never earlier than the truth
	if at > math.MaxUint32 {
		x.rebaseShown(now)
		at = (now - x.shownBase + 1e6 - 1) / 1e6
	}
	o := shownOffer{id: f, at: uint32(at)}
	if len(x.shown) < maxShown {
		x.shown = append(x.shown, o)
		return true
	}
	x.shown[x.shownNext] = o
	x.shownNext = (x.shownNext + 1) % maxShown
	return true
}

// rebaseShown moves shownBase to an hour before now (after about 49 days of uptime). Offers
// shown before the new base are kept as shown at the base: still remembered as shown, and far
// longer ago than any minReactionTime (at most 1m).
func (x *driverExt) rebaseShown(now int64) {
	nb := now - int64(time.Hour)
	for i := range x.shown {
		abs := x.shownBase + int64(x.shown[i].at)*1e6
		x.shown[i].at = uint32(max(0, (abs-nb+1e6-1)/1e6))
	}
	x.shownBase = nb
}

// shownAt returns when offer id was first shown (rounded up to the ms), if it is remembered.
func (x *driverExt) shownAt(id uint64) (int64, bool) {
	f := foldID(id)
	for i := range x.shown {
		if x.shown[i].id == f {
			return x.shownBase + int64(x.shown[i].at)*1e6, true
		}
	}
	return 0, false
}

// newestShown returns when the offer remembered last was first shown (rounded up to the ms);
// the ring must not be empty.
func (x *driverExt) newestShown() int64 {
	j := len(x.shown) - 1
	if len(x.shown) == maxShown {
		j = (int(x.shownNext) + maxShown - 1) % maxShown
	}
	return x.shownBase + int64(x.shown[j].at)*1e6
}

// pruneAccepts forgets the 2xx accepts older than the window.
func (x *driverExt) pruneAccepts(now, window int64) {
	n := 0
	for n < len(x.done) && x.done[n] <= now-window {
		n++
	}
	if n > 0 {
		x.done = append(x.done[:0], x.done[n:]...)
	}
}
