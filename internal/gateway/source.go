package gateway

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Where a config in force came from (/readyz configSource, the source label of the metrics).
const (
	// SourceWatch is a config pushed by the API server: the gateway's watch of its namespace's
	// ConfigMap offerfeed-gateway (package internal/gateway/push).
	SourceWatch = "watch"
	// SourceFile is the config file mounted from that ConfigMap by the kubelet: the start-up
	// and fallback source.
	SourceFile = "file"
	// SourceAPI is a config given with Gateway.Apply (tests, tools).
	SourceAPI = "api"
)

// sourceMetrics tell where the config in force came from and what was ignored as stale.
type sourceMetrics struct {
	stale *prometheus.CounterVec
}

func newSourceMetrics(reg prometheus.Registerer, g *Gateway) (*sourceMetrics, error) {
	sm := &sourceMetrics{stale: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "offerfeed_gateway_config_stale_total",
		Help: "Configs ignored because their generation is below the one in force (a late copy of the mounted file, a watch behind), by source (watch, file).",
	}, []string{"source"})}
	enforced := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "offerfeed_gateway_enforced_config_generation",
		Help: "The generation of the config in force, as the operator numbered it (0: no config, or one without a generation).",
	}, func() float64 {
		if c := g.active.Load().cfg; c != nil {
			return float64(c.Generation)
		}
		return 0
	})
	for _, s := range []string{SourceWatch, SourceFile} {
		sm.stale.WithLabelValues(s)
	}
	sources := make([]prometheus.Collector, 0, 3)
	for _, s := range []string{SourceWatch, SourceFile, SourceAPI} {
		sources = append(sources, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "offerfeed_gateway_config_source",
			Help:        "1 for the source of the config in force (watch: pushed by the API server; file: the mounted ConfigMap; api: Gateway.Apply), else 0.",
			ConstLabels: prometheus.Labels{"source": s},
		}, func() float64 {
			if g.active.Load().source == s {
				return 1
			}
			return 0
		}))
	}
	if err := registerAll(reg, append(sources, sm.stale, enforced)...); err != nil {
		return nil, err
	}
	return sm, nil
}

// ApplyPushed applies config data pushed by the API server (the watch of ConfigMap
// offerfeed-gateway), under the same rule as the mounted file: it is put in force only when its
// generation is at least the one in force, and the same generation with the same bytes changes
// nothing. An invalid config is refused (logged, counted, in /readyz) and the last good one
// stays.
func (g *Gateway) ApplyPushed(data []byte) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.offerLocked(data, gatewayconfig.Hash(data), SourceWatch, "pushed config")
}

// offerLocked parses config data read from source and puts it in force unless it is older
// than the config in force (docs/design.md#config-travel). sum is gatewayconfig.Hash(data);
// what names the data in errors.
func (g *Gateway) offerLocked(data []byte, sum, source, what string) error {
	cfg, err := gatewayconfig.Parse(data)
	if err != nil {
		err = fmt.Errorf("%s (%s) refused: %w", what, sum, err)
		g.failLocked(err)
		return err
	}
	a := g.active.Load()
	if a.cfg != nil {
		// A valid config that is not applied is no reload failure: the last error clears.
		switch inForce := a.cfg.Generation; {
		case cfg.Generation < inForce:
			g.sm.stale.WithLabelValues(source).Inc()
			g.log.Info("config older than the one in force ignored", "source", source, "generation", cfg.Generation,
				"enforcedGeneration", inForce, "enforcedSource", a.source)
			g.lastError, g.lastErrAt = "", time.Time{}
			return nil
		case cfg.Generation == inForce && sum == g.inForceSum:
			g.lastError, g.lastErrAt = "", time.Time{}
			return nil
		}
	}
	if err := g.applyLocked(cfg, source); err != nil {
		g.failLocked(err)
		return err
	}
	g.inForceSum = sum
	return nil
}

// Enforced is what a gateway enforces for its pod, as it reports it on the pod.
type Enforced struct {
	// PolicyHash is the hash of the policy in force, or "" when none applies.
	PolicyHash string
	// Generation is the generation of the config in force (0: none, or one without a number).
	Generation int64
	// Loaded is false until a config was put in force.
	Loaded bool
}

// Enforced returns what the gateway enforces now and a channel closed when that may change (a
// config or pod labels applied).
func (g *Gateway) Enforced() (Enforced, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.active.Load()
	var e Enforced
	if a.cfg != nil {
		e.Loaded, e.Generation = true, a.cfg.Generation
	}
	if a.policy != nil {
		e.PolicyHash = a.policy.hash
	}
	return e, g.applied
}

// notifyAppliedLocked wakes those waiting on the channel Enforced returned.
func (g *Gateway) notifyAppliedLocked() {
	close(g.applied)
	g.applied = make(chan struct{})
}
