package gateway

import (
	"math"
	"strconv"
	"time"
)

// Bot-likeness signals (docs/gateway.md#bot-likeness-score). The gateway sees every poll and
// accept of a driver; what makes a bot a bot is in their timing and their presence, not in
// their speed once pacing and minReactionTime apply:
//
//   - regularity: a scheduler polls at even gaps, jitter or no jitter; people do not. An EWMA
//     of the gaps between the polls the pacer allowed, and of their variance, gives the gaps'
//     coefficient of variation (cv); and, since a scheduler can cycle through a few fixed gaps
//     spread far apart (a human cv, no human in it), the gaps' predictability: how far each
//     lies from the nearest of the three before it (pred).
//   - floor: the share of accepts that arrive within floorMargin above minReactionTime.
//   - presence: the share of the offers first shown to the driver that it then tried to
//     accept, and the share of the policy's fair draws it entered.
//   - refusals: the share of its governed requests that the policy refused.
//
// They are 40 bytes in the driver's entry (state.go), updated by the pure functions below on
// the gateway clock, and folded into one score in [0,1] by score.

// signals are the bot-likeness signals of one driver: 40 bytes, every field an integer, so
// that the shared store's scripts (store_redis.go, sigLua) update them to the same bits in
// Lua, whose numbers are doubles: every intermediate stays below 2⁵³.
type signals struct {
	// lastPoll is when the pacer last allowed a poll of the driver (µs on the store's clock:
	// the gateway clock locally, the Unix epoch in Redis); 0: none yet.
	lastPoll int64
	// gapVar is the EWMA of the gaps' variance, in (1/8 ms)², at most gapVarMax.
	gapVar int64
	// gapMean is the EWMA of the gaps between allowed polls, in 1/64 ms.
	gapMean uint32
	// floor, refused, pres and draws are shares in q16 fixed point (65535 is 1).
	floor, refused, pres, draws uint16
	// pred is the EWMA of how far each gap lies from the nearest of the three gaps before it
	// (predictability: 0 for any cycle of one to three fixed gaps), in 1/256 of a step of
	// recent (1/32 of the gap mean), at most predCap steps.
	pred uint16
	// drawMark is the low 16 bits of the policy's count of fair draws opened when the driver
	// last entered one (the count of misses is capped at maxMissedDraws anyway).
	drawMark uint16
	// nGaps, nReact, nShown and nDraws count the samples of each signal, saturating at 255:
	// gaps, accepts with a known reaction time, offers first shown, fair draws counted.
	nGaps, nReact, nShown, nDraws uint8
	// episodes: the refusal episodes under way (sigFeedRefused, sigAcceptThrottled).
	episodes uint8
	// recent are the last three gaps counted, newest first, each in 32nds of the gap mean
	// after it (1–255, rounded, 255 for 8 means and more; 0: none yet).
	recent [3]uint8
}

// Refusal episodes: a run of refusals that nothing but time ends counts once in the refusal
// share. A replica's deny cache answers such runs without asking Redis (store_deny.go), so
// counting every refusal of the run would make the share depend on the replica each request
// reached; counting the run once does not.
const (
	// sigFeedRefused: a refused poll was counted since the last allowed poll (the pacer's tat
	// does not move until a poll is allowed).
	sigFeedRefused = 1 << iota
	// sigAcceptThrottled: an accept-throttled accept was counted since the last accept the
	// quota let through.
	sigAcceptThrottled
)

// Signal tuning: the EWMA weight of the n-th sample is 1/min(n, k): a plain mean at first,
// then 1/k.
const (
	gapK   = 32 // gaps: about the last 60 gaps weigh
	shareK = 32 // shares: about the last 60 events weigh
	// gapVarMax bounds gapVar: a standard deviation of 2²⁵/8 ms (70 min); a gap that deviates
	// from the mean by more sets it there. A variance at the bound reads as irregular (cv at
	// least 1): only gaps of hours reach it (minInterval of 10 minutes and more).
	gapVarMax = int64(1) << 50
	// minSessionGap: a gap longer than max(minSessionGap, 10 × minInterval) is a pause between
	// sessions, not a gap: it is not counted (a driver's pauses say nothing of its rhythm, and
	// a bot must not look irregular by pausing).
	minSessionGap = int64(60 * time.Second)
	// minFloorMargin: an accept counts as at the floor when its reaction time (from the
	// offer's first showing) is below minReactionTime + max(minFloorMargin, minReactionTime/4).
	minFloorMargin = int64(300 * time.Millisecond)
	// maxMissedDraws bounds the draws a driver is counted as having missed between two of
	// its entries (a driver away for an hour does not lose its whole history at once).
	maxMissedDraws = 64
	// predCap bounds a predictability sample: a quarter of the gap mean (8 32nds).
	predCap = 8
)

// Score formation and formula (docs/gateway.md#bot-likeness-score).
const (
	// minScoreGaps and minScoreReactions: the score is formed once the driver has this many
	// gaps counted, or, with no gap at all (an accept-only policy), this many accepts with a
	// known reaction time.
	minScoreGaps      = 32
	minScoreReactions = 16
	// minShareSamples: presence and the draw share weigh in the score from this many samples.
	minShareSamples = 16
	minDrawSamples  = 8
	// RecommendedBotScore is the threshold the docs recommend for refuseAbovePermille (500)
	// and for flagging; also where LeastRecentlyWon's score bands start (scoreBand): people (log-normal gaps, long-tail reactions) stay below it (see
	// TestHumanScoreProperty and BENCHMARKS.md).
	RecommendedBotScore = 0.5
)

// Component ramps: each signal maps to a bot-likeness in [0,1], linear between its human end
// (0) and its bot end (1).
var (
	rampCV    = ramp{human: 0.45, bot: 0.15}
	rampPred  = ramp{human: 0.08, bot: 0.04}
	rampFloor = ramp{human: 0.2, bot: 0.7}
	rampPres  = ramp{human: 0.4, bot: 0.9}
	rampDraws = ramp{human: 0.4, bot: 0.9}
	rampRef   = ramp{human: 0, bot: 0.5}
)

// Weights of the components in the score.
const (
	weightCV    = 0.35
	weightFloor = 0.25
	weightPres  = 0.10
	weightDraws = 0.10
	weightRef   = 0.10
)

type ramp struct{ human, bot float64 }

func (r ramp) at(x float64) float64 {
	return min(1, max(0, (x-r.human)/(r.bot-r.human)))
}

const q16 = 65535

func fromQ16(v uint16) float64 { return float64(v) / q16 }

func inc8(n uint8) uint8 {
	if n < math.MaxUint8 {
		n++
	}
	return n
}

// divRound is a/b rounded half up (b > 0), on integers: sigLua's dr computes the same with
// math.floor on doubles, exactly while |2a + b| < 2⁵³.
func divRound(a, b int64) int64 {
	n, d := 2*a+b, 2*b
	q := n / d
	if n%d != 0 && n < 0 {
		q--
	}
	return q
}

// weightK is the k of the n-th sample's weight 1/min(n, k) (n ≥ 1).
func weightK(n uint8, k int64) int64 { return min(max(int64(n), 1), k) }

// ewmaShare moves share v towards x (0 or 1) with weight 1/k.
func ewmaShare(v uint16, x, k int64) uint16 {
	return uint16(int64(v) + divRound(x*q16-int64(v), k))
}

// sessionGap is the longest gap counted for a driver polling at least every interval.
func sessionGap(interval int64) int64 { return max(minSessionGap, 10*interval) }

// observePoll records a poll at now (ns) that the pacer allowed (allowed) or refused, under
// interval (ns); observePollUS does the work in µs, the unit of the shared store's clock. The
// gateway clock starts at 0, which lastPoll keeps for "none": its µs are counted from 1.
func (s *signals) observePoll(now, interval int64, allowed bool) {
	s.observePollUS(now/1e3+1, interval/1e3, allowed)
}

// observePollUS records a poll at now (µs). Only gaps between allowed polls count for
// regularity: a refused poll fetches nothing, so a bot gains no irregularity by sending polls
// it knows are refused; they count as refusals (a run of them once). Nor does a gap shorter
// than interval (a poll of the burst): with burst ≥ 2 a scheduler could otherwise alternate
// back-to-back polls with long gaps and look irregular.
func (s *signals) observePollUS(now, interval int64, allowed bool) {
	if !allowed {
		if s.episodes&sigFeedRefused == 0 {
			s.episodes |= sigFeedRefused
			s.observeRefusal(true)
		}
		return
	}
	s.episodes &^= sigFeedRefused
	s.observeRefusal(false)
	last := s.lastPoll
	s.lastPoll = now
	if last == 0 || now <= last {
		return
	}
	gap := now - last
	if gap < interval || gap > sessionGap(interval*1e3)/1e3 {
		return
	}
	s.nGaps = inc8(s.nGaps)
	k := weightK(s.nGaps, gapK)
	x := min(gap*8/125, math.MaxUint32) // 1/64 ms
	m := int64(s.gapMean)
	d := x - m
	s.gapMean = uint32(m + divRound(d, k))
	s.observeRhythm(x)
	d8 := divRound(d, 8) // 1/8 ms
	if d8 < -1<<25 || d8 > 1<<25 {
		// A deviation beyond 70 min: the variance is at its bound (reads irregular).
		s.gapVar = gapVarMax
		return
	}
	v := s.gapVar + divRound(d8*d8, k)
	s.gapVar = min(v-divRound(v, k), gapVarMax)
}

// observeRhythm records a counted gap of x (1/64 ms) in the predictability signal, after the
// gap mean took it in: the gap in 32nds of the mean, and its distance to the nearest of the
// three gaps before it (at most predCap). Any cycle of one to three fixed gaps, and a scheduler
// that picks each gap among a few fixed ones, is near 0 however far apart its gaps are (a cv
// that reads human); independent human gaps are about a quarter of the mean from the nearest.
func (s *signals) observeRhythm(x int64) {
	m := int64(s.gapMean)
	if m == 0 {
		return // gaps below 16 µs: nothing to compare
	}
	q := min(max(divRound(x*32, m), 1), math.MaxUint8)
	if s.recent[0] != 0 {
		near := int64(predCap)
		for _, r := range s.recent {
			// A gap of 255 32nds or more (8 gap means) matches nothing: two such rare gaps
			// are not a rhythm.
			if r != 0 && r != math.MaxUint8 && q != math.MaxUint8 {
				near = min(near, abs64(q-int64(r)))
			}
		}
		// The first sample is the second gap: its weight is 1/(nGaps-1) at first.
		p := int64(s.pred)
		s.pred = uint16(p + divRound(near*256-p, weightK(s.nGaps-1, gapK)))
	}
	s.recent = [3]uint8{uint8(q), s.recent[0], s.recent[1]}
}

func abs64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// observeRefusal counts a governed request of the driver: refused by the policy or not.
func (s *signals) observeRefusal(refused bool) {
	if !refused && s.refused == 0 {
		return // the common case: nothing to decay
	}
	x := int64(0)
	if refused {
		x = 1
	}
	// The refusal share has no count of its own: it weighs from the first request, with
	// the shares' weight.
	s.refused = ewmaShare(s.refused, x, shareK)
}

// observeAcceptRefusal counts an accept decided d: a run of accept-throttled refusals counts
// once, until the quota lets an accept through.
func (s *signals) observeAcceptRefusal(d Decision) {
	switch d {
	case AcceptThrottled:
		if s.episodes&sigAcceptThrottled != 0 {
			return
		}
		s.episodes |= sigAcceptThrottled
	case Allowed:
		s.episodes &^= sigAcceptThrottled
	}
	s.observeRefusal(d != Allowed)
}

// observeReaction records an accept whose offer was first shown reaction ns earlier, under
// minReaction (ns); observeReactionUS does the work in µs.
func (s *signals) observeReaction(reaction, minReaction int64) {
	s.observeReactionUS(reaction/1e3, minReaction/1e3)
}

// observeReactionUS records an accept reaction µs after its offer was first shown. An
// accept sooner than minReaction (too-fast) is not a sample: the floor measures who waits for
// it exactly; one too fast counts as a refusal.
func (s *signals) observeReactionUS(reaction, minReaction int64) {
	if reaction < minReaction {
		return
	}
	s.nReact = inc8(s.nReact)
	x := int64(0)
	if reaction < minReaction+floorMargin(minReaction*1e3)/1e3 {
		x = 1
	}
	s.floor = ewmaShare(s.floor, x, weightK(s.nReact, shareK))
}

// floorMargin is how far above minReaction an accept still counts as at the floor.
func floorMargin(minReaction int64) int64 { return max(minFloorMargin, minReaction/4) }

// observeShown records an offer first shown to the driver: presence decays towards 0, and
// each accept tried for a shown offer (observeTried) adds back. In expectation the share is
// the tried/shown ratio.
func (s *signals) observeShown() {
	s.nShown = inc8(s.nShown)
	p := int64(s.pres)
	s.pres = uint16(p - divRound(p, weightK(s.nShown, shareK)))
}

// observeTried records an accept tried for an offer that was shown to the driver.
func (s *signals) observeTried() {
	s.pres = uint16(min(q16, int64(s.pres)+divRound(q16, weightK(s.nShown, shareK))))
}

// observeDraw records that the driver entered a fair draw, when the policy had opened opened
// draws in all (wrapping uint32, of which drawMark keeps the low 16 bits): the draws opened
// since its last entry, but this one, count as missed (at most maxMissedDraws; a driver away
// for a multiple of 65,536 draws, give or take 64, is counted fewer misses).
func (s *signals) observeDraw(opened uint32) {
	missed := uint16(0)
	if n := uint16(opened) - s.drawMark; s.nDraws > 0 && n > 1 {
		missed = min(n-1, maxMissedDraws)
	}
	s.drawMark = uint16(opened)
	d := int64(s.draws)
	for range missed {
		s.nDraws = inc8(s.nDraws)
		d -= divRound(d, weightK(s.nDraws, shareK))
	}
	s.nDraws = inc8(s.nDraws)
	s.draws = ewmaShare(uint16(d), 1, weightK(s.nDraws, shareK))
}

// cv is the coefficient of variation of the gaps (0 with fewer than 2 gaps; at least 1 when
// the variance is at its bound).
func (s *signals) cv() float64 {
	if s.nGaps < 2 || s.gapMean == 0 {
		return 0
	}
	cv := math.Sqrt(float64(s.gapVar)) * 8 / float64(s.gapMean)
	if s.gapVar >= gapVarMax {
		cv = max(cv, 1)
	}
	return cv
}

// predictability is how far, on average, a gap lies from the nearest of the three gaps
// before it, as a share of the gap mean (0 with fewer than 2 gaps).
func (s *signals) predictability() float64 {
	if s.nGaps < 2 {
		return 0
	}
	return float64(s.pred) / (256 * 32)
}

// regularity is the regularity component: the more bot-like of the gaps' spread (cv) and
// their predictability.
func (s *signals) regularity() float64 {
	return max(rampCV.at(s.cv()), rampPred.at(s.predictability()))
}

// score returns the driver's bot-likeness in [0,1] and whether it is formed: the weighted mean
// of the components of the signals that have enough samples (regularity from minScoreGaps
// gaps, floor from minScoreReactions reactions, presence from minShareSamples shown offers,
// draws from minDrawSamples draws; refusals always), formed once regularity is, or, for a
// driver that never polled twice within a session (an accept-only policy), once floor is.
func (s *signals) score() (float64, bool) {
	if s.nGaps < minScoreGaps && (s.nGaps > 0 || s.nReact < minScoreReactions) {
		return 0, false
	}
	sum, w := weightRef*rampRef.at(fromQ16(s.refused)), weightRef
	if s.nGaps >= minScoreGaps {
		sum += weightCV * s.regularity()
		w += weightCV
	}
	if s.nReact >= minScoreReactions {
		sum += weightFloor * rampFloor.at(fromQ16(s.floor))
		w += weightFloor
	}
	if s.nShown >= minShareSamples {
		sum += weightPres * rampPres.at(fromQ16(s.pres))
		w += weightPres
	}
	if s.nDraws >= minDrawSamples {
		sum += weightDraws * rampDraws.at(fromQ16(s.draws))
		w += weightDraws
	}
	return sum / w, true
}

// scorePermille is the score in permille, rounded, and whether it is formed.
func (s *signals) scorePermille() (int32, bool) {
	sc, ok := s.score()
	return int32(math.Round(sc * 1000)), ok
}

// appendHeader appends the value of header OfferFeed-Signals: name=value pairs, ';'-separated,
// three decimals; a signal without samples is left out (ref, n and na are always there).
func (s *signals) appendHeader(b []byte) []byte {
	if s.nGaps >= 2 {
		b = append(b, "cv="...)
		b = appendMilli(b, s.cv())
		b = append(b, ";pred="...)
		b = appendMilli(b, s.predictability())
		b = append(b, ';')
	}
	if s.nReact > 0 {
		b = append(b, "floor="...)
		b = appendMilli(b, fromQ16(s.floor))
		b = append(b, ';')
	}
	if s.nShown > 0 {
		b = append(b, "pres="...)
		b = appendMilli(b, fromQ16(s.pres))
		b = append(b, ';')
	}
	if s.nDraws > 0 {
		b = append(b, "draws="...)
		b = appendMilli(b, fromQ16(s.draws))
		b = append(b, ';')
	}
	b = append(b, "ref="...)
	b = appendMilli(b, fromQ16(s.refused))
	b = append(b, ";n="...)
	b = strconv.AppendUint(b, uint64(s.nGaps), 10)
	b = append(b, ";na="...)
	b = strconv.AppendUint(b, uint64(s.nReact), 10)
	return b
}

// appendMilli appends x ≥ 0 with three decimals (capped at 999.999).
func appendMilli(b []byte, x float64) []byte {
	m := int64(math.Round(min(max(x, 0), 999.999) * 1000))
	b = strconv.AppendInt(b, m/1000, 10)
	b = append(b, '.')
	f := m % 1000
	if f < 100 {
		b = append(b, '0')
	}
	if f < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, f, 10)
}
