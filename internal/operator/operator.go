// Package operator assembles the offerfeed manager: the scheme, the cache (metadata-only pods,
// only offerfeed's ConfigMaps), the policy controller, health checks and metrics. The
// `offerfeed manager` command, the demo and the offerfeedtest package all start it from here.
package operator

import (
	"cmp"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/leaderelection"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/controllers"
	"github.com/offerfeed/offerfeed/internal/webhook"
)

// LeaderElectionID is the name of the Lease the manager replicas elect a leader with.
const LeaderElectionID = "offerfeed-manager.offerfeed.dev"

// Options configure the manager. The zero value runs without leader election, metrics or
// health endpoints, which suits tests; `offerfeed manager` sets production values.
type Options struct {
	// MetricsAddr is where controller-runtime metrics are served; "" or "0" turns them off.
	MetricsAddr string
	// MetricsSecure serves the metrics over HTTPS, only to clients whose bearer token the API
	// server accepts (TokenReview) and who may get the URL /metrics (SubjectAccessReview),
	// such as a Prometheus bound to the install's metrics-reader ClusterRole.
	MetricsSecure bool
	// MetricsCertDir holds tls.crt and tls.key for secure metrics, reloaded when they change;
	// without them the manager uses a self-signed certificate kept in memory.
	MetricsCertDir string
	// EnableHTTP2 lets the metrics and webhook servers speak HTTP/2. Off by default: HTTP/2
	// stream resets (CVE-2023-44487, CVE-2023-39325) cost a server more than a client.
	EnableHTTP2 bool
	// ProbeAddr is where /healthz and /readyz are served; "" turns them off.
	ProbeAddr string
	// LeaderElection makes replicas elect one leader that reconciles. A replica that loses
	// the lease (an API server outage longer than the renew deadline) stops its controller,
	// keeps serving the webhook and campaigns again; it does not exit.
	LeaderElection bool
	// LeaderElectionNamespace is the namespace of the leader Lease (default: the pod's own).
	LeaderElectionNamespace string
	// PodSelector limits the pods the manager caches and counts (label selector syntax);
	// empty caches the metadata of every pod.
	PodSelector string
	// MaxConcurrentReconciles is how many namespaces are reconciled at once (default 4).
	MaxConcurrentReconciles int
	// GracefulShutdownTimeout bounds how long stopping waits for reconciles (default 30s).
	GracefulShutdownTimeout time.Duration
	// Controller is a unique controller name suffix, for several managers in one process
	// (parallel test suites, demos); empty in production. See UniqueControllerName.
	Controller string

	// Gateway is what the pod injection webhook injects. The webhook (and its HTTPS server)
	// runs only when Gateway.Image is set.
	Gateway webhook.Config
	// WebhookHost is the address the webhook server listens on (default: all).
	WebhookHost string
	// WebhookPort is the webhook server's port (default 9443).
	WebhookPort int
	// WebhookCertDir holds the webhook server's tls.crt and tls.key, reloaded when they
	// change (default: controller-runtime's, <temp dir>/k8s-webhook-server/serving-certs).
	WebhookCertDir string
}

// DefaultWebhookPort is the webhook server's port unless Options.WebhookPort says otherwise.
const DefaultWebhookPort = 9443

// UniqueControllerName returns a random Options.Controller, unique in practice:
// controller-runtime refuses a second controller of one name in a process for as long as the
// process lives, even after the first manager stopped.
func UniqueControllerName() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "t" + hex.EncodeToString(b[:])
}

// NewScheme returns a scheme with the Kubernetes built-in kinds and offerfeed's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(v1alpha1.AddToScheme(s))
	return s
}

// Secure metrics ask the API server who sent a scrape's token and whether they may get /metrics.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// NewManager returns a manager with the policy controller registered, not yet started.
func NewManager(cfg *rest.Config, opts Options) (manager.Manager, error) {
	managed := labels.SelectorFromSet(labels.Set{v1alpha1.ManagedByLabel: v1alpha1.ManagedByValue})
	podCache := cache.ByObject{}
	if opts.PodSelector != "" {
		sel, err := labels.Parse(opts.PodSelector)
		if err != nil {
			return nil, fmt.Errorf("pod selector %q: %w", opts.PodSelector, err)
		}
		podCache.Label = sel
	}
	metricsAddr := cmp.Or(opts.MetricsAddr, "0")
	shutdown := cmp.Or(opts.GracefulShutdownTimeout, 30*time.Second)
	var tlsOpts []func(*tls.Config)
	if !opts.EnableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metrics := metricsserver.Options{BindAddress: metricsAddr, TLSOpts: tlsOpts}
	if opts.MetricsSecure {
		metrics.SecureServing = true
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
		metrics.CertDir = opts.MetricsCertDir
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 NewScheme(),
		Metrics:                metrics,
		HealthProbeBindAddress: opts.ProbeAddr,
		// No leader election by the manager: it would stop everything, the webhook server
		// included, when the lease is lost. The policy controller campaigns by itself
		// (leaderControllers); the webhook, probes and metrics serve on every replica.
		GracefulShutdownTimeout: &shutdown,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only offerfeed's own ConfigMaps; the name selector also lets RBAC limit the
			// manager's list and watch of ConfigMaps to that name (resourceNames).
			&corev1.ConfigMap{}: {Label: managed,
				Field: fields.OneTermEqualSelector("metadata.name", v1alpha1.GatewayConfigMapName)},
			controllers.PodMetadata(): podCache,
			// Only offerfeed's own RoleBindings, by name as for ConfigMaps (resourceNames).
			&rbacv1.RoleBinding{}: {Label: managed,
				Field: fields.OneTermEqualSelector("metadata.name", v1alpha1.GatewayRoleBindingName)},
		}},
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Host:    opts.WebhookHost,
			Port:    cmp.Or(opts.WebhookPort, DefaultWebhookPort),
			CertDir: opts.WebhookCertDir,
			TLSOpts: tlsOpts,
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	name := "offerfeed"
	if opts.Controller != "" {
		name += "-" + opts.Controller
	}
	r := &controllers.OfferFeedPolicyReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder(name)}
	ctrlOpts := controllers.Options{
		MaxConcurrentReconciles: cmp.Or(opts.MaxConcurrentReconciles, 4),
		Name:                    opts.Controller,
	}
	// Check the setup once here, so that a mistake fails NewManager rather than a term.
	if _, err := r.NewController(mgr, ctrlOpts); err != nil {
		return nil, fmt.Errorf("setting up policy controller: %w", err)
	}
	ctrlOpts.SkipNameValidation = true
	lc := &leaderControllers{
		newController: func() (controller.Controller, error) { return r.NewController(mgr, ctrlOpts) },
		log:           mgr.GetLogger().WithName("leader-election"),
	}
	if opts.LeaderElection {
		lc.lock, err = leaderelection.NewResourceLock(cfg, mgr, leaderelection.Options{
			LeaderElection:          true,
			LeaderElectionID:        LeaderElectionID,
			LeaderElectionNamespace: opts.LeaderElectionNamespace,
			RenewDeadline:           renewDeadline,
		})
		if err != nil {
			return nil, fmt.Errorf("leader election: %w", err)
		}
	}
	if err := mgr.Add(lc); err != nil {
		return nil, err
	}
	// The webhook server runs on every replica, leader or not, so both serve admissions.
	if opts.Gateway.Image != "" {
		if err := webhook.SetupWithManager(mgr, opts.Gateway, name+"-webhook"); err != nil {
			return nil, err
		}
	}
	if opts.ProbeAddr != "" {
		if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
			return nil, err
		}
		if opts.Gateway.Image != "" {
			// Ready once the webhook server serves, so the webhook Service only sends
			// admissions to replicas that can answer them.
			if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
				return nil, err
			}
		}
	}
	return mgr, nil
}
