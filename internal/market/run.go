package market

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// recordsTimeout bounds reading the offer service's records after a run.
const recordsTimeout = 3 * time.Second

// Config configures one market run.
type Config struct {
	// Title heads the report, e.g. "Run 1: DryRun".
	Title string
	// BaseURL is where the drivers send their requests: the offer service itself or the
	// gateway in front of it. Required.
	BaseURL string
	// Shape is the API shape; default ShapeREST.
	Shape Shape
	// IdentityHeader carries the driver id; default DefaultIdentityHeader.
	IdentityHeader string
	// Humans, Bots, CompliantBots and JitteredBots are how many drivers of each class play.
	Humans, Bots, CompliantBots, JitteredBots int
	// Policy is what compliant bots know of the gateway's policy (never scaled).
	Policy Policy
	// Duration is how long the drivers play, in wall-clock time (never scaled); zero plays
	// until ctx ends.
	Duration time.Duration
	// Seed makes the drivers' random delays (and ServiceConfig's offers) deterministic.
	Seed uint64
	// Timing are the market's delays; zero fields default. Its offer interval and TTL are
	// those of the offer service, which Run does not run: ServiceConfig passes them on.
	Timing Timing
	// Scale multiplies every delay of Timing (0.1: ten times faster); zero means 1.
	Scale float64
	// RunID tags the run's requests (header X-Market-Run) so the offer service keeps its
	// records apart from other runs; default a fresh id.
	RunID string
	// DriverSuffix is appended to every driver id ("human-01" + suffix), so that runs
	// through one gateway play with fresh identities.
	DriverSuffix string
	// Service, when the offer service runs in this process, is read directly for the
	// records; otherwise Run reads them from BaseURL + RecordsPath.
	Service *OfferService
	// Client sends the drivers' requests; default a client tuned for many drivers.
	Client *http.Client
	// StrictErrors makes every driver an app that reads only the offer API's own errors
	// (DriverConfig.StrictErrors); Report.Crashed lists the apps that crashed.
	StrictErrors bool
	// CompliantAcceptCopies, above 1, makes every compliant bot send each accept this many
	// times at once: a bot that knows how many replicas the offer service runs, so that
	// behind a load balancer that spreads requests its copies reach several replicas (and
	// enter each one's fair draw). 0 or 1: once.
	CompliantAcceptCopies int
}

// timing returns the run's delays with defaults applied and scaled.
func (c Config) timing() Timing { return c.Timing.WithDefaults().Scaled(c.Scale) }

// ServiceConfig returns the configuration of an offer service that matches c: its shape,
// identity header and seed, and c's offer interval and TTL, scaled.
func (c Config) ServiceConfig() ServiceConfig {
	t := c.timing()
	return ServiceConfig{Shape: c.Shape, IdentityHeader: c.IdentityHeader, Seed: c.Seed,
		OfferInterval: t.OfferInterval, OfferTTL: t.OfferTTL}
}

// Run plays one market: it starts the configured drivers against cfg.BaseURL, stops them
// after cfg.Duration (letting requests in flight finish), reads the offer service's records
// of the run and reports. When ctx ends first, Run stops every driver at once, aborting
// requests in flight, and returns the partial report with ctx.Err().
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if _, err := url.Parse(cfg.BaseURL); err != nil || cfg.BaseURL == "" {
		return nil, fmt.Errorf("market: invalid base URL %q", cfg.BaseURL)
	}
	if err := cfg.checkCounts(); err != nil {
		return nil, err
	}
	cfg.Shape = cmp.Or(cfg.Shape, ShapeREST)
	cfg.RunID = cmp.Or(cfg.RunID, fmt.Sprintf("run-%d", time.Now().UnixNano()))
	client := cfg.Client
	if client == nil {
		client = newClient(cfg.drivers())
		defer client.CloseIdleConnections()
	}
	drivers := cfg.newDrivers(client, time.Now)

	start := time.Now()
	var end time.Time
	if cfg.Duration > 0 {
		end = start.Add(cfg.Duration)
	}
	var wg sync.WaitGroup
	for _, d := range drivers {
		wg.Go(func() { d.RunUntil(ctx, end) })
	}
	wg.Wait()
	elapsed := time.Since(start)

	rep := newReport(cfg, drivers, elapsed)
	if rec, err := readRecords(ctx, cfg, client); err != nil {
		rep.RecordsError = err.Error()
	} else {
		rep.addRecords(rec, drivers)
	}
	rep.Interrupted = ctx.Err() != nil
	return rep, ctx.Err()
}

// checkCounts checks the driver counts.
func (c Config) checkCounts() error {
	if c.Humans < 0 || c.Bots < 0 || c.CompliantBots < 0 || c.JitteredBots < 0 || c.drivers() == 0 {
		return errors.New("market: driver counts must be ≥ 0 and not all zero")
	}
	return nil
}

// drivers is how many drivers play.
func (c Config) drivers() int { return c.Humans + c.Bots + c.CompliantBots + c.JitteredBots }

// newDrivers makes the run's drivers, in the order of Classes, on the clock now.
func (c Config) newDrivers(client *http.Client, now func() time.Time) []*Driver {
	var drivers []*Driver
	timing := c.timing()
	for _, cl := range []struct {
		class Class
		n     int
	}{{ClassHuman, c.Humans}, {ClassBot, c.Bots}, {ClassCompliantBot, c.CompliantBots}, {ClassJitteredBot, c.JitteredBots}} {
		for i := range cl.n {
			drivers = append(drivers, NewDriver(DriverConfig{
				ID: fmt.Sprintf("%s-%02d%s", cl.class, i+1, c.DriverSuffix), Class: cl.class,
				BaseURL: c.BaseURL, Shape: c.Shape, IdentityHeader: c.IdentityHeader, RunID: c.RunID,
				Timing: timing, Policy: c.Policy, Seed: c.Seed, Client: client, StrictErrors: c.StrictErrors, Now: now,
				AcceptCopies: c.acceptCopies(cl.class),
			}))
		}
	}
	return drivers
}

// readRecords returns the offer service's records of the run.
func readRecords(ctx context.Context, cfg Config, client *http.Client) (Records, error) {
	if cfg.Service != nil {
		return cfg.Service.Records(cfg.RunID), nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordsTimeout)
	defer cancel()
	u := strings.TrimSuffix(cfg.BaseURL, "/") + RecordsPath + "?run=" + url.QueryEscape(cfg.RunID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Records{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return Records{}, fmt.Errorf("reading offer service records: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Records{}, fmt.Errorf("reading offer service records: %s", resp.Status)
	}
	var rec Records
	if err := json.NewDecoder(resp.Body).Decode(&rec); err != nil {
		return Records{}, fmt.Errorf("reading offer service records: %w", err)
	}
	return rec, nil
}

// newClient returns an HTTP client for n drivers: one idle connection per driver, no proxy.
func newClient(n int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConns = n + 4
	t.MaxIdleConnsPerHost = n + 4
	t.IdleConnTimeout = 30 * time.Second
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}
