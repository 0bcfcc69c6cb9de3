package market_test

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/clock"

	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/market"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// simGateway returns a SimConfig.NewGateway that makes the real gateway with cfg and a
// fixed draw seed.
func simGateway(cfg *gatewayconfig.Config) func(http.RoundTripper, clock.WithDelayedExecution) (market.SimGateway, error) {
	return func(upstream http.RoundTripper, clk clock.WithDelayedExecution) (market.SimGateway, error) {
		u, _ := url.Parse("http://offer-service.sim")
		g, err := gateway.New(gateway.Options{Upstream: u, Transport: upstream, Clock: clk, DrawSeed: 7,
			PodLabels: map[string]string{"app": "offer-service"}})
		if err != nil {
			return nil, err
		}
		return g, g.Apply(cfg)
	}
}

// standardKnown is the standard policy of docs/design.md#api, as compliant bots know it.
var standardKnown = market.Policy{MinInterval: 2 * time.Second, MinReactionTime: 800 * time.Millisecond}

func fairSim(t *testing.T, seed uint64, minutes int) *market.SimResult {
	t.Helper()
	gc := gatewayConfig(gatewayconfig.ModeEnforce, market.ShapeREST, standardKnown)
	gc.Policies[0].Accept.MaxAccepts = 1000
	gc.Policies[0].Accept.Fairness = &gatewayconfig.Fairness{Window: gatewayconfig.Duration(3 * time.Second), Award: gatewayconfig.AwardRandom}
	res, err := market.Simulate(context.Background(), market.SimConfig{
		Config: market.Config{Humans: 8, CompliantBots: 1, JitteredBots: 1, Policy: standardKnown, Seed: seed,
			Duration: time.Duration(minutes) * time.Minute, Timing: market.Timing{OfferInterval: 4 * time.Second}},
		NewGateway:     simGateway(gc),
		FairnessWindow: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestSimulateFairDraws plays ten simulated minutes through the real gateway with fair draws:
// the draws are held and answered, every offer taken is won by exactly one driver, and the
// same seed plays the same market.
func TestSimulateFairDraws(t *testing.T) {
	res := fairSim(t, 1, 10)
	var out []byte
	w := &appender{&out}
	_ = res.WriteTable(w)
	t.Logf("\n%s", out)
	if res.Duration != 10*time.Minute {
		t.Errorf("simulated %s, want 10m", res.Duration)
	}
	won, lost := 0, 0
	for _, c := range res.Classes {
		won += c.OffersWon
		lost += c.Decisions["lost-draw"]
	}
	// Offers every 4 s for 10 minutes: 150; most are taken.
	if won != res.OffersTaken || won < 100 || won > 150 {
		t.Errorf("won %d, taken %d: want the same, between 100 and 150", won, res.OffersTaken)
	}
	if lost == 0 {
		t.Errorf("no lost-draw answer: the draws were not held")
	}
	again := fairSim(t, 1, 10)
	if !reflect.DeepEqual(shares(res.Report), shares(again.Report)) {
		t.Errorf("seed 1 played twice: %v then %v", shares(res.Report), shares(again.Report))
	}
}

type appender struct{ b *[]byte }

func (a *appender) Write(p []byte) (int, error) { *a.b = append(*a.b, p...); return len(p), nil }

func shares(r *market.Report) map[market.Class][2]int {
	out := map[market.Class][2]int{}
	for _, c := range r.Classes {
		out[c.Class] = [2]int{c.OffersWon, c.Polls}
	}
	return out
}

// TestSimulateRecordsScores: through the real gateway the offer service receives each
// driver's OfferFeed-Score and OfferFeed-Signals once the score is formed; Simulate keeps them
// per driver in request order, and the report sums them per class. A bot that keeps to every
// limit exactly scores higher than the median person.
func TestSimulateRecordsScores(t *testing.T) {
	res := fairSim(t, 2, 15)
	for id, class := range res.Drivers {
		s := res.Scores[id]
		if len(s) == 0 {
			t.Errorf("%s (%s): no score in 15 minutes", id, class)
			continue
		}
		for i := 1; i < len(s); i++ {
			if s[i].N <= s[i-1].N || s[i].At < s[i-1].At {
				t.Fatalf("%s: samples out of order: %+v then %+v", id, s[i-1], s[i])
			}
		}
		if !strings.Contains(s[len(s)-1].Signals, "cv=") || s[0].At < res.Active[id] {
			t.Errorf("%s: first sample %+v, last signals %q, active from %s", id, s[0], s[len(s)-1].Signals, res.Active[id])
		}
	}
	human, compliant := res.Class(market.ClassHuman).Scores, res.Class(market.ClassCompliantBot).Scores
	if human.Scored == 0 || compliant.Scored == 0 || human.Unscored == 0 {
		t.Fatalf("human scores %+v, compliant %+v: want scored and (before formation) unscored requests", human, compliant)
	}
	if got, med := compliant.Quantile(1), human.Quantile(0.5); got <= med {
		t.Errorf("the compliant bot's highest score %.2f is not above the people's median %.2f", got, med)
	}
	if _, ok := res.Flagged("compliant-bot-01", 0); !ok {
		t.Error("Flagged finds no score at or above 0")
	}
	if _, ok := res.Flagged("compliant-bot-01", 1.01); ok {
		t.Error("Flagged finds a score above 1")
	}
}

// TestSimulateWithoutGateway: without a gateway the offer service serves the drivers
// directly, first come first served: the raw bots, fastest, win nearly every offer, and no
// request carries a score. A simulation needs a duration and drivers.
func TestSimulateWithoutGateway(t *testing.T) {
	res, err := market.Simulate(context.Background(), market.SimConfig{Config: market.Config{
		Humans: 4, Bots: 1, Seed: 3, Duration: 5 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	bot := res.Class(market.ClassBot)
	if res.OffersTaken < 150 || float64(bot.OffersWon) < 0.9*float64(res.OffersTaken) {
		t.Errorf("raw bot won %d of %d offers, want nearly all of 200", bot.OffersWon, res.OffersTaken)
	}
	if len(res.Scores) != 0 || bot.Scores.Scored != 0 {
		t.Errorf("scores without a gateway: %v", res.Scores)
	}
	for _, cfg := range []market.SimConfig{
		{Config: market.Config{Humans: 1}},
		{Config: market.Config{Duration: time.Minute}},
	} {
		if _, err := market.Simulate(context.Background(), cfg); err == nil {
			t.Errorf("Simulate(%+v) did not fail", cfg.Config)
		}
	}
}
