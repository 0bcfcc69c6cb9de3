package push

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the gateway's API requests, watches and reports.
type metrics struct {
	requests       *prometheus.CounterVec
	up             *prometheus.GaugeVec
	failures       *prometheus.CounterVec
	events         *prometheus.CounterVec
	reports        prometheus.Counter
	reportFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offerfeed_gateway_kube_requests_total",
			Help: "Requests the gateway sent to the API server, by method and status code (\"error\": no answer).",
		}, []string{"method", "code"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "offerfeed_gateway_kube_watch_up",
			Help: "1 while the watch (configmap: offerfeed-gateway, pod: the gateway's own) is open, else 0.",
		}, []string{"watch"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offerfeed_gateway_kube_watch_failures_total",
			Help: "Lists and watches that failed or ended early, by watch; each is retried after a backoff with full jitter.",
		}, []string{"watch"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offerfeed_gateway_kube_watch_events_total",
			Help: "Objects received by list or watch (bookmarks apart), by watch.",
		}, []string{"watch"}),
		reports: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "offerfeed_gateway_pod_reports_total",
			Help: "Patches of the pod's annotations offerfeed.dev/enforced-policy-hash and offerfeed.dev/enforced-generation.",
		}),
		reportFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "offerfeed_gateway_pod_report_failures_total",
			Help: "Failed patches of the pod's annotations; retried with backoff.",
		}),
	}
	for _, w := range []string{"configmap", "pod"} {
		m.up.WithLabelValues(w)
		m.failures.WithLabelValues(w)
		m.events.WithLabelValues(w)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.up, m.failures, m.events, m.reports, m.reportFailures} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return nil, err
		}
	}
	return m, nil
}

// counting counts the requests that pass through it.
type counting struct {
	next http.RoundTripper
	m    *metrics
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	c.m.requests.WithLabelValues(r.Method, code).Inc()
	return resp, err
}
