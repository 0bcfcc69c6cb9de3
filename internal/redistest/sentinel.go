package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sentinelTimeout bounds how long the Sentinels may take to see the replica and each other,
// and how long a failover may take.
const sentinelTimeout = 30 * time.Second

// Sentinel timings: short, so that a test sees a failover in seconds.
const (
	sentinelDownAfter       = 1000 * time.Millisecond
	sentinelFailoverTimeout = 5000 * time.Millisecond
)

// SentinelOptions says how StartSentinel sets its servers up.
type SentinelOptions struct {
	// Sentinels is how many Sentinels to start, 1 to 3 (0: 1). Each has quorum 1, so one
	// Sentinel's view starts a failover; with 3 the failover needs 2 of them to agree on
	// a leader, as in production.
	Sentinels int
	// MasterName is the name the Sentinels monitor the master under ("": "m").
	MasterName string
	// AdminUser and AdminPass, when AdminPass is set, make an ACL user with every right on
	// the master, the replica and every Sentinel, and turn their default user off: the
	// replica replicates as it (masteruser, masterauth), the Sentinels monitor the master
	// (auth-user, auth-pass) and talk to each other (sentinel-user, sentinel-pass) as it,
	// and Do authenticates as it.
	AdminUser, AdminPass string
	// ServerArgs are added to the master's and the replica's command lines (for example
	// "--user", NAME, "on", ">PASS", "~of:*", "+@all" for the client's ACL user).
	ServerArgs []string
	// SentinelConf are lines added to each Sentinel's config file (for example "user NAME
	// on >PASS allchannels +@all" for a client that must authenticate to the Sentinels).
	SentinelConf []string
}

// Sentinels is a Redis master, its replica and the Sentinels that monitor them, on loopback,
// owned by one test.
type Sentinels struct {
	// MasterName is the name the Sentinels know the master by.
	MasterName string
	// Addrs are the Sentinels' host:port: what a client is given.
	Addrs []string
	// Sentinels are the Sentinel processes, in the order of Addrs.
	Sentinels []*Server
	// Servers are the data servers: Servers[0] started as the master, Servers[1] as its
	// replica. A failover swaps their roles; Master says which is master now.
	Servers []*Server

	opts SentinelOptions
}

// StartSentinel starts a master redis-server, one replica of it (--replicaof) and
// opts.Sentinels Sentinels (redis-server with a config file and --sentinel) monitoring it,
// each on a free loopback port, and returns once the replica is in sync and every Sentinel
// knows the master, the replica and the other Sentinels. Down-after is 1 s and the failover
// timeout 5 s. Everything stops when t ends.
func StartSentinel(t testing.TB, opts SentinelOptions) *Sentinels {
	t.Helper()
	if opts.Sentinels == 0 {
		opts.Sentinels = 1
	}
	if opts.Sentinels < 1 || opts.Sentinels > 3 {
		t.Fatalf("redistest: %d Sentinels; want 1 to 3", opts.Sentinels)
	}
	if opts.MasterName == "" {
		opts.MasterName = "m"
	}
	bin, required, err := Binary()
	if err != nil {
		if required {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	s := &Sentinels{MasterName: opts.MasterName, opts: opts}

	// Both data servers can replicate as the admin user: the Sentinels turn a master into
	// a replica of the one they promote.
	var auth []string
	if opts.AdminPass != "" {
		auth = []string{"--user", opts.AdminUser, "on", ">" + opts.AdminPass, "~*", "&*", "+@all", "--user", "default", "off",
			"--masteruser", opts.AdminUser, "--masterauth", opts.AdminPass}
	}
	master := startSpec(t, bin, func() spec {
		return spec{args: append(append([]string(nil), auth...), opts.ServerArgs...), user: opts.AdminUser, pass: opts.AdminPass}
	})
	host, port, _ := net.SplitHostPort(master.Addr)
	replica := startSpec(t, bin, func() spec {
		args := append(append([]string(nil), auth...), opts.ServerArgs...)
		args = append(args, "--replicaof", host, port)
		return spec{args: args, user: opts.AdminUser, pass: opts.AdminPass}
	})
	s.Servers = []*Server{master, replica}

	for range opts.Sentinels {
		sn := startSpec(t, bin, func() spec {
			return spec{conf: s.conf(host, port), args: []string{"--sentinel"}, user: opts.AdminUser, pass: opts.AdminPass}
		})
		s.Sentinels = append(s.Sentinels, sn)
		s.Addrs = append(s.Addrs, sn.Addr)
	}

	// Ready: the replica is in sync, and every Sentinel sees the master up, the replica and
	// the others (Sentinels find replicas by INFO and each other by hello messages, both
	// every few seconds).
	want := fmt.Sprintf("status=ok,address=%s,slaves=1,sentinels=%d", master.Addr, opts.Sentinels)
	s.wait(t, "the replica in sync and every Sentinel aware of it and the others", func() (bool, string) {
		info, err := replica.bulk("INFO", "replication")
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return false, fmt.Sprintf("replica: %v %s", err, info)
		}
		for _, sn := range s.Sentinels {
			info, err := sn.bulk("INFO", "sentinel")
			if err != nil || !strings.Contains(info, want) {
				return false, fmt.Sprintf("Sentinel %s: %v %s", sn.Addr, err, info)
			}
		}
		return true, ""
	})
	return s
}

// startSpec starts a server from the spec mk makes, with a few tries (a port probed free may
// be taken before the server binds it), and fails t when none starts.
func startSpec(t testing.TB, bin string, mk func() spec) *Server {
	t.Helper()
	var lastErr error
	for range 3 {
		s, err := start(t, bin, mk())
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("redistest: %v", lastErr)
	return nil
}

// conf is a Sentinel's config file, monitoring the master at host:port.
func (s *Sentinels) conf(host, port string) string {
	o, m := &s.opts, s.MasterName
	var b strings.Builder
	fmt.Fprintf(&b, "sentinel monitor %s %s %s 1\n", m, host, port)
	fmt.Fprintf(&b, "sentinel down-after-milliseconds %s %d\n", m, sentinelDownAfter.Milliseconds())
	fmt.Fprintf(&b, "sentinel failover-timeout %s %d\n", m, sentinelFailoverTimeout.Milliseconds())
	fmt.Fprintf(&b, "sentinel parallel-syncs %s 1\n", m)
	if o.AdminPass != "" {
		fmt.Fprintf(&b, "user %s on >%s ~* &* +@all\n", o.AdminUser, o.AdminPass)
		b.WriteString("user default off\n")
		fmt.Fprintf(&b, "sentinel auth-user %s %s\n", m, o.AdminUser)
		fmt.Fprintf(&b, "sentinel auth-pass %s %s\n", m, o.AdminPass)
		fmt.Fprintf(&b, "sentinel sentinel-user %s\n", o.AdminUser)
		fmt.Fprintf(&b, "sentinel sentinel-pass %s\n", o.AdminPass)
	}
	for _, l := range o.SentinelConf {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// wait polls ok until it holds, for sentinelTimeout at most; then it fails t with what ok
// said last.
func (s *Sentinels) wait(t testing.TB, what string, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(sentinelTimeout)
	for {
		done, last := ok()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: no %s in %v; last: %s", what, sentinelTimeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// MasterAddr returns the master's address as the first Sentinel that answers reports it
// (paused ones are not asked).
func (s *Sentinels) MasterAddr() (string, error) {
	lastErr := fmt.Errorf("every Sentinel is paused")
	for _, sn := range s.Sentinels {
		if sn.Paused() {
			continue
		}
		info, err := sn.bulk("INFO", "sentinel")
		if err != nil {
			lastErr = err
			continue
		}
		return infoField(info, "address")
	}
	return "", lastErr
}

// Master returns the data server that every Sentinel reports as master now.
func (s *Sentinels) Master(t testing.TB) *Server {
	t.Helper()
	addr, err := s.MasterAddr()
	if err != nil {
		t.Fatalf("redistest: the Sentinels' master: %v", err)
	}
	for _, d := range s.Servers {
		if d.Addr == addr {
			return d
		}
	}
	t.Fatalf("redistest: the Sentinels name %s, none of the servers", addr)
	return nil
}

// Failover asks a Sentinel to fail the master over (SENTINEL FAILOVER) and returns the new
// master's address once every Sentinel reports it and it says it is master.
func (s *Sentinels) Failover(t testing.TB) string {
	t.Helper()
	old := s.Master(t).Addr
	if r, err := s.Sentinels[0].Do("SENTINEL", "FAILOVER", s.MasterName); err != nil || r != "+OK" {
		t.Fatalf("redistest: SENTINEL FAILOVER: %q %v", r, err)
	}
	return s.WaitFailover(t, old)
}

// KillMaster kills the master (SIGKILL, as a crash does) and returns the new master's
// address once the Sentinels have promoted the replica (down-after, then the failover: a
// few seconds).
func (s *Sentinels) KillMaster(t testing.TB) string {
	t.Helper()
	m := s.Master(t)
	m.Kill()
	return s.WaitFailover(t, m.Addr)
}

// WaitFailover waits until every Sentinel (but the paused ones) reports a master other than
// old, with status ok, and that server reports role:master; it returns its address.
func (s *Sentinels) WaitFailover(t testing.TB, old string) string {
	t.Helper()
	var addr string
	s.wait(t, "failover from "+old, func() (bool, string) {
		addr = ""
		for _, sn := range s.Sentinels {
			if sn.Paused() {
				continue
			}
			info, err := sn.bulk("INFO", "sentinel")
			if err != nil {
				return false, err.Error()
			}
			a, err := infoField(info, "address")
			st, _ := infoField(info, "status")
			if err != nil || a == old || st != "ok" || (addr != "" && a != addr) {
				return false, fmt.Sprintf("Sentinel %s: %s", sn.Addr, info)
			}
			addr = a
		}
		for _, d := range s.Servers {
			if d.Addr != addr {
				continue
			}
			info, err := d.bulk("INFO", "replication")
			if err != nil || !strings.Contains(info, "role:master") {
				return false, fmt.Sprintf("new master %s: %v %s", addr, err, info)
			}
			return true, ""
		}
		return false, "the Sentinels name " + addr + ", none of the servers"
	})
	return addr
}

// infoField returns field k of the master0 line of a Sentinel's INFO sentinel
// ("master0:name=m,status=ok,address=127.0.0.1:1234,slaves=1,sentinels=3").
func infoField(info, k string) (string, error) {
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "master0:")
		if !ok {
			continue
		}
		for f := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(f, k+"="); ok {
				return v, nil
			}
		}
	}
	return "", fmt.Errorf("no %s in INFO sentinel: %q", k, info)
}

func (s *Server) bulk(args ...string) (string, error) { return s.DoBulk(args...) }

// doAuth sends AUTH and one command on a new connection and returns the command's reply: its
// first line, or with bulk a bulk string whole.
func doAuth(addr, user, pass string, bulk bool, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b bytes.Buffer
	auth := []string{"AUTH", pass}
	if user != "" {
		auth = []string{"AUTH", user, pass}
	}
	for _, cmd := range [][]string{auth, args} {
		fmt.Fprintf(&b, "*%d\r\n", len(cmd))
		for _, a := range cmd {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if line != "+OK\r\n" {
		return "", fmt.Errorf("AUTH as %q refused: %s", user, strings.TrimSpace(line))
	}
	line, err = br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if !bulk || !strings.HasPrefix(line, "$") {
		return line, nil
	}
	size, err := strconv.Atoi(line[1:])
	if err != nil || size < 0 {
		return line, err
	}
	buf := make([]byte, size+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", err
	}
	return string(buf[:size]), nil
}
