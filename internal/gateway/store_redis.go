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
// sharing it decide as one gateway would (docs/design.md#shared-state).
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

// sigLua is the part of the driver scripts that keeps the driver's bot-likeness signals
// (signals.go) in its hash, as integers: the same fixed-point arithmetic as the Go functions
// (observePollUS, observeAcceptRefusal, observeReactionUS, observeShown, observeTried), which
// stay the source; TestSharedSignalsAgree holds the two to the same bits. Lua's numbers are
// doubles: every intermediate stays below 2⁵³, so they are exact. The fields are written
// only when they change and deleted when they become 0 (a field absent reads 0), so a
// feed-only driver carries its gap statistics and little else.
//
//	lp last poll (µs)   gv gap variance ((1/8 ms)²)   gm gap mean (1/64 ms)   dm draw mark
//	fl, rf, pr, dr      floor, refusal, presence and draw shares (q16)
//	ng, nr, ns, nd      sample counts (saturating at 255)   ep refusal episodes (bits)
//	pd                  predictability (1/256 of a 32nd of the gap mean)
//	gr                  the last three gaps (32nds of the gap mean), newest in the low byte
//
// sout returns them in this order after the script's own results; signalsFromReply reads them.
var sigLua = `
local SF = {'lp', 'gv', 'gm', 'dm', 'fl', 'rf', 'pr', 'dr', 'ng', 'nr', 'ns', 'nd', 'ep', 'pd', 'gr'}
local function dr(a, b) return math.floor((2 * a + b) / (2 * b)) end
local function kof(n, k) if n < 1 then n = 1 end if n < k then return n end return k end
local function inc(n) if n < 255 then return n + 1 end return n end
local function sload(key)
  local v = redis.call('HMGET', key, unpack(SF))
  local s, o = {}, {}
  for i = 1, #SF do
    s[SF[i]] = tonumber(v[i]) or 0
    o[SF[i]] = s[SF[i]]
  end
  return s, o
end
local function ssave(key, s, o)
  local set, del = {}, {}
  for i = 1, #SF do
    local f = SF[i]
    if s[f] ~= o[f] then
      if s[f] == 0 then del[#del + 1] = f else
        set[#set + 1] = f
        set[#set + 1] = string.format('%d', s[f])
      end
    end
  end
  if #set > 0 then redis.call('HSET', key, unpack(set)) end
  if #del > 0 then redis.call('HDEL', key, unpack(del)) end
  return #set + #del > 0
end
local function sout(r, s)
  for i = 1, #SF do r[#r + 1] = s[SF[i]] end
  return r
end
local function shas(ep, bit) return math.floor(ep / bit) % 2 == 1 end
local function srefusal(s, refused)
  if not refused and s.rf == 0 then return end
  local x = 0
  if refused then x = 1 end
  s.rf = s.rf + dr(x * 65535 - s.rf, ` + strconv.Itoa(shareK) + `)
end
local function srhythm(s, x)
  if s.gm == 0 then return end
  local q = math.min(math.max(dr(x * 32, s.gm), 1), 255)
  if s.gr % 256 ~= 0 then
    local near = ` + strconv.Itoa(predCap) + `
    for _, b in ipairs({1, 256, 65536}) do
      local r = math.floor(s.gr / b) % 256
      if r ~= 0 and r ~= 255 and q ~= 255 then near = math.min(near, math.abs(q - r)) end
    end
    s.pd = s.pd + dr(near * 256 - s.pd, kof(s.ng - 1, ` + strconv.Itoa(gapK) + `))
  end
  s.gr = q + 256 * (s.gr % 65536)
end
local function spoll(s, now, interval, allowed)
  local bit = ` + strconv.Itoa(sigFeedRefused) + `
  if not allowed then
    if not shas(s.ep, bit) then
      s.ep = s.ep + bit
      srefusal(s, true)
    end
    return
  end
  if shas(s.ep, bit) then s.ep = s.ep - bit end
  srefusal(s, false)
  local last = s.lp
  s.lp = now
  if last == 0 or now <= last then return end
  local gap = now - last
  if gap < interval or gap > math.max(` + strconv.FormatInt(minSessionGap/1e3, 10) + `, 10 * interval) then return end
  s.ng = inc(s.ng)
  local k = kof(s.ng, ` + strconv.Itoa(gapK) + `)
  local x = math.min(math.floor(gap * 8 / 125), 4294967295)
  local d = x - s.gm
  s.gm = s.gm + dr(d, k)
  srhythm(s, x)
  local d8 = dr(d, 8)
  if d8 < -33554432 or d8 > 33554432 then
    s.gv = ` + strconv.FormatInt(gapVarMax, 10) + `
    return
  end
  local v = s.gv + dr(d8 * d8, k)
  s.gv = math.min(v - dr(v, k), ` + strconv.FormatInt(gapVarMax, 10) + `)
end
local function saccept(s, dec)
  local bit = ` + strconv.Itoa(sigAcceptThrottled) + `
  if dec == ` + strconv.FormatInt(scriptAcceptThrottled, 10) + ` then
    if shas(s.ep, bit) then return end
    s.ep = s.ep + bit
  elseif dec == ` + strconv.FormatInt(scriptAllowed, 10) + ` then
    if shas(s.ep, bit) then s.ep = s.ep - bit end
  end
  srefusal(s, dec ~= ` + strconv.FormatInt(scriptAllowed, 10) + `)
end
local function sreact(s, reaction, minr)
  if reaction < minr then return end
  s.nr = inc(s.nr)
  local x = 0
  if reaction < minr + math.max(` + strconv.FormatInt(minFloorMargin/1e3, 10) + `, math.floor(minr / 4)) then x = 1 end
  s.fl = s.fl + dr(x * 65535 - s.fl, kof(s.nr, ` + strconv.Itoa(shareK) + `))
end
local function sshown(s)
  s.ns = inc(s.ns)
  s.pr = s.pr - dr(s.pr, kof(s.ns, ` + strconv.Itoa(shareK) + `))
end
local function stried(s)
  s.pr = math.min(65535, s.pr + dr(65535, kof(s.ns, ` + strconv.Itoa(shareK) + `)))
end
local function sttl(key, ttl)
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
`

// numSigFields is the number of signal fields sout appends to a script's reply.
const numSigFields = 15

// signalsFromReply reads the signal fields sout appended (in sigLua's order).
func signalsFromReply(v []int64) signals {
	return signals{lastPoll: v[0], gapVar: v[1], gapMean: uint32(v[2]), drawMark: uint16(v[3]),
		floor: uint16(v[4]), refused: uint16(v[5]), pres: uint16(v[6]), draws: uint16(v[7]),
		nGaps: uint8(v[8]), nReact: uint8(v[9]), nShown: uint8(v[10]), nDraws: uint8(v[11]),
		episodes: uint8(v[12]), pred: uint16(v[13]),
		recent: [3]uint8{uint8(v[14]), uint8(v[14] >> 8), uint8(v[14] >> 16)}}
}

// feedScript: KEYS[1] the driver hash; ARGV now, interval, tau (µs), slack (ms), life of the
// signals (ms). Returns {allowed (1/0), tat after the decision (µs), signals...}.
var feedScript = redis.NewScript(sigLua + `
local now, interval, tau = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('HGET', KEYS[1], 't')) or now
if tat < now then tat = now end
local allowed = tat - now <= tau
local s, o = sload(KEYS[1])
spoll(s, now, interval, allowed)
local changed = ssave(KEYS[1], s, o)
if not allowed then
  if changed then sttl(KEYS[1], tonumber(ARGV[5])) end
  return sout({0, tat}, s)
end
local nxt = tat + interval
redis.call('HSET', KEYS[1], 't', nxt)
sttl(KEYS[1], math.max(math.ceil((nxt - now) / 1000) + tonumber(ARGV[4]), tonumber(ARGV[5])))
return sout({1, nxt}, s)
`)

// acceptScript: KEYS the driver hash, in-flight zset, done zset, shown hash; ARGV now (µs),
// hasID (0/1), offer (shownField), requireShown (0/1), minReaction (µs), draws (0/1), maxAccepts,
// window (µs), slot life (µs), life of the keys (ms), life of the signals (ms).
// Returns {decision, retry (µs), slot token ("" without a slot), last win (µs + 1; 0: never),
// accepts in flight on accept-throttled (-1 otherwise; none: the deny cache may keep it),
// signals...}. The signals see the decision, and the reaction and presence of an accept of a
// shown offer, as policy.observeAccept.
var acceptScript = redis.NewScript(sigLua + `
local now = tonumber(ARGV[1])
local hasID, id, requireShown = ARGV[2] == '1', ARGV[3], ARGV[4] == '1'
local minReaction, draws = tonumber(ARGV[5]), ARGV[6] == '1'
local maxAccepts, window = tonumber(ARGV[7]), tonumber(ARGV[8])
local s, o = sload(KEYS[1])
local at = nil
if hasID then at = tonumber(redis.call('HGET', KEYS[4], id)) end
local function finish(dec, retry, token, lastWin, inflight)
  saccept(s, dec)
  if at and dec ~= ` + strconv.FormatInt(scriptAcceptThrottled, 10) + ` then
    stried(s)
    sreact(s, now - at, minReaction)
  end
  if ssave(KEYS[1], s, o) then sttl(KEYS[1], tonumber(ARGV[11])) end
  return sout({dec, retry, token, lastWin, inflight}, s)
end
if not hasID then
  if requireShown then return finish(` + strconv.FormatInt(scriptUnseenOffer, 10) + `, 0, '', 0, -1) end
  if minReaction > 0 or draws then return finish(` + strconv.FormatInt(scriptUnreadableOffer, 10) + `, 0, '', 0, -1) end
end
if hasID and (requireShown or minReaction > 0) then
  if not at then
    if requireShown then return finish(` + strconv.FormatInt(scriptUnseenOffer, 10) + `, 0, '', 0, -1) end
  elseif minReaction > 0 and now - at < minReaction then
    return finish(` + strconv.FormatInt(scriptTooFast, 10) + `, at + minReaction - now, '', 0, -1)
  end
end
local lastWin = tonumber(redis.call('HGET', KEYS[1], 'w')) or 0
if maxAccepts <= 0 then return finish(` + strconv.FormatInt(scriptAllowed, 10) + `, 0, '', lastWin, -1) end
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
  return finish(` + strconv.FormatInt(scriptAcceptThrottled, 10) + `, retry, '', lastWin, used - done)
end
local token = tostring(redis.call('HINCRBY', KEYS[1], 'q', 1))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[9]), token)
local ttl = tonumber(ARGV[10])
for i = 1, 2 do sttl(KEYS[i], ttl) end
return finish(` + strconv.FormatInt(scriptAllowed, 10) + `, 0, token, lastWin, -1)
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

// shownScript: KEYS the shown hash, the driver hash; ARGV now (µs), max remembered, life
// (ms), offers (shownField)... An offer already remembered keeps its first-shown time; beyond
// max, the offers shown longest ago are forgotten (ties: the one recorded first). Each offer
// shown first decays the driver's presence (observeShown). The hash is read once per call,
// after the offers are added, not once per offer: a feed answer of thousands of offers costs
// Redis a few µs an offer, not a scan of the hash each (what a bot that can ask the offer
// service for long pages would otherwise spend of every replica's Redis time). Removing the
// oldest once equals removing the oldest after each addition: either way the newest max
// remain.
var shownScript = redis.NewScript(sigLua + `
local now, max, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local s, o = sload(KEYS[2])
local added = 0
for i = 4, #ARGV do
  if redis.call('HSETNX', KEYS[1], ARGV[i], now) == 1 then
    added = added + 1
    sshown(s)
  end
end
local over = added > 0 and redis.call('HLEN', KEYS[1]) - max or 0
if over > 0 then
  local all = redis.call('HGETALL', KEYS[1])
  local es = {}
  for j = 1, #all, 2 do es[#es + 1] = {all[j], tonumber(all[j + 1]), j} end
  table.sort(es, function(a, b) return a[2] < b[2] or (a[2] == b[2] and a[3] < b[3]) end)
  for j = 1, over do redis.call('HDEL', KEYS[1], es[j][1]) end
end
sttl(KEYS[1], ttl)
if ssave(KEYS[2], s, o) then sttl(KEYS[2], ttl) end
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
	// In DryRun a refused poll is forwarded all the same, with the driver's current signals:
	// the deny cache, which knows no signals, saves nothing there.
	if tat := st.deny.feedTat(d.key); !dryRun && tat-nowUS > toMicros(l.tau) {
		st.denyHits.Add(1)
		st.rt.m.denyHits[routeFeed].Inc()
		return feedVerdictAt(false, tat, nowUS, l), d
	}
	kd, _, _, _ := st.keys(d.key)
	cmd, ok, why := st.rt.call(opFeed, now, feedScript, []string{kd},
		nowUS, toMicros(l.interval), toMicros(l.tau), sharedTTLSlack.Milliseconds(), st.sigLife())
	var res []int64
	if ok {
		var err error
		if res, err = cmd.Int64Slice(); err != nil || len(res) != 2+numSigFields {
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
	v := feedVerdictAt(res[0] == 1, res[1], nowUS, l)
	v.sig, v.hasSig = signalsFromReply(res[2:]), true
	if res[0] == 0 {
		st.deny.setFeedTat(d.key, res[1])
	}
	return v, d
}

// sigLife is the TTL (ms) a driver hash gets when its signals change: as long as its shown
// offers live (max(window, 10m)), plus the slack.
func (st *sharedStore) sigLife() int64 { return st.life(max(st.window, minShownLife)) }

// acceptDenyCacheable reports whether an accept of a driver with limits l may be refused
// accept-throttled from the deny cache: whether no check before the quota reads state that
// another replica may change, and the policy is not in DryRun (where the accept is forwarded
// all the same, with the driver's current signals).
func acceptDenyCacheable(p *policy, l *limits, hasID bool) bool {
	return !p.requireShown && l.minReaction == 0 && (hasID || p.draws == nil) && !p.dryRun
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
		boolArg(p.draws != nil), l.maxAccepts, toMicros(l.window), st.slotLife, st.life(l.window), st.sigLife())
	var res []any
	var ints [5 + numSigFields]int64
	if ok {
		var err error
		if res, err = cmd.Slice(); err != nil || len(res) != len(ints) {
			st.rt.badReply(now)
			ok, why = false, fallbackError
		}
	}
	for i := range res {
		if i == 2 {
			continue // the token
		}
		n, isInt := res[i].(int64)
		if !isInt && ok {
			st.rt.badReply(now)
			ok, why = false, fallbackError
		}
		ints[i] = n
	}
	if !ok {
		if st.unavailable(why) {
			return st.local.accept(p, d, l, id, hasID, now)
		}
		return acceptVerdict{decision: Allowed}, d // Allow: no slot taken, nothing to settle
	}
	dec, retry, lastWin, inflight := ints[0], ints[1], ints[3], ints[4]
	token, _ := res[2].(string)
	v := acceptVerdict{decision: Decision(dec), retry: retry * 1e3, slot: token != ""}
	v.sig, v.hasSig = signalsFromReply(ints[5:]), true
	if v.decision == AcceptThrottled && inflight == 0 && retry > 0 {
		st.deny.setAcceptUntil(d.key, nowUS+retry)
	}
	if lastWin > 0 {
		v.lastWin = (lastWin-1-st.rt.epochUS)*1e3 + 1
	}
	d.token = token
	if v.decision == Allowed && p.botLike(&v.sig) {
		// As the local store: refused bot-like, no slot held. The script took one: it is
		// given back at once (a round trip only for a bot-like driver's accepts).
		v.decision = BotLike
		if v.slot {
			st.settle(d, true, false, false, now)
			v.slot, d.token = false, ""
		}
	}
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
	kd, _, _, ks := st.keys(d.key)
	args := make([]any, 0, 3+len(ids))
	args = append(args, st.us(now), maxShown, st.life(max(st.window, minShownLife)))
	for _, h := range ids {
		args = append(args, shownField(h))
	}
	if _, ok, why := st.rt.call(opShown, now, shownScript, []string{ks, kd}, args...); !ok && why == fallbackError {
		st.errors.Add(1)
	}
}

// enteredDraw updates the draw share of a driver decided by the local fallback. The shared
// store keeps the other signals in the driver's hash, but not the draw share yet: it needs a
// count of the draws opened across the replicas, which the draw keys (another hash tag)
// cannot update in the driver's script (docs/design.md#bot-likeness-signals).
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
