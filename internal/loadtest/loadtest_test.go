package loadtest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/internal/redistest"
)

// TestRunSmoke runs every phase briefly: the report has its three tables, the targets answer,
// and the gateway refuses the bots. No timing is asserted.
func TestRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	cfg := Config{
		Drivers: 5000, Concurrency: 4, Duration: 200 * time.Millisecond, Rate: 200, Rounds: 1,
		Humans: 5, HumanInterval: 2100 * time.Millisecond, Bots: 2, BotFactor: 20,
		FloodDuration: 500 * time.Millisecond, UpstreamSlots: 4, UpstreamWork: time.Millisecond,
		Phases: "throughput,latency,flood",
	}
	var out strings.Builder
	if err := Run(cfg, &out); err != nil {
		t.Fatal(err)
	}
	report := out.String()
	for _, want := range []string{"### Throughput", "### Added latency", "### Bot flood", "| 1 | gateway | ", "| humans + bots, gateway |"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	for _, line := range strings.Split(report, "\n") {
		if strings.HasPrefix(line, "| 1 | ") && !strings.Contains(line, "100.00%") {
			t.Errorf("a target failed requests: %s", line)
		}
		if strings.HasPrefix(line, "| humans + bots, gateway |") && strings.HasSuffix(line, "| 0 |") {
			t.Errorf("the gateway refused no bot poll: %s", line)
		}
	}
}

// TestRunShared runs the throughput and latency phases briefly with the shared-state target
// on a real redis-server: its rows are there, its requests succeed, and it reports Redis's
// commands per request (two scripts at most per allowed poll, and the first run of each script twice). No timing is asserted.
func TestRunShared(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	srv := redistest.Start(t)
	cfg := Config{Drivers: 5000, Concurrency: 4, Duration: 200 * time.Millisecond, Rate: 200, Rounds: 1,
		Phases: "throughput,latency", RedisAddr: srv.Addr}
	var out strings.Builder
	if err := Run(cfg, &out); err != nil {
		t.Fatal(err)
	}
	report := out.String()
	for _, want := range []string{"| 1 | gateway, shared | ", "shared / local: ", "per request"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	for _, line := range strings.Split(report, "\n") {
		if strings.HasPrefix(line, "| 1 | gateway, shared |") && !strings.Contains(line, "100.00%") {
			t.Errorf("the shared gateway failed requests: %s", line)
		}
	}
	_, rest, _ := strings.Cut(report, "**")
	per, _, _ := strings.Cut(rest, " per request")
	if v, err := strconv.ParseFloat(per, 64); err != nil || v <= 0 || v > 2.05 {
		t.Errorf("Redis commands per request %q: want (0, 2.05] (a script's first run is EVALSHA, NOSCRIPT, then EVAL):\n%s", per, report)
	}
}
