package market

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// checkNoGoroutinesLeft fails when more goroutines run than before the test, once those
// that are ending have had a moment to end.
func checkNoGoroutinesLeft(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testConfig is a market ten times faster than real time.
func testConfig(shape Shape, d time.Duration) Config {
	return Config{
		Title: "Run 0: no gateway", Shape: shape, Seed: 1, Scale: 0.1, Duration: d,
		Humans: 4, Bots: 2, CompliantBots: 2,
		Policy: Policy{MinInterval: 200 * time.Millisecond, MinReactionTime: 80 * time.Millisecond},
	}
}

// checkConsistent checks that a report's counts add up.
func checkConsistent(t *testing.T, rep *Report) {
	t.Helper()
	won, drivers, share := 0, 0, 0.0
	for _, c := range rep.Classes {
		won += c.OffersWon
		drivers += c.Drivers
		share += c.Share
		if c.AcceptsWon != c.OffersWon {
			t.Errorf("%s: %d accepts won, %d offers won", c.Class, c.AcceptsWon, c.OffersWon)
		}
		if c.PollsServed+c.PollsRefused > c.Polls || c.Polls+c.Accepts < c.Failed {
			t.Errorf("%s: polls %d served %d refused %d, accepts %d, failed %d", c.Class, c.Polls, c.PollsServed, c.PollsRefused, c.Accepts, c.Failed)
		}
		if c.Failed != 0 {
			t.Errorf("%s: %d requests failed", c.Class, c.Failed)
		}
	}
	if rep.RecordsError != "" {
		t.Errorf("records: %s", rep.RecordsError)
	}
	if won != rep.OffersTaken || won == 0 {
		t.Errorf("drivers won %d offers, the service handed out %d", won, rep.OffersTaken)
	}
	if drivers != 8 || share < 0.999 || share > 1.001 {
		t.Errorf("%d drivers, shares sum to %v", drivers, share)
	}
}

func TestRunAgainstOfferService(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(ShapeREST, 1500*time.Millisecond)
	svc := NewOfferService(cfg.ServiceConfig())
	srv := httptest.NewServer(svc)
	cfg.BaseURL, cfg.Service = srv.URL, svc

	rep, err := Run(context.Background(), cfg)
	srv.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, rep)
	if taken := len(svc.Records(rep.RunID).Taken); taken != rep.OffersTaken {
		t.Errorf("service records %d taken offers, report %d", taken, rep.OffersTaken)
	}
	// Who wins how much is real time here and not asserted (that bots react first is
	// TestTimingOrdersTheClasses').
	human, bot := rep.Class(ClassHuman), rep.Class(ClassBot)
	if human.FairShare != 0.5 || bot.FairShare != 0.25 {
		t.Errorf("fair shares human %v bot %v, want 0.5 and 0.25", human.FairShare, bot.FairShare)
	}
	for _, c := range rep.Classes {
		if c.PollsRefused != 0 || len(c.Decisions) != 0 || len(c.Flags) != 0 || c.PollsServed == 0 {
			t.Errorf("%s: without a gateway nothing is refused or flagged: %+v", c.Class, c)
		}
	}

	var table, page strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(&page, []*Report{rep, rep}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Run 0: no gateway", "human", "bot", "compliant-bot", "p50/p99"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	for _, want := range []string{"<svg", "</svg>", "Run 0: no gateway", "human", "compliant-bot", "fair share"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	for _, banned := range []string{"<script", "http://", "https://"} {
		if strings.Contains(strings.ReplaceAll(page.String(), `xmlns="http://www.w3.org/2000/svg"`, ""), banned) {
			t.Errorf("HTML is not self-contained: has %q", banned)
		}
	}
	t.Logf("\n%s", table.String())
	checkNoGoroutinesLeft(t, before)
}

// fakeGateway stands in for an offerfeed gateway in front of next: it flags (DryRun style)
// every request of raw bots, and refuses (Enforce style) every poll of compliant bots with
// a Retry-After longer than the run.
func fakeGateway(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		driver := r.Header.Get(DefaultIdentityHeader)
		switch {
		case strings.HasPrefix(driver, "bot-") && r.URL.Path == FlexFeedPath:
			r.Header.Set(FlagHeader, "feed-throttled")
		case strings.HasPrefix(driver, "bot-"):
			r.Header.Set(FlagHeader, "too-fast")
		case strings.HasPrefix(driver, "compliant-bot-") && r.URL.Path == FlexFeedPath:
			w.Header().Set("Retry-After", "60")
			w.Header().Set(DecisionHeader, "feed-throttled")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func TestRunThroughGateway(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(ShapeFlex, time.Second)
	cfg.Title = "Run 1: fake gateway"
	svc := NewOfferService(cfg.ServiceConfig())
	srv := httptest.NewServer(fakeGateway(svc))
	cfg.BaseURL = srv.URL // the records are read over HTTP

	rep, err := Run(context.Background(), cfg)
	srv.Close()
	if err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, rep)

	bot, compliant, human := rep.Class(ClassBot), rep.Class(ClassCompliantBot), rep.Class(ClassHuman)
	if bot.Flags["feed-throttled"] != bot.Polls || bot.Flags["too-fast"] != bot.Accepts || bot.WonFlagged != bot.OffersWon {
		t.Errorf("bot flags %v, won flagged %d; want every poll (%d) and accept (%d) and win (%d) flagged",
			bot.Flags, bot.WonFlagged, bot.Polls, bot.Accepts, bot.OffersWon)
	}
	if len(human.Flags) != 0 || len(human.Decisions) != 0 {
		t.Errorf("humans flagged %v, refused %v", human.Flags, human.Decisions)
	}
	// Compliant bots honour Retry-After: one refused poll each, then they wait.
	if compliant.Polls != 2 || compliant.PollsRefused != 2 || compliant.Decisions["feed-throttled"] != 2 || compliant.Accepts != 0 {
		t.Errorf("compliant bots: %d polls, %d refused, decisions %v, %d accepts; want 2, 2, feed-throttled 2, 0",
			compliant.Polls, compliant.PollsRefused, compliant.Decisions, compliant.Accepts)
	}

	var table strings.Builder
	_ = rep.WriteTable(&table)
	for _, want := range []string{"feed-throttled 2", "too-fast", "won offers flagged"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	t.Logf("\n%s", table.String())
	checkNoGoroutinesLeft(t, before)
}

func TestRawBotsIgnoreRetryAfter(t *testing.T) {
	before := runtime.NumGoroutine()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	var drivers []*Driver
	var wg sync.WaitGroup
	for _, class := range Classes {
		d := NewDriver(DriverConfig{ID: string(class) + "-01", Class: class, BaseURL: srv.URL,
			Timing: DefaultTiming().Scaled(0.01), Policy: Policy{MinInterval: 20 * time.Millisecond}})
		drivers = append(drivers, d)
		wg.Go(func() { d.Run(ctx) })
	}
	// Play until every driver polled once and the raw bot three times, however slow the
	// machine (bounded): no one else may poll again within Retry-After's 60 seconds.
	polls := func() map[Class]int {
		n := map[Class]int{}
		for _, d := range drivers {
			n[d.Class()] = len(d.Requests())
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for p := polls(); p[ClassHuman] == 0 || p[ClassCompliantBot] == 0 || p[ClassBot] < 3; p = polls() {
		if time.Now().After(deadline) {
			t.Fatalf("polls after 30s: %v", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	srv.Close()
	if p := polls(); p[ClassHuman] != 1 || p[ClassCompliantBot] != 1 || p[ClassBot] < 3 {
		t.Errorf("polls against Retry-After: 60: %v; want humans and compliant bots 1, bots 3 or more", p)
	}
	checkNoGoroutinesLeft(t, before)
}

func TestRunStopsOnCancel(t *testing.T) {
	before := runtime.NumGoroutine()
	cfg := testConfig(ShapeREST, time.Hour)
	svc := NewOfferService(cfg.ServiceConfig())
	srv := httptest.NewServer(svc)
	cfg.BaseURL, cfg.Service = srv.URL, svc

	ctx, cancel := context.WithCancel(context.Background())
	stop := time.AfterFunc(300*time.Millisecond, cancel)
	defer stop.Stop()
	rep, err := Run(ctx, cfg)
	srv.Close()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v, want context.Canceled", err)
	}
	if rep == nil || !rep.Interrupted || len(rep.Classes) != 3 {
		t.Fatalf("want a partial report, got %+v", rep)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil || !strings.Contains(table.String(), "(interrupted)") {
		t.Errorf("table of a partial run: %v\n%s", err, table.String())
	}
	checkNoGoroutinesLeft(t, before)
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Humans: 1},
		{BaseURL: "http://127.0.0.1:1"},
		{BaseURL: "http://127.0.0.1:1", Humans: -1, Bots: 2},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(%+v) succeeded", cfg)
		}
	}
}
