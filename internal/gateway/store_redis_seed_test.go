package gateway

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
)

// TestSharedStateSeedPerProcess: two gateways of one process made with SharedState (and
// nothing else done to them, unlike newWorld) name a driver alike, so a poll on one throttles
// the driver's next poll on the other and an offer shown by one may be accepted on the other;
// gateways without SharedState keep seeds of their own.
func TestSharedStateSeedPerProcess(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	if err := client.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	clock, up := newFakeClock(), newFakeUpstream(t)
	u, _ := url.Parse(up.URL)
	var gws []*Gateway
	for range 2 {
		g, err := New(Options{Upstream: u, Clock: clock, PodLabels: map[string]string{"app": "offer-service"},
			SharedState: &SharedState{Client: client}})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Apply(configOf(standardPolicy())); err != nil {
			t.Fatal(err)
		}
		gws = append(gws, g)
	}
	w := &world{t: t, clock: clock, up: up, gws: gws}
	if o, _ := w.run(sstep{op: "feed", driver: "alice"}, gws[0]); o.status != 200 {
		t.Fatalf("first poll on gateway 0: %+v", o)
	}
	if o, _ := w.run(sstep{op: "feed", driver: "alice"}, gws[1]); o.decision != "feed-throttled" {
		t.Errorf("second poll at once on gateway 1: %+v, want feed-throttled (shared pacing)", o)
	}
	w.clock.Advance(time.Duration(standardPolicy().Accept.MinReactionTime))
	if o, _ := w.run(sstep{op: "accept", driver: "alice", offer: "o1"}, gws[1]); o.status != 200 {
		t.Errorf("accept on gateway 1 of an offer shown by gateway 0: %+v, want 200", o)
	}

	local := make([]*Gateway, 2)
	for i := range local {
		g, err := New(Options{Upstream: u})
		if err != nil {
			t.Fatal(err)
		}
		local[i] = g
	}
	if local[0].seed == local[1].seed || local[0].seed == gws[0].seed {
		t.Error("gateways without SharedState share a seed")
	}
}

// TestSharedStateClockEpoch: gateways that started at different times agree on a driver's
// pacing, because the scripts take the time of day, not the time since each gateway started.
// A gateway started an hour after another paces a driver first; the older one must then
// refuse the driver's next poll at once.
func TestSharedStateClockEpoch(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	clock, up := newFakeClock(), newFakeUpstream(t)
	u, _ := url.Parse(up.URL)
	newGW := func() *Gateway {
		g, err := New(Options{Upstream: u, Clock: clock, PodLabels: map[string]string{"app": "offer-service"},
			SharedState: &SharedState{Client: client}})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Apply(configOf(standardPolicy())); err != nil {
			t.Fatal(err)
		}
		return g
	}
	older := newGW()
	clock.Advance(time.Hour)
	younger := newGW()
	w := &world{t: t, clock: clock, up: up, gws: []*Gateway{older, younger}}
	if o, _ := w.run(sstep{op: "feed", driver: "bob"}, younger); o.status != 200 {
		t.Fatalf("first poll on the younger gateway: %+v", o)
	}
	if o, _ := w.run(sstep{op: "feed", driver: "bob"}, older); o.decision != "feed-throttled" {
		t.Errorf("poll at once on the older gateway: %+v, want feed-throttled", o)
	}
}
