package gateway

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fair draws across replicas (docs/design.md#draws-across-replicas). With shared state a draw
// belongs to the offer: every replica that holds accepts for the offer takes part in one draw
// kept in Redis, under the offer's own hash tag:
//
//	of:{P:oO}     hash: c = window close (µs), s = phase (open, turn, run, won, over),
//	              t = the candidate whose turn it is, w = its score, e = its lease (µs),
//	              x = turn sequence
//	of:{P:oO}:j   hash: driver → candidate: every driver that joined (one place each)
//	of:{P:oO}:q   zset: the candidates not tried yet, in award order
//
// A candidate is named rand|replica|driver (16 hex digits each): its score (LeastRecentlyWon:
// the driver's last win; Random: 0) orders it, and equal scores fall back to the member's
// bytes, so to rand, a number the joining gateway draws. Each replica keeps, per offer it holds
// candidates for, a sharedDraw with those candidates (their requests wait on c.turn as in a
// local draw), a timer (the window's close, then a poll) and the turn sequence it saw last.
// Turns are told on the policy's pub/sub channel; the poll recovers a lost message and skips a
// replica whose lease lapsed.

const (
	// drawClaimTTL is how long the replica holding the candidate whose turn came has to claim
	// it, on the gateway clock; then every candidate of that replica is skipped.
	drawClaimTTL = 2 * time.Second
	// drawSubLinger is how long, on the gateway clock, a replica stays subscribed to its
	// policy's draw channel after its last shared draw ended: a busy market does not pay a
	// new connection and SUBSCRIBE per draw, an idle one holds none.
	drawSubLinger = 30 * time.Second
	// drawPollEvery is how often a replica holding candidates of a draw whose window closed
	// reads its state, on the gateway clock, in case a message was lost.
	drawPollEvery = 500 * time.Millisecond
)

// Results of the join script.
const (
	sjJoined = iota + 1
	sjOpened
	sjClosed
	sjDuplicate
	sjFull
)

// drawJoinScript: KEYS the draw's three keys; ARGV now (µs), window (µs), driver, member,
// score, max candidates, life (ms), dry (0/1). Returns {result, window close (µs)}.
var drawJoinScript = redis.NewScript(`
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local h = KEYS[1]
local c = tonumber(redis.call('HGET', h, 'c'))
local code = ` + strconv.Itoa(sjJoined) + `
if not c then
  c = now + window
  redis.call('HSET', h, 'c', c, 's', 'open', 'x', 0)
  code = ` + strconv.Itoa(sjOpened) + `
else
  if redis.call('HGET', h, 's') ~= 'open' or now >= c then return {` + strconv.Itoa(sjClosed) + `, c} end
  if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then return {` + strconv.Itoa(sjDuplicate) + `, c} end
  if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[6]) then return {` + strconv.Itoa(sjFull) + `, c} end
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
if ARGV[8] ~= '1' then redis.call('ZADD', KEYS[3], tonumber(ARGV[5]), ARGV[4]) end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[7])) end
return {code, c}
`)

// drawScript moves a draw on. KEYS the draw's three keys; ARGV op, now (µs), life (ms), claim
// TTL (µs), channel, offer (hex), then per op:
//
//	next                  close the window when it is over; skip the replica of a lapsed turn
//	claim  member fresh lease   take the turn (fresh: the driver's last win now, "" to skip)
//	settle member won           end the turn: won ends the draw, else the next candidate's turn
//	leave  member               the candidate is gone: out of the queue, its turn passed on
//
// Returns {phase, sequence, turn member, window close, candidates when this call closed the
// window (-1 otherwise), 1 when this call ended the draw}. Every change of the turn is
// published as "offer phase sequence member".
var drawScript = redis.NewScript(`
local op, now, life = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local claimTTL, chan, oid = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local h = KEYS[1]
local v = redis.call('HMGET', h, 's', 't', 'e', 'c', 'w')
local s = v[1]
if not s then return {'gone', 0, '', 0, -1, 0} end
local closedN, ended = -1, 0
local function state()
  local v = redis.call('HMGET', h, 's', 'x', 't', 'c')
  return {v[1], tonumber(v[2]), v[3] or '', tonumber(v[4]), closedN, ended}
end
local function publish()
  local v = redis.call('HMGET', h, 's', 'x', 't')
  redis.call('PUBLISH', chan, oid .. ' ' .. v[1] .. ' ' .. v[2] .. ' ' .. (v[3] or ''))
end
local function grant()
  local m = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  redis.call('HINCRBY', h, 'x', 1)
  if not m then
    redis.call('HSET', h, 's', 'over', 't', '')
    ended = 1
  else
    local sc = redis.call('ZSCORE', KEYS[3], m)
    redis.call('ZREM', KEYS[3], m)
    redis.call('HSET', h, 's', 'turn', 't', m, 'w', sc, 'e', now + claimTTL)
  end
  publish()
end
local function touch()
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], life) end
end
local t = v[2] or ''
local e = tonumber(v[3] or '0')
if op == 'next' then
  if s == 'open' then
    if now >= tonumber(v[4]) then
      closedN = redis.call('HLEN', KEYS[2])
      grant()
      touch()
    end
  elseif (s == 'turn' or s == 'run') and now >= e then
    local r = string.sub(t, 17, 32)
    for _, m in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
      if string.sub(m, 17, 32) == r then redis.call('ZREM', KEYS[3], m) end
    end
    grant()
    touch()
  end
elseif op == 'claim' then
  local m, fresh = ARGV[7], ARGV[8]
  if s == 'turn' and t == m and now < e then
    if fresh ~= '' and tonumber(fresh) > tonumber(v[5]) then
      redis.call('ZADD', KEYS[3], tonumber(fresh), m)
      grant()
      if redis.call('HGET', h, 't') ~= m then
        touch()
        return state()
      end
    end
    redis.call('HSET', h, 's', 'run', 'e', now + tonumber(ARGV[9]))
    touch()
  end
elseif op == 'settle' then
  if s == 'run' and t == ARGV[7] then
    if ARGV[8] == '1' then
      redis.call('HINCRBY', h, 'x', 1)
      redis.call('HSET', h, 's', 'won')
      redis.call('DEL', KEYS[3])
      ended = 1
      publish()
    else
      grant()
    end
    touch()
  end
elseif op == 'leave' then
  redis.call('ZREM', KEYS[3], ARGV[7])
  if s == 'turn' and t == ARGV[7] then grant() end
  touch()
end
return state()
`)

// sharedDraws runs a policy's fair draws across the replicas that share its state.
type sharedDraws struct {
	t       *drawTable
	st      *sharedStore
	replica string // 16 hex digits, random per table
	channel string
	lease   int64 // µs: how long a claimed turn may take (the upstream timeout, + claim TTL)
	nowUS   func() int64

	handles map[uint64]*sharedDraw // under t.mu

	subMu sync.Mutex
	ps    *redis.PubSub // subscribed while handles is not empty, and drawSubLinger after
	idle  interface{ Stop() bool }
}

// sharedDraw is what this replica knows of one offer's shared draw.
type sharedDraw struct {
	id     uint64
	keys   []string
	oid    string
	opened int64 // gateway ns, for the local fallback's bookkeeping
	closes int64 // µs; 0 until joined
	cands  map[uint64]*candidate
	seq    int64 // the latest turn sequence applied
	timer  interface{ Stop() bool }
	local  *draw // set when a Redis call failed: the candidates are drawn here
	done   bool
}

// drawState is a reply of drawScript, or a message.
type drawState struct {
	phase   string
	seq     int64
	turn    string
	closes  int64
	closedN int64
	ended   bool
}

func (g *Gateway) newSharedDraws(t *drawTable, ss *sharedStore) *sharedDraws {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		binary.LittleEndian.PutUint64(b[:], uint64(time.Now().UnixNano()))
	}
	p := strings.TrimSuffix(strings.TrimPrefix(ss.prefix, "of:{"), ":")
	return &sharedDraws{
		t:       t,
		st:      ss,
		replica: fmt.Sprintf("%016x", binary.LittleEndian.Uint64(b[:])),
		channel: "of:draws:" + p,
		lease:   toMicros(int64(g.opts.UpstreamTimeout + drawClaimTTL)),
		nowUS:   func() int64 { return g.now().UnixMicro() },
		handles: make(map[uint64]*sharedDraw),
	}
}

// heldLocked counts this replica's candidates of offer id that joined its shared draw. The
// caller holds t.mu.
func (sd *sharedDraws) heldLocked(id uint64) int {
	n := 0
	if h := sd.handles[id]; h != nil {
		for _, c := range h.cands {
			if c.sh != nil {
				n++
			}
		}
	}
	return n
}

// life is the TTL (ms) of a draw's keys, set on every write: the window, a turn's lease, the
// memory of a closed window and the slack.
func (sd *sharedDraws) life() int64 {
	return (int64(sd.t.window)+int64(drawMemory)+int64(sharedTTLSlack))/int64(time.Millisecond) + sd.lease/1000
}

func (sd *sharedDraws) offerKeys(id uint64) []string {
	k := sd.st.prefix + "o" + strconv.FormatUint(id, 16) + "}"
	return []string{k, k + ":j", k + ":q"}
}

// serveSharedAccept serves an accept of a policy with fairness and shared state, after its
// checks passed. It reports false when the shared draw could not be joined (Redis failed):
// the caller then holds the accept in this replica's own draw (the Local fallback).
func (g *Gateway) serveSharedAccept(w http.ResponseWriter, r *http.Request, p *policy, st *reqState,
	key, id uint64, lastWin int64, score int32) bool {
	t := p.draws
	sd := t.shared
	c := &candidate{key: key, joined: g.nowNS(), lastWin: lastWin, score: score}
	if !t.dry {
		c.turn = make(chan bool, 1)
	}

	t.mu.Lock()
	h := sd.handles[id]
	if !t.dry {
		if h == nil && t.live.Load() >= int64(t.maxDraws) {
			t.mu.Unlock()
			t.mResults[resMaxDraws].Inc()
			g.forwardAccept(w, r, st)
			return true
		}
		if h != nil && h.cands[key] != nil {
			t.mu.Unlock()
			t.mResults[resDuplicate].Inc()
			answerDraw(w, p, DecisionDuplicateAccept)
			return true
		}
	}
	c.member = fmt.Sprintf("%016x%s%016x", t.rng.Uint64(), sd.replica, key)
	place := t.sharedPlace(score, lastWin)
	fresh := false
	if !t.dry {
		if h == nil {
			h = &sharedDraw{id: id, keys: sd.offerKeys(id), oid: strconv.FormatUint(id, 16), opened: c.joined,
				cands: make(map[uint64]*candidate)}
			sd.handles[id] = h
			t.live.Add(1)
			fresh = true
		}
		h.cands[key] = c
	}
	t.mu.Unlock()
	if fresh {
		sd.sync()
	}

	keys := sd.offerKeys(id)
	var res []int64
	err := sd.redis(func(ctx context.Context, rc redis.UniversalClient) (err error) {
		res, err = drawJoinScript.Run(ctx, rc, keys, sd.nowUS(), toMicros(int64(t.window)),
			strconv.FormatUint(key, 16), c.member, place, t.maxCands, sd.life(), boolArg(t.dry)).Int64Slice()
		return err
	})
	if err == nil && len(res) != 2 {
		err = errors.New("draw join: unexpected reply")
	}
	code := int64(0)
	if err == nil {
		code = res[0]
	}
	if !t.dry && code != sjJoined && code != sjOpened {
		sd.forget(h, c)
	}
	if err != nil {
		sd.st.unavailable(fallbackError)
		return false
	}
	if code == sjOpened {
		t.mOpened.Inc()
	}
	switch code {
	case sjDuplicate, sjFull:
		dec := DecisionLostDraw
		res := resFull
		if code == sjDuplicate {
			dec, res = DecisionDuplicateAccept, resDuplicate
		}
		t.mResults[res].Inc()
		if !p.dryRun {
			answerDraw(w, p, dec)
			return true
		}
		r.Header.Set(HeaderFlag, dec.String())
		g.forwardAccept(w, r, st)
		return true
	case sjClosed:
		t.mResults[resWindowClosed].Inc()
		g.forwardAccept(w, r, st)
		return true
	}
	if t.dry {
		t.mResults[resDryRun].Inc()
		r.Header.Set(HeaderFlag, FlagDraw.String())
		g.forwardAccept(w, r, st)
		return true
	}

	t.mu.Lock()
	if h.done || h.local != nil {
		// The draw ended here (a lapsed turn skipped this replica, or a Redis call failed)
		// while the join was under way: the candidate goes back out and the accept is held in
		// this replica's own draw.
		delete(h.cands, c.key)
		t.mu.Unlock()
		sd.leave(h, c.member)
		return false
	}
	c.sh = h
	if h.closes == 0 {
		h.closes = res[1]
		sd.armLocked(h, time.Duration(h.closes-sd.nowUS())*time.Microsecond)
	}
	t.mu.Unlock()

	var turn bool
	select {
	case turn = <-c.turn:
	case <-r.Context().Done():
		if t.leave(c) {
			t.mHold.Observe(float64(g.nowNS()-c.joined) / 1e9)
			t.mResults[resLeft].Inc()
			sd.leave(h, c.member)
			answerDraw(w, p, DecisionLostDraw) // to no one, but logs see what happened
			return true
		}
		turn = <-c.turn
	}
	t.mHold.Observe(float64(g.nowNS()-c.joined) / 1e9)
	if !turn {
		t.mResults[resLost].Inc()
		answerDraw(w, p, DecisionLostDraw)
		return true
	}
	if r.Context().Err() != nil {
		t.mResults[resLeft].Inc()
		t.settle(nil, c, false)
		answerDraw(w, p, DecisionLostDraw)
		return true
	}
	st.accept.d, st.accept.c = sharedTry, c
	g.forwardAccept(w, r, st)
	return true
}

// lrwBand is the span of one score band in a shared LeastRecentlyWon draw's sorted set (µs):
// more than any last win, so that a lower band always comes first. Scores are doubles: in
// bands 4 and 5 the last wins are ordered to 2 µs.
const lrwBand = int64(1) << 51

// noChance is the place of a candidate of weight 0 (score 1) in a score-weighted Random draw:
// after every candidate of a positive weight, in random order among themselves.
const noChance = 1e300

// sharedPlace is a candidate's place in a shared draw's queue, the sorted set's score (ties
// go by the member, which starts with a random number): as orderLocked orders a local draw.
// Random: 0; with score weighting (botScore.drawWeighting Score) an exponential key of rate
// scoreWeight (1 − score, steeper above 0.5; 1 for a driver without a score), so the
// smallest key comes first with probability proportional to its weight
// (Efraimidis–Spirakis), in one ZADD.
// LeastRecentlyWon: the driver's last win (µs + 1; 0 never), after its score band
// (scoreBand) with weighting. The caller holds t.mu (the random source).
func (t *drawTable) sharedPlace(permille int32, lastWin int64) float64 {
	if t.lrw {
		place := int64(0)
		if lastWin > 0 {
			place = (lastWin-1)/1e3 + 1 // the store's µs + 1
		}
		if t.weighted {
			place += int64(scoreBand(permille)) * lrwBand
		}
		return float64(place)
	}
	if !t.weighted {
		return 0
	}
	w := scoreWeight(permille)
	if w <= 0 {
		return noChance
	}
	return t.rng.ExpFloat64() / w
}

// sharedTry marks, in an acceptAnswer, the try of a shared draw's candidate (its candidate
// knows its draw).
var sharedTry = &draw{}

// forget takes a candidate that did not join out of h, and drops h when it was its only one.
func (sd *sharedDraws) forget(h *sharedDraw, c *candidate) {
	t := sd.t
	t.mu.Lock()
	if h.cands[c.key] == c {
		delete(h.cands, c.key)
	}
	drop := len(h.cands) == 0 && h.closes == 0 && !h.done && h.local == nil
	if drop {
		sd.dropLocked(h, true)
	}
	t.mu.Unlock()
	if drop {
		sd.sync()
	}
}

// dropLocked ends this replica's part in h: the timer stops, h leaves the table (and the live
// count, unless the local fallback's finish counts it). The caller holds t.mu and calls sync
// after it unlocked.
func (sd *sharedDraws) dropLocked(h *sharedDraw, live bool) {
	h.done = true
	if h.timer != nil {
		h.timer.Stop()
	}
	if sd.handles[h.id] == h {
		delete(sd.handles, h.id)
	}
	if live {
		sd.t.live.Add(-1)
	}
}

// armLocked runs a poll of h after d (at once when d ≤ 0). The caller holds t.mu.
func (sd *sharedDraws) armLocked(h *sharedDraw, d time.Duration) {
	t := sd.t
	run := func() {
		t.closing.Add(1)
		go func() {
			defer t.closing.Done()
			sd.poll(h)
		}()
	}
	if d <= 0 {
		run()
		return
	}
	// As for a local draw, the timer's function only starts the poll (a fake clock calls it
	// while it holds its lock).
	h.timer = t.clock.AfterFunc(d, run)
}

// poll closes the window when it is over, skips a lapsed turn and applies what it reads; then
// it polls again in drawPollEvery while h is live.
func (sd *sharedDraws) poll(h *sharedDraw) {
	t := sd.t
	t.mu.Lock()
	live := !h.done && h.local == nil
	t.mu.Unlock()
	if !live {
		return
	}
	s, err := sd.call(h, "next")
	if err != nil {
		sd.fallback(h)
		return
	}
	if s.closedN >= 0 {
		t.mCandidates.Observe(float64(s.closedN))
	}
	if s.ended {
		t.mDraws[outUnwon].Inc()
	}
	sd.apply(h, s)
	t.mu.Lock()
	if !h.done && h.local == nil {
		sd.armLocked(h, drawPollEvery)
	}
	t.mu.Unlock()
}

// redis runs f, one Redis call of the draws, under the shared store's breaker and timeout.
func (sd *sharedDraws) redis(f func(ctx context.Context, rc redis.UniversalClient) error) error {
	return sd.st.rt.do((sd.nowUS()-sd.st.rt.epochUS)*1e3, func(ctx context.Context) error { return f(ctx, sd.st.rt.client) })
}

// call runs drawScript's op on h's draw.
func (sd *sharedDraws) call(h *sharedDraw, op string, args ...any) (drawState, error) {
	argv := append([]any{op, sd.nowUS(), sd.life(), toMicros(int64(drawClaimTTL)), sd.channel, h.oid}, args...)
	var v []any
	err := sd.redis(func(ctx context.Context, rc redis.UniversalClient) (err error) {
		v, err = drawScript.Run(ctx, rc, h.keys, argv...).Slice()
		return err
	})
	if err != nil {
		return drawState{}, err
	}
	if len(v) != 6 {
		return drawState{}, errors.New("draw: unexpected reply")
	}
	var s drawState
	s.phase, _ = v[0].(string)
	s.seq, _ = v[1].(int64)
	s.turn, _ = v[2].(string)
	s.closes, _ = v[3].(int64)
	s.closedN, _ = v[4].(int64)
	e, _ := v[5].(int64)
	s.ended = e == 1
	return s, nil
}

// apply acts on a state of h's draw, read or told: the turn of a candidate of this replica is
// claimed (or passed on, when it left); an ended draw answers this replica's waiting
// candidates lost-draw. States older than the last one applied are ignored.
func (sd *sharedDraws) apply(h *sharedDraw, s drawState) {
	t := sd.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if h.done || h.local != nil {
		return
	}
	switch s.phase {
	case "gone", "won", "over":
		for _, c := range h.cands {
			if c.state == candWaiting && c.sh != nil {
				c.state = candDone
				c.turn <- false
			}
		}
		sd.dropLocked(h, true)
		go sd.sync()
		return
	}
	if s.seq <= h.seq {
		return
	}
	h.seq = s.seq
	if s.phase != "turn" || len(s.turn) != 48 || s.turn[16:32] != sd.replica {
		return
	}
	key, _ := strconv.ParseUint(s.turn[32:], 16, 64)
	c := h.cands[key]
	switch {
	case c != nil && c.member == s.turn && c.state == candWaiting:
		if !c.claiming {
			c.claiming = true
			go sd.claim(h, c)
		}
	default: // left, or unknown here: the turn passes on
		go sd.leave(h, s.turn)
	}
}

// claim takes the turn of c: with LeastRecentlyWon it reads the driver's last win first, so
// that a candidate who won meanwhile goes back in the queue. A claimed turn is c's to forward.
func (sd *sharedDraws) claim(h *sharedDraw, c *candidate) {
	t := sd.t
	fresh := ""
	if t.lrw {
		kd, _, _, _ := sd.st.keys(c.key)
		var v string
		err := sd.redis(func(ctx context.Context, rc redis.UniversalClient) (err error) {
			v, err = rc.HGet(ctx, kd, "w").Result()
			return err
		})
		switch {
		case errors.Is(err, redis.Nil):
			fresh = "0"
		case err != nil:
			sd.fallback(h)
			return
		default:
			fresh = v
		}
		if t.weighted { // the candidate's band, as its place in the queue
			w, _ := strconv.ParseInt(fresh, 10, 64)
			fresh = strconv.FormatInt(w+int64(scoreBand(c.score))*lrwBand, 10)
		}
	}
	s, err := sd.call(h, "claim", c.member, fresh, sd.lease)
	if err != nil {
		sd.fallback(h)
		return
	}
	mine := s.phase == "run" && s.turn == c.member
	t.mu.Lock()
	c.claiming = false
	if mine && c.state == candWaiting && !h.done && h.local == nil {
		c.state = candTrying
		h.seq = max(h.seq, s.seq)
		t.mu.Unlock()
		c.turn <- true
		return
	}
	t.mu.Unlock()
	if mine {
		// c left while its turn was claimed: it passes on.
		sd.settleTurn(h, c.member, false)
		return
	}
	sd.apply(h, s)
}

// leave takes a candidate that is gone out of the draw (and passes its turn on).
func (sd *sharedDraws) leave(h *sharedDraw, member string) {
	s, err := sd.call(h, "leave", member)
	if err != nil {
		sd.st.unavailable(fallbackError) // its turn, if it comes, is passed on then, or lapses
		return
	}
	if s.ended {
		sd.t.mDraws[outUnwon].Inc()
	}
	sd.apply(h, s)
}

// settle records the answer to the try of c, a candidate of a shared draw.
func (sd *sharedDraws) settle(c *candidate, won bool) {
	t := sd.t
	h := c.sh
	t.mu.Lock()
	if c.state != candTrying {
		t.mu.Unlock()
		return
	}
	if h.local != nil {
		t.settleLocked(h.local, c, won)
		t.mu.Unlock()
		return
	}
	c.state = candDone
	t.mu.Unlock()
	sd.settleTurn(h, c.member, won)
}

func (sd *sharedDraws) settleTurn(h *sharedDraw, member string, won bool) {
	s, err := sd.call(h, "settle", member, boolArg(won))
	if err != nil {
		sd.fallback(h)
		return
	}
	if s.ended {
		if won {
			sd.t.mDraws[outWon].Inc()
		} else {
			sd.t.mDraws[outUnwon].Inc()
		}
	}
	sd.apply(h, s)
}

// fallback draws h's waiting candidates among themselves, in this replica, when a Redis call
// of the draw failed (the Local fallback): as a local draw whose window closed. A candidate
// of this replica whose try is under way is settled first.
func (sd *sharedDraws) fallback(h *sharedDraw) {
	sd.st.unavailable(fallbackError)
	t := sd.t
	t.mu.Lock()
	if h.done || h.local != nil {
		t.mu.Unlock()
		return
	}
	d := &draw{id: h.id, opened: h.opened, closed: true}
	trying := false
	for _, c := range h.cands {
		switch {
		case c.sh == nil:
		case c.state == candWaiting:
			d.cands = append(d.cands, c)
		case c.state == candTrying:
			trying = true
		}
	}
	d.order = t.orderLocked(d.cands)
	h.local = d
	sd.dropLocked(h, false) // the local draw's finish frees its place
	if !trying {
		t.advanceLocked(d)
	}
	t.mu.Unlock()
	sd.sync()
}

// sync subscribes to the policy's channel while this replica holds candidates of shared
// draws, and unsubscribes when it held none for drawSubLinger (no connection, no goroutine
// when idle). The caller does not hold t.mu.
func (sd *sharedDraws) sync() { sd.syncSub(false) }

func (sd *sharedDraws) syncSub(lingered bool) {
	sd.subMu.Lock()
	defer sd.subMu.Unlock()
	sd.t.mu.Lock()
	want := len(sd.handles) > 0
	sd.t.mu.Unlock()
	if want && sd.idle != nil {
		sd.idle.Stop()
		sd.idle = nil
	}
	switch {
	case want && sd.ps == nil:
		ctx, cancel := context.WithTimeout(context.Background(), sd.st.rt.timeout)
		sd.ps = sd.st.rt.client.Subscribe(ctx, sd.channel)
		cancel()
		go sd.dispatch(sd.ps.Channel(redis.WithChannelSize(1024)))
	case !want && sd.ps != nil && lingered:
		_ = sd.ps.Close()
		sd.ps = nil
		sd.idle = nil
	case !want && sd.ps != nil && sd.idle == nil:
		sd.idle = sd.t.clock.AfterFunc(drawSubLinger, func() { go sd.syncSub(true) })
	}
}

// subscribed reports whether this replica is subscribed to its policy's draw channel.
func (sd *sharedDraws) subscribed() bool {
	sd.subMu.Lock()
	defer sd.subMu.Unlock()
	return sd.ps != nil
}

// dispatch applies the messages of the policy's channel to the draws this replica holds.
func (sd *sharedDraws) dispatch(ch <-chan *redis.Message) {
	for m := range ch {
		f := strings.Fields(m.Payload)
		if len(f) < 3 {
			continue
		}
		id, err1 := strconv.ParseUint(f[0], 16, 64)
		seq, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		s := drawState{phase: f[1], seq: seq}
		if len(f) > 3 {
			s.turn = f[3]
		}
		sd.t.mu.Lock()
		h := sd.handles[id]
		sd.t.mu.Unlock()
		if h != nil {
			sd.apply(h, s)
		}
	}
}
