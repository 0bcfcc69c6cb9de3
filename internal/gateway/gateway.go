package gateway

import (
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/clock"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Defaults of Options.
const (
	DefaultMaxTrackedDrivers = 1_000_000
	DefaultUpstreamTimeout   = 15 * time.Second
	DefaultMaxAcceptBody     = 64 << 10

	// BytesPerShownDriver is about what a tracked driver costs when it was shown a full ring
	// of offers (BenchmarkBytesPerDriver: 654 B), the most a driver costs apart from its
	// counted accepts. A feed-only driver costs about 72 B.
	BytesPerShownDriver = 700
)

// Options configure a Gateway.
type Options struct {
	// Upstream is the offer service, such as http://127.0.0.1:8080. Required.
	Upstream *url.URL
	// Transport forwards requests to Upstream; nil means a transport tuned for one local
	// upstream, with UpstreamTimeout as its response header timeout.
	Transport http.RoundTripper
	// UpstreamTimeout is how long the gateway waits for the offer service's response headers
	// before it answers 504. Zero means DefaultUpstreamTimeout. Used only when Transport is nil.
	UpstreamTimeout time.Duration
	// PodLabels are the labels of the gateway's pod; the first policy whose selector matches
	// them applies.
	PodLabels map[string]string
	// PolicyName, when set, picks the policy of that name whatever the selectors and pod
	// labels say (for tests and tools that put a gateway in front of a test server).
	PolicyName string
	// MaxTrackedDrivers bounds the drivers whose state the gateway keeps; zero means
	// DefaultMaxTrackedDrivers.
	MaxTrackedDrivers int
	// MaxAcceptBody is the most bytes of an accept's body read to find offerIdField; zero
	// means DefaultMaxAcceptBody.
	MaxAcceptBody int64
	// BodyTimeout is how long a client has to send a request body, from the gateway's first
	// read of it; then the connection is closed (the request answered 408 or, for an accept
	// whose offer id was in the body, without an id). Zero means DefaultBodyTimeout, negative
	// no deadline. It needs a server that supports http.ResponseController read deadlines.
	BodyTimeout time.Duration
	// ReadHeaderTimeout and IdleTimeout are the http.Server timeouts of NewServer and
	// NewAdminServer; zero means DefaultReadHeaderTimeout and DefaultIdleTimeout.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// Namespace, when set, is checked against the config's namespace (a mismatch is logged).
	Namespace string
	// Clock is the gateway's clock: every time the gateway reads to decide (pacing, accept
	// windows, reaction times, driver eviction) and the timers that close fair draw windows.
	// nil means the real clock. Tests inject a fake one, such as
	// k8s.io/utils/clock/testing.FakeClock, so that the reads and the timers move together.
	// The gateway runs a timer's work in a goroutine of its own, so a fake clock may fire
	// timers while it holds its own lock. The upstream's response header timeout, the request
	// body timeout, the upstream latency metric and the config file's watch use real time
	// whatever Clock is.
	Clock clock.WithDelayedExecution
	// Logger receives structured logs; the zero value discards them.
	Logger logr.Logger
	// Registry receives the gateway's metrics; nil means a new registry of its own. Two
	// gateways cannot share a registry.
	Registry *prometheus.Registry

	// DrawSeed, when not zero, seeds the random order of fair draws (tests); zero means a seed
	// from crypto/rand for each policy.
	DrawSeed uint64
	// MaxDraws bounds the fair draws a policy runs at once; zero means DefaultMaxDraws.
	MaxDraws int
	// MaxDrawCandidates bounds the candidates of one fair draw; zero means
	// DefaultMaxDrawCandidates.
	MaxDrawCandidates int

	// SharedState, when set, keeps the state of every policy's drivers (feed pacing, the
	// accept quota and its in-flight slots, shown offers) in Redis through this client,
	// whatever the config says (tests, embedding); nil means what the config says: a policy
	// with spec.sharedState shares its state through a client made from it (redisconn.go),
	// one without keeps it in this process (docs/design.md#shared-state-on-redis). Drivers
	// and offers of a shared policy are named by a hash every replica computes alike
	// (hash.go), whatever HashSeed is.
	SharedState *SharedState
	// RedisCredentialsDir is where the Secrets of shared state are mounted, one directory
	// per Secret; empty means gatewayconfig.RedisCredentialsDir.
	RedisCredentialsDir string

	// HashSeed, when set, is the seed of the hash that names drivers and offers in this
	// process's own state (tests); nil means a random seed per Gateway.
	HashSeed *maphash.Seed
}

// SharedState is where a gateway shares driver state.
type SharedState struct {
	// Client is the Redis client: standalone, Sentinel or Cluster (every script touches the
	// keys of one driver, under one hash tag). It must be made with ContextTimeoutEnabled
	// (New refuses a *redis.Client or *redis.ClusterClient without it): otherwise its socket
	// reads wait for its ReadTimeout, not Timeout, when Redis is frozen or slow.
	Client redis.UniversalClient
	// Timeout bounds each Redis call; zero means DefaultSharedStateTimeout. A call that fails
	// or times out is decided as OnUnavailable says.
	Timeout time.Duration
	// OnUnavailable is what a governed request gets while Redis cannot be reached (a call
	// failed or timed out, or the breaker is open): Local (the default, also for "") decides
	// with this gateway's own state; Allow lets the request through, counted as a fallback.
	OnUnavailable gatewayconfig.OnUnavailable
	// BreakerFailures is how many calls in a row must fail before the circuit breaker opens
	// and the gateway stops calling Redis; zero means DefaultBreakerFailures.
	BreakerFailures int
	// BreakerCooldown is how long the breaker stays open before one call probes Redis again
	// (on the gateway's Clock); zero means DefaultBreakerCooldown.
	BreakerCooldown time.Duration
}

// Defaults of SharedState.
const (
	DefaultSharedStateTimeout = 20 * time.Millisecond
	DefaultBreakerFailures    = 5
	DefaultBreakerCooldown    = 2 * time.Second
)

// Gateway is the offerfeed gateway: an http.Handler that applies the policy of its pod to each
// request and forwards what it allows to the offer service. Make one with New, give it a
// config with Apply (or LoadFile / Watch), and serve AdminHandler on the admin port.
type Gateway struct {
	opts   Options
	log    logr.Logger
	clock  clock.WithDelayedExecution
	now    func() time.Time // clock.Now; time.Now itself for the real clock (the hot path)
	epoch  time.Time
	seed   maphash.Seed
	reg    *prometheus.Registry
	m      *metrics
	dm     *drawMetrics
	shared *sharedRuntime // with SharedState: the client, its breaker and metrics
	// sharedV are the shared store's metrics (registered with the first shared store) and
	// sharedRT the runtime of the policy in force (for the breaker gauge).
	sharedMu sync.Mutex
	sharedV  *sharedVecs
	sharedRT atomic.Pointer[sharedRuntime]
	proxy    http.Handler
	maxBody  int64
	draining atomic.Bool

	active atomic.Pointer[active]

	// mu serializes config changes and guards the fields below.
	mu        sync.Mutex
	labels    labels.Set
	gen       uint64
	lastError string
	lastErrAt time.Time
	source    string // the config file, when loaded from one
	fileSum   string // hash of the last config file bytes read (good or bad)
	// missingSince is when the config file was found missing (absent, or a dangling
	// symlink); zero while it is there. sourceMissing mirrors it for the metric.
	missingSince  time.Time
	sourceMissing atomic.Bool
	// retained is the driver state of the last policy in force, kept while no policy is: a
	// policy that comes back (removed from the config and restored, a selector that stops and
	// starts matching) finds its drivers as they were. It is let go as soon as a policy is in
	// force again (its own state or a new one), so that one table at most lives at a time.
	retained *driverTable
	// redis is the client of the shared state of the policy in force (nil: none), closed when
	// a config no longer uses its settings.
	redis *redisConn
	// inForceSum is the hash of the config bytes in force (from the file or the watch), to
	// tell an equal generation with the same bytes (no-op) from one with other bytes.
	inForceSum string
	// applied is closed, and replaced, whenever a config is put in force (Applied).
	applied chan struct{}
	sm      *sourceMetrics
	// labelsPushed is set once the pod's labels came from the API server.
	labelsPushed atomic.Bool
}

// active is the config in force. It is replaced whole on every change.
type active struct {
	cfg        *gatewayconfig.Config // nil: no config
	configHash string
	policy     *policy // nil: no policy matches; proxy everything
	detail     string
	gen        uint64
	// shared is the policy's shared state from the config, and redis its client (nil
	// without, or when Options.SharedState overrides the config).
	shared *gatewayconfig.SharedState
	redis  *redisConn
	source string // where cfg came from: SourceFile, SourceWatch or SourceAPI
}

// New makes a Gateway with no config: it proxies everything until Apply gives it one.
func New(opts Options) (*Gateway, error) {
	if opts.Upstream == nil || opts.Upstream.Scheme == "" || opts.Upstream.Host == "" {
		return nil, errors.New("gateway: Options.Upstream must be an absolute URL such as http://127.0.0.1:8080")
	}
	if ss := opts.SharedState; ss != nil {
		if ss.Client == nil {
			return nil, errNoSharedClient
		}
		switch ss.OnUnavailable {
		case "", gatewayconfig.OnUnavailableLocal, gatewayconfig.OnUnavailableAllow:
		default:
			return nil, fmt.Errorf("gateway: SharedState.OnUnavailable %q is not Local or Allow", ss.OnUnavailable)
		}
	}
	if opts.RedisCredentialsDir == "" {
		opts.RedisCredentialsDir = gatewayconfig.RedisCredentialsDir
	}
	if opts.MaxTrackedDrivers <= 0 {
		opts.MaxTrackedDrivers = DefaultMaxTrackedDrivers
	}
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if opts.MaxAcceptBody <= 0 {
		opts.MaxAcceptBody = DefaultMaxAcceptBody
	}
	if opts.BodyTimeout == 0 {
		opts.BodyTimeout = DefaultBodyTimeout
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	g := &Gateway{
		opts:    opts,
		log:     opts.Logger,
		clock:   opts.Clock,
		reg:     opts.Registry,
		maxBody: opts.MaxAcceptBody,
		labels:  labels.Set(opts.PodLabels),
	}
	if opts.HashSeed != nil {
		g.seed = *opts.HashSeed
	} else {
		g.seed = maphash.MakeSeed()
	}
	if g.log.GetSink() == nil {
		g.log = logr.Discard()
	}
	if g.clock == nil {
		g.clock = clock.RealClock{}
	}
	g.now = g.clock.Now
	if _, real := g.clock.(clock.RealClock); real {
		g.now = time.Now
	}
	g.epoch = g.now()
	if g.reg == nil {
		g.reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(g.reg, g)
	if err != nil {
		return nil, err
	}
	g.m = m
	if g.sm, err = newSourceMetrics(g.reg, g); err != nil {
		return nil, err
	}
	g.applied = make(chan struct{})
	if g.dm, err = newDrawMetrics(g.reg, g); err != nil {
		return nil, err
	}
	if opts.SharedState != nil {
		if g.shared, err = g.newSharedRuntime(opts.SharedState); err != nil {
			return nil, err
		}
	}
	g.proxy = g.newProxy()
	g.active.Store(&active{detail: "no config loaded; proxying everything unchanged"})
	return g, nil
}

// nowNS is the gateway clock: ns since the gateway was made (monotonic with the real clock).
func (g *Gateway) nowNS() int64 { return int64(g.now().Sub(g.epoch)) }

// Apply puts cfg in force: it validates cfg, picks the first policy whose selector matches the
// pod's labels, and keeps the driver state when that policy is the one in force already (same
// namespace, name and identity header), or was the last one in force before a config without
// a policy for this pod. A nil cfg means no config: proxy everything. An invalid
// cfg is refused, counted as a reload failure, and the config in force stays.
func (g *Gateway) Apply(cfg *gatewayconfig.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.applyLocked(cfg, SourceAPI); err != nil {
		g.failLocked(err)
		return err
	}
	g.inForceSum = ""
	return nil
}

// applyLocked puts cfg in force, read from source (SourceFile, SourceWatch, SourceAPI; empty
// for no config).
// botScoreSharedWarning is logged, and added to /readyz detail, when the policy in force has
// botScore and shared state: the shared store keeps no signals yet
// (docs/design.md#bot-likeness-signals), so the score never forms.
const botScoreSharedWarning = "botScore is not enforced with sharedState: the shared store keeps no bot-likeness signals yet"

func (g *Gateway) applyLocked(cfg *gatewayconfig.Config, source string) error {
	next := &active{cfg: cfg, source: source}
	prev := g.active.Load()
	stateKept := false
	if cfg == nil {
		next.detail = "no config file; proxying everything unchanged"
	} else {
		if err := gatewayconfig.Validate(cfg); err != nil {
			return fmt.Errorf("config refused: %w", err)
		}
		b, err := gatewayconfig.Marshal(cfg)
		if err != nil {
			return err
		}
		next.configHash = gatewayconfig.Hash(b)
		if g.opts.Namespace != "" && cfg.Namespace != "" && cfg.Namespace != g.opts.Namespace {
			g.log.Info("config is for another namespace", "configNamespace", cfg.Namespace, "podNamespace", g.opts.Namespace)
		}
		var chosen *gatewayconfig.Policy
		for i := range cfg.Policies {
			sel, err := metav1.LabelSelectorAsSelector(&cfg.Policies[i].Selector)
			if err != nil {
				return fmt.Errorf("policies[%d] (%s): selector: %w", i, cfg.Policies[i].Name, err)
			}
			if g.opts.PolicyName != "" {
				if cfg.Policies[i].Name == g.opts.PolicyName {
					chosen = &cfg.Policies[i]
					break
				}
				continue
			}
			if sel.Matches(g.labels) {
				chosen = &cfg.Policies[i]
				break
			}
		}
		if chosen == nil && g.opts.PolicyName != "" {
			next.detail = fmt.Sprintf("no policy named %s in the config; proxying everything unchanged", g.opts.PolicyName)
		} else if chosen == nil {
			next.detail = fmt.Sprintf("no policy of %d in the config matches this pod's labels; proxying everything unchanged", len(cfg.Policies))
		} else {
			key := stateKey(cfg.Namespace, chosen)
			ids := localHasher(g.seed)
			shared := g.opts.SharedState
			if ss := chosen.SharedState; shared == nil && ss != nil {
				next.shared, next.redis = ss, g.redisConnFor(&ss.Redis)
				if next.redis.client != nil {
					shared = &SharedState{Client: next.redis.client, Timeout: ss.Timeout.D(), OnUnavailable: ss.OnUnavailable}
				}
			}
			if shared != nil {
				// Every replica names drivers and offers alike (hash.go); a table of the
				// other hash is another table.
				ids = sharedHasher(key)
				key += "\x00shared"
			}
			p, err := compilePolicy(chosen, ids)
			if err != nil {
				return err
			}
			stateKept = true
			switch {
			case prev.policy != nil && prev.policy.table.key == key:
				p.table = prev.policy.table
			case g.retained != nil && g.retained.key == key:
				p.table = g.retained
			default:
				p.table = newDriverTable(key, g.opts.MaxTrackedDrivers)
				stateKept = false
			}
			p.table.bindPolicy(p)
			p.store = p.table
			if shared != nil {
				rt := g.shared // Options.SharedState overrides the config
				if rt == nil {
					if rt, err = next.redis.runtime(g, shared); err != nil {
						return err
					}
				}
				g.sharedRT.Store(rt)
				p.store = g.newSharedStore(key, p.table, rt)
			}
			g.retained = nil
			g.m.bindCounters(p)
			next.policy = p
			next.detail = fmt.Sprintf("policy %s (%s) in force, mode %s", chosen.Name, chosen.Hash, chosen.Mode)
			g.bindDraws(prev.policy, p, chosen)
			if f := chosen.Accept; f != nil && f.Fairness != nil {
				next.detail += fmt.Sprintf("; fair draws: window %s, award %s", f.Fairness.Window.D(), f.Fairness.Award)
			}
			if chosen.BotScore != nil && shared != nil {
				// The Redis store keeps no signals yet: no score, so no bot-like refusal and
				// no weighting of shared draws, except on decisions of the local fallback.
				next.detail += "; " + botScoreSharedWarning
				g.log.Info(botScoreSharedWarning, "policy", chosen.Name)
			}
		}
	}
	if next.policy == nil && prev.policy != nil {
		g.retained = prev.policy.table
	}
	g.gen++
	next.gen = g.gen
	g.active.Store(next)
	g.notifyAppliedLocked()
	stopReplacedDraws(prev.policy, next.policy)
	if g.redis != next.redis {
		// Calls in flight on the old client fail, and are decided without it.
		g.redis.close()
		g.redis = next.redis
	}
	g.m.generation.Set(float64(g.gen))
	g.m.policyInfo.Reset()
	if p := next.policy; p != nil {
		g.m.policyInfo.WithLabelValues(p.name, p.hash, p.mode).Set(1)
		g.log.Info("config applied", "generation", g.gen, "configHash", next.configHash, "policy", p.name, "policyHash", p.hash, "mode", p.mode,
			"stateKept", stateKept)
	} else {
		g.log.Info("config applied; no policy in force, proxying everything unchanged", "generation", g.gen, "configHash", next.configHash, "detail", next.detail)
	}
	g.lastError, g.lastErrAt = "", time.Time{}
	return nil
}

// failLocked records a refused config: logged, counted, and shown in /readyz.
func (g *Gateway) failLocked(err error) {
	g.m.reloadFailures.Inc()
	g.lastError, g.lastErrAt = err.Error(), g.clock.Now()
	a := g.active.Load()
	g.log.Error(err, "config refused; the last good config stays in force", "generation", a.gen, "configHash", a.configHash)
}

// SetPodLabels changes the pod's labels and picks the policy again from the config in force.
func (g *Gateway) SetPodLabels(l map[string]string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if labels.Equals(g.labels, l) {
		return nil
	}
	g.labels = labels.Set(l)
	if err := g.applyLocked(g.active.Load().cfg, g.active.Load().source); err != nil {
		g.failLocked(err)
		return err
	}
	return nil
}

// SetPushedPodLabels changes the pod's labels as the API server shows them (the watch of the
// gateway's own pod) and picks the policy again. From then on the downward API labels file is
// ignored: it is a later copy of the same labels and would only take the pod back.
func (g *Gateway) SetPushedPodLabels(l map[string]string) error {
	g.labelsPushed.Store(true)
	return g.SetPodLabels(l)
}

// SetDraining marks the gateway as shutting down: /readyz answers 503 from then on, the open
// windows of fair draws close at once (their draws run, so every held accept is answered) and
// later accepts are forwarded as usual.
func (g *Gateway) SetDraining() {
	g.draining.Store(true)
	// Held accepts are answered: every open fair draw window closes now and its draw runs.
	g.stopDraws()
}

// Close releases what the config made the gateway hold: the Redis client of its shared
// state, at shutdown. Requests served after it are decided without Redis.
func (g *Gateway) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.redis.close()
}

// Registry returns the registry holding the gateway's metrics.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

func (g *Gateway) trackedDrivers() int {
	if p := g.active.Load().policy; p != nil {
		return p.table.len()
	}
	return 0
}

func (g *Gateway) evictedDrivers() uint64 {
	if p := g.active.Load().policy; p != nil {
		return p.table.evictions()
	}
	return 0
}

func (g *Gateway) evictedDriversFrom(a area) uint64 {
	if p := g.active.Load().policy; p != nil {
		return p.table.evicted[a].Load()
	}
	return 0
}

// Status is the gateway's state as /readyz reports it.
type Status struct {
	Ready        bool   `json:"ready"`
	Draining     bool   `json:"draining,omitempty"`
	ConfigFile   string `json:"configFile,omitempty"`
	ConfigLoaded bool   `json:"configLoaded"`
	// ConfigGeneration is the generation of the config in force, as the operator numbered it
	// (0 for a config without one); ConfigSource is where it came from: watch (pushed by the
	// API server), file (the mounted ConfigMap) or api (Gateway.Apply).
	ConfigGeneration int64  `json:"configGeneration"`
	ConfigSource     string `json:"configSource,omitempty"`
	// ConfigFileMissing is set while the config file is absent (or a dangling symlink, as
	// when the kubelet's ..data points nowhere); the last good config, if any, stays in force.
	ConfigFileMissing      bool       `json:"configFileMissing,omitempty"`
	ConfigFileMissingSince *time.Time `json:"configFileMissingSince,omitempty"`
	ConfigHash             string     `json:"configHash,omitempty"`
	Generation             uint64     `json:"generation"`
	Policy                 string     `json:"policy,omitempty"`
	PolicyHash             string     `json:"policyHash,omitempty"`
	Mode                   string     `json:"mode,omitempty"`
	Detail                 string     `json:"detail"`
	LastReloadError        string     `json:"lastReloadError,omitempty"`
	LastReloadAt           *time.Time `json:"lastReloadErrorTime,omitempty"`
	TrackedDrivers         int        `json:"trackedDrivers"`
	MaxDrivers             int        `json:"maxTrackedDrivers"`
	// SharedState is the Redis the policy in force shares its state through; absent when
	// its state is this gateway's own.
	SharedState *SharedStateStatus `json:"sharedState,omitempty"`
}

// Status returns the gateway's state: the config and policy in force and the last reload error.
func (g *Gateway) Status() Status {
	s, a := g.status()
	if ss := a.shared; ss != nil && a.policy != nil {
		// Outside g.mu: a PING takes up to the policy's timeout.
		st := &SharedStateStatus{Mode: string(ss.Redis.Mode), Addresses: ss.Redis.Addresses, Secret: ss.Redis.CredentialsSecret,
			Timeout: ss.Timeout.D().String(), OnUnavailable: string(ss.OnUnavailable)}
		st.Connected, st.Detail = a.redis.status(ss.Timeout.D(), time.Now())
		if rt := a.redis.rt; rt != nil {
			rt.fillStatus(st)
		}
		s.SharedState = st
	}
	return s
}

func (g *Gateway) status() (Status, *active) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.active.Load()
	s := Status{
		Ready:           !g.draining.Load(),
		Draining:        g.draining.Load(),
		ConfigFile:      g.source,
		ConfigLoaded:    a.cfg != nil,
		ConfigHash:      a.configHash,
		Generation:      a.gen,
		ConfigSource:    a.source,
		Detail:          a.detail,
		LastReloadError: g.lastError,
		MaxDrivers:      g.opts.MaxTrackedDrivers,
	}
	if a.cfg != nil {
		s.ConfigGeneration = a.cfg.Generation
	}
	if !g.lastErrAt.IsZero() {
		t := g.lastErrAt
		s.LastReloadAt = &t
	}
	if g.shared != nil {
		s.SharedState = &SharedStateStatus{Timeout: g.shared.timeout.String()}
		g.shared.fillStatus(s.SharedState)
	}
	if !g.missingSince.IsZero() {
		t := g.missingSince
		s.ConfigFileMissing, s.ConfigFileMissingSince = true, &t
		if a.cfg != nil {
			s.Detail += "; the config file is missing since " + t.UTC().Format(time.RFC3339) + ": the last good config stays in force"
		}
	}
	if p := a.policy; p != nil {
		s.Policy, s.PolicyHash = p.name, p.hash
		s.Mode = p.mode
		s.TrackedDrivers = p.table.len()
		s.MaxDrivers = p.table.capacity()
	}
	return s, a
}
