package market

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// serviceRequest builds a feed (offer == "") or accept request of shape.
func serviceRequest(shape Shape, kind RequestKind, method, driver, offer, flag string) *http.Request {
	var r *http.Request
	switch {
	case kind == KindPoll && shape == ShapeFlex:
		r = httptest.NewRequest(http.MethodPost, FlexFeedPath, strings.NewReader(`{"filters":{}}`))
	case kind == KindPoll:
		r = httptest.NewRequest(http.MethodGet, RESTFeedPath, nil)
	case shape == ShapeFlex && offer == "":
		r = httptest.NewRequest(http.MethodPost, FlexAcceptPath, strings.NewReader(`not json`))
	case shape == ShapeFlex:
		r = httptest.NewRequest(http.MethodPost, FlexAcceptPath, strings.NewReader(`{"offerId":"`+offer+`"}`))
	default:
		r = httptest.NewRequest(http.MethodPost, "/offers/"+offer+"/accept", nil)
	}
	if method != "" {
		r.Method = method
	}
	if driver != "" {
		r.Header.Set(DefaultIdentityHeader, driver)
	}
	if flag != "" {
		r.Header.Set(FlagHeader, flag)
	}
	r.Header.Set(RunHeader, "r1")
	return r
}

// feedIDs reads the offer ids of a feed answer in either shape.
func feedIDs(t *testing.T, body []byte) []string {
	t.Helper()
	var feed struct {
		Offers    []struct{ ID string }      `json:"offers"`
		OfferList []struct{ OfferID string } `json:"offerList"`
	}
	if err := json.Unmarshal(body, &feed); err != nil {
		t.Fatalf("feed answer %q: %v", body, err)
	}
	ids := []string{}
	for _, o := range feed.Offers {
		ids = append(ids, o.ID)
	}
	for _, o := range feed.OfferList {
		ids = append(ids, o.OfferID)
	}
	return ids
}

func TestOfferService(t *testing.T) {
	// Each shape plays the same steps, in order, against one service: an offer every second
	// from t=0, open for 5 s.
	steps := []struct {
		name       string
		advance    time.Duration
		kind       RequestKind
		method     string // default the shape's
		driver     string
		offer      string // accepts; "" in the Flex shape sends a body that is not JSON
		flag       string // OfferFeed-Flag
		wantStatus int
		wantOffers []string // polls
	}{
		{name: "first offer at once", kind: KindPoll, driver: "a", wantStatus: 200, wantOffers: []string{"o-1"}},
		{name: "one offer per interval", advance: time.Second, kind: KindPoll, driver: "a", wantStatus: 200, wantOffers: []string{"o-1", "o-2"}},
		{name: "first accept wins", kind: KindAccept, driver: "a", offer: "o-1", flag: "too-fast", wantStatus: 200},
		{name: "second accept is gone", kind: KindAccept, driver: "b", offer: "o-1", wantStatus: 410},
		{name: "taken offer leaves the feed", kind: KindPoll, driver: "b", flag: "feed-throttled", wantStatus: 200, wantOffers: []string{"o-2"}},
		{name: "unknown offer", kind: KindAccept, driver: "b", offer: "o-99", wantStatus: 404},
		{name: "malformed offer id", kind: KindAccept, driver: "b", offer: "x", wantStatus: 404},
		{name: "missing identity on accept", kind: KindAccept, offer: "o-2", wantStatus: 400},
		{name: "missing identity on feed", kind: KindPoll, wantStatus: 400},
		{name: "feed with wrong method", kind: KindPoll, method: http.MethodPut, driver: "a", wantStatus: 405},
		{name: "expired offer is gone", advance: 10 * time.Second, kind: KindAccept, driver: "a", offer: "o-2", wantStatus: 410},
		{name: "feed holds the open offers only", kind: KindPoll, driver: "a", wantStatus: 200, wantOffers: []string{"o-8", "o-9", "o-10", "o-11", "o-12"}},
		{name: "accept of an open offer", kind: KindAccept, driver: "b", offer: "o-12", wantStatus: 200},
	}
	for _, shape := range []Shape{ShapeREST, ShapeFlex} {
		t.Run(string(shape), func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
			svc := NewOfferService(ServiceConfig{Shape: shape, OfferInterval: time.Second, OfferTTL: 5 * time.Second, Seed: 7, Now: clock.Now})
			for _, st := range steps {
				clock.Advance(st.advance)
				w := httptest.NewRecorder()
				svc.ServeHTTP(w, serviceRequest(shape, st.kind, st.method, st.driver, st.offer, st.flag))
				if w.Code != st.wantStatus {
					t.Fatalf("%s: status %d, want %d (body %s)", st.name, w.Code, st.wantStatus, w.Body)
				}
				if st.wantOffers != nil {
					if got := feedIDs(t, w.Body.Bytes()); !reflect.DeepEqual(got, st.wantOffers) {
						t.Fatalf("%s: offers %v, want %v", st.name, got, st.wantOffers)
					}
				}
			}

			if shape == ShapeFlex { // a Flex accept without a JSON body
				w := httptest.NewRecorder()
				svc.ServeHTTP(w, serviceRequest(shape, KindAccept, "", "a", "", ""))
				if w.Code != http.StatusBadRequest {
					t.Errorf("accept without JSON body: status %d, want 400", w.Code)
				}
			}

			rec := svc.Records("r1")
			var winners []string
			for _, tk := range rec.Taken {
				winners = append(winners, tk.OfferID+" by "+tk.Driver+" flagged "+tk.Flag)
			}
			if want := []string{"o-1 by a flagged too-fast", "o-12 by b flagged "}; !reflect.DeepEqual(winners, want) {
				t.Errorf("taken %q, want %q", winners, want)
			}
			wantFlags := []FlagCount{{Driver: "a", Kind: KindAccept, Flag: "too-fast", Count: 1}, {Driver: "b", Kind: KindPoll, Flag: "feed-throttled", Count: 1}}
			if !reflect.DeepEqual(rec.Flags, wantFlags) {
				t.Errorf("flags %+v, want %+v", rec.Flags, wantFlags)
			}
			if other := svc.Records("r2"); len(other.Taken)+len(other.Flags) != 0 {
				t.Errorf("records of another run: %+v", other)
			}

			// The records endpoint serves the same records.
			w := httptest.NewRecorder()
			svc.ServeHTTP(w, httptest.NewRequest(http.MethodGet, RecordsPath+"?run=r1", nil))
			var served Records
			if err := json.Unmarshal(w.Body.Bytes(), &served); err != nil || !reflect.DeepEqual(served.Flags, rec.Flags) || len(served.Taken) != len(rec.Taken) {
				t.Errorf("records endpoint: %d %s (err %v), want %+v", w.Code, w.Body, err, rec)
			}
		})
	}
}

func TestOfferServiceDeterministicOffers(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	a := NewOfferService(ServiceConfig{Seed: 3, Now: clock.Now})
	b := NewOfferService(ServiceConfig{Seed: 3, Now: clock.Now})
	clock.Advance(time.Hour) // a long idle time: only the offers still open are made
	if got, want := a.Open(), b.Open(); !reflect.DeepEqual(got, want) || len(got) == 0 {
		t.Fatalf("same seed, different offers:\n%+v\n%+v", got, want)
	}
	if got := len(a.Open()); got != 14 { // 20 s / 1.5 s, rounded up
		t.Errorf("%d open offers, want 14", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"2", 2 * time.Second}, {" 7 ", 7 * time.Second}, {"-3", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		in       []time.Duration
		p50, p99 time.Duration
	}{
		{nil, 0, 0},
		{ms(5), 5 * time.Millisecond, 5 * time.Millisecond},
		{ms(4, 1, 3, 2), 2 * time.Millisecond, 4 * time.Millisecond},
	} {
		if got := percentiles(tc.in); got.P50 != tc.p50 || got.P99 != tc.p99 {
			t.Errorf("percentiles(%v) = %+v, want %v/%v", tc.in, got, tc.p50, tc.p99)
		}
	}
}
