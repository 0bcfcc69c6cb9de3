package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus metrics, in its own registry.
type metrics struct {
	decisions      *prometheus.CounterVec
	generation     prometheus.Gauge
	reloadFailures prometheus.Counter
	policyInfo     *prometheus.GaugeVec
	upstream       [numRoutes]prometheus.Observer
	upstreamErrors *prometheus.CounterVec
	bodyTimeouts   prometheus.Counter
	botScore       *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, g *Gateway) (*metrics, error) {
	m := &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offerfeed_gateway_decisions_total",
			Help: "Decisions on requests of governed routes, by policy, route (feed, accept) and decision (allowed or the refusal); in DryRun the decision flagged.",
		}, []string{"policy", "route", "decision"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "offerfeed_gateway_config_generation",
			Help: "Number of configs applied since start (the first load included).",
		}),
		reloadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "offerfeed_gateway_config_reload_failures_total",
			Help: "Config files refused (unreadable, not valid); the last good config stays in force.",
		}),
		policyInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "offerfeed_gateway_policy_info",
			Help: "1 for the policy in force on this gateway, with its hash and mode.",
		}, []string{"policy", "hash", "mode"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offerfeed_gateway_upstream_errors_total",
			Help: "Requests the gateway could not get an answer for from the offer service, by kind (unreachable: 502, timeout: 504, canceled: the client went away).",
		}, []string{"kind"}),
		botScore: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "offerfeed_gateway_bot_score",
			Help:    "Bot-likeness scores of the drivers, one observation per governed request forwarded with a formed score (header OfferFeed-Score), by policy.",
			Buckets: []float64{.1, .2, .3, .4, .5, .6, .7, .8, .9, .95},
		}, []string{"policy"}),
		bodyTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "offerfeed_gateway_request_body_timeouts_total",
			Help: "Requests whose client did not send the body within --body-timeout; their connections were closed.",
		}),
	}
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "offerfeed_gateway_upstream_duration_seconds",
		Help:    "Time from forwarding a request to the offer service's response headers, by route (feed, accept, other).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route"})
	for r := route(0); r < numRoutes; r++ {
		m.upstream[r] = hist.WithLabelValues(routeNames[r])
	}
	tracked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "offerfeed_gateway_tracked_drivers",
		Help: "Drivers whose state the gateway holds (at most --max-tracked-drivers).",
	}, func() float64 { return float64(g.trackedDrivers()) })
	missing := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "offerfeed_gateway_config_source_missing",
		Help: "1 while the config file is missing (absent, or a dangling ..data symlink): the last good config stays in force, or, when none was ever read, everything is proxied unchanged.",
	}, func() float64 {
		if g.sourceMissing.Load() {
			return 1
		}
		return 0
	})
	trackedLimit := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "offerfeed_gateway_tracked_drivers_limit",
		Help: "The most drivers whose state the gateway holds (--max-tracked-drivers); beyond it new identities, then the drivers of least value, are forgotten.",
	}, func() float64 { return float64(g.opts.MaxTrackedDrivers) })
	reloadOK := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "offerfeed_gateway_config_last_reload_successful",
		Help: "0 while the last config the gateway read was refused (the last good one stays in force, /readyz says why), else 1.",
	}, func() float64 {
		if g.Status().LastReloadError != "" {
			return 0
		}
		return 1
	})
	var evictions [numAreas]prometheus.Collector
	for a := range numAreas {
		evictions[a] = prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "offerfeed_gateway_evicted_drivers_total",
			Help:        "Drivers forgotten to keep the state within its bound, by the area of the driver table they left (probation: new identities not kept; main: a driver of least value replaced).",
			ConstLabels: prometheus.Labels{"area": areaNames[a]},
		}, func() float64 { return float64(g.evictedDriversFrom(a)) })
	}
	if err := registerAll(reg, m.decisions, m.botScore, m.generation, m.reloadFailures, m.policyInfo, m.upstreamErrors, m.bodyTimeouts, hist,
		tracked, trackedLimit, reloadOK, evictions[areaProbation], evictions[areaMain], missing, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	return m, nil
}

// registerAll registers the gateway's collectors with reg.
func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("gateway: registering metrics (each gateway needs a registry of its own): %w", err)
		}
	}
	return nil
}

// bindCounters resolves the decision counters of a policy once, at config load, so that the
// hot path does not look up label values.
func (m *metrics) bindCounters(p *policy) {
	for r := routeFeed; r <= routeAccept; r++ {
		for d := Decision(0); d < numDecisions; d++ {
			p.counters[r][d] = m.decisions.WithLabelValues(p.name, routeNames[r], d.String())
		}
	}
	p.scoreObs = m.botScore.WithLabelValues(p.name)
}
