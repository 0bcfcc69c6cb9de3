package market_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/offerfeed/offerfeed/internal/market"
)

// ExampleRun plays a short market, ten times faster than real time, straight against the
// offer service (in the demo, BaseURL is the gateway in front of it), and writes the report
// as a table and as an HTML chart. The market plays in real time, so who won how much varies
// from run to run: the example prints what does not, who played and what the report holds.
func ExampleRun() {
	cfg := market.Config{
		Title: "Run 0: no gateway", Humans: 4, Bots: 2, CompliantBots: 2,
		Duration: 500 * time.Millisecond, Scale: 0.1, Seed: 1,
		Policy: market.Policy{MinInterval: 200 * time.Millisecond, MinReactionTime: 80 * time.Millisecond},
	}
	svc := market.NewOfferService(cfg.ServiceConfig())
	srv := httptest.NewServer(svc)
	defer srv.Close()
	cfg.BaseURL, cfg.Service = srv.URL, svc

	rep, err := market.Run(context.Background(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	var table, chart strings.Builder
	_ = rep.WriteTable(&table) // offers won, polls, accepts and latencies per class
	_ = market.WriteHTML(&chart, []*market.Report{rep})
	for _, c := range rep.Classes {
		fmt.Printf("%s: %d drivers, fair share %.2f\n", c.Class, c.Drivers, c.FairShare)
	}
	fmt.Println("the service's records match the report:", len(svc.Records(rep.RunID).Taken) == rep.OffersTaken)
	fmt.Println("table:", strings.HasPrefix(table.String(), "Run 0: no gateway"), "chart:", strings.Contains(chart.String(), "<svg"))
	// Output:
	// human: 4 drivers, fair share 0.50
	// bot: 2 drivers, fair share 0.25
	// compliant-bot: 2 drivers, fair share 0.25
	// the service's records match the report: true
	// table: true chart: true
}
