package loadtest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/gateway"
)

// sharedTarget is a gateway whose driver state is on Redis, with the number of requests it
// served, so that the report can divide Redis's command counts by them.
type sharedTarget struct {
	url      string
	stopHTTP func()
	client   *redis.Client
	g        *gateway.Gateway
	requests atomic.Int64
}

func newSharedTarget(upstream, addr string, timeout time.Duration) (*sharedTarget, error) {
	st := &sharedTarget{client: redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, PoolSize: 256})}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.client.FlushAll(ctx).Err(); err != nil {
		st.client.Close()
		return nil, fmt.Errorf("redis at %s: %w", addr, err)
	}
	if err := st.client.ConfigResetStat(ctx).Err(); err != nil {
		st.client.Close()
		return nil, err
	}
	u, _ := url.Parse(upstream)
	g, err := gateway.New(gateway.Options{Upstream: u, PodLabels: map[string]string{"app": "offer-service"},
		SharedState: &gateway.SharedState{Client: st.client, Timeout: timeout}})
	if err == nil {
		err = g.Apply(policy(10 * time.Millisecond))
	}
	if err != nil {
		st.client.Close()
		return nil, err
	}
	st.g = g
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st.requests.Add(1)
		g.ServeHTTP(w, r)
	})
	if st.url, st.stopHTTP, err = serve(h); err != nil {
		st.client.Close()
		return nil, err
	}
	return st, nil
}

func (st *sharedTarget) stop() {
	st.stopHTTP()
	st.client.Close()
}

// scripts is how many scripts (EVALSHA, EVAL) Redis has run since its stats were reset.
func (st *sharedTarget) scripts() (int64, error) {
	info, err := st.client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		return 0, err
	}
	var n int64
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") && !strings.HasPrefix(line, "cmdstat_eval:") {
			continue
		}
		_, rest, _ := strings.Cut(line, "calls=")
		v, _, _ := strings.Cut(rest, ",")
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("commandstats line %q: %w", line, err)
		}
		n += x
	}
	return n, nil
}

// report writes the shared gateway's Redis commands per request and its fallbacks.
func (st *sharedTarget) report(w io.Writer) error {
	n, err := st.scripts()
	if err != nil {
		return err
	}
	var fallbacks string
	mfs, err := st.g.Registry().Gather()
	if err != nil {
		return err
	}
	for _, mf := range mfs {
		if mf.GetName() == "offerfeed_gateway_shared_state_fallbacks_total" {
			for _, m := range mf.GetMetric() {
				fallbacks += fmt.Sprintf(" %s=%.0f", m.GetLabel()[1].GetValue(), m.GetCounter().GetValue())
			}
		}
	}
	reqs := st.requests.Load()
	fmt.Fprintf(w, "\n### Shared state: Redis commands\n\n%d requests to the shared gateway, %d scripts run by Redis: **%.3f per request** (each allowed poll: its decision and the record of the offers it showed). Fallbacks:%s.\n",
		reqs, n, float64(n)/float64(max(reqs, 1)), fallbacks)
	return nil
}
