package market

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxBody bounds the request bodies the offer service reads.
const maxBody = 64 << 10

// ServiceConfig configures an OfferService. Zero fields take the defaults named below.
type ServiceConfig struct {
	// Shape is the API shape served; default ShapeREST.
	Shape Shape
	// IdentityHeader is the request header that carries the driver id; default
	// DefaultIdentityHeader.
	IdentityHeader string
	// OfferInterval is the time between two offers; default DefaultTiming().OfferInterval.
	OfferInterval time.Duration
	// OfferTTL is how long an offer stays open; default DefaultTiming().OfferTTL.
	OfferTTL time.Duration
	// Seed makes the offers' pay, station and block deterministic.
	Seed uint64
	// Now is the service's clock; default time.Now.
	Now func() time.Time
}

// Offer is one delivery offer.
type Offer struct {
	// ID is "o-" and the offer's number; numbers count up from 1.
	ID string
	// Pay is what the block pays, in dollars.
	Pay float64
	// Station is the delivery station (service area) of the block.
	Station string
	// StartsAt and BlockMinutes are when the block starts and how long it lasts.
	StartsAt     time.Time
	BlockMinutes int
	// PublishedAt is when the offer appeared in the feed; ExpiresAt is when it leaves it
	// unless someone takes it before.
	PublishedAt, ExpiresAt time.Time
}

// Records is what an offer service recorded of one run.
type Records struct {
	// Run is the run id (request header X-Market-Run).
	Run string `json:"run"`
	// Taken are the offers taken by the run's drivers, in the order they were taken.
	Taken []Taken `json:"taken"`
	// Flags count the run's requests by the OfferFeed-Flag header a DryRun gateway set.
	Flags []FlagCount `json:"flags"`
	// Scores are the OfferFeed-Score headers of each driver's requests, sorted by driver.
	Scores []DriverScores `json:"scores"`
}

// ScoreBins is how many bins of equal width a DriverScores histogram has over [0, 1].
const ScoreBins = 100

// DriverScores is what the offer service saw of one driver's score (request header
// OfferFeed-Score, set by a gateway once the score is formed).
type DriverScores struct {
	// Driver is the driver id.
	Driver string `json:"driver"`
	// Unscored counts the driver's requests without a score header.
	Unscored int `json:"unscored"`
	// Bins count the driver's requests by score: Bins[i] those in [i, i+1)/ScoreBins, a score
	// of 1 in the last bin. Nil when no request carried a score.
	Bins []int `json:"bins,omitempty"`
	// Last and LastSignals are the score and the OfferFeed-Signals header of the driver's last
	// scored request.
	Last        float64 `json:"last"`
	LastSignals string  `json:"lastSignals,omitempty"`
}

// scoreBin returns the bin of a score, or false when v is not a score.
func scoreBin(v string) (float64, int, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return 0, 0, false
	}
	return f, min(int(f*ScoreBins), ScoreBins-1), true
}

// Taken is one offer taken by a driver.
type Taken struct {
	// OfferID is the offer's id.
	OfferID string `json:"offerId"`
	// Driver is the winner's id.
	Driver string `json:"driver"`
	// Flag is the OfferFeed-Flag header of the winning accept, if any: the decision a
	// gateway in DryRun would have taken.
	Flag string `json:"flag,omitempty"`
	// PublishedAt and TakenAt are when the offer appeared and when it was taken.
	PublishedAt time.Time `json:"publishedAt"`
	TakenAt     time.Time `json:"takenAt"`
}

// FlagCount counts the requests of one driver and kind that carried one OfferFeed-Flag.
type FlagCount struct {
	// Driver is the driver id.
	Driver string `json:"driver"`
	// Kind is poll or accept.
	Kind RequestKind `json:"kind"`
	// Flag is the value of header OfferFeed-Flag.
	Flag string `json:"flag"`
	// Count is how many requests carried it.
	Count int `json:"count"`
}

// OfferService is the simulated offer service, an http.Handler. It publishes an offer every
// OfferInterval from its creation on (offers are made lazily, when a request or Records
// looks, from the clock, so the service needs no goroutine), serves the feed and accepts in
// the configured Shape, hands each offer to the first valid accept, and records winners and
// OfferFeed-Flag headers per run. It is safe for concurrent use.
type OfferService struct {
	cfg ServiceConfig
	mux *http.ServeMux

	mu        sync.Mutex
	start     time.Time
	published int      // offers published so far; offer n is published at start+(n-1)*interval
	open      []*Offer // open offers, oldest first
	runs      map[string]*runRecords
}

type runRecords struct {
	taken  []Taken
	flags  map[FlagCount]int // keyed with Count zero
	scores map[string]*DriverScores
}

// NewOfferService returns an offer service whose first offer is published now.
func NewOfferService(cfg ServiceConfig) *OfferService {
	d := DefaultTiming()
	cfg.Shape = cmp.Or(cfg.Shape, ShapeREST)
	cfg.IdentityHeader = cmp.Or(cfg.IdentityHeader, DefaultIdentityHeader)
	cfg.OfferInterval = cmp.Or(cfg.OfferInterval, d.OfferInterval)
	cfg.OfferTTL = cmp.Or(cfg.OfferTTL, d.OfferTTL)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &OfferService{cfg: cfg, mux: http.NewServeMux(), start: cfg.Now(), runs: map[string]*runRecords{}}
	rt := cfg.Shape.Routes()
	s.mux.HandleFunc(rt.FeedMethod+" "+rt.FeedPath, s.serveFeed)
	s.mux.HandleFunc("POST "+rt.AcceptPathTemplate, s.serveAccept)
	s.mux.HandleFunc("GET "+RecordsPath, s.serveRecords)
	return s
}

// Config returns the service's configuration with its defaults applied.
func (s *OfferService) Config() ServiceConfig { return s.cfg }

// ServeHTTP serves the feed, the accepts and the records.
func (s *OfferService) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Open returns the offers open now, oldest first.
func (s *OfferService) Open() []Offer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.openLocked()
}

// openLocked returns a copy of the offers open now; s.mu is held.
func (s *OfferService) openLocked() []Offer {
	s.catchUp(s.cfg.Now())
	out := make([]Offer, len(s.open))
	for i, o := range s.open {
		out[i] = *o
	}
	return out
}

// driver returns the request's driver id, or answers 400 and returns "".
func (s *OfferService) driver(w http.ResponseWriter, r *http.Request) string {
	d := r.Header.Get(s.cfg.IdentityHeader)
	if d == "" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "missing header " + s.cfg.IdentityHeader})
	}
	return d
}

// Records returns what the service recorded of run; flags are sorted by driver, kind, flag.
func (s *OfferService) Records(run string) Records {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := Records{Run: run, Taken: []Taken{}, Flags: []FlagCount{}, Scores: []DriverScores{}}
	rr := s.runs[run]
	if rr == nil {
		return rec
	}
	rec.Taken = slices.Clone(rr.taken)
	for k, n := range rr.flags {
		k.Count = n
		rec.Flags = append(rec.Flags, k)
	}
	slices.SortFunc(rec.Flags, func(a, b FlagCount) int {
		return cmp.Or(cmp.Compare(a.Driver, b.Driver), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Flag, b.Flag))
	})
	for _, d := range rr.scores {
		c := *d
		c.Bins = slices.Clone(d.Bins)
		rec.Scores = append(rec.Scores, c)
	}
	slices.SortFunc(rec.Scores, func(a, b DriverScores) int { return cmp.Compare(a.Driver, b.Driver) })
	return rec
}

// catchUp publishes the offers due by now and closes the expired ones. Callers hold s.mu.
func (s *OfferService) catchUp(now time.Time) {
	interval, ttl := s.cfg.OfferInterval, s.cfg.OfferTTL
	// Offers that expired unseen are skipped without being made (after a long idle time).
	if idle := now.Sub(s.start) - ttl; idle >= 0 {
		s.published = max(s.published, int(idle/interval))
	}
	for {
		at := s.start.Add(time.Duration(s.published) * interval)
		if at.After(now) {
			break
		}
		s.published++
		if now.Before(at.Add(ttl)) {
			s.open = append(s.open, s.newOffer(s.published, at))
		}
	}
	s.open = slices.DeleteFunc(s.open, func(o *Offer) bool { return !now.Before(o.ExpiresAt) })
}

var stations = []string{"DAX3", "DCK6", "DLA9", "DSF2", "DJT5"}

// newOffer makes offer n, the same for the same seed.
func (s *OfferService) newOffer(n int, at time.Time) *Offer {
	rng := rand.New(rand.NewPCG(s.cfg.Seed, uint64(n)))
	return &Offer{
		ID:           fmt.Sprintf("o-%d", n),
		Pay:          18 + float64(rng.IntN(81))/2,
		Station:      stations[rng.IntN(len(stations))],
		StartsAt:     at.Add(time.Duration(1+rng.IntN(6)) * time.Hour).Truncate(15 * time.Minute),
		BlockMinutes: []int{120, 180, 240, 270}[rng.IntN(4)],
		PublishedAt:  at,
		ExpiresAt:    at.Add(s.cfg.OfferTTL),
	}
}

// record counts r's OfferFeed-Flag, if any, and its OfferFeed-Score. Callers hold s.mu.
func (s *OfferService) record(r *http.Request, driver string, kind RequestKind) *runRecords {
	run := r.Header.Get(RunHeader)
	rr := s.runs[run]
	if rr == nil {
		rr = &runRecords{flags: map[FlagCount]int{}, scores: map[string]*DriverScores{}}
		s.runs[run] = rr
	}
	if flag := r.Header.Get(FlagHeader); flag != "" {
		rr.flags[FlagCount{Driver: driver, Kind: kind, Flag: flag}]++
	}
	ds := rr.scores[driver]
	if ds == nil {
		ds = &DriverScores{Driver: driver}
		rr.scores[driver] = ds
	}
	score, bin, ok := scoreBin(r.Header.Get(ScoreHeader))
	if !ok {
		ds.Unscored++
		return rr
	}
	if ds.Bins == nil {
		ds.Bins = make([]int, ScoreBins)
	}
	ds.Bins[bin]++
	ds.Last, ds.LastSignals = score, r.Header.Get(SignalsHeader)
	return rr
}

func (s *OfferService) serveFeed(w http.ResponseWriter, r *http.Request) {
	driver := s.driver(w, r)
	if driver == "" {
		return
	}
	// The Flex filters are read and ignored: every driver sees every open offer.
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxBody))

	s.mu.Lock()
	s.record(r, driver, KindPoll)
	open := s.openLocked()
	s.mu.Unlock()

	if s.cfg.Shape == ShapeFlex {
		list := make([]flexOffer, len(open))
		for i, o := range open {
			list[i] = flexOffer{
				OfferID:        o.ID,
				RateInfo:       flexRate{PriceAmount: o.Pay, Currency: "USD"},
				ServiceAreaID:  o.Station,
				StartTime:      o.StartsAt.Unix(),
				EndTime:        o.StartsAt.Add(time.Duration(o.BlockMinutes) * time.Minute).Unix(),
				ExpirationDate: o.ExpiresAt.Unix(),
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"offerList": list})
		return
	}
	list := make([]restOffer, len(open))
	for i, o := range open {
		list[i] = restOffer{ID: o.ID, Pay: o.Pay, Station: o.Station, StartsAt: o.StartsAt,
			BlockMinutes: o.BlockMinutes, ExpiresAt: o.ExpiresAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"offers": list})
}

// restOffer is an offer in the REST shape.
type restOffer struct {
	ID           string    `json:"id"`
	Pay          float64   `json:"pay"`
	Station      string    `json:"station"`
	StartsAt     time.Time `json:"startsAt"`
	BlockMinutes int       `json:"blockMinutes"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// flexOffer is an offer in the Amazon Flex shape.
type flexOffer struct {
	OfferID        string   `json:"offerId"`
	RateInfo       flexRate `json:"rateInfo"`
	ServiceAreaID  string   `json:"serviceAreaId"`
	StartTime      int64    `json:"startTime"`
	EndTime        int64    `json:"endTime"`
	ExpirationDate int64    `json:"expirationDate"`
	Hidden         bool     `json:"hidden"`
}

type flexRate struct {
	PriceAmount float64 `json:"priceAmount"`
	Currency    string  `json:"currency"`
}

func (s *OfferService) serveAccept(w http.ResponseWriter, r *http.Request) {
	driver := s.driver(w, r)
	if driver == "" {
		return
	}
	id := r.PathValue("offerId")
	if s.cfg.Shape == ShapeFlex {
		var body struct {
			OfferID string `json:"offerId"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&body); err != nil || body.OfferID == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body must be {\"offerId\": \"…\"}"})
			return
		}
		id = body.OfferID
	}

	now := s.cfg.Now()
	s.mu.Lock()
	rr := s.record(r, driver, KindAccept)
	s.catchUp(now)
	status := http.StatusGone
	if n, ok := offerNumber(id); !ok || n > s.published {
		status = http.StatusNotFound
	} else if i := slices.IndexFunc(s.open, func(o *Offer) bool { return o.ID == id }); i >= 0 {
		status = http.StatusOK
		rr.taken = append(rr.taken, Taken{OfferID: id, Driver: driver, Flag: r.Header.Get(FlagHeader),
			PublishedAt: s.open[i].PublishedAt, TakenAt: now})
		s.open = slices.Delete(s.open, i, i+1)
	}
	s.mu.Unlock()

	switch status {
	case http.StatusOK:
		writeJSON(w, status, map[string]string{"offerId": id, "driver": driver, "status": "accepted"})
	case http.StatusNotFound:
		writeJSON(w, status, map[string]string{"offerId": id, "error": "unknown offer"})
	default:
		writeJSON(w, status, map[string]string{"offerId": id, "error": "offer already taken or expired"})
	}
}

func (s *OfferService) serveRecords(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Records(r.URL.Query().Get("run")))
}

// offerNumber parses an offer id "o-<n>".
func offerNumber(id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, "o-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 1
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
