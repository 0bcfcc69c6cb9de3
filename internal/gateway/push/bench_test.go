package push_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/gateway/push"
	"github.com/offerfeed/offerfeed/internal/render"
	"github.com/offerfeed/offerfeed/offerfeedtest"
)

// BenchmarkEditToEnforcement measures, for one gateway, the time from an edit's write to the
// gateway enforcing it: "configmap" writes the ConfigMap as the controller does (the push
// alone), "policy" edits the OfferFeedPolicy (controller, ConfigMap, watch, gateway). It
// reports p50 and p99 in ms.
//
//	go test -run '^$' -bench EditToEnforcement -benchtime 100x ./internal/gateway/push/
func BenchmarkEditToEnforcement(b *testing.B) {
	c := startCluster(b)
	ctx := context.Background()
	ns := "offers"
	if err := c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	// First without the operator (the ConfigMap written here), then with it (the policy edited).
	if err := c.admin.Create(ctx, render.ConfigMap(ns, renderOne(b, ns, "2s").Data)); err != nil {
		b.Fatal(err)
	}
	gp := c.newGatewayPod(b, ns, "offers-1", map[string]string{"app": "offer-service"})
	rg := c.startGateway(b, gp, push.Options{})
	waitFor(b, time.Minute, "the first config", func() error {
		if rg.g.Status().PolicyHash == "" {
			return fmt.Errorf("no policy yet")
		}
		return nil
	})
	n := 0
	// waitEnforced waits until the gateway's policy hash differs from prev and returns it.
	waitEnforced := func(prev string) string {
		for {
			e, ch := rg.g.Enforced()
			if e.PolicyHash != prev {
				return e.PolicyHash
			}
			select {
			case <-ch:
			case <-time.After(time.Minute):
				b.Fatal("edit not enforced within a minute")
			}
		}
	}
	run := func(b *testing.B, edit func(minInterval string)) {
		var ds []time.Duration
		for b.Loop() {
			n++
			prev := rg.g.Status().PolicyHash
			start := time.Now()
			edit(strconv.Itoa(100+n) + "ms")
			waitEnforced(prev)
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("configmap", func(b *testing.B) {
		run(b, func(minInterval string) {
			cm := &corev1.ConfigMap{}
			if err := c.admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: v1alpha1.GatewayConfigMapName}, cm); err != nil {
				b.Fatal(err)
			}
			res := renderOne(b, ns, minInterval)
			if _, err := res.NextGeneration([]byte(cm.Data[v1alpha1.GatewayConfigKey]), 0); err != nil {
				b.Fatal(err)
			}
			cm.Data[v1alpha1.GatewayConfigKey] = string(res.Data)
			if err := c.admin.Update(ctx, cm); err != nil {
				b.Fatal(err)
			}
		})
	})
	m, err := offerfeedtest.StartManager(ctx, c.cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Stop() })
	if err := c.admin.Create(ctx, newPolicy(ns, "standard", "2s", map[string]string{"app": "offer-service"})); err != nil {
		b.Fatal(err)
	}
	waitFor(b, time.Minute, "policy standard programmed and enforced", func() error {
		h, err := policyHash(ctx, c.admin, ns, "standard")
		if err != nil {
			return err
		}
		if got := rg.g.Status().PolicyHash; got != h {
			return fmt.Errorf("gateway enforces %s, want %s", got, h)
		}
		return nil
	})
	b.Run("policy", func(b *testing.B) {
		run(b, func(minInterval string) {
			if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				p := &v1alpha1.OfferFeedPolicy{}
				if err := c.admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: "standard"}, p); err != nil {
					return err
				}
				p.Spec.Feed.MinInterval = v1alpha1.Duration(minInterval)
				return c.admin.Update(ctx, p)
			}); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkSteadyStateRequests counts the API requests of one idle gateway over a window, with
// watches renewed every 5-10 s instead of the default 5-10 min so that a short window sees
// many renewals, and reports them per hour, as measured and scaled to the default timeout.
//
//	go test -run '^$' -bench SteadyStateRequests -benchtime 1x ./internal/gateway/push/
func BenchmarkSteadyStateRequests(b *testing.B) {
	const (
		window  = 60 * time.Second
		timeout = 5 * time.Second
	)
	c := startCluster(b)
	ctx := context.Background()
	ns := "offers"
	if err := c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	res := renderOne(b, ns, "2s")
	if err := c.admin.Create(ctx, render.ConfigMap(ns, res.Data)); err != nil {
		b.Fatal(err)
	}
	gp := c.newGatewayPod(b, ns, "offers-1", map[string]string{"app": "offer-service"})
	for b.Loop() {
		rg := c.startGateway(b, gp, push.Options{WatchTimeout: timeout})
		waitFor(b, time.Minute, "reported", func() error {
			pod := &corev1.Pod{}
			if err := c.admin.Get(ctx, types.NamespacedName{Namespace: ns, Name: gp.pod.Name}, pod); err != nil {
				return err
			}
			if pod.Annotations[v1alpha1.EnforcedGenerationAnnotation] != "1" {
				return fmt.Errorf("not reported yet")
			}
			return nil
		})
		time.Sleep(2 * time.Second) // the start-up's requests are over
		before := sum(b, rg.reg, "offerfeed_gateway_kube_requests_total")
		time.Sleep(window)
		got := sum(b, rg.reg, "offerfeed_gateway_kube_requests_total") - before
		perHour := got * float64(time.Hour/window)
		b.ReportMetric(perHour, "req/h@5s")
		b.ReportMetric(perHour*float64(timeout)/float64(push.DefaultWatchTimeout), "req/h@default")
		b.ReportMetric(0, "ns/op")
		rg.stopPush()
	}
}
