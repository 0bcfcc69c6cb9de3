package gateway

import (
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestInFlightAcceptSlots: ten parallel accepts against maxAccepts=3 with a slow offer
// service: exactly three reach it, the others are refused while those three are in flight,
// and the three 2xx answers then count.
func TestInFlightAcceptSlots(t *testing.T) {
	release := make(chan struct{})
	var reached atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/offers" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"offers":[{"id":"o1"},{"id":"o2"}]}`)
			return
		}
		reached.Add(1)
		<-release
		w.WriteHeader(http.StatusOK)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	clock := newFakeClock()
	g, err := New(Options{Upstream: u, Clock: clock, PodLabels: map[string]string{"app": "offer-service"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Apply(configOf(standardPolicy())); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	send := func(method, path string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		req.Header.Set("X-Driver-Id", "d1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(HeaderDecision)
	}
	if code, _ := send("GET", "/offers"); code != 200 {
		t.Fatalf("feed %d", code)
	}
	clock.Advance(time.Second)

	var wg sync.WaitGroup
	codes := make(chan string, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, d := send("POST", "/offers/o1/accept")
			codes <- fmt.Sprintf("%d %s", code, d)
		}()
	}
	// Seven refusals come back while three accepts wait in the offer service.
	refused := 0
	deadline := time.After(10 * time.Second)
	for refused < 7 {
		var c string
		select {
		case c = <-codes:
		case <-time.After(5 * time.Millisecond):
			if n := reached.Load(); n > 3 {
				close(release)
				t.Fatalf("%d accepts reached the offer service at once, want 3", n)
			}
			continue
		case <-deadline:
			close(release)
			t.Fatalf("%d refusals after 10s, want 7", refused)
		}
		if c != "429 accept-throttled" {
			t.Fatalf("got %q before the offer service answered, want 429 accept-throttled", c)
		}
		refused++
	}
	eventually(t, "three accepts to reach the offer service", func() bool { return reached.Load() == 3 })
	close(release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != "200 " {
			t.Errorf("in-flight accept answered %q, want 200", c)
		}
	}
	if reached.Load() != 3 {
		t.Errorf("%d accepts reached the offer service, want 3", reached.Load())
	}
	// The three count: a fourth accept is refused.
	if code, d := send("POST", "/offers/o2/accept"); code != 429 || d != "accept-throttled" {
		t.Errorf("after three 2xx accepts: %d %s, want 429 accept-throttled", code, d)
	}
}

// TestEviction: with ten times more distinct drivers than the bound, at most the bound is
// tracked. While the drivers tracked have live state (here: pacing and shown offers), new
// drivers seen once are forgotten on leaving probation; once that state has expired, newer
// drivers take their places in main.
func TestEviction(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()), func(o *Options) { o.MaxTrackedDrivers = 100 })
	for i := 0; i < 1000; i++ {
		expect(t, h.do("GET", "/offers", "", drv(fmt.Sprint("d", i))...), 200, "")
		if n := h.g.trackedDrivers(); n > 100 {
			t.Fatalf("%d drivers tracked, bound 100", n)
		}
	}
	st := h.g.Status()
	if st.TrackedDrivers > 100 || st.TrackedDrivers < 90 || st.MaxDrivers > 100 {
		t.Errorf("tracked %d of %d, want at most 100 and close to it", st.TrackedDrivers, st.MaxDrivers)
	}
	if ev := h.g.evictedDrivers(); ev != uint64(1000-st.TrackedDrivers) {
		t.Errorf("evicted %d", ev)
	}
	if ev := h.g.evictedDriversFrom(areaMain); ev != 0 {
		t.Errorf("%d drivers with live state replaced by drivers seen once", ev)
	}
	// The first drivers, in main, and the latest, in probation, are still paced; one from the
	// middle was forgotten.
	expect(t, h.do("GET", "/offers", "", drv("d0")...), 429, "feed-throttled")
	expect(t, h.do("GET", "/offers", "", drv("d999")...), 429, "feed-throttled")
	expect(t, h.do("GET", "/offers", "", drv("d500")...), 200, "")
	if !hasMetric(t, h.g, fmt.Sprintf("offerfeed_gateway_tracked_drivers %d", h.g.trackedDrivers())) {
		t.Error("tracked drivers gauge")
	}

	// Later, every state has expired: new drivers replace the old ones in main.
	h.clock.Advance(11 * time.Minute)
	for i := 0; i < 1000; i++ {
		expect(t, h.do("GET", "/offers", "", drv(fmt.Sprint("e", i))...), 200, "")
	}
	p := h.g.active.Load().policy
	withState(p, maphash.String(h.g.seed, "d0"), func(e *entry) {
		if e != nil {
			t.Error("d0, idle for 11 minutes, kept while new drivers were forgotten")
		}
	})
	if h.g.evictedDriversFrom(areaMain) == 0 || h.g.evictedDriversFrom(areaProbation) == 0 {
		t.Errorf("evictions: %d from probation, %d from main; want both", h.g.evictedDriversFrom(areaProbation), h.g.evictedDriversFrom(areaMain))
	}
	if !hasMetric(t, h.g, fmt.Sprintf(`offerfeed_gateway_evicted_drivers_total{area="main"} %d`, h.g.evictedDriversFrom(areaMain))) {
		t.Error("evicted drivers counter")
	}
	if !hasMetric(t, h.g, fmt.Sprintf("offerfeed_gateway_tracked_drivers_limit %d", st.MaxDrivers)) {
		t.Error("tracked drivers limit gauge")
	}
}

// TestUpstreamFaults: a down offer service answers 502 at once, a slow one 504 after the
// timeout, and neither leaves goroutines behind.
func TestUpstreamFaults(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL, _ := url.Parse(down.URL)
	down.Close()
	g, _ := New(Options{Upstream: downURL})
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("GET", "/offers", nil))
	if w.Code != http.StatusBadGateway {
		t.Errorf("down upstream: %d, want 502", w.Code)
	}

	stop := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(stop)
	slowURL, _ := url.Parse(slow.URL)
	g, _ = New(Options{Upstream: slowURL, UpstreamTimeout: 50 * time.Millisecond, PodLabels: map[string]string{"app": "offer-service"}})
	if err := g.Apply(configOf(standardPolicy())); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "/offers", nil)
			r.Header.Set("X-Driver-Id", fmt.Sprint("d", i))
			g.ServeHTTP(w, r)
			if w.Code != http.StatusGatewayTimeout {
				t.Errorf("slow upstream: %d, want 504", w.Code)
			}
		}(i)
	}
	wg.Wait()
	if !hasMetric(t, g, `offerfeed_gateway_upstream_errors_total{kind="timeout"} 20`) {
		t.Error("timeouts not counted")
	}

	// Accepts are forwarded with a deadline of their own; its expiry is a timeout too.
	p := standardPolicy()
	p.Accept.RequireShown, p.Accept.MinReactionTime = false, 0
	if err := g.Apply(configOf(p)); err != nil {
		t.Fatal(err)
	}
	w = httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/offers/o1/accept", nil)
	r.Header.Set("X-Driver-Id", "acceptor")
	g.ServeHTTP(w, r)
	if w.Code != http.StatusGatewayTimeout {
		t.Errorf("slow upstream, accept: %d, want 504", w.Code)
	}
	if !hasMetric(t, g, `offerfeed_gateway_upstream_errors_total{kind="timeout"} 21`) {
		t.Error("accept timeout not counted as a timeout")
	}
	eventually(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= base+5 })
}

// TestConcurrentDrivers hammers one gateway from many goroutines (run with -race).
func TestConcurrentDrivers(t *testing.T) {
	p := standardPolicy()
	p.Feed.MinInterval = dur("10ms")
	h := newHarness(t, configOf(p), func(o *Options) { o.MaxTrackedDrivers = 64; o.Clock = nil })
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				d := drv(fmt.Sprint("d", (i*50+j)%100))
				// No request fails while configs change under it.
				if w := h.do("GET", "/offers", "", d...); w.Code != 200 && w.Code != 429 {
					t.Errorf("feed answered %d during reloads", w.Code)
				}
				if w := h.do("POST", "/offers/o1/accept", "", d...); w.Code != 200 && w.Code != 429 && w.Code != 403 {
					t.Errorf("accept answered %d during reloads", w.Code)
				}
			}
		}(i)
	}
	// Reload while requests run.
	for i := 0; i < 20; i++ {
		p.Feed.Burst = int32(i%5 + 1)
		if err := h.g.Apply(configOf(p)); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	if n := h.g.trackedDrivers(); n > 64 {
		t.Errorf("%d tracked, bound 64", n)
	}
}

// TestAcceptCountedWhenClientHangsUp: a driver that hangs up right after sending an accept
// does not free its slot: the gateway waits for the offer service, and its 2xx counts.
func TestAcceptCountedWhenClientHangsUp(t *testing.T) {
	release := make(chan struct{})
	answered := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/offers" {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"offers":[{"id":"o1"},{"id":"o2"}]}`)
			return
		}
		<-release
		w.WriteHeader(http.StatusOK)
		close(answered)
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	clock := newFakeClock()
	g, _ := New(Options{Upstream: u, Clock: clock, PodLabels: map[string]string{"app": "offer-service"}})
	p := standardPolicy()
	p.Accept.MaxAccepts, p.Accept.Window = 1, dur("1m")
	if err := g.Apply(configOf(p)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/offers", nil)
	req.Header.Set("X-Driver-Id", "bot")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	clock.Advance(time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, "POST", srv.URL+"/offers/o1/accept", nil)
	req.Header.Set("X-Driver-Id", "bot")
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	eventually(t, "the accept to be in flight", func() bool {
		return hasMetric(t, g, `offerfeed_gateway_decisions_total{decision="allowed",policy="standard",route="accept"} 1`)
	})
	cancel()
	<-errc //nolint:errcheck // waits for the serve loop to end after cancel; its result is not under test here
	close(release)
	<-answered
	// The 2xx counts: no accept in flight, one counted.
	key := maphash.String(g.seed, "bot")
	pol := g.active.Load().policy
	eventually(t, "the hung-up accept to be counted", func() bool {
		s := pol.table.shard(key)
		s.mu.Lock()
		defer s.mu.Unlock()
		e := s.lookup(key)
		return e != nil && e.ext != nil && e.ext.inflight == 0 && len(e.ext.done) == 1
	})
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/offers/o2/accept", nil)
	r.Header.Set("X-Driver-Id", "bot")
	g.ServeHTTP(w, r)
	expect(t, w, 429, "accept-throttled")
}

func TestShownRing(t *testing.T) {
	x := &driverExt{}
	x.recordShown(1, 1_500_000) // the ring's base
	x.recordShown(2, 2_200_000) // 0.7ms later: kept as 1ms later, never earlier than the truth
	if at, ok := x.shownAt(2); !ok || at != 2_500_000 {
		t.Errorf("shownAt = %d %v", at, ok)
	}
	x.recordShown(1, 9e9) // the first showing counts
	if at, _ := x.shownAt(1); at != 1_500_000 {
		t.Errorf("re-shown offer moved to %d", at)
	}
	for i := uint64(3); i <= maxShown+1; i++ {
		x.recordShown(i, 3e6)
	}
	if _, ok := x.shownAt(1); ok {
		t.Error("the oldest offer was not forgotten after 64 more")
	}
	if len(x.shown) != maxShown {
		t.Errorf("ring holds %d", len(x.shown))
	}
	// Fifty days later the ms offsets no longer fit in 32 bits: the base moves.
	later := int64(50 * 24 * time.Hour)
	x.recordShown(1000, later)
	if at, ok := x.shownAt(1000); !ok || at < later || at > later+1e6 {
		t.Errorf("after rebase: %d %v, want about %d", at, ok, later)
	}
	if at, ok := x.shownAt(maxShown + 1); !ok || later-at < int64(time.Minute) {
		t.Errorf("an old offer after rebase: %d %v; want remembered, long ago", at, ok)
	}
}

// TestLargeFeedStreams: a 4 MB feed answer, written in small chunks, reaches the driver byte
// for byte, and the offers near its end are recorded as shown.
func TestLargeFeedStreams(t *testing.T) {
	var body strings.Builder
	body.WriteString(`{"meta":{"note":"` + strings.Repeat("x", 1<<20) + `"},"offers":[`)
	for i := 0; i < 40000; i++ {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `{"id":"offer-%05d","station":"DXX1","price":42.5}`, i)
	}
	body.WriteString(`]}`)
	want := body.String()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for s := want; len(s) > 0; {
			n := min(len(s), 1000)
			_, _ = io.WriteString(w, s[:n])
			s = s[n:]
		}
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	clock := newFakeClock()
	g, _ := New(Options{Upstream: u, Clock: clock, PodLabels: map[string]string{"app": "offer-service"}})
	if err := g.Apply(configOf(standardPolicy())); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/offers", nil)
	req.Header.Set("X-Driver-Id", "d1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != want {
		t.Fatalf("feed answer changed on the way: %d bytes, want %d", len(got), len(want))
	}
	clock.Advance(time.Second)
	for _, c := range []struct {
		offer string
		code  int
	}{{"offer-39999", 200}, {"offer-39936", 200}, {"offer-00001", 403}} {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/offers/"+c.offer+"/accept", nil)
		r.Header.Set("X-Driver-Id", "d1")
		g.ServeHTTP(w, r)
		if w.Code != c.code {
			t.Errorf("accept %s: %d, want %d (the last 64 offers are remembered)", c.offer, w.Code, c.code)
		}
	}
}
