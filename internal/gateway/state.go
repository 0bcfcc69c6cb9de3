package gateway

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// driverTable holds the state of at most max drivers of one policy, keyed by a 64-bit hash of
// the identity header value. It is split in shards, each under its own mutex, so that requests
// of different drivers rarely wait for each other. When a shard is full it forgets a driver not
// seen recently, chosen by the CLOCK algorithm (second chance): a hit only sets the driver's
// reference bit, so it writes nothing but the driver's own entry — unlike an LRU list, whose
// move-to-front writes three neighbours, cache lines that bounce between cores.
//
// A feed-only driver costs one entry (32 bytes) plus its map slot; see BenchmarkBytesPerDriver.
type driverTable struct {
	key      string // the policy state this table holds; see stateKey
	shards   []shard
	mask     uint64
	perShard int32
	evicted  atomic.Uint64
}

type shard struct {
	mu    sync.Mutex
	idx   map[uint64]int32
	ents  []entry
	hand  int32 // the CLOCK hand: the next entry to consider for eviction
	count atomic.Int32
	_     [64]byte // keep shards on separate cache lines
}

// entry is one driver. ext is allocated only for drivers that accept or are shown offers.
type entry struct {
	key uint64
	tat int64 // GCRA theoretical arrival time of the next feed poll, ns on the gateway clock
	ext *driverExt
	ref bool // seen since the CLOCK hand last passed
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
	for i := range t.shards {
		t.shards[i].idx = make(map[uint64]int32)
	}
	return t
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

func (t *driverTable) shard(key uint64) *shard {
	// The low bits pick the map bucket; use the high bits for the shard.
	return &t.shards[(key>>58)&t.mask]
}

// get returns the entry of key, made if needed (forgetting a driver not seen recently when the
// shard is full), and marks it seen. The caller holds s.mu.
func (t *driverTable) get(s *shard, key uint64) *entry {
	if i, ok := s.idx[key]; ok {
		e := &s.ents[i]
		if !e.ref {
			e.ref = true
		}
		return e
	}
	var i int32
	if int32(len(s.ents)) < t.perShard {
		s.ents = append(s.ents, entry{})
		i = int32(len(s.ents) - 1)
		s.count.Add(1)
	} else {
		i = s.victim()
		delete(s.idx, s.ents[i].key)
		t.evicted.Add(1)
	}
	s.ents[i] = entry{key: key}
	s.idx[key] = i
	return &s.ents[i]
}

// victim moves the CLOCK hand to the first entry not seen since the hand last passed,
// clearing the reference bits it passes (at most one full turn), and returns it.
func (s *shard) victim() int32 {
	for {
		i := s.hand
		if s.hand++; int(s.hand) == len(s.ents) {
			s.hand = 0
		}
		if !s.ents[i].ref {
			return i
		}
		s.ents[i].ref = false
	}
}

// lookup returns the entry of key without making one, or nil. The caller holds s.mu.
func (s *shard) lookup(key uint64) *entry {
	if i, ok := s.idx[key]; ok {
		return &s.ents[i]
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
// first showing counts).
func (x *driverExt) recordShown(id uint64, now int64) {
	f := foldID(id)
	for i := range x.shown {
		if x.shown[i].id == f {
			return
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
		return
	}
	x.shown[x.shownNext] = o
	x.shownNext = (x.shownNext + 1) % maxShown
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
