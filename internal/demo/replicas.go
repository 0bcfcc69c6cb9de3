package demo

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/offerfeed/offerfeed/api/v1alpha1"

	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/market"
)

// MaxReplicas bounds Options.Replicas.
const MaxReplicas = 16

// ReplicaRunNames are the runs the demo plays by default with several replicas: people
// against raw bots (requireShown and feed pacing), then fair draws with a compliant bot that
// sends each accept to every replica. Each is played twice: per-replica state, then shared.
var ReplicaRunNames = []string{"enforce", "fair"}

// sharedStateTimeout bounds each Redis call of the demo's gateways. The gateway's default
// (gateway.DefaultSharedStateTimeout, 20 ms) suits a pod next to its Redis; the demo runs
// on a laptop or a loaded CI machine, where a call over 20 ms would quietly fall back to
// per-replica state and blur the comparison.
const sharedStateTimeout = time.Second

// sharedStateSpec sets (for a run with shared state) or clears p's spec.sharedState: the
// demo's Redis, no credentials (a loopback server without a password), a timeout of
// sharedStateTimeout. Every gateway connects from the config it reads, as in a cluster.
func (d *demo) sharedStateSpec(r runSpec, p *v1alpha1.OfferFeedPolicy) {
	p.Spec.SharedState = v1alpha1.SharedState{}
	if r.shared && d.redis != nil {
		p.Spec.SharedState = v1alpha1.SharedState{
			Redis:   v1alpha1.RedisConnection{Addresses: []v1alpha1.RedisAddress{v1alpha1.RedisAddress(d.redis.addr)}},
			Timeout: v1alpha1.Duration(sharedStateTimeout.String()),
		}
	}
}

// replicaSet is the gateways that play one kind of state, each on its own loopback port.
type replicaSet struct {
	gws  []*gateway.Gateway
	urls []*url.URL
}

// setFor returns the gateways of runs with shared state or without: the same gateways, which
// share state when the policy says so.
func (d *demo) setFor(bool) *replicaSet { return d.sets[0] }

// roundRobin is an HTTP front on loopback that sends each request to the next of its
// backends in turn, as a Service without session affinity spreads one driver's requests
// over every replica.
type roundRobin struct {
	next     atomic.Uint64
	backends atomic.Pointer[[]*url.URL]
	counts   atomic.Pointer[[]atomic.Uint64] // requests sent to each backend since use
	proxy    *httputil.ReverseProxy
}

func newRoundRobin() *roundRobin {
	rr := &roundRobin{}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConnsPerHost = 256
	rr.proxy = &httputil.ReverseProxy{
		Transport: t,
		Rewrite: func(pr *httputil.ProxyRequest) {
			backends, counts := *rr.backends.Load(), rr.counts.Load()
			i := (rr.next.Add(1) - 1) % uint64(len(backends))
			(*counts)[i].Add(1)
			pr.SetURL(backends[i])
			pr.Out.Host = pr.In.Host
		},
		// A driver's request cut short by the end of a run is no news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return rr
}

// use makes rr send requests to backends from now on, counting afresh.
func (rr *roundRobin) use(backends []*url.URL) {
	counts := make([]atomic.Uint64, len(backends))
	rr.counts.Store(&counts)
	rr.backends.Store(&backends)
}

// spread says how many requests each backend got since use, as "412/410/411".
func (rr *roundRobin) spread() string {
	counts := rr.counts.Load()
	parts := make([]string, len(*counts))
	for i := range *counts {
		parts[i] = fmt.Sprint((*counts)[i].Load())
	}
	return strings.Join(parts, "/")
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) { rr.proxy.ServeHTTP(w, r) }

// StateFigures are what a run through several replicas measured, for Comparison.
type StateFigures struct {
	// PeopleAccepts is how many accepts people sent; PeopleUnseen how many of them were
	// refused unseen-offer (they polled on one replica and accepted on another).
	PeopleAccepts, PeopleUnseen int
	// BotPollsServed is how many of the raw bots' polls were served; BotPollsAllowed is how
	// many the policy allows them in the run's time (burst + one per minInterval, per bot).
	BotPollsServed, BotPollsAllowed int
	// OffersWonByPeople and OffersWonByBots count the offers won (raw and compliant bots
	// together); in runs with fair draws each went through a draw.
	OffersWonByPeople, OffersWonByBots int
}

// Comparison sets a run with per-replica state beside the same run with shared state.
type Comparison struct {
	// Title is the run's policy, as in the runs' titles.
	Title string
	// Fair is true when the policy holds fair draws.
	Fair bool
	// Local and Shared are the runs' figures.
	Local, Shared StateFigures
}

// figures measures rep, a run with the given policy feed limits.
func figures(rep *market.Report, minInterval time.Duration, burst int) StateFigures {
	var f StateFigures
	if h := rep.Class(market.ClassHuman); h != nil {
		f.PeopleAccepts, f.PeopleUnseen = h.Accepts, h.Decisions[gateway.UnseenOffer.String()]
		f.OffersWonByPeople = h.OffersWon
	}
	if b := rep.Class(market.ClassBot); b != nil {
		f.BotPollsServed = b.PollsServed
		f.BotPollsAllowed = b.Drivers * (burst + int(rep.Duration/minInterval))
		f.OffersWonByBots += b.OffersWon
	}
	if c := rep.Class(market.ClassCompliantBot); c != nil {
		f.OffersWonByBots += c.OffersWon
	}
	return f
}

// compare pairs the runs (per-replica state, then shared) into comparisons.
func (d *demo) compare(runs []*market.Report) []Comparison {
	pol := Policy(d.opts.Shape, "", d.opts.Scale).Spec
	minInterval, burst := mustDuration(pol.Feed.MinInterval), int(pol.Feed.Burst)
	var out []Comparison
	for i := 0; i+1 < len(runs) && i+1 < len(d.opts.runs); i += 2 {
		spec := d.opts.runs[i]
		out = append(out, Comparison{Title: runSpecs[spec.name].title, Fair: spec.fair,
			Local: figures(runs[i], minInterval, burst), Shared: figures(runs[i+1], minInterval, burst)})
	}
	return out
}

// writeComparisons writes the comparisons as a text table: a measure per line, the run with
// per-replica state and the run with shared state side by side.
func writeComparisons(w io.Writer, replicas int, cs []Comparison) {
	type line struct{ label, local, shared string }
	lines := []line{{"", "per-replica", "shared"}}
	for _, c := range cs {
		lines = append(lines, line{label: c.Title})
		row := func(name string, f func(StateFigures) string) {
			lines = append(lines, line{"  " + name, f(c.Local), f(c.Shared)})
		}
		row("people's accepts refused unseen-offer", func(f StateFigures) string {
			return fmt.Sprintf("%d of %d", f.PeopleUnseen, f.PeopleAccepts)
		})
		row("raw bots' polls served (policy allows)", func(f StateFigures) string {
			return fmt.Sprintf("%d (%d)", f.BotPollsServed, f.BotPollsAllowed)
		})
		won := "offers won by people / bots"
		if c.Fair {
			won = "draws won by people / bots"
		}
		row(won, func(f StateFigures) string {
			return fmt.Sprintf("%d / %d", f.OffersWonByPeople, f.OffersWonByBots)
		})
	}
	lw, vw := 0, 0
	for _, l := range lines {
		lw = max(lw, len([]rune(l.label)))
		vw = max(vw, len(l.local), len(l.shared))
	}
	fmt.Fprintf(w, "%d gateways behind round-robin: per-replica state, then state shared on Redis\n", replicas)
	for _, l := range lines {
		if l.local == "" && l.shared == "" {
			fmt.Fprintln(w, l.label)
			continue
		}
		fmt.Fprintf(w, "%-*s  %*s  %*s\n", lw, l.label, vw, l.local, vw, l.shared)
	}
}

// startReplicas starts the Redis server, two sets of Replicas gateways (per-replica state,
// and shared state on Redis), all reading configFile, and the round-robin front that
// drivers reach.
func (d *demo) startReplicas(ctx context.Context, upstream *url.URL, podLabels map[string]string, configFile string) error {
	var err error
	if d.redis, err = startRedis(ctx, d.redisBin); err != nil {
		return fmt.Errorf("starting the Redis server: %w", err)
	}
	d.step("Redis server %s on %s for shared state", d.redisBin, d.redis.addr)
	set := &replicaSet{}
	for range d.opts.Replicas {
		gw, u, err := d.startGateway(ctx, upstream, podLabels, configFile, nil)
		if err != nil {
			return err
		}
		set.gws, set.urls = append(set.gws, gw), append(set.urls, u)
	}
	d.sets[0] = set
	d.lb = newRoundRobin()
	d.lb.use(d.sets[0].urls)
	front, err := d.serve(ctx, d.lb)
	if err != nil {
		return err
	}
	d.gwURL = front
	d.step("offer service on %s; %d gateways on %s, each reading %s as the kubelet would mount it",
		upstream, d.opts.Replicas, hosts(d.sets[0].urls), configFile)
	d.step("round-robin front on %s: each request goes to the next gateway in turn, as a Service without session affinity spreads them", front)
	return nil
}

// useState points the round-robin front at the gateways with shared state or without.
func (d *demo) useState(shared bool) {
	set := d.setFor(shared)
	d.lb.use(set.urls)
	if shared {
		d.step("the policy's spec.sharedState names the Redis at %s: the %d gateways share their drivers' state and draws there", d.redis.addr, len(set.urls))
	} else {
		d.step("the policy has no spec.sharedState: each of the %d gateways keeps its own state", len(set.urls))
	}
}

func hosts(us []*url.URL) string {
	parts := make([]string, len(us))
	for i, u := range us {
		parts[i] = u.Host
	}
	return strings.Join(parts, ", ")
}
