// Package drift holds the tests that keep the copies of one fact from drifting apart: every
// bound, pattern, enum and label format of the OfferFeedPolicy CRD against the gateway's
// parser and the JSON Schema of the gateway config (rules_test.go), and the Kubernetes version of the test
// control plane against every place that names it (version_test.go). They need no cluster.
package drift
