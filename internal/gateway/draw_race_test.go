package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

// raceAccepts sends the accepts of drivers d0…d(n-1) for offer(i) through srv at once, each
// from a goroutine of its own, and returns every answer ("<code> <decision>") by offer.
func raceAccepts(t *testing.T, srv *httptest.Server, n int, offer func(i int) string) map[string][]string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	got := map[string][]string{}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := offer(i)
			req, _ := http.NewRequest("POST", srv.URL+"/offers/"+o+"/accept", nil)
			req.Header.Set("X-Driver-Id", fmt.Sprint("d", i))
			resp, err := client.Do(req)
			a := "error"
			if err == nil {
				resp.Body.Close()
				a = fmt.Sprint(resp.StatusCode, " ", resp.Header.Get(HeaderDecision))
			}
			mu.Lock()
			got[o] = append(got[o], a)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return got
}

func countAnswers(as []string) map[string]int {
	m := map[string]int{}
	for _, a := range as {
		m[a]++
	}
	return m
}

// TestDrawRaceOneOffer: 300 drivers accept one offer at once; all are held, one draw: exactly
// one accept reaches the offer service and wins, the 299 others get 409 lost-draw, and no
// goroutine is left behind.
func TestDrawRaceOneOffer(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		h := newDrawHarness(t, fairPolicy("Random"))
		defer h.svc.Close()
		srv := httptest.NewServer(h.g)
		defer srv.Close()
		const n = 300
		done := make(chan map[string][]string)
		go func() { done <- raceAccepts(t, srv, n, func(int) string { return "o1" }) }()
		eventually(t, "300 accepts held", func() bool { return h.held("o1") == n })
		h.clock.Advance(3 * time.Second)
		got := countAnswers((<-done)["o1"])
		if len(got) != 2 || got["200 "] != 1 || got["409 "+DecisionLostDraw.String()] != n-1 {
			t.Errorf("answers %v, want one 200 and %d 409 lost-draw", got, n-1)
		}
		if n := h.svc.mostInflight(); n != 1 {
			t.Errorf("%d accepts at the offer service at once", n)
		}
		if tries := h.svc.triesOf("o1"); len(tries) != 1 || h.svc.wins["o1"] != 1 {
			t.Errorf("the offer service saw %d accepts and gave %d 2xx; want 1 and 1", len(tries), h.svc.wins["o1"])
		}
		if !hasMetric(t, h.g, drawMetric("offerfeed_gateway_draw_accepts_total", `policy="standard"`, `result="lost"`)+fmt.Sprint(" ", n-1)) {
			t.Error(metricText(t, h.g))
		}
	}()
	eventually(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= base+2 })
}

// TestDrawRaceManyOffers: 300 drivers accept six offers at once on the real clock (window
// 100ms), so that some accepts are held and some come after their window closed; the offer
// service fails the first accept of each offer (503), gives 200 to the next, and 410 once
// the offer is taken. Each offer gets exactly one 2xx, each driver exactly one answer, and no
// goroutine is left.
func TestDrawRaceManyOffers(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		p := fairPolicy("LeastRecentlyWon")
		p.Accept.Fairness.Window = dur("100ms")
		h := newDrawHarness(t, p, func(o *Options) { o.Clock = nil })
		defer h.svc.Close()
		h.svc.status = func(offer, driver string, try int) int {
			switch {
			case try == 0:
				return http.StatusServiceUnavailable
			case h.svc.taken[offer]: // the service's lock is held
				return http.StatusGone
			}
			return http.StatusOK
		}
		srv := httptest.NewServer(h.g)
		defer srv.Close()
		const n, offers = 300, 6
		all := raceAccepts(t, srv, n, func(i int) string { return fmt.Sprint("o", i%offers) })
		total := 0
		for o, as := range all {
			got := countAnswers(as)
			total += len(as)
			if got["200 "] != 1 || got["503 "] != 1 || got["200 "]+got["503 "]+got["410 "]+got["409 "+DecisionLostDraw.String()] != len(as) {
				t.Errorf("%s: answers %v; want one 200, one 503, the rest 410 or 409 lost-draw", o, got)
			}
			h.svc.mu.Lock()
			if h.svc.wins[o] != 1 {
				t.Errorf("%s: %d 2xx from the offer service", o, h.svc.wins[o])
			}
			h.svc.mu.Unlock()
		}
		if total != n {
			t.Errorf("%d answers, want %d", total, n)
		}
		if !hasMetric(t, h.g, fmt.Sprintf(`offerfeed_gateway_draws_opened_total{policy="standard"} %d`, offers)) {
			t.Errorf("want one draw per offer:\n%s", metricText(t, h.g))
		}
		if live := h.g.active.Load().policy.draws.live.Load(); live != 0 {
			t.Errorf("%d draws live after every answer", live)
		}
	}()
	eventually(t, "goroutines to settle", func() bool { return runtime.NumGoroutine() <= base+2 })
}
