package market_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/signal"
	"time"

	"github.com/offerfeed/offerfeed/internal/market"
)

// ExampleRun plays one market for a minute, stops early on Ctrl-C, and prints the table and
// the HTML chart. In the demo, BaseURL is the gateway in front of the offer service.
func ExampleRun() {
	cfg := market.Config{
		Title: "Run 1: DryRun", Humans: 8, Bots: 2, CompliantBots: 2, Duration: time.Minute, Seed: 1,
		Policy: market.Policy{MinInterval: 2 * time.Second, MinReactionTime: 800 * time.Millisecond},
	}
	svc := market.NewOfferService(cfg.ServiceConfig())
	srv := httptest.NewServer(svc)
	defer srv.Close()
	cfg.BaseURL, cfg.Service = srv.URL, svc

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := market.Run(ctx, cfg)
	if rep == nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	_ = rep.WriteTable(os.Stdout)
	if f, err := os.Create("demo.html"); err == nil {
		_ = market.WriteHTML(f, []*market.Report{rep})
		_ = f.Close()
	}
}
