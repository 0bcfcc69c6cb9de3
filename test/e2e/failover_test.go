package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
)

// churnPolicies is how many policies TestLeaderFailover keeps updating.
const churnPolicies = 10

// churn updates the policies of ns round robin until stopped, and remembers the last spec it
// wrote to each (its feed minInterval) and that spec's generation.
type churn struct {
	mu      sync.Mutex
	last    map[string]string
	lastGen map[string]int64
	writes  int
	failed  error // a write whose outcome is unknown
}

// stop ends the churn between writes, never during one: a write cancelled in flight may
// still be applied by the API server while its caller sees an error, and the churn would
// then not know the last value it wrote.
func (c *churn) run(stop context.Context, admin client.Client, ns string) {
	for i := 0; stop.Err() == nil; i++ {
		name := fmt.Sprintf("p%d", i%churnPolicies)
		value := strconv.Itoa(100+i%50) + "ms"
		p := &v1alpha1.OfferFeedPolicy{}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
			cancel()
			continue
		}
		p.Spec.Feed.MinInterval = v1alpha1.Duration(value)
		err := admin.Update(ctx, p)
		cancel()
		if err != nil {
			// A conflict with the controller's status write: nothing was written; try the
			// next one. Any other error (a timeout) leaves the write's fate unknown: fail.
			if !apierrors.IsConflict(err) {
				c.mu.Lock()
				c.failed = fmt.Errorf("update of %s: %w", name, err)
				c.mu.Unlock()
				return
			}
			continue
		}
		c.mu.Lock()
		c.last[name], c.lastGen[name] = value, p.Generation
		c.writes++
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

// converged says whether every policy is Programmed at the generation churn last wrote, with
// the value it wrote, and the gateway config holds that value.
func (c *churn) converged(ctx context.Context, admin client.Client, ns string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failed != nil {
		return c.failed
	}
	var list v1alpha1.OfferFeedPolicyList
	if err := admin.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return err
	}
	cm := &corev1.ConfigMap{}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: v1alpha1.GatewayConfigMapName}, cm); err != nil {
		return err
	}
	for _, p := range list.Items {
		c := meta.FindStatusCondition(p.Status.Conditions, string(v1alpha1.ConditionProgrammed))
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != p.Generation || p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("policy %s not programmed at generation %d: %+v", p.Name, p.Generation, p.Status)
		}
		if p.Status.ConfigHash == "" || !strings.Contains(cm.Data[v1alpha1.GatewayConfigKey], p.Status.ConfigHash) {
			return fmt.Errorf("policy %s: hash %q not in the gateway config", p.Name, p.Status.ConfigHash)
		}
	}
	for name, value := range c.last {
		var p *v1alpha1.OfferFeedPolicy
		for i := range list.Items {
			if list.Items[i].Name == name {
				p = &list.Items[i]
			}
		}
		if p == nil || string(p.Spec.Feed.MinInterval) != value || p.Generation != c.lastGen[name] {
			return fmt.Errorf("policy %s: the last update (minInterval %s, generation %d) is not what is stored", name, value, c.lastGen[name])
		}
	}
	return nil
}

// TestLeaderFailover runs two replicas of `offerfeed manager` under policy churn, stops the
// leader (SIGTERM: it gives the Lease up; then SIGKILL: the Lease must expire), and checks
// that the other takes over and no update is lost: once the churn stops, every policy ends
// Programmed at its latest generation. It logs how long each takeover took (BENCHMARKS.md);
// it asserts no duration.
func TestLeaderFailover(t *testing.T) {
	in := install(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "offers-"}}
	if err := in.admin.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	for i := range churnPolicies {
		if err := in.admin.Create(ctx, &v1alpha1.OfferFeedPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: ns.Name},
			Spec: v1alpha1.OfferFeedPolicySpec{
				TargetSelector: v1alpha1.SelectLabels(map[string]string{"app": "offer-service", "shard": strconv.Itoa(i)}),
				ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
				Feed:           &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"},
			},
		}); err != nil {
			t.Fatal(err)
		}
	}
	holder := func() string {
		h, _ := in.leaseHolder(ctx)
		return h
	}
	// The first replica leads; then the second starts and follows.
	a := in.startManager(t, 0)
	var leaderID string
	eventually(t, "first replica leads", func() error {
		if leaderID = holder(); leaderID == "" {
			return fmt.Errorf("no lease holder")
		}
		return nil
	})
	b := in.startManager(t, freePort(t))

	ch := &churn{last: map[string]string{}, lastGen: map[string]int64{}}
	for _, tc := range []struct {
		name   string
		signal syscall.Signal
	}{{"SIGTERM (lease released)", syscall.SIGTERM}, {"SIGKILL (lease expires)", syscall.SIGKILL}} {
		churnCtx, stopChurn := context.WithCancel(ctx)
		churned := make(chan struct{})
		go func() { defer close(churned); ch.run(churnCtx, in.admin, ns.Name) }()
		time.Sleep(2 * time.Second) // churn under a settled leader first

		killed := time.Now()
		if err := a.cmd.Process.Signal(tc.signal); err != nil {
			t.Fatal(err)
		}
		// The first update after the kill, and when its policy is programmed.
		p := &v1alpha1.OfferFeedPolicy{}
		waitFor(t, time.Minute, "an update after the kill", func() error {
			if err := in.admin.Get(ctx, client.ObjectKey{Namespace: ns.Name, Name: "p0"}, p); err != nil {
				return err
			}
			p.Spec.Feed.Burst = p.Spec.Feed.Burst%100 + 1
			return in.admin.Update(ctx, p)
		})
		var takeover, programmed time.Duration
		waitFor(t, time.Minute, "the other replica takes over", func() error {
			if h := holder(); h == "" || h == leaderID {
				return fmt.Errorf("lease holder %q", h)
			}
			takeover = time.Since(killed)
			return nil
		})
		waitFor(t, time.Minute, "an update made after the kill is programmed", func() error {
			got := &v1alpha1.OfferFeedPolicy{}
			if err := in.admin.Get(ctx, client.ObjectKeyFromObject(p), got); err != nil {
				return err
			}
			if got.Status.ObservedGeneration < p.Generation {
				return fmt.Errorf("observed generation %d < %d", got.Status.ObservedGeneration, p.Generation)
			}
			programmed = time.Since(killed)
			return nil
		})
		time.Sleep(2 * time.Second) // churn under the new leader
		stopChurn()
		<-churned
		stopped := time.Now()
		waitFor(t, time.Minute, "every policy programmed at its latest generation", func() error {
			return ch.converged(ctx, in.admin, ns.Name)
		})
		t.Logf("failover after %s: lease taken over %s after the signal; an update made right after it programmed %s after the signal; converged %s after the churn stopped (%d updates so far)",
			tc.name, takeover.Round(10*time.Millisecond), programmed.Round(10*time.Millisecond),
			time.Since(stopped).Round(10*time.Millisecond), ch.writes)

		// The stopped replica comes back as the follower; the new leader is stopped next.
		<-a.done //nolint:errcheck // stopped on purpose: its exit status is not under test
		a.done <- nil
		leaderID = holder()
		a, b = b, in.startManager(t, freePort(t))
	}
	b.stop(t)
	a.stop(t)
}
