package controllers

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
)

// PolicyConditionMetric is the name of the gauge that exports the conditions of the policies.
const PolicyConditionMetric = "offerfeed_policy_condition"

// policyConditions is 1 for each condition of each policy, labelled with its current status
// and reason: one series per policy and condition type at any time (a status change replaces
// the series), so the cardinality is the number of policies times four at most.
var policyConditions = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: PolicyConditionMetric,
	Help: "1 for each condition (Accepted, Programmed, Ready, Enforced, Stalled) of each OfferFeedPolicy, with its status and reason; " +
		"exported by the manager that reconciles (the leader).",
}, []string{"namespace", "policy", "type", "status", "reason"})

func init() {
	metrics.Registry.MustRegister(policyConditions)
}

// conditionSeries remembers the label sets of policyConditions that this process set, per
// namespace, so that the series of a changed status or a deleted policy are removed.
type conditionSeries struct {
	mu   sync.Mutex
	byNS map[string]map[[4]string]struct{} // namespace -> {policy, type, status, reason}
}

// seriesOfProcess is shared by every reconciler of the process, as the gauge is.
var seriesOfProcess = &conditionSeries{byNS: map[string]map[[4]string]struct{}{}}

// record makes policyConditions hold exactly the conditions of policies for namespace ns:
// new series first, then the stale ones removed, so that a scrape never misses a policy.
func (s *conditionSeries) record(ns string, policies []v1alpha1.OfferFeedPolicy) {
	want := make(map[[4]string]struct{}, 3*len(policies))
	for i := range policies {
		p := &policies[i]
		for _, c := range p.Status.Conditions {
			want[[4]string{p.Name, c.Type, string(c.Status), c.Reason}] = struct{}{}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range want {
		policyConditions.WithLabelValues(ns, k[0], k[1], k[2], k[3]).Set(1)
	}
	for k := range s.byNS[ns] {
		if _, ok := want[k]; !ok {
			policyConditions.DeleteLabelValues(ns, k[0], k[1], k[2], k[3])
		}
	}
	if len(want) == 0 {
		delete(s.byNS, ns)
		return
	}
	s.byNS[ns] = want
}
