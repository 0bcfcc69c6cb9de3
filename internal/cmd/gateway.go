package cmd

import (
	"context"
	"errors"
	"flag"
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

	"github.com/offerfeed/offerfeed/internal/gateway"
)

func init() {
	register("gateway", "run the gateway sidecar in front of an offer service", runGateway)
}

func runGateway(args []string) int {
	fs := flag.NewFlagSet("offerfeed gateway", flag.ContinueOnError)
	var (
		configFile      = fs.String("config", "/etc/offerfeed/config.json", "gateway config `file` (ConfigMap offerfeed-gateway, key config.json); hot-reloaded; may be absent")
		upstream        = fs.String("upstream", "", "offer service `URL`, such as http://127.0.0.1:8080 (required)")
		listen          = fs.String("listen", ":8480", "`address` the proxy listens on")
		adminListen     = fs.String("admin-listen", ":8481", "`address` of /metrics, /healthz and /readyz")
		podLabels       = fs.String("pod-labels", "", "the pod's labels as `k=v,k2=v2`")
		podLabelsFile   = fs.String("pod-labels-file", "", "downward API `file` with the pod's labels (key=\"value\" lines); hot-reloaded")
		maxDrivers      = fs.Int("max-tracked-drivers", gateway.DefaultMaxTrackedDrivers, "most drivers whose state is kept; new identities and drivers whose state has expired are forgotten first (when not set and GOMEMLIMIT is, lowered to fit half of it)")
		upstreamTimeout = fs.Duration("upstream-timeout", gateway.DefaultUpstreamTimeout, "wait at most this long for the offer service's response headers, then answer 504")
		bodyTimeout     = fs.Duration("body-timeout", gateway.DefaultBodyTimeout, "a client must send a request body within this long of the gateway's first read of it, or its connection is closed (0: no deadline)")
		headerTimeout   = fs.Duration("read-header-timeout", gateway.DefaultReadHeaderTimeout, "a client must send a request's headers within this long (proxy and admin ports)")
		idleTimeout     = fs.Duration("idle-timeout", gateway.DefaultIdleTimeout, "close keep-alive connections idle this long (proxy and admin ports)")
		shutdownTimeout = fs.Duration("shutdown-timeout", 30*time.Second, "on SIGTERM, wait at most this long for requests in flight")
		shutdownDelay   = fs.Duration("shutdown-delay", 0, "on SIGTERM, keep serving (with /readyz failing) this long before draining, while endpoints update")
		namespace       = fs.String("namespace", os.Getenv("POD_NAMESPACE"), "the pod's namespace (default $POD_NAMESPACE); a config for another namespace is logged")
		logLevel        = fs.String("log-level", "info", "log level: debug (refusals too), info or error")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log, err := newLogger(*logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "offerfeed gateway:", err)
		return 2
	}
	up, err := url.Parse(*upstream)
	if err != nil || up.Scheme == "" || up.Host == "" {
		fmt.Fprintln(os.Stderr, "offerfeed gateway: --upstream must be a URL such as http://127.0.0.1:8080")
		return 2
	}
	if *podLabels != "" && *podLabelsFile != "" {
		fmt.Fprintln(os.Stderr, "offerfeed gateway: set --pod-labels or --pod-labels-file, not both")
		return 2
	}
	maxSet := false
	fs.Visit(func(f *flag.Flag) { maxSet = maxSet || f.Name == "max-tracked-drivers" })
	if !maxSet {
		// Without an explicit bound, keep the state within half the memory limit (GOMEMLIMIT,
		// which the injected sidecar gets from its container's memory limit).
		if lim := debug.SetMemoryLimit(-1); lim != math.MaxInt64 {
			if fit := int(lim / 2 / gateway.BytesPerShownDriver); fit < *maxDrivers {
				*maxDrivers = max(fit, 1000)
				log.Info("max tracked drivers lowered to fit the memory limit", "maxTrackedDrivers", *maxDrivers, "memoryLimitBytes", lim)
			}
		}
	}
	labels, err := gateway.ParsePodLabelsList(*podLabels)
	if err != nil {
		fmt.Fprintln(os.Stderr, "offerfeed gateway:", err)
		return 2
	}
	if *bodyTimeout < 0 || *headerTimeout <= 0 || *idleTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "offerfeed gateway: --body-timeout must not be negative, --read-header-timeout and --idle-timeout must be positive")
		return 2
	}
	bodyDeadline := *bodyTimeout
	if bodyDeadline == 0 {
		bodyDeadline = -1 // gateway.Options: negative is no deadline
	}
	g, err := gateway.New(gateway.Options{
		Upstream:          up,
		UpstreamTimeout:   *upstreamTimeout,
		BodyTimeout:       bodyDeadline,
		ReadHeaderTimeout: *headerTimeout,
		IdleTimeout:       *idleTimeout,
		PodLabels:         labels,
		MaxTrackedDrivers: *maxDrivers,
		Namespace:         *namespace,
		Logger:            log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "offerfeed gateway:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	watchDone := make(chan error, 1)
	go func() { watchDone <- g.Watch(watchCtx, *configFile, *podLabelsFile) }()

	proxyLn, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error(err, "cannot listen", "address", *listen)
		return 1
	}
	adminLn, err := net.Listen("tcp", *adminListen)
	if err != nil {
		log.Error(err, "cannot listen", "address", *adminListen)
		return 1
	}
	proxySrv, adminSrv := g.NewServer(), g.NewAdminServer()
	errc := make(chan error, 2)
	go func() { errc <- proxySrv.Serve(proxyLn) }()
	go func() { errc <- adminSrv.Serve(adminLn) }()
	log.Info("gateway started", "listen", proxyLn.Addr().String(), "adminListen", adminLn.Addr().String(),
		"upstream", up.String(), "config", *configFile, "maxTrackedDrivers", *maxDrivers, "upstreamTimeout", upstreamTimeout.String(),
		"bodyTimeout", bodyTimeout.String(), "readHeaderTimeout", headerTimeout.String(), "idleTimeout", idleTimeout.String())

	code := 0
	select {
	case <-ctx.Done():
		log.Info("shutting down; draining requests in flight", "delay", shutdownDelay.String(), "timeout", shutdownTimeout.String())
	case err := <-errc:
		log.Error(err, "server stopped")
		code = 1
	case err := <-watchDone:
		log.Error(err, "config watcher stopped")
		code = 1
	}
	g.SetDraining()
	time.Sleep(*shutdownDelay)
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := proxySrv.Shutdown(sctx); err != nil {
		log.Error(err, "requests in flight did not finish in time")
		code = 1
	}
	adminSrv.Close()
	stopWatch()
	log.Info("gateway stopped")
	return code
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
