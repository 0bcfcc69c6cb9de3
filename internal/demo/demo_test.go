package demo

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/internal/market"
)

// TestDemo plays a short, four times faster demo end to end (control plane, manager, webhook,
// the gateway reading the projected ConfigMap) and checks its story as far as real time lets
// it on a loaded machine: the policy flags raw bots in DryRun, refuses them once enforced,
// people win offers, a compliant bot that joins wins some, fair draws hold accepts, and in
// the score-weighted run the offer service receives each class's bot scores. Who
// wins how much (raw bots win nothing once the policy is enforced) is timing:
// TestDemoTimingOnFakeClock checks it on a fake clock, and this test only logs it.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and plays five markets")
	}
	var out bytes.Buffer
	report := filepath.Join(t.TempDir(), "demo.html")
	res, err := Run(context.Background(), Options{Out: &out, Duration: 6 * time.Second, Scale: 0.25,
		Humans: 6, Bots: 2, CompliantBots: 1, JitteredBots: 1, Seed: 7, ReportFile: report})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 5 {
		t.Fatalf("%d runs, want 5", len(res.Runs))
	}
	dry, enforce, compliant, fair, score := res.Runs[0], res.Runs[1], res.Runs[2], res.Runs[3], res.Runs[4]
	for _, r := range []*market.Report{dry, enforce} {
		if r.Class(market.ClassCompliantBot) != nil {
			t.Errorf("%s: compliant bots played; they join in the third run", r.Title)
		}
	}
	for _, r := range res.Runs[:4] {
		if r.Class(market.ClassJitteredBot) != nil {
			t.Errorf("%s: jittered bots played; they join in the fifth run", r.Title)
		}
	}
	// The score-weighted run plays ScoreRunLength times as long, after a warm-up long enough
	// for the scores of the bots, which poll at every minInterval and accept every offer, to
	// form.
	if score.Duration < ScoreRunLength*6*time.Second {
		t.Errorf("the score run played %s", score.Duration)
	}
	for _, c := range []market.Class{market.ClassCompliantBot, market.ClassJitteredBot} {
		if cr := score.Class(c); cr == nil || cr.Scores.Scored == 0 {
			t.Errorf("score run: the offer service received no score for %s: %+v", c, cr)
		}
	}
	// The warm-up made the compliant bot known: every request of the run carries its score.
	if cr := score.Class(market.ClassCompliantBot); cr != nil && cr.Scores.Unscored != 0 {
		t.Errorf("score run: %d of the compliant bot's requests carried no score after the warm-up", cr.Scores.Unscored)
	}
	for _, r := range res.Runs[:4] {
		for _, c := range r.Classes {
			if c.Scores.Scored != 0 {
				// The gateway sends scores whatever the policy; 6 s runs are too short for any to form.
				t.Logf("%s: %s got scores in a short run", r.Title, c.Class)
			}
		}
	}
	for _, r := range res.Runs {
		t.Logf("%s: offers won by raw bots %d, people %d (real time: not asserted)", r.Title,
			r.Class(market.ClassBot).OffersWon, r.Class(market.ClassHuman).OffersWon)
	}
	if d := dry.Class(market.ClassBot).Decisions; len(d) != 0 {
		t.Errorf("DryRun refused raw bots: %v", d)
	}
	if dry.Class(market.ClassBot).Flags["too-fast"] == 0 {
		t.Error("DryRun: the offer service saw no too-fast flags on bot accepts")
	}
	if h, b := enforce.Class(market.ClassHuman), enforce.Class(market.ClassBot); h.OffersWon == 0 || b.Decisions["too-fast"] == 0 {
		t.Errorf("Enforce: raw bots' accepts refused too-fast: %d, people won %d; want both above 0",
			b.Decisions["too-fast"], h.OffersWon)
	}
	if enforce.Class(market.ClassBot).Decisions["feed-throttled"] == 0 {
		t.Error("Enforce: no bot poll was refused")
	}
	if c := compliant.Class(market.ClassCompliantBot); c == nil || c.OffersWon == 0 {
		t.Errorf("Enforce with a compliant bot: it won nothing (%+v); it should win some", c)
	}
	if fair.Class(market.ClassBot).Decisions["too-fast"] == 0 || fair.Class(market.ClassHuman).OffersWon == 0 {
		t.Errorf("fair draws: raw bots refused too-fast %d, humans won %d; want both above 0",
			fair.Class(market.ClassBot).Decisions["too-fast"], fair.Class(market.ClassHuman).OffersWon)
	}
	lost := fair.Class(market.ClassHuman).Decisions["lost-draw"] + fair.Class(market.ClassCompliantBot).Decisions["lost-draw"]
	if lost == 0 {
		t.Error("fair draws: no accept lost a draw; were accepts held?")
	}
	for _, want := range []string{"Run 1: policy in DryRun", "Run 2: policy in Enforce", "Run 3: policy in Enforce, a compliant bot joins",
		"a compliant bot joins the market", "Run 4: policy in Enforce with fair draws", "gateway enforces policy standard in Enforce",
		"Run 5: policy in Enforce with score-weighted fair draws", "jittered bot(s) join the market", "warming up for 30s", "Bot score (OfferFeed-Score",
		"kubectl wait --for=condition=Enforced returns: every governed pod (1/1) enforces",
		"Offers won by class"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if n := strings.Count(out.String(), "updating policy"); n != 3 {
		t.Errorf("the policy was updated %d times, want 3 (to Enforce, to fair draws, to score-weighted draws)", n)
	}
	html, err := os.ReadFile(report)
	if err != nil || !bytes.Contains(html, []byte("<svg")) || !bytes.Contains(html, []byte("Bot score by class: Run 5")) {
		t.Errorf("chart or score chart not written: %v", err)
	}
}

func TestRunWithoutDrivers(t *testing.T) {
	_, err := Run(context.Background(), Options{Humans: 0, Bots: 0, CompliantBots: 1, Runs: []string{"enforce"}})
	if err == nil || !strings.Contains(err.Error(), `run "enforce" would have no drivers`) {
		t.Errorf("err = %v, want a run without drivers refused", err)
	}
}
