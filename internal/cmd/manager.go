package cmd

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

func init() {
	register("manager", "run the operator: reconcile OfferFeedPolicies into gateway config", runManager)
}

func runManager(args []string) int {
	opts, zapOpts, err := parseManagerFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		if !errors.Is(err, errFlagParse) {
			fmt.Fprintf(os.Stderr, "offerfeed manager: %v\n", err)
		}
		return 2
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(zapOpts)))
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
	log.Info("starting manager", "leaderElection", opts.LeaderElection, "gatewayImage", opts.Gateway.Image)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped with an error")
		return 1
	}
	return 0
}

// errFlagParse marks an error the flag package has already printed.
var errFlagParse = errors.New("bad flags")

// parseManagerFlags parses the command line of `offerfeed manager` (without the subcommand).
func parseManagerFlags(args []string) (operator.Options, *zap.Options, error) {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var opts operator.Options
	fs.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8443", "address of the Prometheus /metrics endpoint; 0 turns it off")
	fs.BoolVar(&opts.MetricsSecure, "metrics-secure", true, "serve /metrics over HTTPS to clients the API server authenticates and authorizes (get on the URL /metrics); false serves plain HTTP to anyone")
	fs.StringVar(&opts.MetricsCertDir, "metrics-cert-dir", "", "directory with tls.crt and tls.key for secure metrics (reloaded on change); without them a self-signed certificate is used")
	fs.BoolVar(&opts.EnableHTTP2, "enable-http2", false, "let the metrics and webhook servers speak HTTP/2 (off: HTTP/2 stream resets are a denial-of-service risk)")
	fs.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	fs.BoolVar(&opts.LeaderElection, "leader-elect", true, "elect a leader among manager replicas; only the leader reconciles")
	fs.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader Lease (default: the manager's own)")
	fs.StringVar(&opts.PodSelector, "pod-selector", "", "only cache and count pods with these labels (label selector); default all pods")
	fs.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "namespaces reconciled at once")
	fs.StringVar(&opts.Gateway.Image, "gateway-image", "", "image of the gateway sidecar that the pod injection webhook adds (normally the manager's own); empty turns the webhook off")
	pullPolicy := fs.String("gateway-image-pull-policy", "", "pull policy of the gateway sidecar: Always, IfNotPresent or Never (default: the API server's)")
	port := fs.Int("gateway-port", int(webhook.DefaultPort), "the gateway's proxy port in injected pods (container port named offerfeed)")
	adminPort := fs.Int("gateway-admin-port", int(webhook.DefaultAdminPort), "the gateway's admin port in injected pods (/metrics, /healthz, /readyz; named offerfeed-admin)")
	gatewayResources := map[string]*string{
		"cpu-request":    fs.String("gateway-cpu-request", "50m", "CPU request of the gateway sidecar; empty for none"),
		"memory-request": fs.String("gateway-memory-request", "64Mi", "memory request of the gateway sidecar; empty for none"),
		"cpu-limit":      fs.String("gateway-cpu-limit", "", "CPU limit of the gateway sidecar; empty for none"),
		"memory-limit":   fs.String("gateway-memory-limit", "256Mi", "memory limit of the gateway sidecar (its GOMEMLIMIT follows it); empty for none"),
	}
	fs.IntVar(&opts.WebhookPort, "webhook-port", operator.DefaultWebhookPort, "port of the webhook server (HTTPS)")
	fs.StringVar(&opts.WebhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with the webhook server's tls.crt and tls.key (reloaded on change)")
	zapOpts := &zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return opts, nil, err
		}
		return opts, nil, errFlagParse
	}
	if fs.NArg() > 0 {
		return opts, nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch p := corev1.PullPolicy(*pullPolicy); p {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		opts.Gateway.ImagePullPolicy = p
	default:
		return opts, nil, fmt.Errorf("--gateway-image-pull-policy %q: want Always, IfNotPresent or Never", p)
	}
	for _, p := range []*int{port, adminPort, &opts.WebhookPort} {
		if *p < 1 || *p > 65535 {
			return opts, nil, fmt.Errorf("port %d out of range 1-65535", *p)
		}
	}
	opts.Gateway.Port, opts.Gateway.AdminPort = int32(*port), int32(*adminPort)
	resources, err := sidecarResources(gatewayResources)
	if err != nil {
		return opts, nil, err
	}
	opts.Gateway.Resources = resources
	if opts.Gateway.Image != "" {
		if err := opts.Gateway.Validate(); err != nil {
			return opts, nil, err
		}
	}
	return opts, zapOpts, nil
}

// sidecarResources turns the --gateway-{cpu,memory}-{request,limit} flags (keyed without the
// prefix) into the sidecar's resources; an empty flag leaves its entry out.
func sidecarResources(flags map[string]*string) (*corev1.ResourceRequirements, error) {
	r := &corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for key, v := range flags {
		if *v == "" {
			continue
		}
		q, err := resource.ParseQuantity(*v)
		if err != nil {
			return nil, fmt.Errorf("--gateway-%s %q: %w", key, *v, err)
		}
		kind, name, _ := strings.Cut(key, "-")
		list := r.Requests
		if name == "limit" {
			list = r.Limits
		}
		list[corev1.ResourceName(kind)] = q
	}
	for name, req := range r.Requests {
		if lim, ok := r.Limits[name]; ok && req.Cmp(lim) > 0 {
			return nil, fmt.Errorf("gateway %s request %s is above its limit %s", name, req.String(), lim.String())
		}
	}
	return r, nil
}
