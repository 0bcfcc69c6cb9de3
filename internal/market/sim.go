package market

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"
	testingclock "k8s.io/utils/clock/testing"
)

// SimGateway is what Simulate needs of a gateway: an http.Handler that holds the accepts of a
// fair draw until the draw's window closes, and says how many accepts it holds for an offer.
// *gateway.Gateway is one.
type SimGateway interface {
	http.Handler
	HeldAccepts(offerID string) int
}

// SimConfig configures Simulate.
type SimConfig struct {
	// Config is the market: drivers, shape, what the bots know of the policy, seed and
	// timing. Its Duration is simulated time; BaseURL, Service, Client and StrictErrors are
	// not used.
	Config
	// NewGateway makes the gateway that stands in front of the offer service: it forwards
	// with upstream (the offer service, in process) and reads the time and sets its timers
	// on clk. Nil plays the market without a gateway.
	NewGateway func(upstream http.RoundTripper, clk clock.WithDelayedExecution) (SimGateway, error)
	// FairnessWindow is the gateway policy's accept.fairness.window, zero without fair draws:
	// Simulate closes a held accept's draw that long after the draw opened.
	FairnessWindow time.Duration
	// AnswerTimeout bounds the real time Simulate waits for a gateway's answer to one
	// request; zero means 10s. A gateway that does not answer in time fails the simulation.
	AnswerTimeout time.Duration
}

// SimStart is the simulated time at which Simulate starts.
var SimStart = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

// SimResult is what one simulated market produced.
type SimResult struct {
	// Report is the market's report, as Run writes it; its Duration is simulated time.
	*Report
	// Drivers maps each driver id to its class.
	Drivers map[string]Class
	// Scores holds, per driver id, the score of each of its requests that reached the offer
	// service with one, in order.
	Scores map[string][]ScoreSample
	// Active holds, per driver id, the time of its first request (since SimStart).
	Active map[string]time.Duration
}

// ScoreSample is the score header of one request, as the offer service received it.
type ScoreSample struct {
	// At is when, since SimStart.
	At time.Duration
	// N is the number of the driver's requests the offer service had received, this one
	// included.
	N int
	// Score is the OfferFeed-Score header's value.
	Score float64
	// Signals is the OfferFeed-Signals header's value.
	Signals string
}

// Flagged returns the first of driver's scores at or above threshold, or false when none
// was.
func (r *SimResult) Flagged(driver string, threshold float64) (ScoreSample, bool) {
	for _, s := range r.Scores[driver] {
		if s.Score >= threshold {
			return s, true
		}
	}
	return ScoreSample{}, false
}

// Simulate plays a market on a fake clock, as fast as the machine goes: the drivers, the
// gateway (SimConfig.NewGateway) and the offer service run in this process, requests go
// through no socket, and the clock jumps from one driver's action to the next. It is
// deterministic for a seed as long as the gateway is (give a gateway a fixed draw seed).
// Accepts held for a fair draw are sent in goroutines of their own; the driver waits for the
// answer, as it does in Run, and the others go on until the draw's window closes.
func Simulate(ctx context.Context, cfg SimConfig) (*SimResult, error) {
	if err := cfg.checkCounts(); err != nil {
		return nil, err
	}
	if cfg.Duration <= 0 {
		return nil, errors.New("market: a simulation needs a Duration")
	}
	cfg.Shape = cmp.Or(cfg.Shape, ShapeREST)
	cfg.IdentityHeader = cmp.Or(cfg.IdentityHeader, DefaultIdentityHeader)
	cfg.RunID = cmp.Or(cfg.RunID, "sim")
	cfg.AnswerTimeout = cmp.Or(cfg.AnswerTimeout, 10*time.Second)

	clk := testingclock.NewFakeClock(SimStart)
	sc := cfg.ServiceConfig()
	sc.Now = clk.Now
	svc := NewOfferService(sc)
	res := &SimResult{Drivers: map[string]Class{}, Scores: map[string][]ScoreSample{}, Active: map[string]time.Duration{}}
	var mu sync.Mutex // guards res's maps: draws answer in the gateway's goroutines
	counts := map[string]int{}
	upstream := handlerTransport{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		driver, at := r.Header.Get(cfg.IdentityHeader), clk.Since(SimStart)
		mu.Lock()
		counts[driver]++
		if score, _, ok := scoreBin(r.Header.Get(ScoreHeader)); ok {
			res.Scores[driver] = append(res.Scores[driver], ScoreSample{At: at, N: counts[driver], Score: score,
				Signals: r.Header.Get(SignalsHeader)})
		}
		mu.Unlock()
		svc.ServeHTTP(w, r)
	})}

	front := upstream.h
	var gw SimGateway
	if cfg.NewGateway != nil {
		var err error
		if gw, err = cfg.NewGateway(upstream, clk); err != nil {
			return nil, fmt.Errorf("market: making the gateway: %w", err)
		}
		front = gw
	}
	cfg.BaseURL = "http://offer-service.sim"
	client := &http.Client{Transport: handlerTransport{front}}
	drivers := cfg.newDrivers(client, clk.Now)
	sims := make([]*simDriver, len(drivers))
	for i, d := range drivers {
		res.Drivers[d.ID()] = d.Class()
		d.start(clk.Now())
		sims[i] = &simDriver{d: d}
	}
	// Each driver's first request: the driver is active from then on.
	active := func(d *Driver) {
		if _, ok := res.Active[d.ID()]; !ok {
			res.Active[d.ID()] = clk.Since(SimStart)
		}
	}

	end := SimStart.Add(cfg.Duration)
	draws := map[string]time.Time{} // offer → when its draw's window closes
	for ctx.Err() == nil {
		closeOffer, closeAt := nextDraw(draws)
		var next *simDriver
		var due time.Time
		for _, s := range sims {
			if s.done != nil || s.d.Crashed() != "" {
				continue
			}
			if t, _ := s.d.next(); next == nil || t.Before(due) {
				next, due = s, t
			}
		}
		driverDue := next != nil && !due.After(end)
		if closeOffer != "" && (!driverDue || !due.Before(closeAt)) {
			clk.SetTime(later(clk.Now(), closeAt))
			for _, s := range sims {
				if s.done != nil && s.offer == closeOffer {
					if err := s.wait(cfg.AnswerTimeout); err != nil {
						return nil, err
					}
				}
			}
			delete(draws, closeOffer)
			continue
		}
		if !driverDue {
			break
		}
		clk.SetTime(later(clk.Now(), due))
		active(next.d)
		if _, isAccept := next.d.next(); !isAccept {
			next.d.pollOnce(ctx)
			continue
		}
		offer := next.d.popAccept()
		held := 0
		if gw != nil {
			held = gw.HeldAccepts(offer)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			next.d.accept(ctx, offer)
		}()
		isHeld, err := answeredOrHeld(done, gw, offer, held, cfg.AnswerTimeout)
		if err != nil {
			return nil, err
		}
		if isHeld {
			next.done, next.offer = done, offer
			if _, ok := draws[offer]; !ok {
				if cfg.FairnessWindow <= 0 {
					return nil, fmt.Errorf("market: the gateway held an accept for %s but SimConfig.FairnessWindow is zero", offer)
				}
				draws[offer] = clk.Now().Add(cfg.FairnessWindow)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The drivers played until end; draws open then closed after it (their accepts count).
	rep := newReport(cfg.Config, drivers, cfg.Duration)
	rep.addRecords(svc.Records(cfg.RunID), drivers)
	res.Report = rep
	return res, nil
}

// simDriver is a driver of Simulate and the accept it waits for, if any.
type simDriver struct {
	d *Driver
	// done, while not nil, is closed when the driver's held accept for offer is answered.
	done  chan struct{}
	offer string
}

// wait waits for the driver's held accept to be answered.
func (s *simDriver) wait(timeout time.Duration) error {
	select {
	case <-s.done:
		s.done, s.offer = nil, ""
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("market: the gateway did not answer %s's accept for %s within %s of its draw's end", s.d.ID(), s.offer, timeout)
	}
}

// nextDraw returns the draw that closes first (the smallest offer id on a tie), or "".
func nextDraw(draws map[string]time.Time) (string, time.Time) {
	offers := make([]string, 0, len(draws))
	for o := range draws {
		offers = append(offers, o)
	}
	slices.Sort(offers)
	var first string
	var at time.Time
	for _, o := range offers {
		if first == "" || draws[o].Before(at) {
			first, at = o, draws[o]
		}
	}
	return first, at
}

// answeredOrHeld waits until an accept sent in a goroutine is answered (done closed) or the
// gateway holds it for a draw (it holds more accepts for the offer than before); it returns
// whether it is held.
func answeredOrHeld(done <-chan struct{}, gw SimGateway, offer string, before int, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for wait := time.Microsecond; ; wait = min(2*wait, time.Millisecond) {
		select {
		case <-done:
			return false, nil
		case <-time.After(wait):
		}
		if gw != nil && gw.HeldAccepts(offer) > before {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("market: the gateway neither answered nor held an accept for %s within %s", offer, timeout)
		}
	}
}

// handlerTransport is an http.RoundTripper that serves each request with a handler, in
// process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	in := r.Clone(r.Context())
	if in.Body == nil {
		in.Body = http.NoBody
	}
	defer in.Body.Close()
	in.RequestURI = r.URL.RequestURI()
	if in.Host == "" {
		in.Host = r.URL.Host
	}
	w := &recorder{header: http.Header{}}
	t.h.ServeHTTP(w, in)
	status := cmp.Or(w.status, http.StatusOK)
	return &http.Response{
		Status: fmt.Sprintf("%d %s", status, http.StatusText(status)), StatusCode: status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(bytes.NewReader(w.body.Bytes())),
		ContentLength: int64(w.body.Len()), Request: r,
	}, nil
}

// recorder is the http.ResponseWriter of handlerTransport.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
		w.header = w.header.Clone()
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}
