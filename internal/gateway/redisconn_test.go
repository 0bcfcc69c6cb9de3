package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"hash/maphash"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/internal/redistest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// gatewayACL is the ACL of the gateways' user that docs/gateway.md recommends: its keys and
// pub/sub channels only (draws across replicas publish on of:draws:…), no dangerous or admin
// commands.
var gatewayACL = []string{"~of:*", "&of:*", "+@all", "-@dangerous"}

// Redis users of the tests besides the gateways': one that administers.
const adminUser, adminPass = "test-admin", "admin-Pa55word-for-the-test"

// aclServer starts a real Redis whose users are user with password pass, with gatewayACL,
// and adminUser (the default user is off, so a client that does not authenticate gets
// nothing).
func aclServer(t *testing.T, user, pass string) *redistest.Server {
	t.Helper()
	srv := redistest.Start(t)
	for _, cmd := range [][]string{
		append([]string{"ACL", "SETUSER", user, "on", ">" + pass}, gatewayACL...),
		{"ACL", "SETUSER", adminUser, "on", ">" + adminPass, "~*", "&*", "+@all"},
		{"ACL", "SETUSER", "default", "off"},
	} {
		if r, err := srv.Do(cmd...); err != nil || r != "+OK" {
			t.Fatalf("%s: %q, %v", cmd[:3], r, err)
		}
	}
	if r, err := srv.Do("PING"); err != nil || r == "+PONG" {
		t.Fatal("the default user still answers: the test would not show that the gateway authenticates")
	}
	return srv
}

// writeSecret writes the files of a Secret as the kubelet mounts them: dir/name/key.
func writeSecret(t *testing.T, dir, name string, data map[string]string) {
	t.Helper()
	d := filepath.Join(dir, name)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(d, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func sharedConfig(addr, secret string, db int32) *gatewayconfig.Config {
	p := standardPolicy()
	p.SharedState = &gatewayconfig.SharedState{
		Redis:         gatewayconfig.Redis{Mode: gatewayconfig.RedisStandalone, Addresses: []string{addr}, Database: db, CredentialsSecret: secret},
		Timeout:       dur("1s"),
		OnUnavailable: gatewayconfig.OnUnavailableLocal,
	}
	return configOf(p)
}

// pollAs sends a feed poll of driver to g and returns the decision header ("" when served).
func pollAs(t *testing.T, g *Gateway, driver string) string {
	t.Helper()
	r := httptest.NewRequest("GET", "/offers", nil)
	r.Header.Set("X-Driver-Id", driver)
	w := httptest.NewRecorder()
	g.ServeHTTP(w, r)
	if w.Code != http.StatusOK && w.Code != http.StatusTooManyRequests {
		t.Fatalf("poll: %d %s", w.Code, w.Body)
	}
	return w.Header().Get(HeaderDecision)
}

func readyz(t *testing.T, g *Gateway) string {
	t.Helper()
	srv := httptest.NewServer(g.AdminHandler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// TestSharedStateFromConfig: gateways given only the config and the mounted Secret connect to
// a real Redis that requires an ACL user, share their decisions (with different hash seeds),
// keep their client across a reload that keeps the settings, pick up a rotated password
// without a restart, close the client a config stops using, and report all of it in
// /readyz without the password.
func TestSharedStateFromConfig(t *testing.T) {
	const user, pass = "offerfeed-gw", "s3cret-Pa55word-for-the-test"
	srv := aclServer(t, user, pass)
	dir := t.TempDir()
	writeSecret(t, dir, "offerfeed-redis-creds", map[string]string{"username": user + "\n", "password": pass + "\n"})
	up := newFakeUpstream(t)
	u, _ := url.Parse(up.URL)
	clock := newFakeClock()
	var gws []*Gateway
	for range 2 {
		seed := maphash.MakeSeed()
		g, err := New(Options{Upstream: u, Clock: clock, PodLabels: map[string]string{"app": "offer-service"},
			RedisCredentialsDir: dir, HashSeed: &seed})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		if err := g.Apply(sharedConfig(srv.Addr, "offerfeed-redis-creds", 0)); err != nil {
			t.Fatal(err)
		}
		gws = append(gws, g)
	}
	if d := pollAs(t, gws[0], "alice"); d != "" {
		t.Fatalf("first poll: %q", d)
	}
	if d := pollAs(t, gws[1], "alice"); d != FeedThrottled.String() {
		t.Fatalf("a poll on the other gateway right after: %q, want %s: the gateways do not share state", d, FeedThrottled)
	}
	rz := readyz(t, gws[0])
	for _, want := range []string{`"connected": true`, `"mode": "Standalone"`, srv.Addr, `"secret": "offerfeed-redis-creds"`, `"onUnavailable": "Local"`} {
		if !strings.Contains(rz, want) {
			t.Errorf("/readyz lacks %s:\n%s", want, rz)
		}
	}
	if strings.Contains(rz, pass) {
		t.Errorf("/readyz shows the password:\n%s", rz)
	}

	// A reload with the same connection settings keeps the client.
	client := gws[0].redis.client
	p := sharedConfig(srv.Addr, "offerfeed-redis-creds", 0)
	p.Policies[0].Feed.Burst = 2
	if err := gws[0].Apply(p); err != nil {
		t.Fatal(err)
	}
	if gws[0].redis.client != client {
		t.Error("a reload that keeps the connection settings made a new client")
	}
	if err := gws[0].Apply(sharedConfig(srv.Addr, "offerfeed-redis-creds", 0)); err != nil {
		t.Fatal(err)
	}

	// The password rotates: Redis takes only the new one, the Secret's file changes, and the
	// connections are dropped. The next connection authenticates with the new password.
	const rotated = "r0tated-Pa55word-for-the-test"
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: adminUser, Password: adminPass})
	defer admin.Close()
	ctx := context.Background()
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "resetpass", ">"+rotated).Err(); err != nil {
		t.Fatal(err)
	}
	writeSecret(t, dir, "offerfeed-redis-creds", map[string]string{"password": rotated})
	if err := admin.Do(ctx, "CLIENT", "KILL", "USER", user).Err(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(5 * time.Second)
	if d := pollAs(t, gws[1], "bob"); d != "" {
		t.Fatalf("bob's first poll: %q", d)
	}
	if d := pollAs(t, gws[0], "bob"); d != FeedThrottled.String() {
		t.Fatalf("after the rotation, a poll on the other gateway: %q, want %s (shared state lost: %d failed calls)", d, FeedThrottled,
			gws[0].active.Load().policy.store.(*sharedStore).errors.Load())
	}

	// Another database: a new client; the old one is closed.
	if err := gws[0].Apply(sharedConfig(srv.Addr, "offerfeed-redis-creds", 3)); err != nil {
		t.Fatal(err)
	}
	if gws[0].redis.client == client {
		t.Fatal("a reload to another database kept the client")
	}
	if err := client.Ping(ctx).Err(); !errors.Is(err, redis.ErrClosed) {
		t.Errorf("the replaced client answers %v, want %v", err, redis.ErrClosed)
	}
	// No shared state: the client is closed and /readyz says nothing of Redis.
	newer := gws[0].redis.client
	if err := gws[0].Apply(configOf(standardPolicy())); err != nil {
		t.Fatal(err)
	}
	if gws[0].redis != nil || !errors.Is(newer.Ping(ctx).Err(), redis.ErrClosed) {
		t.Error("a config without shared state left the client open")
	}
	if rz := readyz(t, gws[0]); strings.Contains(rz, "sharedState") {
		t.Errorf("/readyz of a local policy:\n%s", rz)
	}
}

// TestSharedStateNotMounted: a policy whose Secret is not mounted (a pod created before the
// policy named it) keeps its state local and says why in /readyz.
func TestSharedStateNotMounted(t *testing.T) {
	srv := redistest.Start(t)
	up := newFakeUpstream(t)
	u, _ := url.Parse(up.URL)
	clock := newFakeClock()
	var gws []*Gateway
	for range 2 {
		g, err := New(Options{Upstream: u, Clock: clock, PodLabels: map[string]string{"app": "offer-service"},
			RedisCredentialsDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.Close)
		if err := g.Apply(sharedConfig(srv.Addr, "offerfeed-redis-creds", 0)); err != nil {
			t.Fatal(err)
		}
		gws = append(gws, g)
	}
	if d0, d1 := pollAs(t, gws[0], "alice"), pollAs(t, gws[1], "alice"); d0 != "" || d1 != "" {
		t.Fatalf("polls on two gateways with local state: %q, %q; want both served", d0, d1)
	}
	rz := readyz(t, gws[0])
	for _, want := range []string{`"connected": false`, "not mounted", "recreate the pod"} {
		if !strings.Contains(rz, want) {
			t.Errorf("/readyz lacks %q:\n%s", want, rz)
		}
	}
}

// TestSharedStateWrongPassword: a gateway whose Secret holds a wrong password decides
// locally, and /readyz says it is not connected without quoting any password.
func TestSharedStateWrongPassword(t *testing.T) {
	const user, pass, wrong = "offerfeed-gw", "s3cret-Pa55word-for-the-test", "wr0ng-Pa55word-for-the-test"
	srv := aclServer(t, user, pass)
	dir := t.TempDir()
	writeSecret(t, dir, "offerfeed-redis-creds", map[string]string{"username": user, "password": wrong})
	up := newFakeUpstream(t)
	u, _ := url.Parse(up.URL)
	g, err := New(Options{Upstream: u, Clock: newFakeClock(), PodLabels: map[string]string{"app": "offer-service"}, RedisCredentialsDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	if err := g.Apply(sharedConfig(srv.Addr, "offerfeed-redis-creds", 0)); err != nil {
		t.Fatal(err)
	}
	if d := pollAs(t, g, "alice"); d != "" {
		t.Fatalf("poll decided locally: %q", d)
	}
	rz := readyz(t, g)
	if !strings.Contains(rz, `"connected": false`) || !strings.Contains(rz, "PING failed") {
		t.Errorf("/readyz:\n%s", rz)
	}
	if strings.Contains(rz, wrong) || strings.Contains(rz, pass) {
		t.Errorf("/readyz shows a password:\n%s", rz)
	}
}

// testCA makes a CA and a server certificate for name, signed by it, as PEM files in dir:
// ca.crt, server.crt, server.key.
func testCA(t *testing.T, dir, name string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "offerfeed test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	for file, b := range map[string]*pem.Block{"ca.crt": {Type: "CERTIFICATE", Bytes: caDER},
		"server.crt": {Type: "CERTIFICATE", Bytes: leafDER}, "server.key": {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, file), pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSharedStateTLS: with tls, the gateway verifies the server against the Secret's ca.crt
// (and the serverName), and refuses a server it cannot verify: there is no way to skip it.
func TestSharedStateTLS(t *testing.T) {
	pki := t.TempDir()
	testCA(t, pki, "redis.offers.test")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsAddr := l.Addr().String()
	l.Close()
	_, tlsPort, _ := net.SplitHostPort(tlsAddr)
	redistest.Start(t, "--tls-port", tlsPort, "--tls-cert-file", filepath.Join(pki, "server.crt"),
		"--tls-key-file", filepath.Join(pki, "server.key"), "--tls-ca-cert-file", filepath.Join(pki, "ca.crt"), "--tls-auth-clients", "no")
	ca, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeSecret(t, dir, "offerfeed-with-ca", map[string]string{"ca.crt": string(ca)})
	writeSecret(t, dir, "offerfeed-without-ca", map[string]string{})
	up := newFakeUpstream(t)
	u, _ := url.Parse(up.URL)
	for _, c := range []struct {
		secret, serverName string
		connected          bool
	}{
		{"offerfeed-with-ca", "redis.offers.test", true},
		{"offerfeed-with-ca", "127.0.0.1", false},            // the dialled IP is not in the certificate
		{"offerfeed-with-ca", "other.offers.test", false},    // nor is this name
		{"offerfeed-without-ca", "redis.offers.test", false}, // the system's roots do not know the CA
	} {
		g, err := New(Options{Upstream: u, Clock: newFakeClock(), PodLabels: map[string]string{"app": "offer-service"}, RedisCredentialsDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		cfg := sharedConfig(tlsAddr, c.secret, 0)
		cfg.Policies[0].SharedState.Redis.TLS = &gatewayconfig.RedisTLS{ServerName: c.serverName}
		if err := g.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		rz := readyz(t, g)
		if got := strings.Contains(rz, `"connected": true`); got != c.connected {
			t.Errorf("Secret %s, serverName %q: connected %v, want %v:\n%s", c.secret, c.serverName, got, c.connected, rz)
		}
		g.Close()
	}
}
