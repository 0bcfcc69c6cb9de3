package cmd

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/offerfeed/offerfeed/internal/operator"
)

func init() {
	register("manager", "run the operator: reconcile OfferFeedPolicies into gateway config", runManager)
}

func runManager(args []string) int {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var opts operator.Options
	fs.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint; 0 turns it off")
	fs.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	fs.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect a leader among manager replicas; only the leader reconciles")
	fs.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader Lease (default: the manager's own)")
	fs.StringVar(&opts.PodSelector, "pod-selector", "", "only cache and count pods with these labels (label selector); default all pods")
	fs.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "namespaces reconciled at once")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("manager")

	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "offerfeed manager: %v\n", err)
		return 1
	}
	mgr, err := operator.NewManager(cfg, opts)
	if err != nil {
		log.Error(err, "unable to create manager")
		return 1
	}
	log.Info("starting manager", "leaderElection", opts.LeaderElection)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped with an error")
		return 1
	}
	return 0
}
