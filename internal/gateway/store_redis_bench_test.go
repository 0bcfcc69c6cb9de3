package gateway

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
)

// sharedBenchGateway is benchGateway with its state on a real redis-server on loopback.
func sharedBenchGateway(b *testing.B) (*Gateway, *policy, *redis.Client) {
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	b.Cleanup(func() { client.Close() })
	g, _ := benchGateway(b, nil)
	g.opts.SharedState = &SharedState{Client: client}
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
	g, p, _ := sharedBenchGateway(b)
	ss := p.store.(*sharedStore)
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
}

// BenchmarkSharedBytesPerDriver reports the Redis memory of a feed-only driver (one poll):
// used_memory's growth over 10,000 drivers per driver (B/driver), and MEMORY USAGE of one
// driver's key (B/key). The ops are the drivers.
func BenchmarkSharedBytesPerDriver(b *testing.B) {
	g, p, client := sharedBenchGateway(b)
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
	const n = 10000
	before := used()
	for i := range n {
		g.feedDecision(p, hashIdentity(g, fmt.Sprintf("driver-%06d", i)), g.nowNS())
	}
	after := used()
	kd, _, _, _ := p.store.(*sharedStore).keys(hashIdentity(g, "driver-000000"))
	key, err := client.MemoryUsage(ctx, kd).Result()
	if err != nil {
		b.Fatal(err)
	}
	if keys := client.DBSize(ctx).Val(); keys != n {
		b.Fatalf("%d keys for %d feed-only drivers, want one each", keys, n)
	}
	b.ReportMetric(float64(after-before)/n, "B/driver")
	b.ReportMetric(float64(key), "B/key")
	for range b.N {
	}
}
