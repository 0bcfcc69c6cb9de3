package gateway

// A governed request goes request → route → decide → store:
//
//   - serve.go reads the request (identity, offer id) and route.go matches its route;
//   - policy.go decides: decideFeed and checkAccept are pure functions of a driver's state,
//     its limits and the time, which return a verdict and the state they changed;
//   - a driverStore holds the state: it reads what a decision needs, runs it, and writes back
//     what it changed, atomically per driver.
//
// The local store is the driverTable of state.go, in this process's memory: exact for one
// replica, or for routing that sends each driver to one pod. A shared store (Redis, in
// progress: docs/design.md#state-and-its-bounds) runs the same decisions as one script per
// request, so that replicas sharing it decide as one gateway would.

// driverStore is where the state of a policy's drivers lives.
type driverStore interface {
	// feed decides a feed poll of driver d at now under limits l. When shown is set and the
	// poll goes on (allowed, or flagged in DryRun), the returned ref records the offers its
	// answer shows (recordShown); otherwise the ref is not to be used.
	feed(d driverRef, l *limits, now int64, dryRun, shown bool) (feedVerdict, driverRef)
	// accept runs p.checkAccept on an accept of offer id (known when hasID) of driver d at
	// now under limits l; an allowed accept under a quota takes an in-flight slot. The ref
	// settles it.
	accept(p *policy, d driverRef, l *limits, id uint64, hasID bool, now int64) (acceptVerdict, driverRef)
	// settle ends a forwarded accept of d at now: frees its in-flight slot (slot) and counts
	// it when won (the offer service answered 2xx); with fair, records a win's time.
	settle(d driverRef, slot, won, fair bool, now int64)
	// recordShown records that the offers ids were shown to d at now (the first showing of
	// an offer counts).
	recordShown(d driverRef, ids []uint64, now int64)
	// enteredDraw records that d's accept (the ref accept returned) joined a fair draw when
	// the policy had opened opened draws in all: the draw share of its signals (signals.go).
	enteredDraw(d driverRef, opened uint32)
}

// driverRef names a driver in a store: key, the seeded hash of its identity, and for the
// local store where its state is (so that an answer settles the state its request read, even
// if the driver was evicted meanwhile).
type driverRef struct {
	key uint64
	s   *shard     // local store
	x   *driverExt // local store: the accept and shown-offers state, when the ref is used
	// token is the shared store's name of an accept's in-flight slot.
	token string
}

// acceptVerdict is the outcome of an accept's checks and admission.
type acceptVerdict struct {
	decision Decision
	retry    int64 // ns until a retry can pass (refusals)
	// slot: the accept took an in-flight slot, which settle frees.
	slot bool
	// lastWin is when the driver last won (0: never), for a fair draw's award.
	lastWin int64
	// sig are the driver's signals after the accept; hasSig: the store keeps signals.
	sig    signals
	hasSig bool
}

// The local store.
var _ driverStore = (*driverTable)(nil)

func (t *driverTable) feed(d driverRef, l *limits, now int64, dryRun, shown bool) (feedVerdict, driverRef) {
	s := t.shard(d.key)
	s.mu.Lock()
	e := t.get(s, d.key, now)
	v := decideFeed(e, l, now)
	e.sig.observePoll(now, l.interval, v.decision == Allowed)
	v.sig, v.hasSig = e.sig, true
	if shown && (v.decision == Allowed || dryRun) {
		d.s, d.x = s, e.extState()
	}
	s.mu.Unlock()
	return v, d
}

func (t *driverTable) accept(p *policy, d driverRef, l *limits, id uint64, hasID bool, now int64) (acceptVerdict, driverRef) {
	s := t.shard(d.key)
	s.mu.Lock()
	e := t.get(s, d.key, now)
	x := e.extState()
	var v acceptVerdict
	v.decision, v.retry = p.checkAccept(x, l, id, hasID, now)
	p.observeAccept(&e.sig, x, l, id, hasID, v.decision, now)
	if v.decision == Allowed && p.botLike(&e.sig) {
		v.decision = BotLike // not a refusal the signals count: the driver can recover
	}
	v.sig, v.hasSig = e.sig, true
	v.slot = v.decision == Allowed && l.maxAccepts > 0
	if v.slot {
		x.inflight++
	}
	v.lastWin = x.lastWin
	s.mu.Unlock()
	d.s, d.x = s, x
	return v, d
}

func (t *driverTable) settle(d driverRef, slot, won, fair bool, now int64) {
	if !slot && !(won && fair) {
		return
	}
	d.s.mu.Lock()
	if slot {
		d.x.inflight--
		if won {
			d.x.done = append(d.x.done, now)
		}
	}
	if won && fair {
		d.x.lastWin = now + 1 // never 0, which means never won
	}
	d.s.mu.Unlock()
}

func (t *driverTable) recordShown(d driverRef, ids []uint64, now int64) {
	d.s.mu.Lock()
	// The signals are in the entry, which may have moved or been evicted since the poll:
	// they are updated only while it still holds the state the ref names.
	var sig *signals
	if e := d.s.lookup(d.key); e != nil && e.ext == d.x {
		sig = &e.sig
	}
	for _, h := range ids {
		if d.x.recordShown(h, now) && sig != nil {
			sig.observeShown()
		}
	}
	d.s.mu.Unlock()
}

func (t *driverTable) enteredDraw(d driverRef, opened uint32) {
	if d.s == nil {
		return
	}
	d.s.mu.Lock()
	if e := d.s.lookup(d.key); e != nil && e.ext == d.x {
		e.sig.observeDraw(opened)
	}
	d.s.mu.Unlock()
}
