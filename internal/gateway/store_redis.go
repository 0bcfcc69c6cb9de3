package gateway

import (
	"errors"
	"hash/fnv"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// The shared store keeps the state of a policy's drivers in Redis, so that gateway replicas
// sharing it decide as one gateway would (docs/design.md#shared-state-in-progress).
//
// Every decision is one Lua script, run with EVALSHA (go-redis loads it again on NOSCRIPT):
// it reads the driver's state, decides as decideFeed and checkAccept do, and writes back, in
// one round trip and atomically. A driver's keys share the hash tag {policy:driver}, so they
// live in one Redis Cluster slot and a script touches one slot:
//
//	of:{P:D}       hash: t = GCRA theoretical arrival time, w = last win + 1 (µs), q = sequence
//	of:{P:D}:i     zset: the accepts in flight, scored by when their slot lapses (µs)
//	of:{P:D}:d     zset: the 2xx accepts, scored by when they were answered (µs)
//	of:{P:D}:s     hash: offer hash (hex) → when it was first shown (µs); at most maxShown
//
// P is the 64-bit hash of the policy's state key, D the driver's key, both hex. Every key has
// a TTL: the life its state has on the gateway clock (pacing: until the tat; accepts: the
// window; shown offers: max(window, 10m)), plus sharedTTLSlack for clock skew.
//
// Times are the gateway's clock, passed in by the gateway (not Redis TIME), in µs since the
// Unix epoch: Lua numbers are doubles, exact for integers below 2⁵³ (µs: 285 years; ns would
// round). So a replica whose clock runs δ ahead of the others admits a driver's poll or accept
// up to δ early (and one behind, δ late): replicas must run NTP, as Kubernetes nodes do, and
// decisions agree with a local store's to the µs (exactly on a ms clock, as in the tests).
//
// An accept in flight holds its slot until settle frees it or until its lapse time (now plus
// slotLife), so that a gateway that dies with accepts in flight does not hold its drivers'
// slots for ever.

// sharedTTLSlack is added to every key's TTL: it bounds what clock skew between the gateways
// and Redis's own clock (which runs the TTLs) can cost.
const sharedTTLSlack = time.Minute

// sharedWinLife is how long a driver hash that records a fair-draw win lives at least (and is
// kept alive further by the driver's requests): the last win orders LeastRecentlyWon draws,
// where a driver without one comes first, so it must not lapse with the accept window (a bot
// would pause that long to come back as never won). Only winners pay for it.
const sharedWinLife = 24 * time.Hour

// sharedStore is the driverStore on Redis. When Redis cannot be reached (a call fails or
// takes longer than the timeout, or the breaker is open), a decision gets the OnUnavailable
// behaviour: Local decides with this replica's own table, Allow lets the request through.
type sharedStore struct {
	rt     *sharedRuntime
	prefix string // "of:{P:" ; a driver's tag adds "D}"
	deny   *denyCache
	// slotLife is how long an accept in flight holds its slot without being settled.
	slotLife int64 // µs
	local    *driverTable
	// window is the longest accept window of the policy (ns), the life of accept state.
	window int64

	errors    atomic.Uint64 // calls that failed
	fallbacks atomic.Uint64 // decisions not taken on Redis (a call failed, or the breaker is open)
	denyHits  atomic.Uint64 // requests refused from the deny cache
}

var _ driverStore = (*sharedStore)(nil)

// Decision codes the scripts return: the Decision constants.
const (
	scriptAllowed         = int64(Allowed)
	scriptAcceptThrottled = int64(AcceptThrottled)
	scriptTooFast         = int64(TooFast)
	scriptUnseenOffer     = int64(UnseenOffer)
	scriptUnreadableOffer = int64(UnreadableOffer)
)

// feedScript: KEYS[1] the driver hash; ARGV now, interval, tau (µs), slack (ms).
// Returns {allowed (1/0), tat after the decision (µs)}.
var feedScript = redis.NewScript(`
local now, interval, tau = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('HGET', KEYS[1], 't')) or now
if tat < now then tat = now end
if tat - now > tau then return {0, tat} end
local nxt = tat + interval
redis.call('HSET', KEYS[1], 't', nxt)
local ttl = math.ceil((nxt - now) / 1000) + tonumber(ARGV[4])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return {1, nxt}
`)

// acceptScript: KEYS the driver hash, in-flight zset, done zset, shown hash; ARGV now (µs),
// hasID (0/1), offer (shownField), requireShown (0/1), minReaction (µs), draws (0/1), maxAccepts,
// window (µs), slot life (µs), life of the keys (ms).
// Returns {decision, retry (µs), slot token ("" without a slot), last win (µs + 1; 0: never)},
// and on accept-throttled a fifth: the accepts in flight (none: the deny cache may keep it).
var acceptScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local hasID, id, requireShown = ARGV[2] == '1', ARGV[3], ARGV[4] == '1'
local minReaction, draws = tonumber(ARGV[5]), ARGV[6] == '1'
local maxAccepts, window = tonumber(ARGV[7]), tonumber(ARGV[8])
if not hasID then
  if requireShown then return {` + strconv.FormatInt(scriptUnseenOffer, 10) + `, 0, '', 0} end
  if minReaction > 0 or draws then return {` + strconv.FormatInt(scriptUnreadableOffer, 10) + `, 0, '', 0} end
end
if hasID and (requireShown or minReaction > 0) then
  local at = redis.call('HGET', KEYS[4], id)
  if not at then
    if requireShown then return {` + strconv.FormatInt(scriptUnseenOffer, 10) + `, 0, '', 0} end
  else
    at = tonumber(at)
    if minReaction > 0 and now - at < minReaction then
      return {` + strconv.FormatInt(scriptTooFast, 10) + `, at + minReaction - now, '', 0}
    end
  end
end
local lastWin = tonumber(redis.call('HGET', KEYS[1], 'w')) or 0
if maxAccepts <= 0 then return {` + strconv.FormatInt(scriptAllowed, 10) + `, 0, '', lastWin} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
local done = redis.call('ZCARD', KEYS[3])
local used = done + redis.call('ZCARD', KEYS[2])
if used >= maxAccepts then
  local k = used - maxAccepts + 1
  local retry = 1000000
  if k <= done then
    local r = redis.call('ZRANGE', KEYS[3], k - 1, k - 1, 'WITHSCORES')
    retry = tonumber(r[2]) + window - now
  end
  return {` + strconv.FormatInt(scriptAcceptThrottled, 10) + `, retry, '', lastWin, used - done}
end
local token = tostring(redis.call('HINCRBY', KEYS[1], 'q', 1))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[9]), token)
local ttl = tonumber(ARGV[10])
for i = 1, 2 do
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return {` + strconv.FormatInt(scriptAllowed, 10) + `, 0, token, lastWin}
`)

// settleScript: KEYS the driver hash, in-flight zset, done zset; ARGV now (µs), token ("" :
// no slot), won (0/1), fair (0/1), life of the keys (ms), life of a driver hash with a win
// (ms).
var settleScript = redis.NewScript(`
local now, token, won, fair, ttl = tonumber(ARGV[1]), ARGV[2], ARGV[3] == '1', ARGV[4] == '1', tonumber(ARGV[5])
if token ~= '' then
  redis.call('ZREM', KEYS[2], token)
  if won then redis.call('ZADD', KEYS[3], now, token) end
end
if won and fair then redis.call('HSET', KEYS[1], 'w', now + 1) end
for i = 1, 3 do
  local life = ttl
  if i == 1 and won and fair then life = math.max(ttl, tonumber(ARGV[6])) end
  if redis.call('EXISTS', KEYS[i]) == 1 and redis.call('PTTL', KEYS[i]) < life then redis.call('PEXPIRE', KEYS[i], life) end
end
return 1
`)

// shownScript: KEYS the shown hash; ARGV now (µs), max remembered, life (ms), offers (shownField)...
// An offer already remembered keeps its first-shown time; beyond max, the offers shown
// longest ago are forgotten (ties: the one recorded first). The hash is read once per call,
// after the offers are added, not once per offer: a feed answer of thousands of offers costs
// Redis a few µs an offer, not a scan of the hash each (what a bot that can ask the offer
// service for long pages would otherwise spend of every replica's Redis time). Removing the
// oldest once equals removing the oldest after each addition: either way the newest max
// remain.
var shownScript = redis.NewScript(`
local now, max, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local added = 0
for i = 4, #ARGV do
  added = added + redis.call('HSETNX', KEYS[1], ARGV[i], now)
end
local over = added > 0 and redis.call('HLEN', KEYS[1]) - max or 0
if over > 0 then
  local all = redis.call('HGETALL', KEYS[1])
  local es = {}
  for j = 1, #all, 2 do es[#es + 1] = {all[j], tonumber(all[j + 1]), j} end
  table.sort(es, function(a, b) return a[2] < b[2] or (a[2] == b[2] and a[3] < b[3]) end)
  for j = 1, over do redis.call('HDEL', KEYS[1], es[j][1]) end
end
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
`)

func toMicros(ns int64) int64 { return ns / 1e3 }

// shownField names an offer in a driver's shown hash: its whole 64-bit hash, in hex. Not the
// 32-bit fold the local ring keeps: the shared hash has no secret key (hash.go), so a bot
// could search offline for a variant of an offer id whose fold matches an offer it was shown
// long ago (2³²/64 hashes), and accept it at once past requireShown and minReactionTime.
func shownField(h uint64) string { return strconv.FormatUint(h, 16) }

// us turns now, a gateway clock time (ns since the gateway's epoch), into µs since the Unix
// epoch: the time every replica's scripts agree on, whenever each replica started.
func (st *sharedStore) us(now int64) int64 { return st.rt.epochUS + now/1e3 }

func (st *sharedStore) keys(key uint64) (driver, inflight, done, shown string) {
	var buf [64]byte
	b := append(buf[:0], st.prefix...)
	b = strconv.AppendUint(b, key, 16)
	b = append(b, '}')
	driver = string(b)
	return driver, driver + ":i", driver + ":d", driver + ":s"
}

// unavailable counts a decision not taken on Redis, for reason why, and reports whether it
// falls back to the local table (Local) rather than letting the request through (Allow).
func (st *sharedStore) unavailable(why fallbackReason) (local bool) {
	if why == fallbackError {
		st.errors.Add(1)
	}
	st.fallbacks.Add(1)
	st.rt.m.fallbacks[why].Inc()
	return st.rt.onUnavailable != gatewayconfig.OnUnavailableAllow
}

// feedVerdictAt is the verdict on a poll at nowUS, allowed or not, that left the driver's
// tat at tat (µs).
func feedVerdictAt(allowed bool, tat, nowUS int64, l *limits) feedVerdict {
	if !allowed {
		return feedVerdict{decision: FeedThrottled, retry: (tat - toMicros(l.tau) - nowUS) * 1e3, reset: (tat - nowUS) * 1e3}
	}
	interval := max(toMicros(l.interval), 1)
	return feedVerdict{decision: Allowed, remaining: (nowUS + toMicros(l.tau) + interval - tat) / interval, reset: (tat - nowUS) * 1e3}
}

func (st *sharedStore) feed(d driverRef, l *limits, now int64, dryRun, shown bool) (feedVerdict, driverRef) {
	nowUS := st.us(now)
	if tat := st.deny.feedTat(d.key); tat-nowUS > toMicros(l.tau) {
		st.denyHits.Add(1)
		st.rt.m.denyHits[routeFeed].Inc()
		return feedVerdictAt(false, tat, nowUS, l), d
	}
	kd, _, _, _ := st.keys(d.key)
	cmd, ok, why := st.rt.call(opFeed, now, feedScript, []string{kd},
		nowUS, toMicros(l.interval), toMicros(l.tau), sharedTTLSlack.Milliseconds())
	var res []int64
	if ok {
		var err error
		if res, err = cmd.Int64Slice(); err != nil || len(res) != 2 {
			st.rt.badReply(now)
			ok, why = false, fallbackError
		}
	}
	if !ok {
		if st.unavailable(why) {
			return st.local.feed(d, l, now, dryRun, shown)
		}
		var fresh entry // Allow: the verdict of a driver never seen
		return decideFeed(&fresh, l, now), d
	}
	if res[0] == 0 {
		st.deny.setFeedTat(d.key, res[1])
		return feedVerdictAt(false, res[1], nowUS, l), d
	}
	return feedVerdictAt(true, res[1], nowUS, l), d
}

// acceptDenyCacheable reports whether an accept of a driver with limits l may be refused
// accept-throttled from the deny cache: whether no check before the quota reads state that
// another replica may change, and its verdict is not carried into a draw.
func acceptDenyCacheable(p *policy, l *limits, hasID bool) bool {
	return !p.requireShown && l.minReaction == 0 && (hasID || p.draws == nil) && !(p.dryRun && p.draws != nil)
}

func (st *sharedStore) accept(p *policy, d driverRef, l *limits, id uint64, hasID bool, now int64) (acceptVerdict, driverRef) {
	nowUS := st.us(now)
	if until := st.deny.acceptUntil(d.key); nowUS < until && acceptDenyCacheable(p, l, hasID) {
		st.denyHits.Add(1)
		st.rt.m.denyHits[routeAccept].Inc()
		return acceptVerdict{decision: AcceptThrottled, retry: (until - nowUS) * 1e3}, d
	}
	kd, ki, kdone, ks := st.keys(d.key)
	cmd, ok, why := st.rt.call(opAccept, now, acceptScript, []string{kd, ki, kdone, ks},
		nowUS, boolArg(hasID), shownField(id), boolArg(p.requireShown), toMicros(l.minReaction),
		boolArg(p.draws != nil), l.maxAccepts, toMicros(l.window), st.slotLife, st.life(l.window))
	var res []any
	if ok {
		var err error
		if res, err = cmd.Slice(); err != nil || len(res) < 4 {
			st.rt.badReply(now)
			ok, why = false, fallbackError
		}
	}
	if !ok {
		if st.unavailable(why) {
			return st.local.accept(p, d, l, id, hasID, now)
		}
		return acceptVerdict{decision: Allowed}, d // Allow: no slot taken, nothing to settle
	}
	dec, _ := res[0].(int64)
	retry, _ := res[1].(int64)
	token, _ := res[2].(string)
	lastWin, _ := res[3].(int64)
	v := acceptVerdict{decision: Decision(dec), retry: retry * 1e3, slot: token != ""}
	if v.decision == AcceptThrottled && len(res) == 5 && retry > 0 {
		if inflight, _ := res[4].(int64); inflight == 0 {
			st.deny.setAcceptUntil(d.key, nowUS+retry)
		}
	}
	if lastWin > 0 {
		v.lastWin = (lastWin-1-st.rt.epochUS)*1e3 + 1
	}
	d.token = token
	return v, d
}

func (st *sharedStore) settle(d driverRef, slot, won, fair bool, now int64) {
	if d.x != nil { // decided by the local fallback
		st.local.settle(d, slot, won, fair, now)
		return
	}
	token := ""
	if slot {
		token = d.token
	}
	if token == "" && !(won && fair) {
		return // Allow let the accept through without a slot
	}
	kd, ki, kdone, _ := st.keys(d.key)
	if _, ok, why := st.rt.call(opSettle, now, settleScript, []string{kd, ki, kdone},
		st.us(now), token, boolArg(won), boolArg(fair), st.life(st.window), sharedWinLife.Milliseconds()); !ok && why == fallbackError {
		// The slot lapses at its lapse time; the accept is not counted.
		st.errors.Add(1)
	}
}

func (st *sharedStore) recordShown(d driverRef, ids []uint64, now int64) {
	if d.x != nil { // decided by the local fallback
		st.local.recordShown(d, ids, now)
		return
	}
	_, _, _, ks := st.keys(d.key)
	args := make([]any, 0, 3+len(ids))
	args = append(args, st.us(now), maxShown, st.life(max(st.window, minShownLife)))
	for _, h := range ids {
		args = append(args, shownField(h))
	}
	if _, ok, why := st.rt.call(opShown, now, shownScript, []string{ks}, args...); !ok && why == fallbackError {
		st.errors.Add(1)
	}
}

// enteredDraw updates the draw share of a driver decided by the local fallback; the shared
// store keeps no signals yet (docs/design.md#bot-likeness-signals-and-shared-state).
func (st *sharedStore) enteredDraw(d driverRef, opened uint32) {
	if d.x != nil {
		st.local.enteredDraw(d, opened)
	}
}

// life is the TTL (ms) of keys whose state lives w (ns) on the gateway clock.
func (st *sharedStore) life(w int64) int64 {
	return (w+int64(time.Millisecond)-1)/int64(time.Millisecond) + sharedTTLSlack.Milliseconds()
}

func boolArg(b bool) int {
	if b {
		return 1
	}
	return 0
}

// errNoSharedClient is returned by New for SharedState without a Client.
var errNoSharedClient = errors.New("gateway: SharedState.Client is required")

// newSharedStore makes the shared store, on rt, of the policy whose state key is stateKey,
// with local as its fallback.
func (g *Gateway) newSharedStore(stateKey string, local *driverTable, rt *sharedRuntime) *sharedStore {
	h := fnv.New64a()
	h.Write([]byte(stateKey))
	return &sharedStore{
		rt:       rt,
		prefix:   "of:{" + strconv.FormatUint(h.Sum64(), 16) + ":",
		deny:     newDenyCache(),
		slotLife: toMicros(int64(g.opts.UpstreamTimeout + sharedTTLSlack)),
		local:    local,
		window:   local.window.Load(),
	}
}
