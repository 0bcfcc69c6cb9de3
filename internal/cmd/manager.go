package cmd

import (
	"context"
	goflag "flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/offerfeed/offerfeed/internal/operator"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

// managerOptions are the flags of offerfeed manager.
type managerOptions struct {
	// operator holds the flags that go to the manager as they are.
	operator operator.Options
	// kubeconfig is the --kubeconfig file; empty loads as controller-runtime does.
	kubeconfig string
	// gatewayImagePullPolicy, gatewayPort and gatewayAdminPort are checked, then set in
	// operator.Gateway.
	gatewayImagePullPolicy string
	gatewayPort            int
	gatewayAdminPort       int
	// gatewayResources are the --gateway-{cpu,memory}-{request,limit} flags, keyed without
	// the prefix; complete turns them into operator.Gateway.Resources.
	gatewayResources map[string]*string
	// zap holds the --zap-* logging flags.
	zap zap.Options
}

func newManagerCommand() *cobra.Command {
	o := &managerOptions{}
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "run the operator: reconcile OfferFeedPolicies into gateway config",
		Long: `Runs the operator: reconciles OfferFeedPolicies into the gateway config of their namespace
(ConfigMap offerfeed-gateway) and, with --gateway-image, serves the webhook that injects the
gateway sidecar into offer-service pods.

The API server is the one of --kubeconfig; without it, of $KUBECONFIG, then of the pod's service
account (in a cluster), then of ~/.kube/config.`,
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.complete(); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

// addFlags binds the manager's flags, one per line, to o.
func (o *managerOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file of the API server to use (default: $KUBECONFIG, in-cluster config, ~/.kube/config)")
	fs.StringVar(&o.operator.MetricsAddr, "metrics-bind-address", ":8443", "address of the Prometheus /metrics endpoint; 0 turns it off")
	fs.BoolVar(&o.operator.MetricsSecure, "metrics-secure", true, "serve /metrics over HTTPS to clients the API server authenticates and authorizes (get on the URL /metrics); false serves plain HTTP to anyone")
	fs.StringVar(&o.operator.MetricsCertDir, "metrics-cert-dir", "", "directory with tls.crt and tls.key for secure metrics (reloaded on change); without them a self-signed certificate is used")
	fs.BoolVar(&o.operator.EnableHTTP2, "enable-http2", false, "let the metrics and webhook servers speak HTTP/2 (off: HTTP/2 stream resets are a denial-of-service risk)")
	fs.StringVar(&o.operator.ProbeAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	fs.BoolVar(&o.operator.LeaderElection, "leader-elect", true, "elect a leader among manager replicas; only the leader reconciles")
	fs.StringVar(&o.operator.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader Lease (default: the manager's own)")
	fs.StringVar(&o.operator.PodSelector, "pod-selector", "", "only cache and count pods with these labels (label selector); default all pods")
	fs.IntVar(&o.operator.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "namespaces reconciled at once")
	fs.StringVar(&o.operator.Gateway.Image, "gateway-image", "", "image of the gateway sidecar that the pod injection webhook adds (normally the manager's own); empty turns the webhook off")
	fs.StringVar(&o.gatewayImagePullPolicy, "gateway-image-pull-policy", "", "pull policy of the gateway sidecar: Always, IfNotPresent or Never (default: the API server's)")
	fs.IntVar(&o.gatewayPort, "gateway-port", int(webhook.DefaultPort), "the gateway's proxy port in injected pods (container port named offerfeed)")
	fs.IntVar(&o.gatewayAdminPort, "gateway-admin-port", int(webhook.DefaultAdminPort), "the gateway's admin port in injected pods (/metrics, /healthz, /readyz; named offerfeed-admin)")
	o.gatewayResources = map[string]*string{
		"cpu-request":    fs.String("gateway-cpu-request", "50m", "CPU request of the gateway sidecar; empty for none"),
		"memory-request": fs.String("gateway-memory-request", "64Mi", "memory request of the gateway sidecar; empty for none"),
		"cpu-limit":      fs.String("gateway-cpu-limit", "", "CPU limit of the gateway sidecar; empty for none"),
		"memory-limit":   fs.String("gateway-memory-limit", "256Mi", "memory limit of the gateway sidecar (its GOMEMLIMIT follows it); empty for none"),
	}
	fs.IntVar(&o.operator.WebhookPort, "webhook-port", operator.DefaultWebhookPort, "port of the webhook server (HTTPS)")
	fs.StringVar(&o.operator.WebhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with the webhook server's tls.crt and tls.key (reloaded on change)")
	// controller-runtime's logging flags (--zap-log-level, --zap-devel, ...), as kubebuilder's
	// managers have them.
	zapFlags := goflag.NewFlagSet("zap", goflag.ContinueOnError)
	o.zap.BindFlags(zapFlags)
	fs.AddGoFlagSet(zapFlags)
}

// complete checks the flags and fills in what they imply.
func (o *managerOptions) complete() error {
	switch p := corev1.PullPolicy(o.gatewayImagePullPolicy); p {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
		o.operator.Gateway.ImagePullPolicy = p
	default:
		return usageErrorf("--gateway-image-pull-policy %q: want Always, IfNotPresent or Never", p)
	}
	for _, p := range []int{o.gatewayPort, o.gatewayAdminPort, o.operator.WebhookPort} {
		if p < 1 || p > 65535 {
			return usageErrorf("port %d out of range 1-65535", p)
		}
	}
	o.operator.Gateway.Port, o.operator.Gateway.AdminPort = int32(o.gatewayPort), int32(o.gatewayAdminPort)
	resources, err := sidecarResources(o.gatewayResources)
	if err != nil {
		return usageErrorf("%w", err)
	}
	o.operator.Gateway.Resources = resources
	if o.operator.Gateway.Image != "" {
		if err := o.operator.Gateway.Validate(); err != nil {
			return usageErrorf("%w", err)
		}
	}
	return nil
}

// run runs the manager until ctx ends or SIGTERM or SIGINT arrives.
func (o *managerOptions) run(ctx context.Context) error {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	log := ctrl.Log.WithName("manager")
	cfg, err := restConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	mgr, err := operator.NewManager(cfg, o.operator)
	if err != nil {
		log.Error(err, "unable to create manager")
		return exitWith(ExitFailed, nil)
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal ends the process at once
	}()
	log.Info("starting manager", "host", cfg.Host, "leaderElection", o.operator.LeaderElection, "gatewayImage", o.operator.Gateway.Image)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "manager stopped with an error")
		return exitWith(ExitFailed, nil)
	}
	return nil
}

// restConfig loads the client config of the kubeconfig file, or, without one, as
// controller-runtime does ($KUBECONFIG, in-cluster, ~/.kube/config).
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return ctrl.GetConfig()
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig: %w", err)
	}
	if cfg.QPS == 0 {
		cfg.QPS = -1 // as controller-runtime: no client-side rate limit; API priority and fairness apply
	}
	return cfg, nil
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
