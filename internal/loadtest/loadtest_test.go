package loadtest

import (
	"strings"
	"testing"
	"time"
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
