package gateway

import (
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/internal/redistest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Sentinel on real servers (docs/design.md#shared-state-on-redis, "Connection"): a master, its
// replica and 3 Sentinels (redistest.StartSentinel), every one of them requiring an ACL user;
// gateways made from the config alone (mode Sentinel, the Sentinels' addresses, the master's
// name, the credentials from the mounted Secret), as in a pod.

const (
	sentinelGatewayUser = "offerfeed-gw"
	sentinelGatewayPass = "s3ntinel-Pa55word-for-the-test"
	sentinelSecret      = "offerfeed-redis-sentinel"
	sentinelMaster      = "offers.master-1"
	// sentinelTimeout is the policy's timeout; no request may take longer than faultBound
	// (a few calls' timeouts and a margin for a loaded 2-core machine).
	sentinelTimeout = faultTimeout
)

// startSentinels starts the servers: the gateways' user has gatewayACL on the data servers,
// and may ask the Sentinels (which, like the data servers, refuse the default user).
func startSentinels(t *testing.T) *redistest.Sentinels {
	return redistest.StartSentinel(t, redistest.SentinelOptions{
		Sentinels:  3,
		MasterName: sentinelMaster,
		AdminUser:  adminUser, AdminPass: adminPass,
		ServerArgs:   append([]string{"--user", sentinelGatewayUser, "on", ">" + sentinelGatewayPass}, gatewayACL...),
		SentinelConf: []string{"user " + sentinelGatewayUser + " on >" + sentinelGatewayPass + " allchannels +@all"},
	})
}

// sentinelConfig is the fault tests' policy (a poll a second, no reaction time) with shared
// state on the Sentinels at addrs.
func sentinelConfig(addrs []string) *gatewayconfig.Config {
	p := standardPolicy()
	p.Feed.MinInterval = dur("1s")
	p.Accept.MinReactionTime = dur("0s")
	p.SharedState = &gatewayconfig.SharedState{
		Redis: gatewayconfig.Redis{Mode: gatewayconfig.RedisSentinel, Addresses: addrs,
			SentinelMasterName: sentinelMaster, CredentialsSecret: sentinelSecret},
		Timeout:       dur(sentinelTimeout.String()),
		OnUnavailable: gatewayconfig.OnUnavailableLocal,
	}
	return configOf(p)
}

// newSentinelRig makes n gateways (each with its own hash seed) from the Sentinel config, on
// the real clock, with the Secret mounted (nil: the gateways' user for the servers and the
// Sentinels), behind a fault rig's load and timing.
func newSentinelRig(t *testing.T, s *redistest.Sentinels, n int, secret map[string]string) *faultRig {
	dir := t.TempDir()
	if secret == nil {
		secret = map[string]string{"username": sentinelGatewayUser, "password": sentinelGatewayPass + "\n"}
	}
	writeSecret(t, dir, sentinelSecret, secret)
	r := &faultRig{t: t}
	r.up = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		if req.URL.Path == "/offers" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"offers":[{"id":"o1"},{"id":"o2"}]}`)
		}
	}))
	t.Cleanup(r.up.Close)
	u, _ := url.Parse(r.up.URL)
	for range n {
		seed := maphash.MakeSeed()
		var o Options
		o.Upstream, o.PodLabels, o.RedisCredentialsDir, o.HashSeed = u, map[string]string{"app": "offer-service"}, dir, &seed
		o.Transport = &http.Transport{DisableKeepAlives: true}
		g, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		if err := g.Apply(sentinelConfig(s.Addrs)); err != nil {
			t.Fatal(err)
		}
		if g.redis == nil || g.redis.client == nil {
			t.Fatalf("no Redis client from the config: %+v", g.redis)
		}
		r.gws = append(r.gws, g)
	}
	return r
}

// rtBreaker is the breaker state of g's shared-state runtime (made from the config).
func rtBreaker(g *Gateway) string {
	return breakerState(g.sharedRT.Load().breaker.state.Load()).String()
}

func rtFallbacks(t *testing.T, gws []*Gateway) float64 {
	var n float64
	for _, g := range gws {
		for why := range numFallbackReasons {
			n += counterValue(t, g.sharedRT.Load().m.fallbacks[why])
		}
	}
	return n
}

// sharedAcross checks that a new driver's poll served by the first gateway makes the next
// poll on every other gateway feed-throttled (retrying with another driver while a call may
// still time out on a loaded machine, 10 s at most).
func sharedAcross(r *faultRig, prefix string) {
	r.t.Helper()
	n := 0
	eventually(r.t, prefix+": decisions shared by every gateway", func() bool {
		n++
		d := fmt.Sprintf("%s-%d", prefix, n)
		if r.do(r.gws[0], "GET", "/offers", d) != http.StatusOK {
			return false
		}
		for _, g := range r.gws[1:] {
			if r.do(g, "GET", "/offers", d) != http.StatusTooManyRequests {
				return false
			}
		}
		return true
	})
	if n > 1 {
		r.t.Logf("%s: decisions shared at the %d-th try", prefix, n)
	}
}

// masterKeys is the number of offerfeed keys on server s (authenticated as the admin).
func masterKeys(t *testing.T, s *redistest.Server) int {
	t.Helper()
	r, err := s.Do("DBSIZE")
	if err != nil || !strings.HasPrefix(r, ":") {
		t.Fatalf("DBSIZE on %s: %q %v", s.Addr, r, err)
	}
	n, err := strconv.Atoi(r[1:])
	if err != nil {
		t.Fatalf("DBSIZE on %s: %q", s.Addr, r)
	}
	return n
}

// TestSharedStateSentinel: 3 gateways made from a Sentinel config share their decisions
// through the master the Sentinels name; then the master fails over, by SENTINEL FAILOVER
// (its clients are disconnected and it turns replica) or by SIGKILL (the Sentinels see it
// down after 1 s and promote the replica), under a bounded load on loopback. No request
// waits longer than the timeout plus a margin; while the master is gone, requests are decided
// by onUnavailable (Local: counted fallbacks, the breaker opens); afterwards the breakers
// close by themselves and decisions are shared again, through the new master (the old one
// is read-only or dead); the goroutines return to their number. With go-redis's lines routed
// through a logger at info level (the gateway's default), the log shows each gateway
// following the new master and none of go-redis's failed dials.
func TestSharedStateSentinel(t *testing.T) {
	for _, how := range []string{"failover", "kill"} {
		t.Run(how, func(t *testing.T) {
			var lines logLines
			routeRedisLogsForTest(t, lines.logger(0))
			s := startSentinels(t)
			r := newSentinelRig(t, s, 3, nil)
			old := s.Master(t)
			r.load(nil, 30).Wait()
			sharedAcross(r, "before")
			if masterKeys(t, old) == 0 {
				t.Fatal("the master holds no key: the gateways do not use it")
			}
			for _, g := range r.gws {
				if st := g.Status().SharedState; st == nil || !st.Connected || st.Mode != string(gatewayconfig.RedisSentinel) {
					t.Fatalf("/readyz sharedState: %+v", st)
				}
			}
			base := goroutines()

			stop := make(chan struct{})
			wg := r.load(stop, 100000)
			time.Sleep(100 * time.Millisecond)
			fb0 := rtFallbacks(t, r.gws)
			var addr string
			switch how {
			case "failover":
				addr = s.Failover(t)
			case "kill":
				addr = s.KillMaster(t)
				if rtFallbacks(t, r.gws) == fb0 {
					t.Error("no fallback while the master was dead")
				}
			}
			if addr == old.Addr {
				t.Fatalf("the master is still %s", addr)
			}
			// At least one: go-redis's logger is the process's, and its kind's limit
			// (5 lines at once) is shared by the 3 gateways' clients here (a pod has one).
			eventually(t, "a gateway to log the new master", func() bool {
				return len(lines.matching(`"level"=0`, "new master", addr)) > 0
			})
			if got := lines.matching("failed to dial"); len(got) > 0 {
				t.Errorf("go-redis's failed dials at info level:\n%s", strings.Join(got, "\n"))
			}
			// Disengages by itself: the load's requests probe the new master.
			eventually(t, "the breakers to close", func() bool {
				for _, g := range r.gws {
					if rtBreaker(g) != "closed" {
						return false
					}
				}
				return true
			})
			time.Sleep(300 * time.Millisecond)
			close(stop)
			wg.Wait()
			t.Logf("%s: %s → %s; %d requests, %d over 2×timeout, max %v; fallbacks %v",
				how, old.Addr, addr, r.requests.Load(), r.late.Load(), time.Duration(r.maxNS.Load()), rtFallbacks(t, r.gws)-fb0)
			if n := r.slow.Load(); n > 0 {
				t.Errorf("%d requests took longer than %v (max %v)", n, faultBound, time.Duration(r.maxNS.Load()))
			}
			// Shared again, through the new master: the old one is a read-only replica (or
			// dead), so a shared decision is a write on the new one.
			nm := s.Master(t)
			before := masterKeys(t, nm)
			sharedAcross(r, "after")
			if after := masterKeys(t, nm); after <= before {
				t.Errorf("the new master %s holds %d keys, %d before the check: the decisions were not written there", nm.Addr, after, before)
			}
			eventually(t, fmt.Sprintf("goroutines back to %d", base), func() bool { return goroutines() <= base })
		})
	}
}

// TestSharedStateSentinelAuth: the Sentinels may run without a password, or with their own
// user, while the servers require the gateways' ACL user. The Secret's sentinel-username and
// sentinel-password say what the Sentinels get (an empty sentinel-password: no AUTH);
// without them, the Sentinels get the servers' user, which a Sentinel that does not know it
// refuses (WRONGPASS): the gateways then decide locally and /readyz says they are not
// connected. No password shows in /readyz.
func TestSharedStateSentinelAuth(t *testing.T) {
	const sentinelUser, sentinelPass = "sentinel-reader", "sentinel-0wn-Pa55word"
	dataUser := append([]string{"--user", sentinelGatewayUser, "on", ">" + sentinelGatewayPass}, gatewayACL...)
	gw := map[string]string{"username": sentinelGatewayUser, "password": sentinelGatewayPass}
	with := func(extra map[string]string) map[string]string {
		m := maps.Clone(gw)
		maps.Copy(m, extra)
		return m
	}
	open := redistest.StartSentinel(t, redistest.SentinelOptions{MasterName: sentinelMaster, ServerArgs: dataUser})
	own := redistest.StartSentinel(t, redistest.SentinelOptions{MasterName: sentinelMaster, ServerArgs: dataUser,
		AdminUser: adminUser, AdminPass: adminPass,
		SentinelConf: []string{"user " + sentinelUser + " on >" + sentinelPass + " allchannels +@all"}})
	for _, c := range []struct {
		name      string
		s         *redistest.Sentinels
		secret    map[string]string
		connected bool
	}{
		{"Sentinels without a password, the servers' user sent to them", open, gw, false},
		{"Sentinels without a password, an empty sentinel-password", open, with(map[string]string{"sentinel-password": ""}), true},
		{"Sentinels with their own user", own, with(map[string]string{"sentinel-username": sentinelUser, "sentinel-password": sentinelPass + "\n"}), true},
		{"Sentinels with their own user, the servers' user sent to them", own, gw, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newSentinelRig(t, c.s, 2, c.secret)
			if c.connected {
				eventually(t, "connected", func() bool { return r.gws[0].Status().SharedState.Connected })
				sharedAcross(r, "shared")
			} else {
				// Decided locally: both gateways serve a new driver's first poll.
				if a, b := r.do(r.gws[0], "GET", "/offers", "alice"), r.do(r.gws[1], "GET", "/offers", "alice"); a != http.StatusOK || b != http.StatusOK {
					t.Errorf("polls with the Sentinels refusing the gateways: %d, %d; want both served locally", a, b)
				}
				if st := r.gws[0].Status().SharedState; st.Connected {
					t.Errorf("/readyz says connected: %+v", st)
				}
			}
			rz := readyz(t, r.gws[0])
			for _, p := range []string{sentinelGatewayPass, sentinelPass, adminPass} {
				if strings.Contains(rz, p) {
					t.Errorf("/readyz shows a password:\n%s", rz)
				}
			}
		})
	}
}

// TestSharedStateSentinelFrozen: the Sentinel the gateways asked for the master freezes
// (SIGSTOP: its connections stay open and nothing answers, as behind a partition), then the
// master dies and the other two Sentinels promote the replica. The gateways must find the new
// master through the Sentinels that answer: no request waits longer than the timeout plus a
// margin meanwhile, and decisions are shared again, through the new master, while the frozen
// Sentinel is still frozen.
func TestSharedStateSentinelFrozen(t *testing.T) {
	s := startSentinels(t)
	r := newSentinelRig(t, s, 3, nil)
	// The gateways meet S0 first: S1 and S2 are paused while the gateways connect (briefly:
	// a Sentinel that misses its timer for 2 s enters TILT mode for 30 s, and would not
	// fail the master over).
	for _, sn := range s.Sentinels[1:] {
		if err := sn.Pause(); err != nil {
			t.Fatal(err)
		}
	}
	paused := time.Now()
	for i, g := range r.gws {
		r.do(g, "GET", "/offers", fmt.Sprint("warm-", i))
	}
	for _, sn := range s.Sentinels[1:] {
		if err := sn.Resume(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("Sentinels 1 and 2 paused for %v", time.Since(paused))
	sharedAcross(r, "before")
	cl, err := s.Sentinels[0].DoBulk("CLIENT", "LIST")
	if err != nil || strings.Count(cl, "name=offerfeed-gateway") < len(r.gws) {
		t.Fatalf("the gateways are not all on Sentinel 0: %v\n%s", err, cl)
	}
	if err := s.Sentinels[0].Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Sentinels[0].Resume() })

	stop := make(chan struct{})
	wg := r.load(stop, 100000)
	old := s.Master(t)
	addr := s.KillMaster(t)
	t.Logf("master %s killed; the Sentinels that answer name %s", old.Addr, addr)
	eventually(t, "the breakers to close", func() bool {
		for _, g := range r.gws {
			if rtBreaker(g) != "closed" {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("%d requests, max %v", r.requests.Load(), time.Duration(r.maxNS.Load()))
	if n := r.slow.Load(); n > 0 {
		t.Errorf("%d requests took longer than %v (max %v)", n, faultBound, time.Duration(r.maxNS.Load()))
	}
	nm := s.Master(t)
	before := masterKeys(t, nm)
	sharedAcross(r, "after")
	if after := masterKeys(t, nm); after <= before {
		t.Errorf("the new master %s holds %d keys, %d before: the decisions were not written there", nm.Addr, after, before)
	}
}
