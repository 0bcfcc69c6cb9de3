package redistest

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestStart starts a real server, writes and reads through it, and checks that it is gone
// after Stop.
func TestStart(t *testing.T) {
	s := Start(t)
	if r, err := s.Do("SET", "k", "v"); err != nil || r != "+OK" {
		t.Fatalf("SET = %q, %v", r, err)
	}
	if r, err := s.Do("EXISTS", "k"); err != nil || r != ":1" {
		t.Fatalf("EXISTS = %q, %v", r, err)
	}
	// No persistence: the server was started with save "" and appendonly no.
	if r, err := s.Do("CONFIG", "GET", "appendonly"); err != nil || r != "*2" {
		t.Fatalf("CONFIG GET = %q, %v", r, err)
	}
	s.Stop()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("server still answers after Stop")
	}
}

// TestTwoServers checks that two servers of one test get distinct ports and distinct data.
func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Addr == b.Addr {
		t.Fatalf("both servers on %s", a.Addr)
	}
	if _, err := a.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if r, err := b.Do("EXISTS", "k"); err != nil || r != ":0" {
		t.Fatalf("EXISTS on the other server = %q, %v", r, err)
	}
}

// TestRequiredBinaryFails checks the rule that keeps CI honest: with EnvServer set to a
// binary that does not exist, Binary reports the server as required (Start then fails the
// test instead of skipping it).
func TestRequiredBinaryFails(t *testing.T) {
	t.Setenv(EnvServer, "/nonexistent/redis-server")
	p, required, err := Binary()
	if err != nil || !required || p != "/nonexistent/redis-server" {
		t.Fatalf("Binary() = %q, %v, %v; want the path, required", p, required, err)
	}
	os.Unsetenv(EnvServer)
	t.Setenv("PATH", t.TempDir())
	_, required, err = Binary()
	if err == nil || required || !strings.Contains(err.Error(), "redis-server") {
		t.Fatalf("Binary() without server = %v, required %v; want an error naming redis-server, not required", err, required)
	}
}

// TestFaults: a paused server does not answer until resumed; a restarted one answers on the
// same address with its data gone; a killed one does not answer.
func TestFaults(t *testing.T) {
	s := Start(t)
	if _, err := s.Do("SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	// do's deadline is 5 s: a paused server accepts the connection (the kernel does) but
	// never answers.
	if r, err := s.Do("PING"); err == nil {
		t.Fatalf("paused server answered %q", r)
	}
	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Do("EXISTS", "k"); err != nil || r != ":1" {
		t.Fatalf("after Resume: EXISTS = %q, %v; want the data kept", r, err)
	}
	s.Restart(t)
	if r, err := s.Do("EXISTS", "k"); err != nil || r != ":0" {
		t.Fatalf("after Restart: EXISTS = %q, %v; want the data gone", r, err)
	}
	s.Kill()
	if _, err := s.Do("PING"); err == nil {
		t.Fatal("killed server answers")
	}
}

// TestProxy: commands pass through the proxy, and with a delay each takes at least that
// long; Close ends its connections.
func TestProxy(t *testing.T) {
	s := Start(t)
	p := NewProxy(t, s.Addr)
	if r, err := ping2(p.Addr); err != nil || r != "+PONG" {
		t.Fatalf("PING through the proxy = %q, %v", r, err)
	}
	p.SetDelay(50 * time.Millisecond)
	start := time.Now()
	if r, err := ping2(p.Addr); err != nil || r != "+PONG" {
		t.Fatalf("PING through the slow proxy = %q, %v", r, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("PING through a 50ms proxy took %v", d)
	}
	p.Close()
	if _, err := ping2(p.Addr); err == nil {
		t.Fatal("closed proxy answers")
	}
}

func ping2(addr string) (string, error) { return do(addr, "PING") }

// TestStartCluster forms a 3-node cluster: every node serves a third of the slots and
// redirects a key of another node's slot (MOVED).
func TestStartCluster(t *testing.T) {
	c := StartCluster(t, 3)
	if len(c.Addrs) != 3 {
		t.Fatalf("%d nodes", len(c.Addrs))
	}
	for _, s := range c.Nodes {
		info, err := doBulk(s.Addr, "CLUSTER", "INFO")
		if err != nil || !strings.Contains(info, "cluster_slots_assigned:16384") {
			t.Fatalf("CLUSTER INFO on %s: %v\n%s", s.Addr, err, info)
		}
	}
	// Key "a" is in slot 15495 (the third node); "b" in 3300 (the first).
	if r, err := c.Nodes[2].Do("SET", "a", "1"); err != nil || r != "+OK" {
		t.Fatalf("SET a on its node: %q %v", r, err)
	}
	if r, err := c.Nodes[0].Do("SET", "a", "1"); err != nil || !strings.HasPrefix(r, "-MOVED 15495 ") {
		t.Fatalf("SET a on another node: %q %v, want MOVED", r, err)
	}
	if r, err := c.Nodes[0].Do("SET", "b", "1"); err != nil || r != "+OK" {
		t.Fatalf("SET b on its node: %q %v", r, err)
	}
}

// TestStartSentinel starts a master, its replica and 3 Sentinels, all requiring an ACL user:
// a write on the master reaches the replica, SENTINEL FAILOVER promotes the replica, and
// once the old master has followed it as a replica, killing the new master (SIGKILL)
// promotes the old one back.
func TestStartSentinel(t *testing.T) {
	s := StartSentinel(t, SentinelOptions{Sentinels: 3, MasterName: "offers", AdminUser: "admin", AdminPass: "adm1n-Pa55"})
	if len(s.Addrs) != 3 || len(s.Servers) != 2 {
		t.Fatalf("%d Sentinels, %d servers", len(s.Addrs), len(s.Servers))
	}
	for _, srv := range append(append([]*Server(nil), s.Servers...), s.Sentinels...) {
		if r, err := do(srv.Addr, "PING"); err != nil || !strings.HasPrefix(r, "-NOAUTH") {
			t.Errorf("%s answers PING without AUTH: %q, %v; want NOAUTH (the default user is off)", srv.Addr, r, err)
		}
	}
	if m := s.Master(t); m != s.Servers[0] {
		t.Fatalf("master %s, want %s", m.Addr, s.Servers[0].Addr)
	}
	if r, err := s.Servers[0].Do("SET", "k", "v"); err != nil || r != "+OK" {
		t.Fatalf("SET = %q, %v", r, err)
	}
	replicated := func(srv *Server) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, err := srv.bulk("GET", "k")
			if err == nil && r == "v" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GET k = %q, %v; the write did not replicate", srv.Addr, r, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	replicated(s.Servers[1])

	if addr := s.Failover(t); addr != s.Servers[1].Addr {
		t.Fatalf("after SENTINEL FAILOVER the master is %s, want the replica %s", addr, s.Servers[1].Addr)
	}
	if r, err := s.Servers[1].Do("SET", "k2", "v"); err != nil || r != "+OK" {
		t.Fatalf("SET on the new master = %q, %v", r, err)
	}
	// The old master follows the new one (the Sentinels reconfigure it), then takes over
	// when the new one dies.
	deadline := time.Now().Add(sentinelTimeout)
	for {
		info, err := s.Servers[0].bulk("INFO", "replication")
		if err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old master does not follow the new one: %v %s", err, info)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if addr := s.KillMaster(t); addr != s.Servers[0].Addr {
		t.Fatalf("after killing %s the master is %s, want %s", s.Servers[1].Addr, addr, s.Servers[0].Addr)
	}
	if r, err := s.Servers[0].bulk("GET", "k2"); err != nil || r != "v" {
		t.Fatalf("the promoted server lost the write: GET k2 = %q, %v", r, err)
	}
}
