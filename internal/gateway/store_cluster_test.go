package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// clusterScript is a random request sequence over many drivers (so that their hash tags fall
// in every node's slots): polls, accepts of offers shown or not, soon or late, answered 2xx
// or not, the clock moving, the offers changing.
func clusterScript(seed uint64, drivers, n int) []sstep {
	rng := rand.New(rand.NewPCG(seed, 2))
	offers := []string{"o1", "o2", "o3", "o4", "o5", "o6"}
	current := []string{"o1", "o2"}
	var ss []sstep
	for range n {
		d := fmt.Sprint("drv", rng.IntN(drivers))
		switch k := rng.IntN(20); {
		case k < 8:
			ss = append(ss, sstep{op: "feed", driver: d})
		case k < 15:
			o := offers[rng.IntN(len(offers))]
			if rng.IntN(4) > 0 {
				o = current[rng.IntN(len(current))]
			}
			ss = append(ss, sstep{op: "accept", driver: d, offer: o})
		case k < 18:
			ms := []int{0, 1, 100, 450, 799, 800, 999, 1500, 2500}[rng.IntN(9)]
			ss = append(ss, sstep{op: "advance", advance: time.Duration(ms) * time.Millisecond})
		case k < 19:
			current = []string{offers[rng.IntN(len(offers))], offers[rng.IntN(len(offers))]}
			ss = append(ss, sstep{op: "offers", offers: current})
		default:
			ss = append(ss, sstep{op: "status", status: []int{200, 200, 500}[rng.IntN(3)]})
		}
	}
	return ss
}

// TestSharedStateCluster runs the shared store's driver scripts and the shared draws' scripts
// through a redis.ClusterClient on a real 3-node Redis Cluster, with drivers and offers spread
// over every node's slots: no call fails (no CROSSSLOT, no script touching two slots), every
// node holds keys, and the decisions are those of one gateway with local state (driver
// scripts) and of a standalone Redis (draws).
func TestSharedStateCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs, ContextTimeoutEnabled: true, PoolSize: 32})
	t.Cleanup(func() { cc.Close() })
	_, std := newRedisClient(t)
	ctx := context.Background()

	t.Run("driver scripts", func(t *testing.T) {
		cfg := configOf(sharedPolicy(gatewayconfig.ModeEnforce))
		local := newWorld(t, 1, nil, cfg)
		cluster := newWorld(t, 3, &SharedState{Client: cc, Timeout: 5 * time.Second}, cfg)
		seen := map[string]int{}
		next := 0
		for i, s := range clusterScript(11, 60, 3000) {
			want, req := local.run(s, local.gws[0])
			got, _ := cluster.run(s, cluster.gws[next%3])
			if !req {
				continue
			}
			next++
			if got != want {
				t.Fatalf("step %d %+v: cluster %+v, local %+v", i, s, got, want)
			}
			seen[want.decision]++
		}
		t.Logf("decisions: %v", seen)
		for _, d := range []string{"", FeedThrottled.String(), AcceptThrottled.String(), TooFast.String(), UnseenOffer.String()} {
			if seen[d] == 0 {
				t.Errorf("no request decided %q; seen %v", d, seen)
			}
		}
		for _, g := range cluster.gws {
			if e := g.active.Load().policy.store.(*sharedStore).errors.Load(); e != 0 {
				t.Errorf("%d Redis calls failed on the cluster", e)
			}
		}
	})

	t.Run("draws", func(t *testing.T) {
		// The same draws through 3 gateways on the cluster and on a standalone Redis: each
		// offer's candidates spread over the gateways, the first try failing.
		p := fairPolicy("Random")
		p.Accept.MaxAccepts = 100
		worlds := []*sharedDrawWorld{newSharedDrawWorld(t, 3, cc, p), newSharedDrawWorld(t, 3, std, p)}
		for _, w := range worlds {
			w.svc.status = func(_, _ string, try int) int {
				if try == 0 {
					return 500
				}
				return 200
			}
		}
		results := make([]map[string]answer, 2)
		for k := range 24 {
			offer := fmt.Sprint("offer", k)
			for wi, w := range worlds {
				var chs []<-chan answer
				for j := range 4 {
					chs = append(chs, w.hold((k+j)%3, offer, fmt.Sprintf("d%d", j))...)
				}
				w.advance(3 * time.Second)
				if results[wi] == nil {
					results[wi] = map[string]answer{}
				}
				for _, a := range answers(t, chs) {
					results[wi][offer+"/"+a.driver] = a
				}
			}
		}
		for k, a := range results[0] {
			if b := results[1][k]; a != b {
				t.Errorf("%s: cluster %+v, standalone %+v", k, a, b)
			}
		}
		wins := 0
		for _, a := range results[0] {
			if a.code == 200 {
				wins++
			}
		}
		if wins != 24 || len(results[0]) != 96 {
			t.Errorf("%d wins of %d answers, want 24 of 96", wins, len(results[0]))
		}
		for _, w := range worlds {
			if e := w.sharedErrors(); e != 0 {
				t.Errorf("%d Redis calls failed", e)
			}
		}
	})

	// Every node holds keys, and every key has a TTL and a hash tag.
	var mu sync.Mutex
	perNode := map[string]int{}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, "*").Result()
		if err != nil {
			return err
		}
		for _, k := range keys {
			ttl, err := c.PTTL(ctx, k).Result()
			if err != nil {
				return err
			}
			if ttl <= 0 || !strings.HasPrefix(k, "of:{") || !strings.Contains(k, "}") {
				t.Errorf("key %s: TTL %v", k, ttl)
			}
		}
		mu.Lock()
		perNode[c.Options().Addr] = len(keys)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keys per node: %v", perNode)
	if len(perNode) != 3 {
		t.Fatalf("%d nodes answered", len(perNode))
	}
	for a, n := range perNode {
		if n == 0 {
			t.Errorf("node %s holds no key: drivers and offers do not spread over the slots", a)
		}
	}
}
