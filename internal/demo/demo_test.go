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

// TestDemo plays a short, four times faster demo and checks its story: bots win most offers
// while the policy only flags them, humans win most once it is enforced.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and plays two markets")
	}
	var out bytes.Buffer
	report := filepath.Join(t.TempDir(), "demo.html")
	res, err := Run(context.Background(), Options{Out: &out, Duration: 6 * time.Second, Scale: 0.25,
		Humans: 6, Bots: 2, Seed: 7, ReportFile: report, Runs: []string{"dryrun", "enforce"}})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 2 {
		t.Fatalf("%d runs, want 2", len(res.Runs))
	}
	dry, enforce := res.Runs[0], res.Runs[1]
	if h, b := dry.Class(market.ClassHuman), dry.Class(market.ClassBot); b.OffersWon <= h.OffersWon {
		t.Errorf("DryRun: bots won %d, humans %d; bots should win most", b.OffersWon, h.OffersWon)
	}
	if dry.Class(market.ClassBot).Flags["too-fast"] == 0 {
		t.Error("DryRun: the offer service saw no too-fast flags on bot accepts")
	}
	if h, b := enforce.Class(market.ClassHuman), enforce.Class(market.ClassBot); h.OffersWon <= b.OffersWon {
		t.Errorf("Enforce: humans won %d, bots %d; humans should win most", h.OffersWon, b.OffersWon)
	}
	if enforce.Class(market.ClassBot).Decisions["feed-throttled"] == 0 {
		t.Error("Enforce: no bot poll was refused")
	}
	for _, want := range []string{"Run 1: policy in DryRun", "Run 2: policy in Enforce", "gateway enforces policy standard in Enforce", "Offers won by class"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	html, err := os.ReadFile(report)
	if err != nil || !bytes.Contains(html, []byte("<svg")) {
		t.Errorf("chart not written: %v", err)
	}
}
