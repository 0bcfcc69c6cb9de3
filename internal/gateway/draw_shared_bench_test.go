package gateway

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
)

// redisCalls is the number of commands the server has run (INFO commandstats), by command.
func redisCalls(tb testing.TB, c *redis.Client) map[string]int64 {
	tb.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]int64{}
	for _, l := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}

// BenchmarkSharedDrawHeldAccept is BenchmarkDrawHeldAccept/draw with shared state: nine
// drivers accept one offer at once, three through each of three gateways sharing a real
// redis-server on loopback; the window closes (fake clock), the first candidate is forwarded
// to an in-memory offer service and wins, eight are answered 409. Per accept: wall time, and
// the commands Redis ran (cmds/accept) and the script calls among them (evalsha/accept),
// from INFO commandstats.
func BenchmarkSharedDrawHeldAccept(b *testing.B) {
	const group = 9
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, PoolSize: 32})
	b.Cleanup(func() { client.Close() })
	clock := newFakeClock()
	u, _ := url.Parse("http://upstream.invalid")
	p := fairPolicy("Random")
	p.Accept.MaxAccepts, p.Accept.Window = 0, 0
	var gws []*Gateway
	for i := range 3 {
		g, err := New(Options{Upstream: u, Transport: cannedTransport{`{"ok":true}`}, Clock: clock,
			PodLabels: map[string]string{"app": "offer-service"}, SharedState: &SharedState{Client: client, Timeout: 5 * time.Second}})
		if err != nil {
			b.Fatal(err)
		}
		if i > 0 {
			g.seed = gws[0].seed
		}
		if err := g.Apply(configOf(p)); err != nil {
			b.Fatal(err)
		}
		gws = append(gws, g)
	}
	held := func(offer string) int {
		n := 0
		for _, g := range gws {
			n += g.HeldAccepts(offer)
		}
		return n
	}
	for _, s := range []*redis.Script{acceptScript, settleScript, drawJoinScript, drawScript} {
		if err := s.Load(context.Background(), client).Err(); err != nil {
			b.Fatal(err)
		}
	}
	before := redisCalls(b, client)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	accepts := 0
	for i := 0; i < b.N; i += group {
		offer := "o" + strconv.Itoa(i)
		path := "/offers/" + offer + "/accept"
		for j := range group {
			wg.Add(1)
			accepts++
			go func(g *Gateway, d string) {
				defer wg.Done()
				r := httptest.NewRequest("POST", path, nil)
				r.Header.Set("X-Driver-Id", d)
				g.ServeHTTP(httptest.NewRecorder(), r)
			}(gws[j%3], fmt.Sprint("driver-", (i+j)%10_000))
		}
		for held(offer) < group {
			runtime.Gosched()
		}
		clock.Advance(3 * time.Second)
		for _, g := range gws {
			g.active.Load().policy.draws.closing.Wait()
		}
		wg.Wait()
	}
	b.StopTimer()
	after := redisCalls(b, client)
	var all, scripts int64
	for k, n := range after {
		d := n - before[k]
		if k == "info" {
			continue
		}
		all += d
		if k == "evalsha" || k == "eval" {
			scripts += d
		}
	}
	if testing.Verbose() {
		for k, n := range after {
			if d := n - before[k]; d > 0 {
				b.Logf("%s: %.2f/accept", k, float64(d)/float64(accepts))
			}
		}
	}
	b.ReportMetric(float64(all)/float64(accepts), "cmds/accept")
	b.ReportMetric(float64(scripts)/float64(accepts), "evalsha/accept")
}
