package operator

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"sigs.k8s.io/controller-runtime/pkg/controller"
)

// The leader election timing, as controller-runtime's defaults: a leader that cannot renew its
// Lease for renewDeadline stops leading; a follower takes over a Lease not renewed for
// leaseDuration; both retry every retryPeriod.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// leaderControllers runs the policy controller on the leader only, without tying the rest of
// the manager to the lease: it campaigns, runs a new controller for each term as leader, and
// campaigns again when a term ends, while the webhook server, the probes and the metrics keep
// serving. (controller-runtime's own leader election ends the whole manager with the lease,
// so an API server outage longer than renewDeadline would take the webhook down too.) Without
// a lock it runs one controller for as long as the manager runs.
type leaderControllers struct {
	newController func() (controller.Controller, error)
	// lock is the leader Lease; nil runs without leader election.
	lock resourcelock.Interface
	log  logr.Logger
}

// NeedLeaderElection is false: the manager starts it on every replica; it campaigns itself.
func (l *leaderControllers) NeedLeaderElection() bool { return false }

// Start runs until ctx is done.
func (l *leaderControllers) Start(ctx context.Context) error {
	if l.lock == nil {
		c, err := l.newController()
		if err != nil {
			return err
		}
		return c.Start(ctx)
	}
	for ctx.Err() == nil {
		l.term(ctx)
		if ctx.Err() == nil {
			// Between terms: the lease was lost or the controller failed. Pause a retry
			// period so that a controller that fails at once does not spin.
			select {
			case <-ctx.Done():
			case <-time.After(retryPeriod):
			}
		}
	}
	return nil
}

// term campaigns for the lease and, once it holds it, runs a controller until the lease is
// lost (or the controller fails, which gives the lease up). It returns when the controller
// has stopped.
func (l *leaderControllers) term(ctx context.Context) {
	termCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// OnStartedLeading runs in a goroutine of its own, which Run does not wait for: ended
	// tells it not to start a controller once Run returned, and running that one runs.
	var (
		mu             sync.Mutex
		ended, running bool
		done           = make(chan struct{})
	)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            l.lock,
		LeaseDuration:   leaseDuration,
		RenewDeadline:   renewDeadline,
		RetryPeriod:     retryPeriod,
		ReleaseOnCancel: true,
		Name:            LeaderElectionID,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leading context.Context) {
				mu.Lock()
				if ended {
					mu.Unlock()
					return
				}
				running = true
				mu.Unlock()
				defer close(done)
				l.log.Info("became leader; starting the policy controller", "identity", l.lock.Identity())
				c, err := l.newController()
				if err == nil {
					err = c.Start(leading)
				}
				if err != nil && leading.Err() == nil {
					l.log.Error(err, "policy controller failed; giving up the lease")
					cancel()
				}
			},
			OnStoppedLeading: func() {
				l.log.Info("stopped leading; the policy controller stops, the webhook keeps serving, campaigning again", "identity", l.lock.Identity())
			},
		},
	})
	if err != nil { // only for a wrong configuration, which the constants rule out
		l.log.Error(err, "leader election")
		return
	}
	le.Run(termCtx)
	// Wait for the controller to stop before a new term can start another.
	mu.Lock()
	ended = true
	wait := running
	mu.Unlock()
	if wait {
		<-done
	}
}
