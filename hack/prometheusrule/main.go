// Command prometheusrule writes config/prometheus/prometheusrule.yaml, the PrometheusRule that
// wraps the groups of config/prometheus/offerfeed.rules.yaml, to standard output. `make
// generate` runs it:
//
//	go run ./hack/prometheusrule > config/prometheus/prometheusrule.yaml
package main

import (
	"fmt"
	"os"

	"github.com/offerfeed/offerfeed/config/prometheus"
)

func main() {
	out, err := prometheus.PrometheusRule(prometheus.Rules)
	if err != nil {
		fmt.Fprintln(os.Stderr, "prometheusrule:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}
