// Command marketsim measures the bot-likeness score over long simulated markets: people,
// a compliant bot and a jittered compliant bot play the offer market of the demo through the
// real gateway, on a fake clock (market.Simulate), for many simulated minutes and several
// seeds. It prints, as Markdown for BENCHMARKS.md: each class's score distribution; for
// thresholds around the recommended one, the share of people ever flagged (false
// positives) and how soon each bot is flagged; and the share of offers each class wins in
// fair draws with and without score weighting.
//
//	go run ./hack/marketsim                      # 20 seeds × 60 simulated minutes
//	go run ./hack/marketsim -seeds 5 -minutes 30 # quicker
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"

	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/market"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

func main() {
	o := options{}
	flag.IntVar(&o.seeds, "seeds", 20, "seeds (1..n) to play each scenario with")
	flag.IntVar(&o.minutes, "minutes", 60, "simulated minutes per seed")
	flag.IntVar(&o.humans, "humans", 8, "people per market")
	flag.IntVar(&o.compliant, "compliant-bots", 1, "compliant bots per market")
	flag.IntVar(&o.jittered, "jittered-bots", 1, "jittered compliant bots per market")
	flag.Float64Var(&o.threshold, "threshold", 0.5, "the recommended flagging threshold")
	flag.Parse()
	if err := run(context.Background(), os.Stdout, o); err != nil {
		fmt.Fprintln(os.Stderr, "marketsim:", err)
		os.Exit(1)
	}
}

type options struct {
	seeds, minutes, humans, compliant, jittered int
	threshold                                   float64
}

// The demo's market and policy (internal/demo): an offer every 4 s, the standard policy with
// maxAccepts 20 per 10m and fair draws of 3 s.
const (
	offerInterval  = 4 * time.Second
	fairnessWindow = 3 * time.Second
	maxAccepts     = 20
	window         = 10 * time.Minute
)

var known = market.Policy{MinInterval: 2 * time.Second, MinReactionTime: 800 * time.Millisecond,
	MaxAccepts: maxAccepts, Window: window}

// scenario is one policy the market plays under.
type scenario struct {
	name   string
	award  gatewayconfig.Award
	mutate func(*gatewayconfig.Policy)
}

var scenarios = []scenario{
	{name: "fair draws, Random", award: gatewayconfig.AwardRandom},
	{name: "fair draws, Random, score-weighted", award: gatewayconfig.AwardRandom, mutate: weighted},
	{name: "fair draws, LeastRecentlyWon", award: gatewayconfig.AwardLeastRecentlyWon},
	{name: "fair draws, LeastRecentlyWon, score-weighted", award: gatewayconfig.AwardLeastRecentlyWon, mutate: weighted},
}

// weighted weighs the fair draws by the candidates' scores (botScore.drawWeighting: Score).
func weighted(p *gatewayconfig.Policy) {
	p.BotScore = &gatewayconfig.BotScore{DrawWeighting: gatewayconfig.DrawWeightingScore}
}

// policy is the demo's policy in Enforce with fair draws under award.
func policy(s scenario) gatewayconfig.Policy {
	p := gatewayconfig.Policy{
		Name: "standard", Mode: gatewayconfig.ModeEnforce, IdentityHeader: market.DefaultIdentityHeader,
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "offer-service"}},
		Feed:     &gatewayconfig.Feed{Method: "GET", Path: market.RESTFeedPath, MinInterval: gatewayconfig.Duration(known.MinInterval), Burst: 1},
		Accept: &gatewayconfig.Accept{Method: "POST", PathTemplate: market.RESTAcceptPathTemplate, MaxAccepts: maxAccepts,
			Window: gatewayconfig.Duration(window), MinReactionTime: gatewayconfig.Duration(known.MinReactionTime), RequireShown: true,
			Fairness: &gatewayconfig.Fairness{Window: gatewayconfig.Duration(fairnessWindow), Award: s.award}},
		ShownOffers: &gatewayconfig.ShownOffers{JSONPath: market.ShapeREST.Routes().ShownOffersPath},
	}
	if s.mutate != nil {
		s.mutate(&p)
	}
	return p
}

func newGateway(p gatewayconfig.Policy, seed uint64) func(http.RoundTripper, clock.WithDelayedExecution) (market.SimGateway, error) {
	return func(upstream http.RoundTripper, clk clock.WithDelayedExecution) (market.SimGateway, error) {
		u, _ := url.Parse("http://offer-service.sim")
		g, err := gateway.New(gateway.Options{Upstream: u, Transport: upstream, Clock: clk, DrawSeed: seed,
			PodLabels: map[string]string{"app": "offer-service"}})
		if err != nil {
			return nil, err
		}
		cfg := &gatewayconfig.Config{SchemaVersion: gatewayconfig.SchemaVersion, Namespace: "offers", Policies: []gatewayconfig.Policy{p}}
		if err := gatewayconfig.Validate(cfg); err != nil {
			return nil, err
		}
		return g, g.Apply(cfg)
	}
}

// outcome sums up the runs of one scenario over the seeds.
type outcome struct {
	scenario scenario
	runs     []*market.SimResult
	elapsed  time.Duration
}

func run(ctx context.Context, w io.Writer, o options) error {
	var outs []outcome
	for _, s := range scenarios {
		out := outcome{scenario: s}
		start := time.Now()
		for seed := 1; seed <= o.seeds; seed++ {
			res, err := market.Simulate(ctx, market.SimConfig{
				Config: market.Config{Humans: o.humans, CompliantBots: o.compliant, JitteredBots: o.jittered,
					Policy: known, Seed: uint64(seed), Duration: time.Duration(o.minutes) * time.Minute,
					Timing: market.Timing{OfferInterval: offerInterval}},
				NewGateway:     newGateway(policy(s), uint64(seed)),
				FairnessWindow: fairnessWindow,
			})
			if err != nil {
				return fmt.Errorf("%s, seed %d: %w", s.name, seed, err)
			}
			out.runs = append(out.runs, res)
		}
		out.elapsed = time.Since(start)
		outs = append(outs, out)
	}

	fmt.Fprintf(w, "`go run ./hack/marketsim -seeds %d -minutes %d -humans %d -compliant-bots %d -jittered-bots %d -threshold %g`\n\n",
		o.seeds, o.minutes, o.humans, o.compliant, o.jittered, o.threshold)
	fmt.Fprintf(w, "Each scenario: %d seeds × %d simulated minutes, %d people, %d compliant bot(s), %d jittered bot(s); an offer every %s, "+
		"the standard policy (minInterval %s, minReactionTime %s, maxAccepts %d per %s) with fair draws of %s.\n\n",
		o.seeds, o.minutes, o.humans, o.compliant, o.jittered, offerInterval, known.MinInterval, known.MinReactionTime, maxAccepts, window, fairnessWindow)

	writeShares(w, outs)
	// Scores do not depend on the award much; they are read from the first scenario.
	writeScores(w, outs[0])
	writeThresholds(w, outs[0], o.threshold)
	return nil
}

// writeShares writes each class's share of the offers won, over all seeds, per scenario.
func writeShares(w io.Writer, outs []outcome) {
	fmt.Fprintf(w, "Share of the offers won (all seeds; fair share = share of drivers; min–max over seeds):\n\n")
	fmt.Fprintf(w, "| scenario | class | won | share | fair | × fair | per seed | wall time |\n|---|---|---:|---:|---:|---:|---|---:|\n")
	for _, out := range outs {
		for _, class := range market.Classes {
			won, taken, drivers, all := 0, 0, 0, 0
			var per []float64
			for _, r := range out.runs {
				c := r.Class(class)
				if c == nil {
					continue
				}
				won += c.OffersWon
				drivers = c.Drivers
				all = 0
				t := 0
				for _, cc := range r.Classes {
					all += cc.Drivers
					t += cc.OffersWon
				}
				taken += t
				per = append(per, c.Share)
			}
			if drivers == 0 {
				continue
			}
			share, fair := float64(won)/float64(taken), float64(drivers)/float64(all)
			fmt.Fprintf(w, "| %s | %s | %d | %.1f%% | %.1f%% | %.2f | %.0f–%.0f%% | %s |\n", out.scenario.name, class, won,
				100*share, 100*fair, share/fair, 100*slices.Min(per), 100*slices.Max(per), out.elapsed.Round(time.Millisecond))
		}
	}
	fmt.Fprintln(w)
}

// scoresOf returns every score sample of a class's drivers, and each driver's last score.
func scoresOf(out outcome, class market.Class) (all, last []float64, unscored int) {
	for _, r := range out.runs {
		for id, c := range r.Drivers {
			if c != class {
				continue
			}
			s := r.Scores[id]
			if len(s) == 0 {
				unscored++
				continue
			}
			for _, x := range s {
				all = append(all, x.Score)
			}
			last = append(last, s[len(s)-1].Score)
		}
	}
	slices.Sort(all)
	slices.Sort(last)
	return all, last, unscored
}

func q(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	return sorted[max(int(math.Ceil(p*float64(len(sorted))))-1, 0)]
}

// writeScores writes each class's score distribution over all its scored requests.
func writeScores(w io.Writer, out outcome) {
	fmt.Fprintf(w, "Score distribution (OfferFeed-Score of every scored request at the offer service, %s):\n\n", out.scenario.name)
	fmt.Fprintf(w, "| class | drivers | scored requests | min | p1 | p10 | p50 | p90 | p99 | max | last score per driver, p50 (min–max) |\n"+
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, class := range market.Classes {
		all, last, unscored := scoresOf(out, class)
		if len(all) == 0 && unscored == 0 {
			continue
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f (%.3f–%.3f) |\n", class, len(last)+unscored, len(all),
			q(all, 0), q(all, 0.01), q(all, 0.1), q(all, 0.5), q(all, 0.9), q(all, 0.99), q(all, 1), q(last, 0.5), q(last, 0), q(last, 1))
	}
	fmt.Fprintln(w)
}

// writeThresholds writes, for thresholds around the recommended one, the people flagged and
// how soon each bot is.
func writeThresholds(w io.Writer, out outcome, recommended float64) {
	fmt.Fprintf(w, "Flagging at a threshold (score ≥ threshold on any request; %s). False positives: people ever flagged, and "+
		"people's requests at or above it. Bots: flagged share, and activity time (from the driver's first request) and "+
		"requests until the first flag, median and max over the flagged:\n\n", out.scenario.name)
	fmt.Fprintf(w, "| threshold | people flagged | people's requests ≥ | compliant flagged | time (p50/max) | requests (p50/max) | jittered flagged | time (p50/max) | requests (p50/max) |\n"+
		"|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	ths := []float64{recommended - 0.2, recommended - 0.1, recommended, recommended + 0.1, recommended + 0.2}
	for _, th := range ths {
		if th <= 0 || th >= 1 {
			continue
		}
		people, flaggedPeople := 0, 0
		var humanAll []float64
		type flagStats struct {
			n, flagged int
			times      []time.Duration
			reqs       []int
		}
		bots := map[market.Class]*flagStats{market.ClassCompliantBot: {}, market.ClassJitteredBot: {}}
		for _, r := range out.runs {
			for id, c := range r.Drivers {
				s, ok := r.Flagged(id, th)
				switch c {
				case market.ClassHuman:
					people++
					if ok {
						flaggedPeople++
					}
					for _, x := range r.Scores[id] {
						humanAll = append(humanAll, x.Score)
					}
				case market.ClassCompliantBot, market.ClassJitteredBot:
					b := bots[c]
					b.n++
					if ok {
						b.flagged++
						b.times = append(b.times, s.At-r.Active[id])
						b.reqs = append(b.reqs, s.N)
					}
				}
			}
		}
		above := 0
		for _, x := range humanAll {
			if x >= th {
				above++
			}
		}
		mark := ""
		if math.Abs(th-recommended) < 1e-9 {
			mark = " (recommended)"
		}
		row := fmt.Sprintf("| %.2f%s | %d of %d (%.1f%%) | %.2f%% |", th, mark, flaggedPeople, people,
			100*float64(flaggedPeople)/float64(max(people, 1)), 100*float64(above)/float64(max(len(humanAll), 1)))
		for _, c := range []market.Class{market.ClassCompliantBot, market.ClassJitteredBot} {
			b := bots[c]
			if b.n == 0 {
				row += " – | – | – |"
				continue
			}
			slices.Sort(b.times)
			slices.Sort(b.reqs)
			if b.flagged == 0 {
				row += fmt.Sprintf(" 0 of %d | – | – |", b.n)
				continue
			}
			row += fmt.Sprintf(" %d of %d | %s / %s | %d / %d |", b.flagged, b.n,
				b.times[(len(b.times)-1)/2].Round(time.Second), b.times[len(b.times)-1].Round(time.Second),
				b.reqs[(len(b.reqs)-1)/2], b.reqs[len(b.reqs)-1])
		}
		fmt.Fprintln(w, row)
	}
	fmt.Fprintln(w)
}
