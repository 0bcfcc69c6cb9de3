package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
)

// sharedBenchGateway is benchGateway with its state on a real redis-server on loopback,
// forwarding with transport rt.
func sharedBenchGateway(b *testing.B, rt http.RoundTripper) (*Gateway, *policy, *redis.Client) {
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	b.Cleanup(func() { client.Close() })
	u, _ := url.Parse("http://upstream.invalid")
	g, err := New(Options{Upstream: u, Transport: rt, PodLabels: map[string]string{"app": "offer-service"},
		// A generous timeout: a call that fails would measure the fallback, not Redis.
		SharedState: &SharedState{Client: client, Timeout: time.Second}})
	if err != nil {
		b.Fatal(err)
	}
	p2 := standardPolicy()
	p2.Feed.MinInterval = dur("10ms")
	if err := g.Apply(configOf(p2)); err != nil {
		b.Fatal(err)
	}
	p := g.active.Load().policy
	if _, ok := p.store.(*sharedStore); !ok {
		b.Fatal("the policy's store is not shared")
	}
	return g, p, client
}

// BenchmarkSharedFeedDecision is BenchmarkFeedDecision's decision with the state in Redis: one
// EVALSHA round trip to a redis-server on loopback per poll, drivers taken in turn (10,000),
// real clock. Compare with BenchmarkFeedDecision/mixed (local state).
func BenchmarkSharedFeedDecision(b *testing.B) {
	g, p, client := sharedBenchGateway(b, nil)
	ss := p.store.(*sharedStore)
	calls := evalCalls(b, client)
	keys := make([]uint64, 10000)
	for i := range keys {
		keys[i] = hashIdentity(g, fmt.Sprintf("driver-%06d", i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			g.feedDecision(p, keys[i%len(keys)], g.nowNS())
			i++
		}
	})
	b.StopTimer()
	if e := ss.errors.Load(); e != 0 {
		b.Fatalf("%d Redis calls failed", e)
	}
	b.ReportMetric(float64(evalCalls(b, client)-calls)/float64(b.N), "redis-cmds/op")
}

// BenchmarkSharedServe is a whole governed request through a gateway with shared state
// (decision, headers, proxy to an in-memory offer service, shown-offers scan), and reports
// the Redis commands each costs (redis-cmds/op, from INFO commandstats: EVALSHA and EVAL):
//
//   - feed: polls of 10,000 drivers in turn, allowed (minInterval 10ms): the decision and the
//     record of the offers shown, two scripts;
//   - feed-no-shown: the same without shownOffers (a feed-only policy): one script;
//   - bot-flood: one driver polling far faster than its minInterval (2s): all refused, by the
//     deny cache after the first;
//   - accept-flood: one driver over its accept quota (quota only, no accept in flight): all
//     refused, by the deny cache after the first.
func BenchmarkSharedServe(b *testing.B) {
	for _, kind := range []string{"feed", "feed-no-shown", "bot-flood", "accept-flood"} {
		b.Run(kind, func(b *testing.B) {
			g, _, client := sharedBenchGateway(b, cannedTransport{feedBody})
			pol := standardPolicy()
			pol.Feed.MinInterval = dur("10ms")
			switch kind {
			case "feed-no-shown":
				pol.ShownOffers, pol.Accept.RequireShown, pol.Accept.MinReactionTime = nil, false, dur("0s")
			case "bot-flood":
				pol.Feed.MinInterval = dur("2s")
			case "accept-flood":
				pol.ShownOffers, pol.Accept.RequireShown, pol.Accept.MinReactionTime = nil, false, dur("0s")
			}
			if err := g.Apply(configOf(pol)); err != nil {
				b.Fatal(err)
			}
			req := func(i int) *http.Request {
				r := httptest.NewRequest("GET", "/offers", nil)
				d := "bot"
				switch kind {
				case "feed", "feed-no-shown":
					d = fmt.Sprint("d", i%10000)
				case "accept-flood":
					r = httptest.NewRequest("POST", "/offers/o1/accept", nil)
				}
				r.Header.Set("X-Driver-Id", d)
				return r
			}
			if kind == "accept-flood" { // fill the quota
				for i := range pol.Accept.MaxAccepts {
					g.ServeHTTP(httptest.NewRecorder(), req(int(i)))
				}
			}
			calls := evalCalls(b, client)
			var refused, next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					g.ServeHTTP(w, req(int(next.Add(1))))
					if w.Code != http.StatusOK {
						refused.Add(1)
					}
				}
			})
			b.StopTimer()
			ss := g.active.Load().policy.store.(*sharedStore)
			if e := ss.errors.Load(); e != 0 {
				b.Fatalf("%d Redis calls failed", e)
			}
			b.ReportMetric(float64(evalCalls(b, client)-calls)/float64(b.N), "redis-cmds/op")
			b.ReportMetric(float64(refused.Load())/float64(b.N), "refused/op")
		})
	}
}

// BenchmarkSharedBytesPerDriver reports the Redis memory of a feed-only driver: used_memory's
// growth per driver (B/driver), and the mean MEMORY USAGE of a driver's key over a sample of
// 100 (B/key). "one-poll": 10,000 drivers polled once (pacing and the last poll time);
// "steady": 10,000 drivers polled 36 times each, in turn (real clock, minInterval 10ms:
// each round takes longer than that), so that each carries its gap statistics and counts, as
// an active driver does (about 20 s). The ops are the drivers.
func BenchmarkSharedBytesPerDriver(b *testing.B) {
	for _, bc := range []struct {
		name     string
		n, polls int
	}{{"one-poll", 10000, 1}, {"steady", 10000, 36}} {
		b.Run(bc.name, func(b *testing.B) {
			g, p, client := sharedBenchGateway(b, nil)
			ctx := context.Background()
			used := func() int64 {
				s, err := client.Info(ctx, "memory").Result()
				if err != nil {
					b.Fatal(err)
				}
				for _, l := range strings.Split(s, "\r\n") {
					if v, ok := strings.CutPrefix(l, "used_memory:"); ok {
						n, _ := strconv.ParseInt(v, 10, 64)
						return n
					}
				}
				b.Fatal("no used_memory in INFO memory")
				return 0
			}
			keys := make([]uint64, bc.n)
			for i := range keys {
				keys[i] = hashIdentity(g, fmt.Sprintf("driver-%06d", i))
			}
			before := used()
			gaps := 0
			for range bc.polls {
				for _, k := range keys {
					v, _, _, _ := g.feedDecision(p, k, g.nowNS())
					if v.decision == Allowed && v.sig.nGaps > 0 {
						gaps++
					}
				}
			}
			after := used()
			if bc.polls > 1 && gaps < bc.n*(bc.polls-1)/2 {
				b.Fatalf("only %d gaps counted over %d drivers", gaps, bc.n)
			}
			// MEMORY USAGE (SAMPLES 0: the whole key) of every 100th driver's key.
			var key int64
			for i := 0; i < bc.n; i += 100 {
				kd, _, _, _ := p.store.(*sharedStore).keys(keys[i])
				m, err := client.MemoryUsage(ctx, kd, 0).Result()
				if err != nil {
					b.Fatal(err)
				}
				key += m
			}
			key /= int64(bc.n / 100)
			if n := client.DBSize(ctx).Val(); n != int64(bc.n) {
				b.Fatalf("%d keys for %d feed-only drivers, want one each", n, bc.n)
			}
			b.ReportMetric(float64(after-before)/float64(bc.n), "B/driver")
			b.ReportMetric(float64(key), "B/key")
			for range b.N {
			}
		})
	}
}
