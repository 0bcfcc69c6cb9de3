package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// floodGateway is a gateway tracking at most max drivers of the Flex policy, without an
// upstream: the tests below drive its table through feedDecision, as requests do.
func floodGateway(t *testing.T, max int) (*Gateway, *policy) {
	t.Helper()
	u, _ := url.Parse("http://upstream.invalid")
	g, err := New(Options{Upstream: u, MaxTrackedDrivers: max, PodLabels: map[string]string{"app": "offer-service"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Apply(configOf(flexPolicy())); err != nil {
		t.Fatal(err)
	}
	return g, g.active.Load().policy
}

// poll is one feed poll of driver key at now, as serveFeed decides it.
func poll(g *Gateway, p *policy, key uint64, now int64) Decision {
	v, _, _, _ := g.feedDecision(p, key, now)
	return v.decision
}

// withState runs f on driver key's entry (nil when not tracked) under its shard's lock.
func withState(p *policy, key uint64, f func(e *entry)) {
	s := p.table.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.lookup(key))
}

// TestFloodKeepsValuableDrivers: identities made up by the thousand (ten times the table's
// bound) cannot make the gateway forget a driver with a counted accept, an accept in flight,
// shown offers or a poll inside its pacing interval — not even drivers seen only once, nor
// when the table is full of drivers seen long ago. A flood that polls each made-up identity
// twice (to be promoted out of probation) cannot either, apart from pacing-only state (see
// docs/gateway.md, "State and its bounds").
func TestFloodKeepsValuableDrivers(t *testing.T) {
	const max = 1000
	for _, polls := range []int{1, 2} {
		t.Run(fmt.Sprint(polls, "-poll identities"), func(t *testing.T) {
			g, p := floodGateway(t, max)
			const sec = int64(time.Second)
			t0 := 3600 * sec
			// The table is full of drivers whose state has expired.
			for i := 0; i < max; i++ {
				poll(g, p, hashIdentity(g, fmt.Sprint("idle-", i)), 0)
			}
			// Drivers with state worth keeping, each seen once at t0.
			type valuable struct {
				name  string
				set   func(x *driverExt)
				check func(e *entry) string
			}
			cases := []valuable{
				{"counted-accept", func(x *driverExt) { x.done = append(x.done, t0) }, func(e *entry) string {
					if e.ext == nil || len(e.ext.done) != 1 || e.ext.done[0] != t0 {
						return "counted accept lost"
					}
					return ""
				}},
				{"in-flight", func(x *driverExt) { x.inflight = 1 }, func(e *entry) string {
					if e.ext == nil || e.ext.inflight != 1 {
						return "accept in flight lost"
					}
					return ""
				}},
				{"shown", func(x *driverExt) { x.recordShown(42, t0) }, func(e *entry) string {
					if e.ext == nil {
						return "shown offers lost"
					}
					if at, ok := e.ext.shownAt(42); !ok || at != t0 {
						return "shown offer lost"
					}
					return ""
				}},
			}
			if polls == 1 {
				cases = append(cases, valuable{"paced", nil, func(e *entry) string {
					if e.tat != t0+2*sec {
						return fmt.Sprintf("pacing state %d, want %d", e.tat, t0+2*sec)
					}
					return ""
				}})
			}
			for _, c := range cases {
				key := hashIdentity(g, c.name)
				if d := poll(g, p, key, t0); d != Allowed {
					t.Fatalf("%s: first poll %s", c.name, d)
				}
				if c.set != nil {
					withState(p, key, func(e *entry) { c.set(e.extState()) })
				}
			}
			// The flood: 10 × max made-up identities within one second, each polled once
			// (or twice: the second poll is throttled, but shows the identity again).
			n := 10 * max
			for i := 0; i < n; i++ {
				key := hashIdentity(g, fmt.Sprint("made-up-", i))
				now := t0 + int64(i)*sec/int64(n)
				for range polls {
					poll(g, p, key, now)
				}
			}
			for _, c := range cases {
				withState(p, hashIdentity(g, c.name), func(e *entry) {
					if e == nil {
						t.Errorf("%s: forgotten by the flood", c.name)
					} else if msg := c.check(e); msg != "" {
						t.Errorf("%s: %s", c.name, msg)
					}
				})
			}
			if n := p.table.len(); n > max {
				t.Errorf("%d drivers tracked, bound %d", n, max)
			}
		})
	}
}

// TestFloodCannotResetQuota reproduces the finding in the Flex shape, where the identity is
// the client's own token: a driver uses its quota (accepts answered 200 200 200 429), then
// polls with ten times --max-tracked-drivers made-up tokens, which the offer service refuses.
// Its next accept in the window is still refused, its pacing still holds, and a driver who
// was only shown offers can still accept them.
func TestFloodCannotResetQuota(t *testing.T) {
	const max = 1000
	real := map[string]bool{"bot-token": true, "human-token": true}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if !real[r.Header.Get("X-Amz-Access-Token")] {
			http.Error(w, "unknown token", http.StatusUnauthorized)
			return
		}
		if r.URL.Path == "/AcceptOffer" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		var list []map[string]string
		for _, o := range []string{"o1", "o2", "o3", "o4"} {
			list = append(list, map[string]string{"offerId": o})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"offerList": list})
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	clock := newFakeClock()
	g, err := New(Options{Upstream: u, Clock: clock, MaxTrackedDrivers: max, PodLabels: map[string]string{"app": "offer-service"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Apply(configOf(flexPolicy())); err != nil {
		t.Fatal(err)
	}
	send := func(token, path, body string) *httptest.ResponseRecorder {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		r := httptest.NewRequest("POST", path, rd)
		r.Header.Set("X-Amz-Access-Token", token)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		return w
	}
	const feed = "/GetOffersForProviderPost"
	accept := func(o string) string { return `{"offerId":"` + o + `"}` }

	expect(t, send("bot-token", feed, `{}`), 200, "")
	expect(t, send("human-token", feed, `{}`), 200, "")
	clock.Advance(time.Second)
	for _, o := range []string{"o1", "o2", "o3"} {
		expect(t, send("bot-token", "/AcceptOffer", accept(o)), 200, "")
	}
	expect(t, send("bot-token", "/AcceptOffer", accept("o4")), 429, "accept-throttled")

	for i := 0; i < 10*max; i++ {
		if w := send(fmt.Sprintf("made-up-%d", i), feed, `{}`); w.Code != http.StatusUnauthorized {
			t.Fatalf("made-up token %d: %d, want the offer service's 401", i, w.Code)
		}
	}
	if n := g.trackedDrivers(); n > max {
		t.Errorf("%d drivers tracked, bound %d", n, max)
	}

	check := func(what string, w *httptest.ResponseRecorder, status int, decision string) {
		t.Helper()
		if w.Code != status || w.Header().Get(HeaderDecision) != decision {
			t.Errorf("after the flood, %s: %d %q, want %d %q", what, w.Code, w.Header().Get(HeaderDecision), status, decision)
		}
	}
	check("the human's accept of an offer shown before", send("human-token", "/AcceptOffer", accept("o2")), 200, "")
	check("the bot's poll 1s after its last", send("bot-token", feed, `{}`), 429, "feed-throttled")
	clock.Advance(2 * time.Second)
	check("the bot's next poll", send("bot-token", feed, `{}`), 200, "")
	clock.Advance(time.Second)
	check("the bot's fourth accept in the window", send("bot-token", "/AcceptOffer", accept("o4")), 429, "accept-throttled")
	if ev := g.evictedDrivers(); ev == 0 || ev != uint64(10*max+2-g.trackedDrivers()) {
		t.Errorf("%d evictions, want one per identity beyond the tracked ones", ev)
	}
	if !hasMetric(t, g, fmt.Sprintf(`offerfeed_gateway_evicted_drivers_total{area="probation"} %d`, g.evictedDriversFrom(areaProbation))) ||
		!hasMetric(t, g, fmt.Sprintf(`offerfeed_gateway_evicted_drivers_total{area="main"} %d`, g.evictedDriversFrom(areaMain))) {
		t.Errorf("evictions by area not in /metrics:\n%s", metricText(t, g))
	}
}

// TestStateValue: what forgetting a driver would give away, by its state.
func TestStateValue(t *testing.T) {
	const now, window, min = int64(100 * time.Hour), int64(time.Hour), int64(time.Minute)
	shownAt := func(ats ...int64) *driverExt {
		x := &driverExt{}
		for i, at := range ats {
			x.recordShown(uint64(i), at)
		}
		return x
	}
	// A full ring whose newest offer (the last written, before the oldest) is recent.
	wrapped := shownAt(make([]int64, maxShown+3)...)
	wrapped.recordShown(999, now-min)
	for _, c := range []struct {
		name   string
		e      entry
		window int64
		want   stateValue
	}{
		{"unknown driver", entry{}, window, valueNone},
		{"poll allowed now", entry{tat: now}, window, valueNone},
		{"inside the pacing interval", entry{tat: now + 1}, window, valuePacing},
		{"state made, nothing in it", entry{tat: now - 1, ext: &driverExt{}}, window, valueNone},
		{"offer shown a minute ago", entry{ext: shownAt(now-30*min, now-min)}, window, valueShown},
		{"offer shown beyond the window", entry{ext: shownAt(now - window - 1)}, window, valueNone},
		{"offer shown 9m ago, window 1m: offers live 10m", entry{ext: shownAt(now - 9*min)}, min, valueShown},
		{"offer shown 11m ago, window 1m", entry{ext: shownAt(now - 11*min)}, min, valueNone},
		{"full ring, newest recent", entry{ext: wrapped}, window, valueShown},
		{"counted accept in the window", entry{ext: &driverExt{done: []int64{now - window + 1}}}, window, valueAccepts},
		{"counted accept leaving the window", entry{ext: &driverExt{done: []int64{now - window}}}, window, valueNone},
		{"accept in flight", entry{ext: &driverExt{inflight: 1}}, window, valueAccepts},
		{"accept in flight, no accept route", entry{ext: &driverExt{inflight: 1}}, 0, valueAccepts},
		{"won in the window", entry{ext: &driverExt{lastWin: now - min + 1}}, window, valueAccepts},
		{"won long ago", entry{ext: &driverExt{lastWin: 1}}, window, valueNone},
		{"accepts outrank shown and pacing", entry{tat: now + 1, ext: &driverExt{inflight: 1, shown: shownAt(now).shown, shownBase: now}}, window, valueAccepts},
	} {
		if got := c.e.value(now, c.window); got != c.want {
			t.Errorf("%s: value %d, want %d", c.name, got, c.want)
		}
	}
}

// TestEvictionOrder: which driver a new identity costs, when probation is full and its
// oldest driver, the candidate, leaves it.
func TestEvictionOrder(t *testing.T) {
	const now = int64(10 * time.Hour)
	state := func(s string) entry {
		switch s {
		case "none":
			return entry{tat: now - 1}
		case "pacing":
			return entry{tat: now + 1}
		case "shown":
			x := &driverExt{}
			x.recordShown(7, now-int64(time.Second))
			return entry{ext: x}
		case "accepts":
			return entry{ext: &driverExt{done: []int64{now - int64(time.Second)}}}
		case "inflight":
			return entry{ext: &driverExt{inflight: 1}}
		}
		panic(s)
	}
	// A state ending in '*' was seen again (its reference bit is set).
	parse := func(s string, key uint64) entry {
		ref := strings.HasSuffix(s, "*")
		e := state(strings.TrimSuffix(s, "*"))
		e.key, e.ref = key, ref
		return e
	}
	const cand = uint64(1000)
	for _, c := range []struct {
		name      string
		main      []string
		room      bool // main has room for one more
		candidate string
		forgotten uint64 // key forgotten: cand, or 1 + index in main; 0: none
		from      area
	}{
		{"main has room: anything moves in", []string{"accepts"}, true, "none", 0, 0},
		{"seen once, nothing live: forgotten", []string{"pacing", "shown", "accepts"}, false, "none", cand, areaProbation},
		{"seen once, pacing: replaces a driver with nothing live", []string{"pacing", "none", "shown"}, false, "pacing", 2, areaMain},
		{"seen once, pacing: never replaces pacing", []string{"pacing", "pacing", "shown"}, false, "pacing", cand, areaProbation},
		{"seen twice, pacing: replaces pacing", []string{"shown", "pacing", "accepts"}, false, "pacing*", 2, areaMain},
		{"seen twice, nothing live: replaces nothing live", []string{"pacing", "none"}, false, "none*", 2, areaMain},
		{"seen twice, shown: never replaces accepts", []string{"accepts", "inflight"}, false, "shown*", cand, areaProbation},
		{"seen once, shown: replaces pacing", []string{"accepts", "pacing", "shown"}, false, "shown", 2, areaMain},
		{"seen once, in flight: replaces shown", []string{"accepts", "shown", "accepts"}, false, "inflight", 2, areaMain},
		{"seen once, accepts: never replaces accepts", []string{"accepts", "inflight"}, false, "accepts", cand, areaProbation},
		{"seen twice, accepts: replaces accepts", []string{"inflight", "accepts"}, false, "accepts*", 1, areaMain},
		{"second chance: not seen again first", []string{"none*", "none", "none*"}, false, "pacing", 2, areaMain},
		{"value before recency", []string{"pacing", "none*", "pacing"}, false, "pacing", 2, areaMain},
		{"least value wins over second chance", []string{"shown", "pacing*", "shown"}, false, "shown", 2, areaMain},
		{"ties: the first the hand passes", []string{"pacing", "pacing", "pacing"}, false, "pacing*", 1, areaMain},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := newDriverTable("order", 10)
			tb.window.Store(int64(time.Hour))
			s := &tb.shards[0]
			s.main, s.prob = nil, nil
			for i, st := range c.main {
				s.main = append(s.main, parse(st, uint64(i+1)))
				s.idx[uint64(i+1)] = int32(i)
			}
			s.prob = []entry{parse(c.candidate, cand)}
			s.idx[cand] = ^int32(0)
			s.probCap, s.mainCap, s.phand, s.mhand = 1, int32(len(s.main)), 0, 0
			if c.room {
				s.mainCap++
			}
			s.mu.Lock()
			tb.get(s, 2000, now)
			s.mu.Unlock()
			for k := uint64(1); k <= uint64(len(c.main)); k++ {
				if gone := s.lookup(k) == nil; gone != (k == c.forgotten) {
					t.Errorf("main driver %d (%s): forgotten %v", k, c.main[k-1], gone)
				}
			}
			if e := s.lookup(cand); (e == nil) != (c.forgotten == cand) {
				t.Errorf("candidate forgotten %v, want %v", e == nil, c.forgotten == cand)
			} else if e != nil {
				if i := s.idx[cand]; i < 0 {
					t.Errorf("candidate still in probation")
				} else if e.ref {
					t.Errorf("candidate moved to main seen, want not seen since")
				}
			}
			if e := s.lookup(2000); e == nil || s.idx[2000] >= 0 {
				t.Errorf("the new driver is not in probation")
			}
			var want [numAreas]uint64
			if c.forgotten != 0 {
				want[c.from] = 1
			}
			for a := range numAreas {
				if got := tb.evicted[a].Load(); got != want[a] {
					t.Errorf("evictions from %s: %d, want %d", areaNames[a], got, want[a])
				}
			}
		})
	}
}

// TestEvictionScanBounded: one eviction looks at no more than mainScan main drivers
// (mainScanOnce for a candidate seen once): a candidate worth less than all of them is
// forgotten even though a driver with nothing live sits further on; the next eviction goes on
// from there and finds it.
func TestEvictionScanBounded(t *testing.T) {
	const now = int64(time.Hour)
	for _, seenTwice := range []bool{false, true} {
		scan := int32(mainScanOnce)
		if seenTwice {
			scan = mainScan
		}
		tb := newDriverTable("scan", 64*50) // 64 shards of 50: 5 in probation, 45 in main
		tb.window.Store(int64(10 * time.Minute))
		s := &tb.shards[0]
		if s.mainCap <= scan+1 {
			t.Fatalf("main holds %d, want more than %d", s.mainCap, scan+1)
		}
		for i := int32(0); i < s.mainCap; i++ {
			e := entry{key: uint64(i + 1), ext: &driverExt{inflight: 1}}
			if i == scan+1 {
				e.ext = nil // nothing live
			}
			s.main = append(s.main, e)
			s.idx[e.key] = i
		}
		s.mu.Lock()
		for i := int32(0); i < s.probCap; i++ {
			tb.get(s, uint64(1000+i), now) // fill probation: drivers inside the pacing interval
			s.lookup(uint64(1000 + i)).tat = now + 1
			if seenTwice {
				tb.get(s, uint64(1000+i), now)
			}
		}
		tb.get(s, 2000, now) // driver 1000 leaves: scans main drivers 1 to scan, all in flight
		if s.lookup(1000) != nil || tb.evicted[areaProbation].Load() != 1 {
			t.Fatalf("seen twice %v: candidate kept, or not counted: %d from probation", seenTwice, tb.evicted[areaProbation].Load())
		}
		if s.mhand != scan {
			t.Errorf("seen twice %v: hand at %d, want %d", seenTwice, s.mhand, scan)
		}
		tb.get(s, 2001, now) // driver 1001 leaves: finds main driver scan+2, nothing live
		if s.lookup(1001) == nil || s.lookup(uint64(scan+2)) != nil || tb.evicted[areaMain].Load() != 1 {
			t.Errorf("seen twice %v: the second candidate did not replace the driver with nothing live", seenTwice)
		}
		s.mu.Unlock()
	}
}

// TestTableWindow: a counted accept keeps its value for the longest accept window of the
// policy in force, an override's included, and a reload that keeps the table updates it.
func TestTableWindow(t *testing.T) {
	g, p := floodGateway(t, 100)
	if w := p.table.window.Load(); w != int64(10*time.Minute) {
		t.Errorf("window %v, want the policy's 10m", time.Duration(w))
	}
	pol := flexPolicy()
	pol.Overrides = []gatewayconfig.Override{{Drivers: []string{"slow"}, Accept: &gatewayconfig.AcceptOverride{Window: dur("1h")}}}
	if err := g.Apply(configOf(pol)); err != nil {
		t.Fatal(err)
	}
	p2 := g.active.Load().policy
	if p2.table != p.table {
		t.Fatal("the reload did not keep the table")
	}
	if w := p.table.window.Load(); w != int64(time.Hour) {
		t.Errorf("window %v, want the override's 1h", time.Duration(w))
	}
	pol = flexPolicy()
	pol.Accept = nil
	pol.ShownOffers = nil
	if err := g.Apply(configOf(pol)); err != nil {
		t.Fatal(err)
	}
	if w := p.table.window.Load(); w != 0 {
		t.Errorf("window %v without an accept route, want 0", time.Duration(w))
	}
}
