package gateway

import (
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// botScorePolicy is the standard policy with a quota that does not get in the way and
// botScore.refuseAbovePermille 500.
func botScorePolicy(mode gatewayconfig.Mode) gatewayconfig.Policy {
	p := standardPolicy()
	p.Mode = mode
	p.Accept.MaxAccepts = 10_000
	p.BotScore = &gatewayconfig.BotScore{DrawWeighting: gatewayconfig.DrawWeightingNone, RefuseAbovePermille: 500}
	return p
}

// forged are OfferFeed-Score and OfferFeed-Signals as a bot would send them, in several
// spellings.
var forged = []string{"OfferFeed-Score", "0.000", "offerfeed-signals", "cv=9.000;ref=0.000", "OFFERFEED-SCORE", "0.001"}

// drive runs one driver through the gateway on the fake clock: polls separated by gap(),
// one new offer per poll, an accept of it after react() when try() says so. Every request
// carries forged score headers. It returns, per poll, the score the offer service saw
// (-1: none) and the accepts' answers.
type driveResult struct {
	scores    []float64
	accepts   map[int]int // status -> count
	flags     map[string]int
	lastScore string
}

func drive(t *testing.T, h *harness, driver string, polls int, gap, react func() time.Duration, try func() bool) driveResult {
	t.Helper()
	res := driveResult{accepts: map[int]int{}, flags: map[string]int{}}
	hdr := append(drv(driver), forged...)
	for i := 0; i < polls; i++ {
		offer := fmt.Sprintf("%s-o%d", driver, i)
		h.up.mu.Lock()
		h.up.offers = []string{offer}
		h.up.mu.Unlock()
		w := h.do("GET", "/offers", "", hdr...)
		if w.Code != 200 && w.Code != 429 {
			t.Fatalf("poll %d: %d %s", i, w.Code, w.Header().Get(HeaderDecision))
		}
		elapsed := time.Duration(0)
		if w.Code == 200 {
			up := h.up.last().Header
			sig := up.Get(HeaderSignals)
			if sig == "" || strings.Contains(sig, "cv=9") {
				t.Fatalf("poll %d: upstream saw OfferFeed-Signals %q", i, sig)
			}
			if vs := up.Values(HeaderScore); len(vs) > 1 || len(vs) == 1 && (vs[0] == "0.000" || vs[0] == "0.001") {
				t.Fatalf("poll %d: upstream saw forged OfferFeed-Score %q", i, vs)
			}
			sc := -1.0
			if s := up.Get(HeaderScore); s != "" {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil || len(s) != 5 || v < 0 || v > 1 {
					t.Fatalf("poll %d: OfferFeed-Score %q is not three decimals in [0,1]", i, s)
				}
				sc, res.lastScore = v, s
			}
			res.scores = append(res.scores, sc)
			if try() {
				r := react()
				h.clock.Advance(r)
				elapsed = r
				before := len(h.up.records())
				w := h.do("POST", "/offers/"+offer+"/accept", "", hdr...)
				res.accepts[w.Code]++
				if w.Code == 403 && w.Header().Get(HeaderDecision) != "bot-like" {
					t.Fatalf("accept %d: 403 %s", i, w.Header().Get(HeaderDecision))
				}
				if recs := h.up.records(); len(recs) > before {
					res.flags[recs[len(recs)-1].Header.Get(HeaderFlag)]++
				}
			}
		}
		h.clock.Advance(max(gap()-elapsed, 0))
	}
	return res
}

// TestBotLikeRefusal: a compliant bot (polls every 2s to the ms, accepts every offer 10ms
// after the floor) gets a score once it has 32 gaps, above 0.5; from then on its accepts are
// refused 403 bot-like in Enforce, while its polls go on (and carry the score). A bot cannot
// forge the headers: what it sends never reaches the offer service. The score is counted in
// offerfeed_gateway_bot_score.
func TestBotLikeRefusal(t *testing.T) {
	h := newHarness(t, configOf(botScorePolicy(gatewayconfig.ModeEnforce)))
	res := drive(t, h, "bot", 60,
		func() time.Duration { return 2 * time.Second },
		func() time.Duration { return 810 * time.Millisecond },
		func() bool { return true })
	for i, sc := range res.scores {
		// Poll i (from 0, at the fake clock's start) ends the driver's i-th gap.
		if formed := i >= minScoreGaps; formed != (sc >= 0) {
			t.Fatalf("poll %d: score %.3f; want one from poll %d on", i, sc, minScoreGaps)
		}
		if sc >= 0 && sc <= RecommendedBotScore {
			t.Errorf("poll %d: compliant bot scored %.3f", i, sc)
		}
	}
	if res.accepts[403] < 20 || res.accepts[200] < minScoreGaps {
		t.Errorf("accept answers %v: want the first %d allowed, the rest bot-like", res.accepts, minScoreGaps)
	}
	if !strings.Contains(metricText(t, h.g), `offerfeed_gateway_bot_score_bucket{policy="standard",le="0.5"} 0`) ||
		!hasMetric(t, h.g, `offerfeed_gateway_decisions_total{decision="bot-like",policy="standard",route="accept"} `+strconv.Itoa(res.accepts[403])) {
		t.Errorf("metrics:\n%s", grepLines(metricText(t, h.g), "bot"))
	}
	if hasMetric(t, h.g, `offerfeed_gateway_bot_score_count{policy="standard"} 0`) {
		t.Error("no score counted")
	}
}

// TestBotLikeDryRun: in DryRun the same bot's accepts are forwarded, flagged bot-like.
func TestBotLikeDryRun(t *testing.T) {
	h := newHarness(t, configOf(botScorePolicy(gatewayconfig.ModeDryRun)))
	res := drive(t, h, "bot", 60,
		func() time.Duration { return 2 * time.Second },
		func() time.Duration { return 810 * time.Millisecond },
		func() bool { return true })
	if res.accepts[200] != 60 || res.flags["bot-like"] < 20 || res.flags[""] < minScoreGaps {
		t.Errorf("answers %v, flags %v: want every accept forwarded, those after the score flagged bot-like", res.accepts, res.flags)
	}
}

// TestHumanNotBotLike: a driver with human timings (log-normal gaps and reactions, tries one
// offer in two) gets a score below 0.5 and is never refused bot-like.
func TestHumanNotBotLike(t *testing.T) {
	h := newHarness(t, configOf(botScorePolicy(gatewayconfig.ModeEnforce)))
	r := rand.New(rand.NewPCG(7, 7))
	res := drive(t, h, "person", 200,
		func() time.Duration { return time.Duration(lognormal(r, 4*time.Second, 0.6)) },
		func() time.Duration {
			return max(time.Duration(lognormal(r, 1600*time.Millisecond, 0.6)), 800*time.Millisecond)
		},
		func() bool { return r.Float64() < 0.5 })
	if res.accepts[403] != 0 {
		t.Errorf("a person was refused bot-like %d times", res.accepts[403])
	}
	if res.lastScore == "" {
		t.Fatal("no score after 200 polls")
	}
	if v, _ := strconv.ParseFloat(res.lastScore, 64); v >= RecommendedBotScore {
		t.Errorf("person's score %s", res.lastScore)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestScoreWeightedDrawServe: with drawWeighting Score, a driver whose polls are exact to the
// ms (score formed, about 0.78) wins few of 40 draws against a driver without a score, where
// an unweighted draw gives it half; entering draws feeds its draw share.
func TestScoreWeightedDrawServe(t *testing.T) {
	p := fairPolicy(gatewayconfig.AwardRandom)
	p.Accept.MaxAccepts = 10_000
	p.BotScore = &gatewayconfig.BotScore{DrawWeighting: gatewayconfig.DrawWeightingScore}
	h := newDrawHarness(t, p)
	for i := 0; i <= minScoreGaps+8; i++ {
		r := httptest.NewRequest("GET", "/offers", nil)
		r.Header.Set("X-Driver-Id", "bot")
		h.g.ServeHTTP(httptest.NewRecorder(), r)
		h.advance(2 * time.Second)
	}
	wins := map[string]int{}
	for i := range 40 {
		offer := fmt.Sprintf("w%d", i)
		order := []string{"bot", "person"}
		if i%2 == 1 {
			order = []string{"person", "bot"}
		}
		chs := h.hold(offer, order...)
		h.advance(3 * time.Second)
		for _, a := range answers(t, chs) {
			if a.code == 200 {
				wins[a.driver]++
			}
		}
	}
	if wins["bot"]+wins["person"] != 40 || wins["bot"] > 14 {
		t.Errorf("wins %v: the bot-like driver should win about 18%% of 40 draws", wins)
	}
	t.Logf("wins of 40 draws: %v", wins)
	tb := h.g.active.Load().policy.table
	key, _ := identityKey(h.g.active.Load().policy.ids, []string{"bot"})
	s := tb.shard(key)
	s.mu.Lock()
	var sig signals
	if e := s.lookup(key); e != nil {
		sig = e.sig
	}
	s.mu.Unlock()
	if sig.nDraws < 40 || fromQ16(sig.draws) < 0.9 {
		t.Errorf("the bot's draw share was not recorded: %+v", sig)
	}
}
