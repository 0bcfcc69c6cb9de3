package offerfeedtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/operator"
)

// DefaultGracefulShutdownTimeout bounds how long Stop waits for running reconciles, unless
// WithGracefulShutdownTimeout says otherwise.
const DefaultGracefulShutdownTimeout = 10 * time.Second

// ManagerOption configures StartManager.
type ManagerOption func(*managerOptions)

type managerOptions struct {
	name                    string
	podSelector             string
	maxConcurrentReconciles int
	shutdownTimeout         time.Duration
	startTimeout            time.Duration
}

// WithControllerName sets the suffix of the manager's controller names (lowercase letters,
// digits and '-'). By default each manager gets a random suffix, so that several managers can
// run in one process: controller-runtime refuses two controllers of one name in a process, for
// as long as the process lives, even after the first manager stopped. A name given here must
// therefore be unique in the test binary.
func WithControllerName(name string) ManagerOption {
	return func(o *managerOptions) { o.name = name }
}

// WithPodSelector limits the pods the manager watches and counts (label selector syntax, such
// as "app=offer-service"); by default it watches every pod.
func WithPodSelector(selector string) ManagerOption {
	return func(o *managerOptions) { o.podSelector = selector }
}

// WithMaxConcurrentReconciles sets how many namespaces the manager reconciles at once
// (default 4).
func WithMaxConcurrentReconciles(n int) ManagerOption {
	return func(o *managerOptions) { o.maxConcurrentReconciles = n }
}

// WithGracefulShutdownTimeout bounds how long Stop waits for running reconciles (default
// DefaultGracefulShutdownTimeout).
func WithGracefulShutdownTimeout(d time.Duration) ManagerOption {
	return func(o *managerOptions) { o.shutdownTimeout = d }
}

// WithStartTimeout bounds how long StartManager waits for the manager to run its controller
// (default 1 minute).
func WithStartTimeout(d time.Duration) ManagerOption {
	return func(o *managerOptions) { o.startTimeout = d }
}

// Manager is an offerfeed manager running in this process. Stop it with Stop.
type Manager struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed

	stopOnce sync.Once
}

// StartManager starts the offerfeed manager (the policy controller, which renders each
// namespace's OfferFeedPolicies into ConfigMap offerfeed-gateway and writes their status)
// against the API server of cfg, such as the rest.Config that envtest.Environment.Start
// returns. The offerfeed CRDs must be installed (see CRDs); StartManager fails when they are not.
//
// The manager runs without leader election and without metrics, health probe or webhook
// servers, with unique controller names (see WithControllerName). cfg is copied, not changed;
// unless cfg sets a QPS or a rate limiter, the copy is not rate limited on the client side,
// as ctrl.GetConfig leaves the production manager.
//
// StartManager returns once the controller runs. The manager runs until Stop is called or
// ctx is done; call Stop in either case, to wait for it to finish.
func StartManager(ctx context.Context, cfg *rest.Config, opts ...ManagerOption) (*Manager, error) {
	if cfg == nil {
		return nil, errors.New("offerfeedtest: StartManager needs a rest.Config")
	}
	o := managerOptions{shutdownTimeout: DefaultGracefulShutdownTimeout, startTimeout: time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	if o.name == "" {
		o.name = operator.UniqueControllerName()
	}
	c := rest.CopyConfig(cfg)
	if c.QPS == 0 && c.RateLimiter == nil {
		c.QPS, c.Burst = -1, 0
	}
	mgr, err := operator.NewManager(c, operator.Options{
		PodSelector:             o.podSelector,
		MaxConcurrentReconciles: o.maxConcurrentReconciles,
		GracefulShutdownTimeout: o.shutdownTimeout,
		Controller:              o.name,
	})
	if err != nil {
		return nil, fmt.Errorf("offerfeedtest: %w", err)
	}
	// Without the CRDs the controller would wait for them and fail minutes later; say so now.
	gk := schema.GroupKind{Group: v1alpha1.GroupVersion.Group, Kind: "OfferFeedPolicy"}
	if _, err := mgr.GetRESTMapper().RESTMapping(gk, v1alpha1.GroupVersion.Version); err != nil {
		return nil, fmt.Errorf("offerfeedtest: the API server does not serve %s %s; install the offerfeed CRDs "+
			"(envtest.Environment.CRDInstallOptions.CRDs: offerfeedtest.CRDs()): %w", v1alpha1.GroupVersion, gk.Kind, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	m := &Manager{name: o.name, cancel: cancel, done: make(chan struct{})}
	go m.run(runCtx, mgr)

	timer := time.NewTimer(o.startTimeout)
	defer timer.Stop()
	select {
	case <-mgr.Elected(): // without leader election: the controller has been started
		return m, nil
	case <-m.done:
		cancel()
		return nil, fmt.Errorf("offerfeedtest: manager stopped while starting: %w", cmp.Or(m.err, context.Cause(runCtx), errors.New("no error reported")))
	case <-timer.C:
		_ = m.Stop()
		return nil, fmt.Errorf("offerfeedtest: manager did not start within %s", o.startTimeout)
	}
}

func (m *Manager) run(ctx context.Context, mgr manager.Manager) {
	defer close(m.done)
	m.err = mgr.Start(ctx)
}

// Stop stops the manager and waits until it has finished: its controller, its watches and
// running reconciles (bounded by the graceful shutdown timeout). It returns the error the
// manager stopped with, nil after a clean stop. Stop may be called more than once, also after
// the context given to StartManager is done; it suits ginkgo's DeferCleanup and t.Cleanup.
func (m *Manager) Stop() error {
	m.stopOnce.Do(m.cancel)
	<-m.done
	if m.err != nil {
		return fmt.Errorf("offerfeedtest: manager %s: %w", m.name, m.err)
	}
	return nil
}

// Done is closed when the manager has stopped, by Stop or because the context given to
// StartManager is done.
func (m *Manager) Done() <-chan struct{} { return m.done }

// Err returns the error the manager stopped with: nil while it runs and after a clean stop.
func (m *Manager) Err() error {
	select {
	case <-m.done:
		return m.err
	default:
		return nil
	}
}

// ControllerName returns the suffix of this manager's controller names: the controller is
// "offerfeedpolicy-<suffix>" in controller-runtime's metrics and logs, and events are
// reported by "offerfeed-<suffix>".
func (m *Manager) ControllerName() string { return m.name }
