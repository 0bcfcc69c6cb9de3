package gateway

import (
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func benchGateway(b *testing.B, rt http.RoundTripper) (*Gateway, *policy) {
	b.Helper()
	u, _ := url.Parse("http://upstream.invalid")
	g, err := New(Options{Upstream: u, Transport: rt, PodLabels: map[string]string{"app": "offer-service"}})
	if err != nil {
		b.Fatal(err)
	}
	p := standardPolicy()
	p.Feed.MinInterval = dur("10ms")
	if err := g.Apply(configOf(p)); err != nil {
		b.Fatal(err)
	}
	return g, g.active.Load().policy
}

// BenchmarkFeedDecision is the decision of one feed poll: hash the identity, read the clock,
// find the driver in a table of 10,000, run the pacer; run with -cpu 1,2. The two outcomes
// cost differently (an allowed poll moves the driver's pacing time; a refused one writes
// nothing), so each has its own sub-benchmark:
//
//   - allowed: every poll is allowed (the gateway clock is read, then moved on by minInterval
//     each time the goroutine comes round its drivers again);
//   - refused: every poll is refused (the drivers polled an hour ahead first);
//   - mixed: the real clock only, drivers taken in turn, minInterval 10ms: most polls are
//     refused (the share is reported as refused/op), as in the figures before the split.
//
// Each reports cpu-ns/op, the process's CPU time per op (getrusage), which a loaded machine
// inflates far less than wall time: waiting for a CPU is not counted.
func BenchmarkFeedDecision(b *testing.B) {
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("driver-%06d", i)
	}
	for _, kind := range []string{"allowed", "refused", "mixed"} {
		b.Run(kind, func(b *testing.B) {
			g, p := benchGateway(b, nil)
			ahead := int64(0)
			if kind == "refused" {
				ahead = int64(time.Hour)
			}
			for _, id := range ids { // every driver tracked, its shown-offers state made
				g.feedDecision(p, hashIdentity(g, id), g.nowNS()+ahead)
			}
			interval := p.base.interval
			procs := runtime.GOMAXPROCS(0)
			var next atomic.Uint64
			var refused atomic.Int64
			cpu := startCPU()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var i, step, no int64
				shift := interval // the warm-up poll was within the last interval
				if kind == "mixed" {
					i, step = int64(next.Add(7919))%int64(len(ids)), 1
				} else {
					// Drivers of their own for each goroutine: k, k+procs, k+2·procs, …
					i, step = int64(next.Add(1)-1)%int64(procs), int64(procs)
				}
				first := i
				for pb.Next() {
					now := g.nowNS()
					if kind == "allowed" {
						now += shift
					}
					key := hashIdentity(g, ids[i])
					v, _, _, _ := g.feedDecision(p, key, now)
					if v.decision != Allowed {
						no++
					}
					if i += step; i >= int64(len(ids)) {
						i = first % step
						shift += interval
					}
				}
				refused.Add(no)
			})
			b.StopTimer()
			cpu.report(b)
			b.ReportMetric(float64(refused.Load())/float64(b.N), "refused/op")
			switch r := refused.Load(); {
			case kind == "allowed" && r != 0:
				b.Fatalf("%d of %d polls refused", r, b.N)
			case kind == "refused" && r != int64(b.N):
				b.Fatalf("%d of %d polls allowed", int64(b.N)-r, b.N)
			}
		})
	}
}

// BenchmarkFeedDecisionFlood is a feed decision of a new identity every time, in a full
// table of 10,000 drivers: the path a flood of made-up identities takes (each one makes an
// entry and, on leaving probation, forgets a driver). One in four drivers tracked before the
// flood has state worth keeping (a counted accept), the rest has expired.
func BenchmarkFeedDecisionFlood(b *testing.B) {
	u, _ := url.Parse("http://upstream.invalid")
	g, err := New(Options{Upstream: u, MaxTrackedDrivers: 10000, PodLabels: map[string]string{"app": "offer-service"}})
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Apply(configOf(standardPolicy())); err != nil {
		b.Fatal(err)
	}
	p := g.active.Load().policy
	const sec = int64(time.Second)
	for i := 0; i < 10000; i++ {
		key := hashIdentity(g, fmt.Sprint("driver-", i))
		g.feedDecision(p, key, 0)
		if i%4 == 0 {
			s := p.table.shard(key)
			s.mu.Lock()
			if e := s.lookup(key); e != nil {
				e.extState().done = []int64{60 * sec}
			}
			s.mu.Unlock()
		}
	}
	now := 60 * sec
	b.ReportAllocs()
	b.ResetTimer()
	for i := uint64(0); i < uint64(b.N); i++ {
		v, _, _, _ := g.feedDecision(p, (i+1)*0x9E3779B97F4A7C15, now)
		_ = v
	}
}

func hashIdentity(g *Gateway, s string) uint64 { return maphash.String(g.seed, s) }

// cannedTransport answers every request with a small JSON feed, without a network.
type cannedTransport struct{ body string }

func (c cannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(c.body)), ContentLength: int64(len(c.body)), Request: r}, nil
}

const feedBody = `{"offers":[{"id":"o-000001","price":42.5,"area":"north"},{"id":"o-000002","price":38,"area":"south"},` +
	`{"id":"o-000003","price":51.25,"area":"east"},{"id":"o-000004","price":40,"area":"west"}]}`

// BenchmarkServeFeed is a whole feed request through the gateway (decision, headers, proxy,
// shown-offers scan) against an in-memory upstream, compared with the plain proxy path.
func BenchmarkServeFeed(b *testing.B) {
	for _, mode := range []string{"gateway", "no-policy"} {
		b.Run(mode, func(b *testing.B) {
			g, _ := benchGateway(b, cannedTransport{feedBody})
			if mode == "no-policy" {
				if err := g.Apply(nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					r := httptest.NewRequest("GET", "/offers", nil)
					r.Header.Set("X-Driver-Id", fmt.Sprint("d", i%10000))
					w := httptest.NewRecorder()
					g.ServeHTTP(w, r)
					i++
				}
			})
		})
	}
}

// BenchmarkShownOffersScan is the streaming scan of a feed answer.
func BenchmarkShownOffersScan(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"offers":[`)
	for i := 0; i < 50; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":"offer-%06d","price":%d.5,"start":"2026-01-01T10:00:00Z","area":{"name":"north","code":"N1"}}`, i, 30+i)
	}
	sb.WriteString(`]}`)
	doc := []byte(sb.String())
	p, _ := compileJSONPath("offers[].id")
	n := 0
	sc := newJSONScanner(p, localHasher(testSeed), func(uint64) { n++ })
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		sc.init(p, localHasher(testSeed), sc.found)
		_, _ = sc.Write(doc)
	}
}

// BenchmarkBytesPerDriver measures the heap a tracked driver costs: the live heap after
// tracking N drivers, minus before, over N (map slots and entries included). "feed" drivers
// only poll; "shown64" drivers were also shown 64 offers (a full shown-offers ring).
func BenchmarkBytesPerDriver(b *testing.B) {
	for _, kind := range []string{"feed", "shown64"} {
		for _, n := range []int{100_000, 1_000_000} {
			if kind == "shown64" && n > 100_000 {
				continue
			}
			b.Run(fmt.Sprint(kind, "/", n), func(b *testing.B) {
				for b.Loop() {
					var before, after runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&before)
					t := newDriverTable("bench", n)
					for i := 0; i < n; i++ {
						key := uint64(i) * 0x9E3779B97F4A7C15
						s := t.shard(key)
						s.mu.Lock()
						e := t.get(s, key, 0)
						decideFeed(e, &limits{interval: 1e9}, 0)
						if kind == "shown64" {
							x := e.extState()
							for j := uint64(0); j < maxShown; j++ {
								x.recordShown(key+j, 1)
							}
						}
						s.mu.Unlock()
					}
					runtime.GC()
					runtime.ReadMemStats(&after)
					b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(t.len()), "B/driver")
					runtime.KeepAlive(t)
				}
			})
		}
	}
}

var clockSink int64

// BenchmarkClock is a calibration: the cost of time.Now alone, which every decision pays.
func BenchmarkClock(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		var s int64
		for pb.Next() {
			s += time.Now().UnixNano()
		}
		clockSink = s
	})
}

// BenchmarkRouteRequest is the routing of one request: the exact match and the lenient check
// (lenient.go), for ordinary requests (the fast path, no allocation) and for requests that
// take the lenient model's slow path.
func BenchmarkRouteRequest(b *testing.B) {
	_, p := benchGateway(b, nil)
	for _, c := range []struct{ name, method, target string }{
		{"feed", "GET", "/offers?area=north"},
		{"accept", "POST", "/offers/o-000123/accept"},
		{"other", "GET", "/drivers/me"},
		{"escaped-id", "POST", "/offers/a%2Fb/accept"},
		{"ambiguous", "POST", "/offers/o9%2Faccept"},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest(c.method, c.target, nil)
			b.ReportAllocs()
			for b.Loop() {
				routeSink = routeOnce(p, r)
			}
		})
	}
}

var routeSink route

// routeOnce routes r as ServeHTTP does.
func routeOnce(p *policy, r *http.Request) route {
	var segs [16]string
	var rp reqPath
	escaped := r.URL.EscapedPath()
	rp.segs, rp.trailing = splitPath(escaped, segs[:0])
	rt, id := p.routeOf(r.Method, &rp, false)
	if _, amb := p.ambiguous(r, 0, escaped, &rp, rt, id); amb {
		return routeOther
	}
	return rt
}
