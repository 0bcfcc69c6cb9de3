package gateway

import "sync"

// The deny cache of the shared store (docs/design.md#shared-state-failure-and-the-deny-cache).
//
// When Redis says a driver is throttled until a time T, and nothing any replica can do
// before T changes that, the gateway remembers T and refuses the driver's requests of that
// kind until T itself, with the same verdict Redis would give and no round trip. A bot that
// floods a replica then costs Redis nothing until its refusal ends:
//
//   - feed-throttled: Redis returns the driver's theoretical arrival time (tat). A refused
//     poll writes nothing, and no poll is allowed while tat − now > τ, on any replica, so the
//     tat is frozen: every poll before tat − τ is refused with retry tat − τ − now and reset
//     tat − now, as Redis would say.
//   - accept-throttled with no accept in flight: the counted (2xx) accepts fill the quota; no
//     slot can be taken, so no accept can be counted or freed, until the oldest of them that
//     must leave the window has left it, at now + retry. With accepts in flight the refusal
//     may end sooner (one answered non-2xx frees its slot): not cached. An accept is refused
//     from the cache only when the checks that come before the quota (unseen-offer, too-fast:
//     they read the shown offers, which another replica may change) do not apply to it, and
//     not in DryRun with fair draws (the flagged accept enters a draw with its last win).
//
// The cache belongs to one policy's shared store, so a config reload (new limits) starts an
// empty one. It is a fixed array indexed by the driver's key: a driver whose slot another
// takes costs a round trip again, never a wrong answer. What it cannot see is Redis losing
// its data (a restart without persistence): a driver refused from the cache stays refused
// until its T, where Redis would start it afresh.

// Size of the deny cache: denyShards × denySlots drivers (16,384; 24 B each, 384 KiB a
// policy).
const (
	denyShards = 64
	denySlots  = 256
)

// denySlot is one driver's entry; times are µs on the gateway clock, as Redis's.
type denySlot struct {
	key uint64
	// feedTat is the driver's tat when Redis refused a poll; 0: none.
	feedTat int64
	// acceptUntil is when the accept quota can have room again; 0: none.
	acceptUntil int64
}

type denyShard struct {
	mu    sync.Mutex
	slots [denySlots]denySlot
	_     [64]byte // keeps two shards' locks off one cache line
}

type denyCache struct {
	shards [denyShards]denyShard
}

func newDenyCache() *denyCache { return &denyCache{} }

func (c *denyCache) at(key uint64) (*denyShard, *denySlot) {
	s := &c.shards[key%denyShards]
	return s, &s.slots[(key/denyShards)%denySlots]
}

// lookup returns driver key's slot, or the zero slot when the slot holds another driver.
func (c *denyCache) lookup(key uint64) denySlot {
	s, e := c.at(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.key != key {
		return denySlot{}
	}
	return *e
}

// update runs set on driver key's slot, taking the slot over from another driver first.
func (c *denyCache) update(key uint64, set func(*denySlot)) {
	s, e := c.at(key)
	s.mu.Lock()
	if e.key != key {
		*e = denySlot{key: key}
	}
	set(e)
	s.mu.Unlock()
}

// feedTat returns the tat Redis last refused driver key's poll with, or 0.
func (c *denyCache) feedTat(key uint64) int64 { return c.lookup(key).feedTat }

// setFeedTat remembers that Redis refused a poll of driver key with tat.
func (c *denyCache) setFeedTat(key uint64, tat int64) {
	c.update(key, func(e *denySlot) { e.feedTat = tat })
}

// acceptUntil returns until when driver key's accepts are refused accept-throttled, or 0.
func (c *denyCache) acceptUntil(key uint64) int64 { return c.lookup(key).acceptUntil }

// setAcceptUntil remembers that driver key's accept quota is full until until.
func (c *denyCache) setAcceptUntil(key uint64, until int64) {
	c.update(key, func(e *denySlot) { e.acceptUntil = until })
}
