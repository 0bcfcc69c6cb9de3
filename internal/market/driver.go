package market

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RequestKind is the kind of a driver's request.
type RequestKind string

const (
	// KindPoll is a feed request.
	KindPoll RequestKind = "poll"
	// KindAccept is an accept request.
	KindAccept RequestKind = "accept"
)

// Request is one request a driver made.
type Request struct {
	// Kind is poll or accept.
	Kind RequestKind
	// OfferID is the offer an accept was for; empty for polls.
	OfferID string
	// Status is the HTTP status of the answer; 0 when the request got no answer.
	Status int
	// Decision is the answer's OfferFeed-Decision header: why a gateway refused it.
	Decision string
	// Latency is the time from sending the request to reading the whole answer.
	Latency time.Duration
}

// DriverConfig configures a Driver. Zero fields take the defaults named below.
type DriverConfig struct {
	// ID identifies the driver to the offer service and the gateway.
	ID string
	// Class is how the driver behaves.
	Class Class
	// BaseURL is the offer service's or the gateway's URL, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// Shape is the API shape; default ShapeREST.
	Shape Shape
	// IdentityHeader carries ID; default DefaultIdentityHeader.
	IdentityHeader string
	// RunID is sent in header X-Market-Run.
	RunID string
	// Timing are the delays of humans and raw bots; zero fields default (unscaled).
	Timing Timing
	// Policy is what a compliant bot knows of the gateway's policy.
	Policy Policy
	// Seed makes the driver's random delays deterministic (with ID).
	Seed uint64
	// Client sends the requests; default http.DefaultClient.
	Client *http.Client
	// Now is the driver's clock; default time.Now. Simulate gives a fake one.
	Now func() time.Time
	// StrictErrors plays an app already on drivers' phones, which reads only the offer API's
	// own errors: an answer other than 2xx must be a JSON object (Content-Type
	// application/json), and 400 with message FlexRateExceeded is the platform's rate limit.
	// On any other error answer the app crashes: the driver stops, and Crashed says why.
	StrictErrors bool
	// AcceptCopies, above 1, makes the driver send each accept this many times at once
	// (sendAccept); 0 or 1 sends it once.
	AcceptCopies int
}

// Driver is one simulated driver. Run plays it until its context ends; Requests and Won
// report what it did and may be called at any time.
type Driver struct {
	cfg DriverConfig
	rng *rand.Rand

	// Used by Run's goroutine only.
	seen        map[string]time.Time // offer id → when first seen
	tried       map[string]bool      // offers a human chose to accept
	pending     []pendingAccept      // accepts to send, by due time
	acceptPause time.Time            // compliant bots send no accept before
	wins        []time.Time          // when the driver won offers
	nextPoll    time.Time            // when the driver polls next
	sessionEnd  time.Time            // a person's session ends then and a pause begins
	doubled     bool                 // a person's last gap was a double refresh
	minPay      float64              // a person takes offers that pay at least this

	mu       sync.Mutex
	requests []Request
	won      []string
	crashed  string
}

type pendingAccept struct {
	offerID string
	due     time.Time
}

// shownOffer is an offer as a driver reads it from the feed.
type shownOffer struct {
	id  string
	pay float64
}

// NewDriver returns a driver ready to Run.
func NewDriver(cfg DriverConfig) *Driver {
	cfg.Shape = cmp.Or(cfg.Shape, ShapeREST)
	cfg.IdentityHeader = cmp.Or(cfg.IdentityHeader, DefaultIdentityHeader)
	cfg.Timing = cfg.Timing.WithDefaults()
	cfg.Policy.Margin = cmp.Or(cfg.Policy.Margin, DefaultMargin)
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(cfg.ID))
	d := &Driver{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(cfg.Seed, h.Sum64())),
		seen:  map[string]time.Time{},
		tried: map[string]bool{},
	}
	if cfg.Class == ClassHuman {
		d.minPay = HumanMinPay[0] + d.rng.Float64()*(HumanMinPay[1]-HumanMinPay[0])
	}
	return d
}

// ID returns the driver's id.
func (d *Driver) ID() string { return d.cfg.ID }

// Class returns the driver's class.
func (d *Driver) Class() Class { return d.cfg.Class }

// Requests returns the requests the driver made so far, in order. Requests aborted by the
// end of Run's context are not counted.
func (d *Driver) Requests() []Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.requests)
}

// Won returns the ids of the offers the driver won so far, in order.
func (d *Driver) Won() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.won)
}

// Crashed says why the driver's app crashed on an answer it cannot read (StrictErrors);
// empty while it runs.
func (d *Driver) Crashed() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.crashed
}

// Run polls and accepts until ctx ends, which also aborts the request in flight. Call Run or
// RunUntil once.
func (d *Driver) Run(ctx context.Context) { d.RunUntil(ctx, time.Time{}) }

// RunUntil polls and accepts until end (zero: no end) and then returns once the request in
// flight, if any, is answered, so that the driver and the offer service agree on who won;
// or it returns as soon as ctx ends, aborting the request in flight.
func (d *Driver) RunUntil(ctx context.Context, end time.Time) {
	d.start(d.cfg.Now())
	for d.Crashed() == "" {
		due, isAccept := d.next()
		if !end.IsZero() && due.After(end) {
			sleepUntil(ctx, end)
			return
		}
		if !sleepUntil(ctx, due) {
			return
		}
		if isAccept {
			d.accept(ctx, d.popAccept())
			continue
		}
		d.pollOnce(ctx)
	}
}

// start plans the driver's first poll, spread over one poll interval from now. A person
// starts at a random point of a session.
func (d *Driver) start(now time.Time) {
	if d.cfg.Class == ClassHuman {
		d.sessionEnd = now.Add(exponential(d.rng, d.cfg.Timing.HumanSession))
		d.nextPoll = now.Add(uniform(d.rng, 0, d.cfg.Timing.HumanPollMin))
		return
	}
	d.nextPoll = now.Add(uniform(d.rng, 0, d.pollInterval(now)))
}

// next returns when the driver acts next, and whether that is an accept (else a poll).
func (d *Driver) next() (time.Time, bool) {
	if len(d.pending) > 0 && d.pending[0].due.Before(d.nextPoll) {
		return d.pending[0].due, true
	}
	return d.nextPoll, false
}

// popAccept takes the first planned accept off the queue and returns its offer id.
func (d *Driver) popAccept() string {
	p := d.pending[0]
	d.pending = d.pending[1:]
	return p.offerID
}

// pollOnce reads the feed and plans what follows: the next poll and the accepts.
func (d *Driver) pollOnce(ctx context.Context) {
	started := d.cfg.Now()
	offers, retryAfter := d.poll(ctx)
	now := d.cfg.Now()
	d.nextPoll = started.Add(d.pollInterval(started))
	if retryAfter > 0 && d.cfg.Class != ClassBot { // raw bots ignore Retry-After
		d.nextPoll = later(d.nextPoll, now.Add(retryAfter))
	}
	d.consider(offers, now)
}

// pollInterval is the time from a poll at at to the next one.
func (d *Driver) pollInterval(at time.Time) time.Duration {
	t, p := d.cfg.Timing, d.cfg.Policy
	switch {
	case d.cfg.Class == ClassHuman:
		return d.humanGap(at)
	case d.cfg.Class.obeysPolicy() && p.MinInterval > 0:
		gap := p.MinInterval + p.Margin
		if d.cfg.Class == ClassJitteredBot {
			gap += uniform(d.rng, 0, t.JitterPoll)
		}
		return gap
	case d.cfg.Class == ClassJitteredBot:
		return t.BotPoll + uniform(d.rng, 0, t.JitterPoll)
	default:
		return t.BotPoll
	}
}

// humanGap is a person's time from a poll at at to the next one: now and then a double
// refresh, else a shifted log-normal gap; when the session ends before the next poll, the
// person pauses and polls again when the next session starts.
func (d *Driver) humanGap(at time.Time) time.Duration {
	t := d.cfg.Timing
	if !d.doubled && d.rng.Float64() < t.HumanDoubleRefresh {
		d.doubled = true
		return uniform(d.rng, t.HumanDoubleMin, t.HumanDoubleMax)
	}
	d.doubled = false
	gap := shiftedLogNormal(d.rng, t.HumanPollMin, t.HumanPollMedian, t.HumanPollSigma)
	if next := at.Add(gap); next.After(d.sessionEnd) {
		resume := d.sessionEnd.Add(logNormal(d.rng, t.HumanPauseMedian, t.HumanPauseSigma))
		d.sessionEnd = resume.Add(exponential(d.rng, t.HumanSession))
		return later(next, resume).Sub(at)
	}
	return gap
}

// humanReaction is a person's time from seeing an offer to accepting it.
func (d *Driver) humanReaction() time.Duration {
	t := d.cfg.Timing
	return shiftedLogNormal(d.rng, t.HumanReactMin, t.HumanReactMedian, t.HumanReactSigma)
}

// consider schedules accepts for the offers of a feed answer read at now.
func (d *Driver) consider(offers []shownOffer, now time.Time) {
	var fresh []shownOffer
	for _, o := range offers {
		if _, ok := d.seen[o.id]; !ok {
			d.seen[o.id] = now
			fresh = append(fresh, o)
		}
	}
	t, p := d.cfg.Timing, d.cfg.Policy
	switch d.cfg.Class {
	case ClassHuman:
		// A person handles one offer at a time: the best paid one not tried yet, if it pays
		// enough for them.
		if len(d.pending) > 0 {
			return
		}
		best := -1
		for i, o := range offers {
			if !d.tried[o.id] && o.pay >= d.minPay && (best < 0 || o.pay > offers[best].pay) {
				best = i
			}
		}
		if best >= 0 {
			d.tried[offers[best].id] = true
			d.schedule(offers[best].id, now.Add(d.humanReaction()))
		}
	case ClassBot:
		for _, o := range fresh {
			d.schedule(o.id, now.Add(uniform(d.rng, t.BotReactMin, t.BotReactMax)))
		}
	case ClassCompliantBot, ClassJitteredBot:
		for _, o := range fresh {
			if !d.mayAccept(now) {
				return
			}
			react := uniform(d.rng, t.BotReactMin, t.BotReactMax)
			if p.MinReactionTime > 0 {
				react = p.MinReactionTime + p.Margin
			}
			if d.cfg.Class == ClassJitteredBot {
				react += uniform(d.rng, 0, t.JitterReact)
			}
			d.schedule(o.id, d.seen[o.id].Add(react))
		}
	}
}

// mayAccept reports whether a compliant bot may plan one more accept within maxAccepts.
func (d *Driver) mayAccept(now time.Time) bool {
	p := d.cfg.Policy
	if p.MaxAccepts <= 0 {
		return true
	}
	n := len(d.pending)
	for _, w := range d.wins {
		if now.Sub(w) < p.Window {
			n++
		}
	}
	return n < p.MaxAccepts
}

// schedule queues an accept, keeping the queue ordered by due time.
func (d *Driver) schedule(offerID string, due time.Time) {
	i, _ := slices.BinarySearchFunc(d.pending, due, func(p pendingAccept, t time.Time) int { return p.due.Compare(t) })
	d.pending = slices.Insert(d.pending, i, pendingAccept{offerID: offerID, due: due})
}

// poll reads the feed; it returns the offers shown and the Retry-After of a 429.
func (d *Driver) poll(ctx context.Context) ([]shownOffer, time.Duration) {
	var body io.Reader
	rt := d.cfg.Shape.Routes()
	if d.cfg.Shape == ShapeFlex {
		body = strings.NewReader(`{"apiVersion":"V2","filters":{"serviceAreaFilter":[],"timeFilter":{}},"serviceAreaIds":[]}`)
	}
	status, header, data := d.send(ctx, KindPoll, "", rt.FeedMethod, rt.FeedPath, body)
	if d.rateLimited(status, data) {
		return nil, parseRetryAfter(header.Get("Retry-After"), d.cfg.Now())
	}
	if status/100 != 2 {
		return nil, 0
	}
	var feed struct {
		Offers []struct {
			ID  string  `json:"id"`
			Pay float64 `json:"pay"`
		} `json:"offers"`
		OfferList []struct {
			OfferID  string `json:"offerId"`
			RateInfo struct {
				PriceAmount float64 `json:"priceAmount"`
			} `json:"rateInfo"`
		} `json:"offerList"`
	}
	if json.Unmarshal(data, &feed) != nil {
		return nil, 0
	}
	var offers []shownOffer
	for _, o := range feed.Offers {
		offers = append(offers, shownOffer{id: o.ID, pay: o.Pay})
	}
	for _, o := range feed.OfferList {
		offers = append(offers, shownOffer{id: o.OfferID, pay: o.RateInfo.PriceAmount})
	}
	return offers, 0
}

// accept tries to take an offer.
func (d *Driver) accept(ctx context.Context, offerID string) {
	if d.cfg.Class.obeysPolicy() && d.cfg.Now().Before(d.acceptPause) {
		return
	}
	rt := d.cfg.Shape.Routes()
	path := strings.Replace(rt.AcceptPathTemplate, "{offerId}", url.PathEscape(offerID), 1)
	var body io.Reader
	if rt.OfferIDField != "" {
		data, _ := json.Marshal(map[string]string{rt.OfferIDField: offerID})
		body = bytes.NewReader(data)
	}
	status, header, data := d.sendAccept(ctx, offerID, path, body)
	switch {
	case status/100 == 2:
		d.wins = append(d.wins, d.cfg.Now())
		d.mu.Lock()
		d.won = append(d.won, offerID)
		d.mu.Unlock()
	case d.rateLimited(status, data) && d.cfg.Class.obeysPolicy():
		now := d.cfg.Now()
		d.acceptPause = now.Add(parseRetryAfter(header.Get("Retry-After"), now))
	}
}

// send makes one request and records it unless ctx ended meanwhile. It returns the status
// (0 without an answer), the answer's header and up to 1 MiB of its body.
func (d *Driver) send(ctx context.Context, kind RequestKind, offerID, method, path string, body io.Reader) (int, http.Header, []byte) {
	req, err := http.NewRequestWithContext(ctx, method, d.cfg.BaseURL+path, body)
	if err != nil {
		return 0, nil, nil
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(d.cfg.IdentityHeader, d.cfg.ID)
	req.Header.Set(RunHeader, d.cfg.RunID)

	start := d.cfg.Now()
	rec := Request{Kind: kind, OfferID: offerID}
	var data []byte
	var header http.Header
	resp, err := d.cfg.Client.Do(req)
	if err == nil {
		data, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_, _ = io.Copy(io.Discard, resp.Body) // drain, so the connection is reused
		resp.Body.Close()
		rec.Status, rec.Decision, header = resp.StatusCode, resp.Header.Get(DecisionHeader), resp.Header
		if err != nil {
			rec.Status = 0
		}
	}
	rec.Latency = d.cfg.Now().Sub(start)
	if rec.Status == 0 && ctx.Err() != nil {
		return 0, nil, nil // cut short by the end of the run, not a failure
	}
	d.mu.Lock()
	d.requests = append(d.requests, rec)
	if d.cfg.StrictErrors && rec.Status != 0 && rec.Status/100 != 2 && !platformError(header, data) && d.crashed == "" {
		d.crashed = fmt.Sprintf("%s %s: answer %d (%s) is not the offer API's JSON error: %.80q",
			method, path, rec.Status, header.Get("Content-Type"), data)
	}
	d.mu.Unlock()
	return rec.Status, header, data
}

// rateLimited reports whether an answer is a rate limit the driver backs off from: 429, or
// for a StrictErrors app the platform's own 400 {"message":"Rate exceeded"}.
func (d *Driver) rateLimited(status int, body []byte) bool {
	if status == http.StatusTooManyRequests {
		return true
	}
	if !d.cfg.StrictErrors || status != http.StatusBadRequest {
		return false
	}
	var e struct {
		Message string `json:"message"`
	}
	return json.Unmarshal(body, &e) == nil && e.Message == FlexRateExceeded
}

// platformError reports whether an error answer is in the offer API's own shape, the only one
// a StrictErrors app reads: a JSON object with Content-Type application/json.
func platformError(h http.Header, body []byte) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	var obj map[string]any
	return err == nil && mt == "application/json" && json.Unmarshal(body, &obj) == nil && obj != nil
}

// parseRetryAfter reads a Retry-After header value: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(s, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// sleepUntil waits until t; it returns false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	wait := time.Until(t)
	if wait <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
