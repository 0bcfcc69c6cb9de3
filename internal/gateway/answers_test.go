package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptedService is an offer service whose next answers are set by the test: a feed lists
// offers o1…o9 (as JSON, whatever the status), an accept is answered by its mode: a status
// code, "reset" (the connection is closed without an answer: the gateway's 502) or "hang" (no
// answer until the gateway gives up: its 504).
type scriptedService struct {
	*httptest.Server
	mu         sync.Mutex
	feedStatus int
	acceptMode string
	accepts    int
}

func newScriptedService(t testing.TB) *scriptedService {
	s := &scriptedService{feedStatus: 200, acceptMode: "200"}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		feedStatus, mode := s.feedStatus, s.acceptMode
		if r.URL.Path != "/offers" {
			s.accepts++
		}
		s.mu.Unlock()
		if r.URL.Path == "/offers" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(feedStatus)
			var ids []string
			for i := 1; i <= 9; i++ {
				ids = append(ids, fmt.Sprintf(`{"id":"o%d"}`, i))
			}
			fmt.Fprintf(w, `{"offers":[%s]}`, strings.Join(ids, ","))
			return
		}
		switch mode {
		case "reset":
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		case "hang":
			<-r.Context().Done()
		default:
			code, _ := strconv.Atoi(mode)
			w.WriteHeader(code)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scriptedService) set(feedStatus int, acceptMode string) {
	s.mu.Lock()
	s.feedStatus, s.acceptMode = feedStatus, acceptMode
	s.mu.Unlock()
}

func (s *scriptedService) acceptsSeen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepts
}

func scriptedGateway(t *testing.T, s *scriptedService) (*Gateway, *fakeClock) {
	t.Helper()
	u, _ := url.Parse(s.URL)
	clock := newFakeClock()
	g, err := New(Options{Upstream: u, Clock: clock, UpstreamTimeout: 100 * time.Millisecond,
		PodLabels: map[string]string{"app": "offer-service"}})
	if err != nil {
		t.Fatal(err)
	}
	p := standardPolicy()
	p.Accept.MaxAccepts, p.Accept.Window = 2, dur("1m")
	if err := g.Apply(configOf(p)); err != nil {
		t.Fatal(err)
	}
	return g, clock
}

func call(g *Gateway, method, path, driver string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(method, path, nil)
	r.Header.Set("X-Driver-Id", driver)
	g.ServeHTTP(w, r)
	return w
}

// TestOnly2xxAcceptsCount: maxAccepts counts the accepts the offer service answered 2xx
// (docs/design.md#decisions-and-headers); an answer of any other class, no answer (a reset connection: 502) or a timeout
// (504) frees the slot the accept held. Each case sends three such accepts under maxAccepts 2,
// then two accepts answered 200 pass and the third is accept-throttled: so the failures held
// no slot, and the 2xx did.
func TestOnly2xxAcceptsCount(t *testing.T) {
	cases := []struct {
		mode string
		want int // what the driver gets
	}{
		{"500", 500},
		{"503", 503},
		{"599", 599},
		{"404", 404},
		{"409", 409},
		{"302", 302},
		{"reset", http.StatusBadGateway},
		{"hang", http.StatusGatewayTimeout},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			s := newScriptedService(t)
			g, clock := scriptedGateway(t, s)
			expect(t, call(g, "GET", "/offers", "d1"), 200, "")
			clock.Advance(time.Second)
			s.set(200, c.mode)
			for i := 1; i <= 3; i++ {
				expect(t, call(g, "POST", fmt.Sprintf("/offers/o%d/accept", i), "d1"), c.want, "")
			}
			s.set(200, "200")
			expect(t, call(g, "POST", "/offers/o4/accept", "d1"), 200, "")
			expect(t, call(g, "POST", "/offers/o5/accept", "d1"), 200, "")
			before := s.acceptsSeen()
			expect(t, call(g, "POST", "/offers/o6/accept", "d1"), 429, "accept-throttled")
			if s.acceptsSeen() != before {
				t.Error("the throttled accept reached the offer service")
			}
		})
	}
}

// TestShownOnlyFrom2xxFeed: only a 2xx feed answer shows offers. A 4xx or 5xx answer that
// lists offers (an error page, a stale cache) records none: an accept for one of its offers
// is unseen-offer; the same offers listed by a 200 answer can then be accepted.
func TestShownOnlyFrom2xxFeed(t *testing.T) {
	for _, status := range []int{500, 503, 404, 429, 302} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			s := newScriptedService(t)
			g, clock := scriptedGateway(t, s)
			s.set(status, "200")
			expect(t, call(g, "GET", "/offers", "d1"), status, "")
			clock.Advance(5 * time.Second)
			expect(t, call(g, "POST", "/offers/o1/accept", "d1"), 403, "unseen-offer")
			s.set(200, "200")
			expect(t, call(g, "GET", "/offers", "d1"), 200, "")
			clock.Advance(time.Second)
			expect(t, call(g, "POST", "/offers/o1/accept", "d1"), 200, "")
		})
	}
}

// TestShownFirstShowingCounts: minReactionTime runs from the first time an offer was shown to
// the driver; showing it again does not restart it (nor does a bot gain by polling less).
func TestShownFirstShowingCounts(t *testing.T) {
	p := standardPolicy()
	p.Feed.MinInterval = dur("100ms")
	h := newHarness(t, configOf(p))
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 200, "") // o1 and o2 shown at 0
	h.clock.Advance(700 * time.Millisecond)
	expect(t, h.do("GET", "/offers", "", drv("d1")...), 200, "") // shown again at 700ms
	h.clock.Advance(99 * time.Millisecond)
	expect(t, h.do("POST", "/offers/o1/accept", "", drv("d1")...), 429, "too-fast") // 799ms after the first showing
	h.clock.Advance(time.Millisecond)
	expect(t, h.do("POST", "/offers/o1/accept", "", drv("d1")...), 200, "") // 800ms after it, 100ms after the second
}
