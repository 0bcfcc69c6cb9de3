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
// people win offers, a compliant bot that joins wins some, and fair draws hold accepts. Who
// wins how much (raw bots win nothing once the policy is enforced) is timing:
// TestDemoTimingOnFakeClock checks it on a fake clock, and this test only logs it.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and plays four markets")
	}
	var out bytes.Buffer
	report := filepath.Join(t.TempDir(), "demo.html")
	res, err := Run(context.Background(), Options{Out: &out, Duration: 6 * time.Second, Scale: 0.25,
		Humans: 6, Bots: 2, CompliantBots: 1, Seed: 7, ReportFile: report})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 4 {
		t.Fatalf("%d runs, want 4", len(res.Runs))
	}
	dry, enforce, compliant, fair := res.Runs[0], res.Runs[1], res.Runs[2], res.Runs[3]
	for _, r := range []*market.Report{dry, enforce} {
		if r.Class(market.ClassCompliantBot) != nil {
			t.Errorf("%s: compliant bots played; they join in the third run", r.Title)
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
		"kubectl wait --for=condition=Enforced returns: every governed pod (1/1) enforces",
		"Offers won by class"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if n := strings.Count(out.String(), "updating policy"); n != 2 {
		t.Errorf("the policy was updated %d times, want 2 (to Enforce, then to fair draws)", n)
	}
	html, err := os.ReadFile(report)
	if err != nil || !bytes.Contains(html, []byte("<svg")) {
		t.Errorf("chart not written: %v", err)
	}
}

func TestRunWithoutDrivers(t *testing.T) {
	_, err := Run(context.Background(), Options{Humans: 0, Bots: 0, CompliantBots: 1, Runs: []string{"enforce"}})
	if err == nil || !strings.Contains(err.Error(), `run "enforce" would have no drivers`) {
		t.Errorf("err = %v, want a run without drivers refused", err)
	}
}
