package redistest

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// clusterTimeout bounds how long the nodes of a new cluster may take to agree.
const clusterTimeout = 30 * time.Second

// Cluster is a Redis Cluster of local servers (one primary each, no replicas), owned by one
// test.
type Cluster struct {
	// Addrs are the nodes' host:port, in the order their slot ranges follow each other.
	Addrs []string
	// Nodes are the servers, as Start returns them.
	Nodes []*Server
}

// StartCluster starts n servers with --cluster-enabled yes on free loopback ports (data and
// cluster bus) and makes them one cluster from Go, as redis-cli --cluster create would: node
// i gets an equal range of the 16384 slots (CLUSTER ADDSLOTSRANGE), the first node meets the
// others (CLUSTER MEET), and StartCluster returns once every node reports cluster_state:ok
// and knows all n nodes. It needs no redis-cli, so a valkey-server works as well; it needs
// Redis 7.0 or later (--cluster-port, CLUSTER ADDSLOTSRANGE), as the Debian 7.x
// packages are. The servers stop when t ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatal("redistest: a cluster needs at least one node")
	}
	c := &Cluster{}
	buses := make([]int, n)
	for i := range n {
		bus, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		buses[i] = bus
		s := Start(t, "--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-node-timeout", "5000", "--cluster-require-full-coverage", "yes")
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	for i, s := range c.Nodes {
		lo, hi := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		if r, err := s.Do("CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil || r != "+OK" {
			t.Fatalf("redistest: CLUSTER ADDSLOTSRANGE %d %d on %s: %q %v", lo, hi, s.Addr, r, err)
		}
	}
	for i := 1; i < n; i++ {
		host, port, _ := net.SplitHostPort(c.Addrs[i])
		if r, err := c.Nodes[0].Do("CLUSTER", "MEET", host, port, strconv.Itoa(buses[i])); err != nil || r != "+OK" {
			t.Fatalf("redistest: CLUSTER MEET %s: %q %v", c.Addrs[i], r, err)
		}
	}
	deadline := time.Now().Add(clusterTimeout)
	for {
		ok := true
		var last string
		for _, s := range c.Nodes {
			info, err := doBulk(s.Addr, "CLUSTER", "INFO")
			last = info
			if err != nil || !strings.Contains(info, "cluster_state:ok") ||
				!strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)+"\r\n") {
				ok = false
				break
			}
		}
		if ok {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: the cluster did not form in %v; CLUSTER INFO:\n%s", clusterTimeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// doBulk sends one command and returns its reply, reading a bulk string whole.
func doBulk(addr string, args ...string) (string, error) { return exchange(addr, args, readBulk) }

// readBulk reads a reply: a bulk string whole, any other its first line.
func readBulk(br *bufio.Reader) (string, error) {
	line, err := readLine(br)
	if err != nil || !strings.HasPrefix(line, "$") {
		return line, err
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
