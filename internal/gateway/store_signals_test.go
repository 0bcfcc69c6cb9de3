package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// sigAgreeScript plays a sequence of signal observations with sigLua's functions, saving the
// signals to a hash and loading them again after each, as the driver scripts do. ARGV are
// quadruples: "p" now interval allowed(0/1) | "a" decision reaction(-1: offer not shown)
// minReaction | "s" 0 0 0 (an offer shown first). Returns the signals (sout).
var sigAgreeScript = redis.NewScript(sigLua + `
local s, o = sload(KEYS[1])
for i = 1, #ARGV, 4 do
  local op, a, b, c = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  if op == 'p' then spoll(s, a, b, c == 1)
  elseif op == 'a' then
    saccept(s, a)
    if b >= 0 and a ~= ` + strconv.FormatInt(scriptAcceptThrottled, 10) + ` then
      stried(s)
      sreact(s, b, c)
    end
  else sshown(s) end
  ssave(KEYS[1], s, o)
  redis.call('PEXPIRE', KEYS[1], 60000)
  s, o = sload(KEYS[1])
end
return sout({}, s)
`)

// TestSharedSignalsAgree: the Go signal functions (the source) and their Lua copy in the
// driver scripts (sigLua) give the same bits, on a real redis-server, for random sequences of
// polls (allowed and refused; gaps around the interval, the session gap and hours, so that
// the variance reaches its bound; runs of a fixed cycle of gaps, so that the predictability
// falls towards 0, and gaps of a few µs, against a gap mean of 0), accepts of every decision,
// shown or not, reactions around the floor margin, and offers shown. Compared after every
// chunk of operations, field by field.
func TestSharedSignalsAgree(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	ctx := context.Background()
	decisions := []Decision{Allowed, AcceptThrottled, TooFast, UnseenOffer, UnreadableOffer}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 3))
		key := "of:{agree:" + strconv.FormatUint(seed, 10) + "}"
		var s signals
		now := int64(1_700_000_000_000_000) + rng.Int64N(1e12) // µs since the Unix epoch
		// 5 µs: gaps below 16 µs are 0 in 1/64 ms, with a gap mean of 0.
		interval := []int64{5, 10e3, 500e3, 2e6, 60e6, 3600e6}[rng.IntN(6)]
		maxed, predicted := false, false
		cycle, cyc := []int64{interval, interval * 27 / 10, interval * 7 / 4}, 0
		for chunk := range 40 {
			cyclic := chunk%8 >= 5 // chunks 5–7 of every 8 only poll, on a cycle of three gaps
			var args []any
			for range 25 {
				switch k := rng.IntN(10); {
				case k < 5 || cyclic:
					gap := interval + rng.Int64N(interval) // a human-ish gap
					switch rng.IntN(8) {
					case 0:
						gap = rng.Int64N(interval) // a burst poll
					case 1:
						gap = max(60e6, 10*interval) + rng.Int64N(2) // around the session gap
					case 2:
						gap = rng.Int64N(max(60e6, 10*interval)) // anything up to it
					}
					allowed := rng.IntN(4) > 0
					if cyclic {
						gap, allowed = cycle[cyc%len(cycle)], true
						cyc++
					}
					now += gap
					s.observePollUS(now, interval, allowed)
					args = append(args, "p", now, interval, boolArg(allowed))
				case k < 8:
					d := decisions[rng.IntN(len(decisions))]
					minR := []int64{0, 800e3, 3e6, 60e6}[rng.IntN(4)]
					reaction := int64(-1)
					if rng.IntN(3) > 0 {
						reaction = minR + floorMargin(minR*1e3)/1e3 + rng.Int64N(3) - 1 - rng.Int64N(2)*rng.Int64N(1e6)
					}
					s.observeAcceptRefusal(d)
					if reaction >= 0 && d != AcceptThrottled {
						s.observeTried()
						s.observeReactionUS(reaction, minR)
					}
					args = append(args, "a", int(d), reaction, minR)
				default:
					s.observeShown()
					args = append(args, "s", 0, 0, 0)
				}
			}
			res, err := sigAgreeScript.Run(ctx, client, []string{key}, args...).Int64Slice()
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != numSigFields {
				t.Fatalf("%d fields, want %d", len(res), numSigFields)
			}
			if got := signalsFromReply(res); got != s {
				t.Fatalf("seed %d, chunk %d: Lua %+v, Go %+v", seed, chunk, got, s)
			}
			maxed = maxed || s.gapVar == gapVarMax
			predicted = predicted || (cyclic && s.gapMean > 0 && s.predictability() < 0.03)
		}
		if interval >= 10e3 && (s.pred == 0 || s.recent[2] == 0 || !predicted) {
			t.Errorf("seed %d: the predictability never moved, or never fell on a cycle: %+v", seed, s)
		}
		if s.nGaps == 0 || s.nReact == 0 || s.nShown == 0 || s.refused == 0 {
			t.Errorf("seed %d: a signal never moved: %+v", seed, s)
		}
		if interval == 3600e6 && !maxed {
			t.Errorf("seed %d: gaps of hours did not reach the variance bound", seed)
		}
	}
}

// TestSharedDrawScoreWeighted: a shared draw under botScore.drawWeighting Score orders its
// candidates, in the sorted set the join script fills on a real redis-server, as a local draw
// would: under Random the first tried is drawn with chance proportional to its weight
// (scoreWeight: 1 − score, steeper above 0.5), a driver
// without a score weighing 1 (unbiased between such drivers), a score of 1 never first;
// under LeastRecentlyWon lower score bands come first, then the least recent win. Counts over
// 3,000 draws, chi-square at p = 0.001, no timing.
func TestSharedDrawScoreWeighted(t *testing.T) {
	_, client := newRedisClient(t)
	ctx := context.Background()
	for _, award := range []gatewayconfig.Award{gatewayconfig.AwardRandom, gatewayconfig.AwardLeastRecentlyWon} {
		p := fairPolicy(award)
		p.BotScore = &gatewayconfig.BotScore{DrawWeighting: gatewayconfig.DrawWeightingScore}
		w := newSharedDrawWorld(t, 3, client, p)
		// Candidates: two without a score, one scoring 0, one 0.6 (weight 0.4 × 0.8² = 0.256),
		// one 1.
		permille := []int32{-1, -1, 0, 600, 1000}
		// LeastRecentlyWon: the bots never won, the others did (gateway ns + 1).
		lastWin := []int64{3e9, 5e9, 9e9, 0, 0}
		first := make([]int, len(permille))
		const draws = 3000
		for d := range draws {
			// Each candidate joins through the gateway d+i of three, as replicas do.
			id := uint64(d + 1)
			var keys []string
			for i, pm := range permille {
				tbl := w.gws[(d+i)%3].active.Load().policy.draws
				sd := tbl.shared
				keys = sd.offerKeys(id)
				tbl.mu.Lock()
				member := fmt.Sprintf("%016x%s%016x", tbl.rng.Uint64(), sd.replica, uint64(i))
				place := tbl.sharedPlace(pm, lastWin[i])
				tbl.mu.Unlock()
				if err := drawJoinScript.Run(ctx, client, keys, 1, 3_000_000, strconv.Itoa(i), member, place,
					100, 60_000, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			queue, err := client.ZRange(ctx, keys[2], 0, -1).Result()
			if err != nil || len(queue) != len(permille) {
				t.Fatalf("queue: %v %v", queue, err)
			}
			k, _ := strconv.ParseUint(queue[0][32:], 16, 64)
			first[k]++
			if award == gatewayconfig.AwardLeastRecentlyWon {
				// Band 0 (no score, or below 0.5) by least recent win, then the band of 0.6,
				// then that of 1: bots that never won come last.
				for i, m := range queue {
					if k, _ := strconv.ParseUint(m[32:], 16, 64); k != uint64(i) {
						t.Fatalf("LeastRecentlyWon queue %v: place %d is candidate %d", queue, i, k)
					}
				}
			}
			client.Del(ctx, keys...)
		}
		t.Logf("%s: first tried %v of %d draws", award, first, draws)
		if award == gatewayconfig.AwardLeastRecentlyWon {
			if first[0] != draws {
				t.Errorf("LeastRecentlyWon: first tried %v, want candidate 0 every time", first)
			}
			continue
		}
		if first[4] != 0 {
			t.Errorf("a driver scoring 1 came first %d times", first[4])
		}
		weights := []float64{1, 1, 1, 0.256}
		sum := 3.256
		chi := 0.0
		for i, wgt := range weights {
			exp := draws * wgt / sum
			chi += (float64(first[i]) - exp) * (float64(first[i]) - exp) / exp
		}
		if chi > 16.27 { // chi-square, 3 degrees of freedom, p = 0.001
			t.Errorf("first tried %v: chi-square %.1f against weights %v", first, chi, weights)
		}
	}
}

// TestSignalsSize: the signals stay within the 40 bytes a driver's entry may spend on them
// (issue 15), and the entry within 72.
func TestSignalsSize(t *testing.T) {
	if n := unsafe.Sizeof(signals{}); n > 40 {
		t.Errorf("signals are %d bytes, want at most 40", n)
	}
	if n := unsafe.Sizeof(entry{}); n > 72 {
		t.Errorf("an entry is %d bytes, want at most 72", n)
	}
}
