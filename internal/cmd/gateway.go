package cmd

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/gateway/push"
)

// gatewayOptions are the flags of offerfeed gateway.
type gatewayOptions struct {
	configFile        string
	upstream          string
	listen            string
	adminListen       string
	podLabels         string
	podLabelsFile     string
	maxTrackedDrivers int
	upstreamTimeout   time.Duration
	bodyTimeout       time.Duration
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	shutdownTimeout   time.Duration
	shutdownDelay     time.Duration
	namespace         string
	logLevel          string
	push              bool
	kubeAPIServer     string
	kubeTokenFile     string
	kubeCAFile        string
	podName           string
	podNamespace      string
}

// Where the injected sidecar finds its own API credentials (the projected volume the webhook
// adds to the gateway container only).
const (
	defaultKubeTokenFile = "/var/run/secrets/offerfeed.dev/serviceaccount/token"
	defaultKubeCAFile    = "/var/run/secrets/offerfeed.dev/serviceaccount/ca.crt"
)

func newGatewayCommand() *cobra.Command {
	o := &gatewayOptions{}
	cmd := &cobra.Command{
		Use:   "gateway --upstream URL",
		Short: "run the gateway sidecar in front of an offer service",
		Long: `Runs the gateway sidecar: a reverse proxy in front of the offer service that enforces the
policy of the gateway config (--config, hot-reloaded) whose selector matches the pod's labels.
The pod injection webhook adds it to offer-service pods with these flags.`,
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.Flags().Changed("max-tracked-drivers"))
		},
	}
	o.addFlags(cmd.Flags())
	return cmd
}

// addFlags binds the gateway's flags, one per line, to o.
func (o *gatewayOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.configFile, "config", "/etc/offerfeed/config.json", "gateway config `file` (ConfigMap offerfeed-gateway, key config.json); hot-reloaded; may be absent")
	fs.StringVar(&o.upstream, "upstream", "", "offer service `URL`, such as http://127.0.0.1:8080 (required)")
	fs.StringVar(&o.listen, "listen", ":8480", "`address` the proxy listens on")
	fs.StringVar(&o.adminListen, "admin-listen", ":8481", "`address` of /metrics, /healthz and /readyz")
	fs.StringVar(&o.podLabels, "pod-labels", "", "the pod's labels as `k=v,k2=v2`")
	fs.StringVar(&o.podLabelsFile, "pod-labels-file", "", "downward API `file` with the pod's labels (key=\"value\" lines); hot-reloaded")
	fs.IntVar(&o.maxTrackedDrivers, "max-tracked-drivers", gateway.DefaultMaxTrackedDrivers, "most drivers whose state is kept; new identities and drivers whose state has expired are forgotten first (when not set and GOMEMLIMIT is, lowered to fit half of it)")
	fs.DurationVar(&o.upstreamTimeout, "upstream-timeout", gateway.DefaultUpstreamTimeout, "wait at most this long for the offer service's response headers, then answer 504")
	fs.DurationVar(&o.bodyTimeout, "body-timeout", gateway.DefaultBodyTimeout, "a client must send a request body within this long of the gateway's first read of it, or its connection is closed (0: no deadline)")
	fs.DurationVar(&o.readHeaderTimeout, "read-header-timeout", gateway.DefaultReadHeaderTimeout, "a client must send a request's headers within this long (proxy and admin ports)")
	fs.DurationVar(&o.idleTimeout, "idle-timeout", gateway.DefaultIdleTimeout, "close keep-alive connections idle this long (proxy and admin ports)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM, wait at most this long for requests in flight")
	fs.DurationVar(&o.shutdownDelay, "shutdown-delay", 0, "on SIGTERM, keep serving (with /readyz failing) this long before draining, while endpoints update")
	fs.StringVar(&o.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the pod's namespace (default $POD_NAMESPACE); a config for another namespace is logged")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug (refusals too), info or error")
	fs.BoolVar(&o.push, "push", true, "watch ConfigMap offerfeed-gateway and the gateway's pod on the API server (the newer config generation wins over --config) and report on the pod what is enforced; off without --pod-name or a token file")
	fs.StringVar(&o.kubeAPIServer, "kube-api-server", "", "API server `URL` for --push (default https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)")
	fs.StringVar(&o.kubeTokenFile, "kube-token-file", defaultKubeTokenFile, "bearer token `file` for --push (a projected service-account token; re-read as it rotates)")
	fs.StringVar(&o.kubeCAFile, "kube-ca-file", defaultKubeCAFile, "`file` with the API server's CA for --push")
	fs.StringVar(&o.podName, "pod-name", os.Getenv("POD_NAME"), "the pod's name (default $POD_NAME), for --push")
	fs.StringVar(&o.podNamespace, "pod-namespace", "", "the pod's namespace for --push (default --namespace)")
}

// run runs the gateway until ctx ends or SIGTERM or SIGINT arrives, then drains it.
// maxSet says whether --max-tracked-drivers was given.
func (o *gatewayOptions) run(ctx context.Context, maxSet bool) error {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return usageErrorf("%w", err)
	}
	// go-redis's own lines (failed dials, a Sentinel's new master) as JSON lines, limited.
	gateway.RouteRedisLogs(log)
	up, err := url.Parse(o.upstream)
	if err != nil || up.Scheme == "" || up.Host == "" {
		return usageErrorf("--upstream must be a URL such as http://127.0.0.1:8080")
	}
	if o.podLabels != "" && o.podLabelsFile != "" {
		return usageErrorf("set --pod-labels or --pod-labels-file, not both")
	}
	if !maxSet {
		// Without an explicit bound, keep the state within half the memory limit (GOMEMLIMIT,
		// which the injected sidecar gets from its container's memory limit).
		if lim := debug.SetMemoryLimit(-1); lim != math.MaxInt64 {
			if fit := int(lim / 2 / gateway.BytesPerShownDriver); fit < o.maxTrackedDrivers {
				o.maxTrackedDrivers = max(fit, 1000)
				log.Info("max tracked drivers lowered to fit the memory limit", "maxTrackedDrivers", o.maxTrackedDrivers, "memoryLimitBytes", lim)
			}
		}
	}
	labels, err := gateway.ParsePodLabelsList(o.podLabels)
	if err != nil {
		return usageErrorf("%w", err)
	}
	if o.bodyTimeout < 0 || o.readHeaderTimeout <= 0 || o.idleTimeout <= 0 {
		return usageErrorf("--body-timeout must not be negative, --read-header-timeout and --idle-timeout must be positive")
	}
	bodyDeadline := o.bodyTimeout
	if bodyDeadline == 0 {
		bodyDeadline = -1 // gateway.Options: negative is no deadline
	}
	g, err := gateway.New(gateway.Options{
		Upstream:          up,
		UpstreamTimeout:   o.upstreamTimeout,
		BodyTimeout:       bodyDeadline,
		ReadHeaderTimeout: o.readHeaderTimeout,
		IdleTimeout:       o.idleTimeout,
		PodLabels:         labels,
		MaxTrackedDrivers: o.maxTrackedDrivers,
		Namespace:         o.namespace,
		Logger:            log,
	})
	if err != nil {
		return usageErrorf("%w", err)
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	watchDone := make(chan error, 1)
	go func() { watchDone <- g.Watch(watchCtx, o.configFile, o.podLabelsFile) }()
	pushDone := make(chan struct{})
	go func() {
		defer close(pushDone)
		o.runPush(watchCtx, g, log)
	}()

	proxyLn, err := net.Listen("tcp", o.listen)
	if err != nil {
		log.Error(err, "cannot listen", "address", o.listen)
		return exitWith(ExitFailed, nil)
	}
	adminLn, err := net.Listen("tcp", o.adminListen)
	if err != nil {
		proxyLn.Close()
		log.Error(err, "cannot listen", "address", o.adminListen)
		return exitWith(ExitFailed, nil)
	}
	proxySrv, adminSrv := g.NewServer(), g.NewAdminServer()
	errc := make(chan error, 2)
	go func() { errc <- proxySrv.Serve(proxyLn) }()
	go func() { errc <- adminSrv.Serve(adminLn) }()
	log.Info("gateway started", "listen", proxyLn.Addr().String(), "adminListen", adminLn.Addr().String(),
		"upstream", up.String(), "config", o.configFile, "maxTrackedDrivers", o.maxTrackedDrivers, "upstreamTimeout", o.upstreamTimeout.String(),
		"bodyTimeout", o.bodyTimeout.String(), "readHeaderTimeout", o.readHeaderTimeout.String(), "idleTimeout", o.idleTimeout.String())

	code := ExitOK
	select {
	case <-ctx.Done():
		log.Info("shutting down; draining requests in flight", "delay", o.shutdownDelay.String(), "timeout", o.shutdownTimeout.String())
	case err := <-errc:
		log.Error(err, "server stopped")
		code = ExitFailed
	case err := <-watchDone:
		log.Error(err, "config watcher stopped")
		code = ExitFailed
	}
	g.SetDraining()
	time.Sleep(o.shutdownDelay)
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := proxySrv.Shutdown(sctx); err != nil {
		log.Error(err, "requests in flight did not finish in time")
		code = ExitFailed
	}
	adminSrv.Close()
	stopWatch()
	<-pushDone
	g.Close()
	log.Info("gateway stopped")
	if code != ExitOK {
		return exitWith(code, nil)
	}
	return nil
}

// runPush gets the config pushed from the API server until ctx ends (package push), when --push
// is on and the gateway knows its pod and has a token; otherwise it says why not and returns:
// the mounted file alone keeps the gateway up to date, later.
func (o *gatewayOptions) runPush(ctx context.Context, g *gateway.Gateway, log logr.Logger) {
	ns := cmp.Or(o.podNamespace, o.namespace)
	if !o.push {
		return
	}
	if o.podName == "" || ns == "" {
		log.Info("config push off: the pod's name or namespace is unknown (--pod-name, --pod-namespace); the config file alone applies")
		return
	}
	cfg, err := push.RESTConfig(o.kubeAPIServer, o.kubeTokenFile, o.kubeCAFile)
	if err != nil {
		log.Error(err, "config push off; the config file alone applies")
		return
	}
	log.Info("config push on", "apiServer", cfg.Host, "pod", o.podName, "namespace", ns)
	if err := push.Run(ctx, push.Options{Config: cfg, Namespace: ns, PodName: o.podName, Gateway: g,
		Logger: log.WithName("push"), Registry: g.Registry()}); err != nil {
		log.Error(err, "config push off; the config file alone applies")
	}
}

// newLogger returns a JSON logger on stderr at level debug, info or error.
func newLogger(level string) (logr.Logger, error) {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "info":
		l = slog.LevelInfo
	case "error":
		l = slog.LevelError
	default:
		return logr.Logger{}, fmt.Errorf("--log-level %q: want debug, info or error", level)
	}
	// logr's V(1) is slog level -1: name every level below info "DEBUG".
	replace := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.LevelKey {
			if lv, ok := a.Value.Any().(slog.Level); ok && lv < slog.LevelInfo {
				a.Value = slog.StringValue("DEBUG")
			}
		}
		return a
	}
	return logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l, ReplaceAttr: replace})), nil
}
