// Package loadtest is a loopback load generator for the offerfeed gateway. In one process it
// starts a fake offer service, a plain httputil.ReverseProxy and a gateway in front of it, and
// compares them:
//
//   - throughput: closed-loop feed polls from many drivers (Concurrency workers, as fast as
//     they can) against each target;
//   - added latency: open-loop feed polls at a fixed rate, latency from the scheduled send
//     time (no coordinated omission), p50/p99 of each target minus the direct one;
//   - bot flood: humans polling at their allowed rate while bots poll at 20 times the humans'
//     total rate, against an offer service of limited capacity, via the plain proxy and via
//     the gateway: the humans' success rate and p99.
//
// Everything is bounded in count and time, and listens on 127.0.0.1 only.
package loadtest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Config sizes a run.
type Config struct {
	// Drivers is the number of distinct drivers polling in the throughput and latency phases.
	Drivers int
	// Concurrency is the number of closed-loop workers of the throughput phase.
	Concurrency int
	// Duration is the length of each throughput and latency measurement.
	Duration time.Duration
	// Rate is the request rate (per second) of the latency phase.
	Rate int
	// Rounds repeats the throughput and latency phases (targets interleaved) this many times.
	Rounds int
	// Humans, HumanInterval: the humans of the flood phase and how often each polls.
	Humans        int
	HumanInterval time.Duration
	// Bots of the flood phase poll, together, at BotFactor times the humans' total rate.
	Bots      int
	BotFactor int
	// FloodDuration is the length of each flood measurement.
	FloodDuration time.Duration
	// UpstreamSlots and UpstreamWork give the limited offer service of the flood phase its
	// capacity: Slots requests at a time, each taking Work.
	UpstreamSlots int
	UpstreamWork  time.Duration
	// Phases are the phases to run, comma-separated: throughput, latency, flood.
	Phases string
	// RedisAddr, when set, adds the target "gateway, shared": a gateway whose driver state
	// is on the Redis at this address (host:port, loopback), with the default timeout; the
	// report then gives its Redis commands per request (INFO commandstats).
	RedisAddr string
	// RedisTimeout is the shared gateway's SharedState.Timeout; zero means its default.
	RedisTimeout time.Duration
}

// DefaultConfig is the run recorded in BENCHMARKS.md.
func DefaultConfig() Config {
	return Config{
		Drivers: 10000, Concurrency: 64, Duration: 3 * time.Second, Rate: 2000, Rounds: 2,
		Humans: 200, HumanInterval: 2200 * time.Millisecond, Bots: 20, BotFactor: 20,
		FloodDuration: 5 * time.Second, UpstreamSlots: 4, UpstreamWork: 4 * time.Millisecond,
		Phases: "throughput,latency,flood",
	}
}

// offers is the fake feed answer: 10 offers, about 900 bytes of JSON.
var offers = func() string {
	var b strings.Builder
	b.WriteString(`{"offers":[`)
	for i := 0; i < 10; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"offer-%04d","station":"DXX%d","start":"2026-01-01T10:00:00Z","hours":%d,"price":%d.50}`, i, i, 2+i%3, 40+i)
	}
	b.WriteString(`]}`)
	return b.String()
}()

func feedHandler(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, offers)
}

// limitedHandler is an offer service that serves slots requests at a time, each taking work;
// a request that waits for a slot longer than 250ms gets 503.
func limitedHandler(slots int, work time.Duration) http.Handler {
	sem := make(chan struct{}, slots)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(250 * time.Millisecond)
		defer t.Stop()
		select {
		case sem <- struct{}{}:
		case <-t.C:
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		time.Sleep(work)
		<-sem
		feedHandler(w, r)
	})
}

// serve starts h on a loopback port and returns its URL and a stop function.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { srv.Close() }, nil
}

func transport() *http.Transport {
	return &http.Transport{
		MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext, DisableCompression: true,
	}
}

// plainProxy is the baseline: httputil.ReverseProxy with a transport as well tuned as the
// gateway's (many idle connections), nothing else. With pooled, it also recycles its copy
// buffers as the gateway does (a default ReverseProxy allocates 32 KiB per response).
func plainProxy(upstream string, pooled bool) http.Handler {
	u, _ := url.Parse(upstream)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() }, Transport: transport()}
	if pooled {
		rp.BufferPool = &bufferPool{}
	}
	return rp
}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[32 << 10]byte); ok {
		return v[:]
	}
	return new([32 << 10]byte)[:]
}

func (b *bufferPool) Put(v []byte) {
	if len(v) == 32<<10 {
		b.p.Put((*[32 << 10]byte)(v))
	}
}

// policy is what the gateway enforces in the benchmark: the feed paced per driver, shown
// offers read from every answer.
func policy(minInterval time.Duration) *gatewayconfig.Config {
	p := gatewayconfig.Policy{
		Name: "bench", Mode: gatewayconfig.ModeEnforce,
		Selector:       metav1.LabelSelector{MatchLabels: map[string]string{"app": "offer-service"}},
		IdentityHeader: "X-Driver-Id",
		Feed:           &gatewayconfig.Feed{Method: "GET", Path: "/offers", MinInterval: gatewayconfig.Duration(minInterval), Burst: 1},
		Accept: &gatewayconfig.Accept{Method: "POST", PathTemplate: "/offers/{offerId}/accept", MaxAccepts: 3,
			Window: gatewayconfig.Duration(10 * time.Minute), MinReactionTime: gatewayconfig.Duration(800 * time.Millisecond), RequireShown: true},
		ShownOffers: &gatewayconfig.ShownOffers{JSONPath: "offers[].id"},
	}
	p.Hash, _ = gatewayconfig.PolicyHash(p)
	return &gatewayconfig.Config{SchemaVersion: gatewayconfig.SchemaVersion, Namespace: "bench", Policies: []gatewayconfig.Policy{p}}
}

func newGateway(upstream string, minInterval time.Duration) (*gateway.Gateway, error) {
	u, _ := url.Parse(upstream)
	g, err := gateway.New(gateway.Options{Upstream: u, PodLabels: map[string]string{"app": "offer-service"}})
	if err != nil {
		return nil, err
	}
	return g, g.Apply(policy(minInterval))
}

// result is the outcome of one measurement.
type result struct {
	n, ok   int
	elapsed time.Duration
	lat     []time.Duration // of successful requests
}

func (r *result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	slices.Sort(r.lat)
	return r.lat[min(len(r.lat)-1, int(p*float64(len(r.lat))))]
}

type client struct {
	c *http.Client
}

func newClient() *client {
	return &client{c: &http.Client{Transport: transport(), Timeout: 2 * time.Second}}
}

// get polls target's feed as driver and returns the status (0 on error).
func (c *client) get(target, driver string) int {
	req, _ := http.NewRequest("GET", target+"/offers", nil)
	req.Header.Set("X-Driver-Id", driver)
	resp, err := c.c.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func driverIDs(n int, prefix string) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return ids
}

// closedLoop runs workers that poll as fast as they can for d, cycling through drivers.
func closedLoop(c *client, target string, drivers []string, workers int, d time.Duration) *result {
	var next atomic.Int64
	var mu sync.Mutex
	res := &result{}
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			n, ok := 0, 0
			for time.Now().Before(deadline) {
				i := next.Add(1)
				t0 := time.Now()
				code := c.get(target, drivers[int(i)%len(drivers)])
				n++
				if code == 200 {
					ok++
					lat = append(lat, time.Since(t0))
				}
			}
			mu.Lock()
			res.n += n
			res.ok += ok
			res.lat = append(res.lat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// openLoop sends rate requests per second for d, each at its scheduled time, from a pool of
// 128 workers; latency counts from the scheduled time, so a request that waited for a free
// worker counts its wait (no coordinated omission).
func openLoop(c *client, target string, drivers []string, rate int, d time.Duration) *result {
	total := int(float64(rate) * d.Seconds())
	lat := make([]time.Duration, total)
	codes := make([]int, total)
	type job struct {
		i  int
		at time.Time
	}
	jobs := make(chan job, total)
	var wg sync.WaitGroup
	for w := 0; w < 128; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				codes[j.i] = c.get(target, drivers[j.i%len(drivers)])
				lat[j.i] = time.Since(j.at)
			}
		}()
	}
	start := time.Now()
	for i := 0; i < total; i++ {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		jobs <- job{i, at}
	}
	close(jobs)
	wg.Wait()
	res := &result{n: total, elapsed: time.Since(start)}
	for i, code := range codes {
		if code == 200 {
			res.ok++
			res.lat = append(res.lat, lat[i])
		}
	}
	return res
}

// floodResult is the humans' and bots' outcome of one flood measurement.
type floodResult struct {
	humans, bots        result
	botThrottled, botOK int
}

// flood runs humans polling every interval (each waits for its answer) and bots polling
// together at factor times the humans' total rate (fire and forget, at most 1024 in flight).
func flood(c *client, target string, cfg Config, withBots bool, d time.Duration) *floodResult {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out := &floodResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	humans := driverIDs(cfg.Humans, "human")
	for _, h := range humans {
		wg.Add(1)
		go func(h string) {
			defer wg.Done()
			// Humans start spread over one interval.
			t := time.NewTimer(rand.N(cfg.HumanInterval))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				t.Reset(cfg.HumanInterval)
				t0 := time.Now()
				code := c.get(target, h)
				mu.Lock()
				out.humans.n++
				if code == 200 {
					out.humans.ok++
					out.humans.lat = append(out.humans.lat, time.Since(t0))
				}
				mu.Unlock()
			}
		}(h)
	}
	if withBots {
		bots := driverIDs(cfg.Bots, "bot")
		humanRate := float64(cfg.Humans) / cfg.HumanInterval.Seconds()
		perBot := time.Duration(float64(time.Second) * float64(cfg.Bots) / (humanRate * float64(cfg.BotFactor)))
		sem := make(chan struct{}, 1024)
		for _, b := range bots {
			wg.Add(1)
			go func(b string) {
				defer wg.Done()
				tk := time.NewTicker(perBot)
				defer tk.Stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-tk.C:
					}
					select {
					case sem <- struct{}{}:
					default:
						continue // the bot's own limit; counted as not sent
					}
					wg.Add(1)
					go func() {
						defer func() { <-sem; wg.Done() }()
						code := c.get(target, b)
						mu.Lock()
						out.bots.n++
						switch code {
						case 200:
							out.botOK++
						case 429:
							out.botThrottled++
						}
						mu.Unlock()
					}()
				}
			}(b)
		}
	}
	wg.Wait()
	out.humans.elapsed, out.bots.elapsed = d, d
	return out
}

// Run runs the whole benchmark and writes a Markdown report to w.
func Run(cfg Config, w io.Writer) error {
	up, stopUp, err := serve(http.HandlerFunc(feedHandler))
	if err != nil {
		return err
	}
	defer stopUp()
	plain, stopPlain, err := serve(plainProxy(up, false))
	if err != nil {
		return err
	}
	defer stopPlain()
	pooled, stopPooled, err := serve(plainProxy(up, true))
	if err != nil {
		return err
	}
	defer stopPooled()
	// Pacing loose enough that the 10,000 drivers are never throttled: every request does
	// the gateway's full work (decision, headers, proxy, shown-offers scan).
	g, err := newGateway(up, 10*time.Millisecond)
	if err != nil {
		return err
	}
	gw, stopGW, err := serve(g)
	if err != nil {
		return err
	}
	defer stopGW()
	c := newClient()
	drivers := driverIDs(cfg.Drivers, "driver")
	targets := []target{{"direct", up}, {"plain proxy", plain}, {"plain proxy, pooled buffers", pooled}, {"gateway", gw}}
	var shared *sharedTarget
	if cfg.RedisAddr != "" {
		if shared, err = newSharedTarget(up, cfg.RedisAddr, cfg.RedisTimeout); err != nil {
			return err
		}
		defer shared.stop()
		targets = append(targets, target{"gateway, shared", shared.url})
	}

	phase := func(name string) bool { return slices.Contains(strings.Split(cfg.Phases, ","), name) }
	// Warm up connections and the gateway's driver table.
	for _, t := range targets {
		closedLoop(c, t.url, drivers, cfg.Concurrency, 300*time.Millisecond)
	}
	if phase("throughput") {
		throughput(w, c, cfg, targets, drivers)
	}
	if phase("latency") {
		latency(w, c, cfg, targets, drivers)
	}
	if shared != nil {
		if err := shared.report(w); err != nil {
			return err
		}
	}
	if phase("flood") {
		return floodPhase(w, c, cfg)
	}
	return nil
}

type target struct{ name, url string }

// sliceDur is the length of the slices the measurements of the targets are interleaved in,
// so that noise from other work on the machine falls on every target alike.
const sliceDur = 500 * time.Millisecond

func (r *result) merge(o *result) {
	r.n += o.n
	r.ok += o.ok
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
}

// interleaved measures each target for d per round, in slices of sliceDur taken in turn.
func interleaved(targets []target, d time.Duration, measure func(t target, d time.Duration) *result) []*result {
	out := make([]*result, len(targets))
	for i := range out {
		out[i] = &result{}
	}
	for done := time.Duration(0); done < d; done += sliceDur {
		for i, t := range targets {
			out[i].merge(measure(t, min(sliceDur, d-done)))
		}
	}
	return out
}

func throughput(w io.Writer, c *client, cfg Config, targets []target, drivers []string) {
	fmt.Fprintf(w, "### Throughput: closed loop, %d workers, %d drivers, %s per target per round (interleaved in %s slices)\n\n",
		cfg.Concurrency, cfg.Drivers, cfg.Duration, sliceDur)
	fmt.Fprintln(w, "| round | target | requests/s | 200s | p50 | p99 | gateway / this |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for r := 1; r <= cfg.Rounds; r++ {
		res := interleaved(targets, cfg.Duration, func(t target, d time.Duration) *result {
			return closedLoop(c, t.url, drivers, cfg.Concurrency, d)
		})
		gw := res[3] // "gateway"; the shared gateway, when there, is compared with it
		for i, t := range targets {
			ratio := ""
			if i > 0 && i < 3 {
				ratio = fmt.Sprintf("%.2f×", gw.rps()/res[i].rps())
			}
			if i == 4 {
				ratio = fmt.Sprintf("shared / local: %.2f×", res[i].rps()/gw.rps())
			}
			fmt.Fprintf(w, "| %d | %s | %.0f | %.2f%% | %s | %s | %s |\n", r, t.name, res[i].rps(), 100*float64(res[i].ok)/float64(res[i].n),
				us(res[i].pct(.5)), us(res[i].pct(.99)), ratio)
		}
	}
}

func latency(w io.Writer, c *client, cfg Config, targets []target, drivers []string) {
	fmt.Fprintf(w, "\n### Added latency: open loop, %d requests/s, %d drivers, %s per target per round (interleaved in %s slices)\n\n",
		cfg.Rate, cfg.Drivers, cfg.Duration, sliceDur)
	fmt.Fprintln(w, "| round | target | 200s | p50 | p99 | added p50 | added p99 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for r := 1; r <= cfg.Rounds; r++ {
		res := interleaved(targets, cfg.Duration, func(t target, d time.Duration) *result {
			return openLoop(c, t.url, drivers, cfg.Rate, d)
		})
		base := res[0]
		for i, t := range targets {
			cols := "| |"
			if i > 0 {
				cols = fmt.Sprintf("| %s | %s", us(res[i].pct(.5)-base.pct(.5)), us(res[i].pct(.99)-base.pct(.99)))
			}
			fmt.Fprintf(w, "| %d | %s | %.2f%% | %s | %s %s |\n", r, t.name, 100*float64(res[i].ok)/float64(res[i].n), us(res[i].pct(.5)), us(res[i].pct(.99)), cols)
		}
	}
}

// floodPhase: an offer service of limited capacity; humans respect a 2s minInterval.
func floodPhase(w io.Writer, c *client, cfg Config) error {
	lim, stopLim, err := serve(limitedHandler(cfg.UpstreamSlots, cfg.UpstreamWork))
	if err != nil {
		return err
	}
	defer stopLim()
	limPlain, stopLimPlain, err := serve(plainProxy(lim, false))
	if err != nil {
		return err
	}
	defer stopLimPlain()
	g2, err := newGateway(lim, 2*time.Second)
	if err != nil {
		return err
	}
	limGW, stopLimGW, err := serve(g2)
	if err != nil {
		return err
	}
	defer stopLimGW()
	humanRate := float64(cfg.Humans) / cfg.HumanInterval.Seconds()
	fmt.Fprintf(w, "\n### Bot flood: %d humans polling every %s (%.0f/s), %d bots polling at %d× that (%.0f/s); offer service of %d slots × %s (≈%.0f/s), %s each\n\n",
		cfg.Humans, cfg.HumanInterval, humanRate, cfg.Bots, cfg.BotFactor, humanRate*float64(cfg.BotFactor),
		cfg.UpstreamSlots, cfg.UpstreamWork, float64(cfg.UpstreamSlots)/cfg.UpstreamWork.Seconds(), cfg.FloodDuration)
	fmt.Fprintln(w, "| scenario | humans' requests | humans' success | humans' p50 | humans' p99 | bot requests | bots' 200 | bots' 429 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, s := range []struct {
		name   string
		target string
		bots   bool
	}{{"humans only, plain proxy", limPlain, false}, {"humans only, gateway", limGW, false},
		{"humans + bots, plain proxy", limPlain, true}, {"humans + bots, gateway", limGW, true}} {
		fr := flood(c, s.target, cfg, s.bots, cfg.FloodDuration)
		fmt.Fprintf(w, "| %s | %d | %.1f%% | %s | %s | %d | %d | %d |\n", s.name, fr.humans.n, 100*float64(fr.humans.ok)/float64(max(1, fr.humans.n)),
			us(fr.humans.pct(.5)), us(fr.humans.pct(.99)), fr.bots.n, fr.botOK, fr.botThrottled)
	}
	return nil
}

func us(d time.Duration) string {
	return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
}
