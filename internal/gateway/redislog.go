package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/redis/go-redis/v9"
)

// go-redis logs on its own (a process-wide logger that prints plain text on stderr): each
// dial that fails ("redis: connection pool: failed to dial after 5 attempts: dial tcp
// 10.0.0.7:6379: connect: connection refused"), each master a Sentinel names. In a gateway
// that writes JSON lines, those break the log pipeline's parsing, and during an outage they
// come once per failed dial of every pool. RouteRedisLogs sends them through the gateway's
// logger instead:
//
//   - as structured lines (logger "redis", message "redis client", the text as "detail"), at
//     verbosity 1 (--log-level debug), except a Sentinel's new master, which is worth an
//     info line (a failover the gateway followed);
//   - at most redisLogBurst lines of each kind (go-redis's format string) at once, then one
//     each redisLogEvery; the next line of the kind says how many were left out. So an
//     outage of any length costs a few lines a minute, whatever the traffic.
//
// The gateway's own lines say what matters during an outage: the breaker opening and
// closing, with the error's kind (store_breaker.go). go-redis never formats a password into
// its lines (its errors carry addresses and server replies such as WRONGPASS).

const (
	redisLogBurst = 5
	redisLogEvery = 10 * time.Second
	// redisLogKinds bounds the kinds remembered (go-redis has fewer format strings); past
	// it, lines of new kinds share one allowance.
	redisLogKinds = 256
)

// RouteRedisLogs makes go-redis log through log (process-wide: call it once, from main).
func RouteRedisLogs(log logr.Logger) {
	redis.SetLogger(newRedisLogger(log.WithName("redis"), time.Now))
}

// redisLogger is go-redis's logger on a logr.Logger, limited per kind of line.
type redisLogger struct {
	log logr.Logger
	now func() time.Time

	mu    sync.Mutex
	kinds map[string]*redisLogKind
}

// redisLogKind is the allowance of one kind of line: a token bucket of redisLogBurst,
// refilled one token each redisLogEvery.
type redisLogKind struct {
	tokens     float64
	at         time.Time // of the last refill
	suppressed int
}

func newRedisLogger(log logr.Logger, now func() time.Time) *redisLogger {
	return &redisLogger{log: log, now: now, kinds: map[string]*redisLogKind{}}
}

// Printf logs one line of go-redis, when the allowance of its kind lets it.
func (l *redisLogger) Printf(_ context.Context, format string, v ...any) {
	info := strings.HasPrefix(format, "sentinel: new master")
	if !info && !l.log.V(1).Enabled() {
		return
	}
	ok, suppressed := l.allow(format)
	if !ok {
		return
	}
	detail := strings.TrimSpace(fmt.Sprintf(format, v...))
	kv := []any{"detail", detail}
	if suppressed > 0 {
		kv = append(kv, "suppressed", suppressed)
	}
	if info {
		l.log.Info("redis client", kv...)
	} else {
		l.log.V(1).Info("redis client", kv...)
	}
}

// allow takes a token of kind's allowance, and says how many lines of the kind were left out
// since the last one logged.
func (l *redisLogger) allow(kind string) (bool, int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.kinds[kind]
	if k == nil {
		if len(l.kinds) >= redisLogKinds {
			kind = ""
			k = l.kinds[kind]
		}
		if k == nil {
			k = &redisLogKind{tokens: redisLogBurst, at: now}
			l.kinds[kind] = k
		}
	}
	if d := now.Sub(k.at); d > 0 {
		k.tokens = min(redisLogBurst, k.tokens+float64(d)/float64(redisLogEvery))
		k.at = now
	}
	if k.tokens < 1 {
		k.suppressed++
		return false, 0
	}
	k.tokens--
	n := k.suppressed
	k.suppressed = 0
	return true, n
}
