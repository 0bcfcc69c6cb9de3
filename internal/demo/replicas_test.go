package demo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/internal/market"
	"github.com/offerfeed/offerfeed/internal/redistest"
)

// TestDemoReplicas plays the demo with three gateways behind the round-robin front, four times
// faster, on the real control plane and a real redis-server, and checks the story in counts
// (never in time): with per-replica state people's accepts are refused unseen-offer (they
// polled on one replica and accepted on another) and raw bots get more polls served than the
// policy allows; with state shared on Redis no person is refused unseen-offer and the raw
// bots get no more polls than the policy allows (plus one a bot for the edges of the run).
func TestDemoReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane and a Redis server and plays four markets")
	}
	bin, required, err := redistest.Binary()
	if err != nil {
		if required {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	var out bytes.Buffer
	report := filepath.Join(t.TempDir(), "demo.html")
	res, err := Run(context.Background(), Options{Out: &out, Duration: 6 * time.Second, Scale: 0.25,
		Humans: 6, Bots: 2, CompliantBots: 1, Seed: 7, ReportFile: report, Replicas: 3, RedisServer: bin})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 4 || len(res.Comparisons) != 2 {
		t.Fatalf("%d runs and %d comparisons, want 4 and 2 (enforce and fair, each per-replica then shared)", len(res.Runs), len(res.Comparisons))
	}
	for _, c := range res.Comparisons {
		l, s := c.Local, c.Shared
		t.Logf("%s: per-replica %+v; shared %+v", c.Title, l, s)
		if l.PeopleUnseen == 0 {
			t.Errorf("%s, per-replica state: no person's accept (of %d) was refused unseen-offer", c.Title, l.PeopleAccepts)
		}
		if l.BotPollsServed <= l.BotPollsAllowed+2 {
			t.Errorf("%s, per-replica state: raw bots got %d polls served, allowed %d; want more through 3 replicas",
				c.Title, l.BotPollsServed, l.BotPollsAllowed)
		}
		if s.PeopleAccepts == 0 || s.PeopleUnseen != 0 {
			t.Errorf("%s, shared state: %d of %d people's accepts refused unseen-offer, want 0 of some", c.Title, s.PeopleUnseen, s.PeopleAccepts)
		}
		if s.BotPollsAllowed == 0 || s.BotPollsServed > s.BotPollsAllowed+2 {
			t.Errorf("%s, shared state: raw bots got %d polls served, allowed %d (+2)", c.Title, s.BotPollsServed, s.BotPollsAllowed)
		}
	}
	// The compliant bot sent every accept three times, to reach every replica.
	for _, r := range res.Runs[2:] {
		if cb := r.Class(market.ClassCompliantBot); cb == nil || cb.Accepts == 0 || cb.Accepts%3 != 0 {
			t.Errorf("%s: compliant bot %+v, want accepts in threes", r.Title, cb)
		}
	}
	for _, want := range []string{"Run 1: policy in Enforce, 3 gateways, per-replica state",
		"Run 2: policy in Enforce, 3 gateways, state shared on Redis", "round-robin front on",
		"all 3 gateways enforce policy standard", "the policy's spec.sharedState names the Redis at", "3 gateways behind round-robin: per-replica state, then state shared on Redis",
		"people's accepts refused unseen-offer", "draws won by people / bots", "Requests per gateway (round-robin): "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	html, err := os.ReadFile(report)
	if err != nil || !bytes.Contains(html, []byte("Replicas: per-replica state against shared state")) {
		t.Errorf("chart lacks the comparison: %v", err)
	}
}

// TestRunReplicasWithoutRedis: with several replicas and no Redis server the demo stops before
// it starts anything, saying what to install.
func TestRunReplicasWithoutRedis(t *testing.T) {
	t.Setenv(EnvRedisServer, "")
	t.Setenv("PATH", t.TempDir())
	if _, err := exec.LookPath("redis-server"); err == nil {
		t.Fatal("redis-server still on PATH")
	}
	_, err := Run(context.Background(), Options{Replicas: 3, RedisServer: filepath.Join(t.TempDir(), "none")})
	if err == nil || !strings.Contains(err.Error(), "none: stat") {
		t.Errorf("err = %v, want the missing --redis-server named", err)
	}
	saved := redisFallbackPaths
	redisFallbackPaths = []string{filepath.Join(t.TempDir(), "redis-server")}
	defer func() { redisFallbackPaths = saved }()
	_, err = Run(context.Background(), Options{Replicas: 3})
	if err == nil || !strings.Contains(err.Error(), "apt-get install redis-server") || !strings.Contains(err.Error(), "--redis-server") {
		t.Errorf("err = %v, want what to install", err)
	}
	// One replica needs no Redis: the demo goes on to its next check.
	if _, err := Run(context.Background(), Options{Replicas: 1, Humans: 0, Bots: 0, CompliantBots: 1, Runs: []string{"enforce"}}); err == nil ||
		strings.Contains(err.Error(), "Redis") {
		t.Errorf("one replica: err = %v, want the run without drivers refused, not Redis", err)
	}
}

// TestFigures: what a comparison reads from a run's report, and how the text shows it.
func TestFigures(t *testing.T) {
	rep := &market.Report{Duration: 10*time.Second + 300*time.Millisecond, Classes: []market.ClassReport{
		{Class: market.ClassHuman, Drivers: 6, Accepts: 20, OffersWon: 2, Decisions: map[string]int{"unseen-offer": 14, "too-fast": 1}},
		{Class: market.ClassBot, Drivers: 2, PollsServed: 30, OffersWon: 1},
		{Class: market.ClassCompliantBot, Drivers: 1, OffersWon: 3},
	}}
	got := figures(rep, 2*time.Second, 1)
	want := StateFigures{PeopleAccepts: 20, PeopleUnseen: 14, BotPollsServed: 30, BotPollsAllowed: 12, OffersWonByPeople: 2, OffersWonByBots: 4}
	if got != want {
		t.Errorf("figures = %+v, want %+v", got, want)
	}
	var b strings.Builder
	writeComparisons(&b, 3, []Comparison{{Title: "policy in Enforce with fair draws", Fair: true, Local: want,
		Shared: StateFigures{PeopleAccepts: 21, BotPollsServed: 12, BotPollsAllowed: 12, OffersWonByPeople: 5, OffersWonByBots: 1}}})
	for _, line := range []string{
		"3 gateways behind round-robin: per-replica state, then state shared on Redis\n",
		"policy in Enforce with fair draws\n",
		"  people's accepts refused unseen-offer      14 of 20      0 of 21\n",
		"  raw bots' polls served (policy allows)      30 (12)      12 (12)\n",
		"  draws won by people / bots                    2 / 4        5 / 1\n",
	} {
		if !strings.Contains(b.String(), line) {
			t.Errorf("comparison lacks %q:\n%s", line, b.String())
		}
	}
}

// TestReplicaRuns: with several replicas each run plays twice, per-replica state then shared,
// and the default runs are ReplicaRunNames; with one, the runs are as they were.
func TestReplicaRuns(t *testing.T) {
	o := Options{Replicas: 3}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range o.runs {
		got = append(got, fmt.Sprintf("%s/%v/%v: %s", r.name, r.replicated, r.shared, r.title))
	}
	want := []string{
		"enforce/true/false: policy in Enforce, 3 gateways, per-replica state",
		"enforce/true/true: policy in Enforce, 3 gateways, state shared on Redis",
		"fair/true/false: policy in Enforce with fair draws, 3 gateways, per-replica state",
		"fair/true/true: policy in Enforce with fair draws, 3 gateways, state shared on Redis",
	}
	if !slices.Equal(got, want) {
		t.Errorf("runs %q, want %q", got, want)
	}
	one := Options{}
	if err := one.defaults(); err != nil {
		t.Fatal(err)
	}
	if one.Replicas != 1 || len(one.runs) != len(RunNames) || one.runs[0] != runSpecs["dryrun"] {
		t.Errorf("one replica: %d runs %+v", len(one.runs), one.runs)
	}
	if err := (&Options{Replicas: MaxReplicas + 1}).defaults(); err == nil {
		t.Error("too many replicas accepted")
	}
}
