package gateway

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// The failure path of the shared store (docs/design.md#shared-state-failure-and-the-deny-cache):
// every Redis call is bounded by SharedState.Timeout; a circuit breaker stops calling Redis
// after BreakerFailures failed calls in a row, for BreakerCooldown, then lets one call probe
// it (half-open): an answer closes the breaker, a failure opens it again. No goroutine or
// timer runs it: the first request after the cool-down is the probe. Meanwhile (and for a
// call that fails) the request gets the OnUnavailable behaviour.

// breakerState is the state of the circuit breaker; its value is the metric's.
type breakerState int32

const (
	breakerClosed   breakerState = iota // Redis is called
	breakerHalfOpen                     // one call probes Redis; the others fall back
	breakerOpen                         // Redis is not called until the cool-down has passed
	numBreakerStates
)

var breakerStateNames = [numBreakerStates]string{"closed", "half-open", "open"}

func (s breakerState) String() string {
	if s < 0 || s >= numBreakerStates {
		return "unknown"
	}
	return breakerStateNames[s]
}

// errKind is the kind of a failed Redis call, a label value of
// offerfeed_gateway_shared_state_errors_total. It never holds the error's text, which may
// name the server's address.
type errKind uint8

const (
	errTimeout    errKind = iota // the call took longer than SharedState.Timeout
	errConnection                // no connection (refused, reset, closed)
	errServer                    // Redis answered an error (OOM, LOADING, BUSY, READONLY, ...)
	errReply                     // Redis answered something the gateway does not understand
	numErrKinds
)

var errKindNames = [numErrKinds]string{"timeout", "connection", "server", "reply"}

func (k errKind) String() string {
	if k >= numErrKinds {
		return "unknown"
	}
	return errKindNames[k]
}

// kindOf classifies the error of a Redis call.
func kindOf(err error) errKind {
	var ne net.Error
	var re redis.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return errTimeout
	case errors.As(err, &re):
		return errServer
	default:
		return errConnection
	}
}

// fallbackReason is why a decision was not taken on Redis.
type fallbackReason uint8

const (
	fallbackError       fallbackReason = iota // the call failed or timed out
	fallbackBreakerOpen                       // the breaker is open: Redis was not called
	numFallbackReasons
)

var fallbackReasonNames = [numFallbackReasons]string{"error", "breaker-open"}

// breaker is the circuit breaker of one gateway's Redis client. Times are the gateway clock
// (ns). The closed path with no failure pending takes no lock.
type breaker struct {
	threshold int
	cooldown  int64

	state    atomic.Int32 // breakerState
	failures atomic.Int64 // failed calls in a row

	mu       sync.Mutex
	openedAt int64
	probing  bool // half-open: the probe is out
	lastKind errKind
	lastAt   int64 // when the last call failed
	failed   bool  // a call has failed: lastKind and lastAt are set
	// onChange is called, under mu, on every change of state.
	onChange func(from, to breakerState, kind errKind, failures int64)
}

func newBreaker(threshold int, cooldown time.Duration) *breaker {
	if threshold <= 0 {
		threshold = DefaultBreakerFailures
	}
	if cooldown <= 0 {
		cooldown = DefaultBreakerCooldown
	}
	return &breaker{threshold: threshold, cooldown: int64(cooldown)}
}

// allow reports whether a call may go to Redis at now. Every call allowed must be reported
// with done.
func (b *breaker) allow(now int64) bool {
	if breakerState(b.state.Load()) == breakerClosed {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch breakerState(b.state.Load()) {
	case breakerClosed:
		return true
	case breakerOpen:
		if now-b.openedAt < b.cooldown {
			return false
		}
		b.setLocked(breakerHalfOpen, b.lastKind)
		b.probing = true
		return true
	default: // half-open: the probe is out, or came back while others were out
		if b.probing {
			return false
		}
		b.probing = true
		return true
	}
}

// done reports the outcome of a call allowed at some time: ok, or failed with kind at now.
func (b *breaker) done(ok bool, kind errKind, now int64) {
	if ok && b.failures.Load() == 0 && breakerState(b.state.Load()) == breakerClosed {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		b.failures.Store(0)
		b.probing = false
		if breakerState(b.state.Load()) != breakerClosed {
			b.setLocked(breakerClosed, kind)
		}
		return
	}
	n := b.failures.Add(1)
	b.lastKind, b.lastAt, b.failed = kind, now, true
	switch breakerState(b.state.Load()) {
	case breakerHalfOpen:
		b.probing = false
		b.openedAt = now
		b.setLocked(breakerOpen, kind)
	case breakerClosed:
		if n >= int64(b.threshold) {
			b.openedAt = now
			b.setLocked(breakerOpen, kind)
		}
	}
}

func (b *breaker) setLocked(to breakerState, kind errKind) {
	from := breakerState(b.state.Swap(int32(to)))
	if from != to && b.onChange != nil {
		b.onChange(from, to, kind, b.failures.Load())
	}
}

// sharedRuntime is what the gateway's shared stores have in common, whatever the policy:
// the client, its breaker, the fallback and the metrics. It lives as long as the gateway.
type sharedRuntime struct {
	client        redis.UniversalClient
	timeout       time.Duration
	onUnavailable gatewayconfig.OnUnavailable
	breaker       *breaker
	m             *sharedMetrics
	epoch         time.Time // the gateway's: turns a gateway clock time into a time of day
	epochUS       int64     // epoch in µs since the Unix epoch
}

// sharedMetrics are the shared store's metrics, registered when the gateway has SharedState.
type sharedMetrics struct {
	duration  [numSharedOps]prometheus.Observer
	errors    [numErrKinds]prometheus.Counter
	fallbacks [numFallbackReasons]prometheus.Counter
	denyHits  [numRoutes]prometheus.Counter
}

// sharedOp is a kind of call to Redis, a label value of the round-trip histogram.
type sharedOp uint8

const (
	opFeed sharedOp = iota
	opAccept
	opSettle
	opShown
	opDraw
	numSharedOps
)

var sharedOpNames = [numSharedOps]string{"feed", "accept", "settle", "shown", "draw"}

// errNoContextTimeout is returned by New for a SharedState.Client that does not bound its
// socket reads and writes by the call's context: such a client waits for its ReadTimeout
// (3 s by default, times its retries) when Redis is frozen or slow, whatever the Timeout.
var errNoContextTimeout = errors.New("gateway: SharedState.Client must be made with ContextTimeoutEnabled: true, so that SharedState.Timeout bounds its calls")

// checkClient refuses a client known not to honour the context's deadline.
func checkClient(c redis.UniversalClient) error {
	switch c := c.(type) {
	case *redis.Client:
		if !c.Options().ContextTimeoutEnabled {
			return errNoContextTimeout
		}
	case *redis.ClusterClient:
		if !c.Options().ContextTimeoutEnabled {
			return errNoContextTimeout
		}
	}
	return nil
}

// sharedVecs are the shared store's metric families, registered once per gateway, when its
// first shared store is made; every runtime (one per Redis client and policy settings) takes
// its series from them.
type sharedVecs struct {
	duration  *prometheus.HistogramVec
	errors    *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	denyHits  *prometheus.CounterVec
}

// sharedMetricVecs registers the shared store's metrics on first use. The breaker gauge reads
// the runtime of the policy in force.
func (g *Gateway) sharedMetricVecs() (*sharedVecs, error) {
	g.sharedMu.Lock()
	defer g.sharedMu.Unlock()
	if g.sharedV != nil {
		return g.sharedV, nil
	}
	v := &sharedVecs{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "offerfeed_gateway_shared_state_duration_seconds",
			Help:    "Round trip of the calls to the shared state (Redis) that got an answer or failed, by op (feed, accept, settle, shown, draw).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .02, .05, .1, .25},
		}, []string{"op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offerfeed_gateway_shared_state_errors_total",
			Help: "Calls to the shared state (Redis) that failed, by kind (timeout, connection, server, reply).",
		}, []string{"kind"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offerfeed_gateway_shared_state_fallbacks_total",
			Help: "Decisions not taken on the shared state, by reason (error: the call failed or timed out; breaker-open: Redis was not called) and what they got instead (on_unavailable: Local or Allow).",
		}, []string{"reason", "on_unavailable"}),
		denyHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offerfeed_gateway_shared_state_deny_cache_hits_total",
			Help: "Requests refused from the local deny cache, without a call to the shared state, by route (feed, accept).",
		}, []string{"route"}),
	}
	state := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "offerfeed_gateway_shared_state_breaker_state",
		Help: "The circuit breaker of the shared state (Redis): 0 closed (Redis called), 1 half-open (one request probes it), 2 open (Redis not called; requests get the on_unavailable behaviour).",
	}, func() float64 {
		if rt := g.sharedRT.Load(); rt != nil {
			return float64(rt.breaker.state.Load())
		}
		return 0
	})
	if err := registerAll(g.reg, v.duration, v.errors, v.fallbacks, v.denyHits, state); err != nil {
		return nil, err
	}
	g.sharedV = v
	return v, nil
}

// newSharedRuntime makes the runtime of ss: its client, timeout, fallback, breaker and
// metric series.
func (g *Gateway) newSharedRuntime(ss *SharedState) (*sharedRuntime, error) {
	if err := checkClient(ss.Client); err != nil {
		return nil, err
	}
	vecs, err := g.sharedMetricVecs()
	if err != nil {
		return nil, err
	}
	rt := &sharedRuntime{
		client:        ss.Client,
		timeout:       ss.Timeout,
		onUnavailable: ss.OnUnavailable,
		breaker:       newBreaker(ss.BreakerFailures, ss.BreakerCooldown),
		m:             &sharedMetrics{},
		epoch:         g.epoch,
		epochUS:       g.epoch.UnixMicro(),
	}
	if rt.timeout <= 0 {
		rt.timeout = DefaultSharedStateTimeout
	}
	if rt.onUnavailable == "" {
		rt.onUnavailable = gatewayconfig.OnUnavailableLocal
	}
	log := g.log
	rt.breaker.onChange = func(from, to breakerState, kind errKind, failures int64) {
		switch to {
		case breakerOpen:
			log.Info("shared state unavailable: breaker open, Redis not called for the cool-down", "from", from.String(),
				"lastErrorKind", kind.String(), "failuresInARow", failures, "cooldown", time.Duration(rt.breaker.cooldown).String(),
				"onUnavailable", string(rt.onUnavailable))
		case breakerHalfOpen:
			log.V(1).Info("shared state: breaker half-open, one request probes Redis")
		case breakerClosed:
			log.Info("shared state recovered: breaker closed, decisions shared again", "from", from.String())
		}
	}
	for o := range numSharedOps {
		rt.m.duration[o] = vecs.duration.WithLabelValues(sharedOpNames[o])
	}
	for k := range numErrKinds {
		rt.m.errors[k] = vecs.errors.WithLabelValues(errKindNames[k])
	}
	for r := range numFallbackReasons {
		rt.m.fallbacks[r] = vecs.fallbacks.WithLabelValues(fallbackReasonNames[r], string(rt.onUnavailable))
	}
	for _, r := range []route{routeFeed, routeAccept} {
		rt.m.denyHits[r] = vecs.denyHits.WithLabelValues(routeNames[r])
	}
	return rt, nil
}

// fillStatus sets s's breaker fields, and its fallback, from rt.
func (rt *sharedRuntime) fillStatus(s *SharedStateStatus) {
	b := rt.breaker
	b.mu.Lock()
	defer b.mu.Unlock()
	s.OnUnavailable = string(rt.onUnavailable)
	s.Breaker = breakerState(b.state.Load()).String()
	s.FailuresInARow = b.failures.Load()
	if b.failed {
		t := rt.epoch.Add(time.Duration(b.lastAt))
		s.LastErrorKind, s.LastErrorTime = b.lastKind.String(), &t
	}
}

// call runs script s on Redis under the breaker and the timeout. It returns the reply, or
// ok false with the reason the caller must fall back for.
func (rt *sharedRuntime) call(op sharedOp, now int64, s *redis.Script, keys []string, args ...any) (cmd *redis.Cmd, ok bool, why fallbackReason) {
	if !rt.breaker.allow(now) {
		return nil, false, fallbackBreakerOpen
	}
	ctx, cancel := context.WithTimeout(context.Background(), rt.timeout)
	start := time.Now()
	cmd = s.Run(ctx, rt.client, keys, args...)
	rt.m.duration[op].Observe(time.Since(start).Seconds())
	cancel()
	if err := cmd.Err(); err != nil {
		rt.fail(kindOf(err), now)
		return cmd, false, fallbackError
	}
	rt.breaker.done(true, 0, now)
	return cmd, true, 0
}

// do runs f, a draw's Redis call, under the breaker and the timeout, as call runs a script.
// It returns f's error, or errBreakerOpen without calling f when the breaker is open.
func (rt *sharedRuntime) do(now int64, f func(ctx context.Context) error) error {
	if !rt.breaker.allow(now) {
		return errBreakerOpen
	}
	ctx, cancel := context.WithTimeout(context.Background(), rt.timeout)
	start := time.Now()
	err := f(ctx)
	rt.m.duration[opDraw].Observe(time.Since(start).Seconds())
	cancel()
	if err != nil && !errors.Is(err, redis.Nil) {
		rt.fail(kindOf(err), now)
		return err
	}
	rt.breaker.done(true, 0, now)
	return err
}

// errBreakerOpen is do's error when the breaker kept the call from Redis.
var errBreakerOpen = errors.New("shared state: circuit breaker open")

// fail counts a failed call: in its kind's metric and in the breaker.
func (rt *sharedRuntime) fail(k errKind, now int64) {
	rt.m.errors[k].Inc()
	rt.breaker.done(false, k, now)
}

// badReply counts a call whose reply the gateway does not understand as a failed one.
func (rt *sharedRuntime) badReply(now int64) { rt.fail(errReply, now) }
