package gateway

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
)

// logLines collects a funcr logger's lines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger(verbosity int) logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: verbosity})
}

// matching returns the lines that contain every one of subs.
func (l *logLines) matching(subs ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
next:
	for _, s := range l.lines {
		for _, sub := range subs {
			if !strings.Contains(s, sub) {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// stderrLogging is go-redis's default logger again, for after a test that replaced it.
type stderrLogging struct{ l *log.Logger }

func (s stderrLogging) Printf(_ context.Context, format string, v ...any) {
	_ = s.l.Output(2, fmt.Sprintf(format, v...))
}

// routeRedisLogsForTest makes go-redis log through lg until t ends, counting every line
// go-redis hands over (before the limit) and its kinds.
func routeRedisLogsForTest(t *testing.T, lg logr.Logger) *countingLogging {
	c := &countingLogging{inner: newRedisLogger(lg.WithName("redis"), time.Now), kinds: map[string]bool{}}
	redis.SetLogger(c)
	t.Cleanup(func() {
		redis.SetLogger(stderrLogging{log.New(os.Stderr, "redis: ", log.LstdFlags|log.Lshortfile)})
	})
	return c
}

type countingLogging struct {
	inner *redisLogger
	n     atomic.Int64
	mu    sync.Mutex
	kinds map[string]bool
}

func (c *countingLogging) Printf(ctx context.Context, format string, v ...any) {
	c.n.Add(1)
	c.mu.Lock()
	c.kinds[format] = true
	c.mu.Unlock()
	c.inner.Printf(ctx, format, v...)
}

func (c *countingLogging) numKinds() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.kinds)
}

// TestRedisLogger: go-redis's lines go to the logger at verbosity 1, a Sentinel's new master
// at info; each kind of line is limited to a burst of redisLogBurst, then one each
// redisLogEvery, and the next line logged says how many were left out; kinds are bounded.
func TestRedisLogger(t *testing.T) {
	const dialFail = "redis: connection pool: failed to dial after %d attempts: %v"
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }

	var debug logLines
	l := newRedisLogger(debug.logger(1), clock)
	for i := range 12 {
		l.Printf(context.Background(), dialFail, 5, fmt.Sprintf("dial tcp 127.0.0.1:%d: connect: connection refused", 6000+i))
	}
	l.Printf(context.Background(), "sentinel: new master=%q addr=%q", "m", "127.0.0.1:7000")
	if got := debug.matching("failed to dial"); len(got) != redisLogBurst {
		t.Fatalf("12 dial failures at once logged %d lines, want %d:\n%s", len(got), redisLogBurst, strings.Join(got, "\n"))
	}
	if got := debug.matching(`"level"=1`, "failed to dial"); len(got) != redisLogBurst {
		t.Errorf("dial failures not at verbosity 1:\n%s", strings.Join(debug.matching("failed to dial"), "\n"))
	}
	if got := debug.matching(`"level"=0`, "new master", "127.0.0.1:7000"); len(got) != 1 {
		t.Errorf("the new master is not one info line: %q", debug.matching("new master"))
	}
	now = now.Add(redisLogEvery - time.Millisecond)
	l.Printf(context.Background(), dialFail, 5, "refused")
	if got := debug.matching("failed to dial"); len(got) != redisLogBurst {
		t.Fatalf("a line before the refill was logged: %d lines", len(got))
	}
	now = now.Add(time.Millisecond)
	l.Printf(context.Background(), dialFail, 5, "refused again")
	got := debug.matching("failed to dial", "refused again")
	if len(got) != 1 || !strings.Contains(got[0], `"suppressed"=8`) {
		t.Fatalf("the line after the refill: %q; want it logged with suppressed=8 (7 at once, 1 before the refill)", got)
	}
	// An hour later the burst is back, no more.
	now = now.Add(time.Hour)
	for range 10 {
		l.Printf(context.Background(), dialFail, 5, "after an hour")
	}
	if got := debug.matching("after an hour"); len(got) != redisLogBurst {
		t.Errorf("after an hour, %d lines of 10, want %d", len(got), redisLogBurst)
	}

	// At info level (the gateway's default) only the new master shows.
	var info logLines
	l = newRedisLogger(info.logger(0), clock)
	l.Printf(context.Background(), dialFail, 5, "refused")
	l.Printf(context.Background(), "sentinel: new master=%q addr=%q", "m", "127.0.0.1:7001")
	if len(info.lines) != 1 || !strings.Contains(info.lines[0], "127.0.0.1:7001") {
		t.Errorf("at info level: %q; want the new master only", info.lines)
	}

	// A flood of distinct kinds cannot grow the map past its bound.
	l = newRedisLogger(logr.Discard(), clock)
	for i := range 10 * redisLogKinds {
		l.Printf(context.Background(), fmt.Sprintf("kind %d: %%v", i), i)
	}
	if n := len(l.kinds); n > redisLogKinds+1 {
		t.Errorf("%d kinds remembered, bound %d", n, redisLogKinds+1)
	}
}

// TestRedisLogsDuringOutage: 5 gateways from a config on a real Redis, under a bounded load on
// loopback, while the server is dead for 5 s (SIGKILL, then started again). With go-redis's
// lines routed through the gateway's logger at debug verbosity (the worst case), go-redis
// hands over more lines than are logged, and the lines logged stay within the limit: at
// most (burst + one refill per 10 s) per kind.
func TestRedisLogsDuringOutage(t *testing.T) {
	var lines logLines
	raw := routeRedisLogsForTest(t, lines.logger(1))
	srv := redistest.Start(t)
	up := newFakeUpstream(t)
	u, _ := url.Parse(up.URL)
	r := &faultRig{t: t}
	for range 5 {
		g, err := New(Options{Upstream: u, PodLabels: map[string]string{"app": "offer-service"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		cfg := sharedConfig(srv.Addr, "", 0)
		cfg.Policies[0].SharedState.Timeout = dur(faultTimeout.String())
		cfg.Policies[0].Accept.MinReactionTime = dur("0s")
		if err := g.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		r.gws = append(r.gws, g)
	}
	stop := make(chan struct{})
	wg := r.load(stop, 100000)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	srv.Kill()
	time.Sleep(5 * time.Second)
	srv.Restart(t)
	eventually(t, "the breakers to close", func() bool {
		for _, g := range r.gws {
			if rtBreaker(g) != "closed" {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)

	logged := lines.matching(`"msg"="redis client"`)
	// Each kind of line go-redis used: its burst plus one per redisLogEvery elapsed.
	bound := raw.numKinds() * (redisLogBurst + int(elapsed/redisLogEvery) + 1)
	t.Logf("outage of 5 s, %v in all: %d requests; go-redis handed over %d lines of %d kinds, %d logged (bound %d)",
		elapsed.Round(time.Millisecond), r.requests.Load(), raw.n.Load(), raw.numKinds(), len(logged), bound)
	if len(logged) == 0 {
		t.Fatal("no go-redis line reached the gateway's logger: the routing does not work")
	}
	if len(logged) > bound {
		t.Errorf("%d go-redis lines logged during the outage, bound %d:\n%s", len(logged), bound, strings.Join(logged, "\n"))
	}
	if int(raw.n.Load()) <= len(logged) {
		t.Errorf("go-redis handed over %d lines and %d were logged: the outage did not reach the limit, the test shows nothing", raw.n.Load(), len(logged))
	}
	for _, s := range logged {
		if !strings.Contains(s, `"msg"="redis client"`) || !strings.Contains(s, `"detail"=`) {
			t.Errorf("not a structured line: %s", s)
		}
	}
}
