package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// A policy's spec.sharedState becomes a Redis client here (docs/design.md#shared-state-on-redis):
//
//   - one redis.UniversalClient per distinct connection setting (mode, addresses, master
//     name, database, TLS, Secret): a reload that keeps them keeps the client and its
//     connections; one that changes them makes a new client and closes the old one once no
//     policy in force uses it (calls in flight on it fail and fall back);
//   - the credentials are read from the Secret the injection webhook mounted at
//     RedisCredentialsDir/<secret>/ on every new connection (go-redis asks its credentials
//     provider each time it dials), so a rotated Secret works without a restart; TLS is done
//     by the dialer with a tls.Config made for each connection, so a rotated ca.crt does too;
//   - a policy whose Secret is not mounted (a pod created before the policy named it) gets
//     no client: its state stays local, and /readyz says why.
//
// Nothing here writes a password anywhere: not in logs, /readyz, metrics or errors (errors
// of Redis that would quote it are redacted).

// maxCredentialBytes bounds what is read of a credentials file.
const maxCredentialBytes = 16 << 10

// sharedStatusTTL is how long /readyz reuses the outcome of its last PING.
const sharedStatusTTL = time.Second

// redisConn is a Redis client made from a policy's connection settings.
type redisConn struct {
	key      string // the settings, as JSON: equal settings share the client
	settings gatewayconfig.Redis
	dir      string // the Secret's mount; "" without a Secret
	client   redis.UniversalClient
	// problem, when set, is why there is no client (the Secret is not mounted).
	problem string
	// rt is the runtime (breaker, metrics) of the client under the policy's timeout and
	// fallback; made again when they change.
	rt *sharedRuntime

	mu        sync.Mutex
	checkedAt time.Time
	connected bool
	detail    string
}

// redisKey is the identity of a connection setting.
func redisKey(r *gatewayconfig.Redis) string {
	b, _ := json.Marshal(r)
	return string(b)
}

// redisConnFor returns the client of settings r: the one in use when its settings are equal,
// else a new one.
func (g *Gateway) redisConnFor(r *gatewayconfig.Redis) *redisConn {
	key := redisKey(r)
	if c := g.redis; c != nil && c.key == key {
		return c
	}
	c := &redisConn{key: key, settings: *r}
	c.settings.Addresses = append([]string(nil), r.Addresses...)
	if r.CredentialsSecret != "" {
		c.dir = filepath.Join(g.opts.RedisCredentialsDir, r.CredentialsSecret)
		if fi, err := os.Stat(c.dir); err != nil || !fi.IsDir() {
			c.problem = fmt.Sprintf("the credentials of Secret %s are not mounted at %s (a pod created before its policy named the Secret): driver state stays in this gateway; recreate the pod to share it", r.CredentialsSecret, c.dir)
			g.log.Info("shared state unavailable: credentials not mounted; driver state stays local", "secret", r.CredentialsSecret, "dir", c.dir)
			return c
		}
	}
	c.client = redis.NewUniversalClient(c.options())
	g.log.Info("shared state: Redis client made", "mode", r.Mode, "addresses", r.Addresses, "database", r.Database,
		"tls", r.TLS != nil, "secret", r.CredentialsSecret)
	return c
}

// runtime returns c's runtime for ss (the client, the policy's timeout and fallback): the
// one in use when they are equal, so that a reload keeps the breaker's state.
func (c *redisConn) runtime(g *Gateway, ss *SharedState) (*sharedRuntime, error) {
	on, timeout := ss.OnUnavailable, ss.Timeout
	if on == "" {
		on = gatewayconfig.OnUnavailableLocal
	}
	if timeout <= 0 {
		timeout = DefaultSharedStateTimeout
	}
	if rt := c.rt; rt != nil && rt.onUnavailable == on && rt.timeout == timeout {
		return rt, nil
	}
	rt, err := g.newSharedRuntime(ss)
	if err != nil {
		return nil, err
	}
	c.rt = rt
	return rt, nil
}

// options are the go-redis options of c.
func (c *redisConn) options() *redis.UniversalOptions {
	r := &c.settings
	o := &redis.UniversalOptions{
		Addrs:         r.Addresses,
		DB:            int(r.Database),
		IsClusterMode: r.Mode == gatewayconfig.RedisCluster,
		ClientName:    "offerfeed-gateway",
		// One try per call: the policy's timeout bounds a decision, and a failed call is
		// decided without Redis (onUnavailable) rather than retried.
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
		DialTimeout:           time.Second,
	}
	if r.Mode == gatewayconfig.RedisSentinel {
		o.MasterName = r.SentinelMasterName
	}
	if c.dir != "" {
		o.CredentialsProviderContext = func(context.Context) (string, string, error) {
			u, p, err := c.credentials()
			return u, p, err
		}
		if r.Mode == gatewayconfig.RedisSentinel {
			// Read once: go-redis takes no provider for the Sentinels.
			o.SentinelUsername, o.SentinelPassword, _ = c.sentinelCredentials()
		}
	}
	if r.TLS != nil {
		o.Dialer = c.dialTLS
	}
	return o
}

// credentials reads the username and password files of the mounted Secret; a missing file is
// empty (password alone: the default user; neither: no AUTH). One trailing newline, as
// editors and `kubectl create secret --from-file` leave, is not part of the value.
func (c *redisConn) credentials() (user, pass string, err error) {
	user, err = readCredential(filepath.Join(c.dir, gatewayconfig.RedisUsernameKey))
	if err != nil {
		return "", "", err
	}
	pass, err = readCredential(filepath.Join(c.dir, gatewayconfig.RedisPasswordKey))
	return user, pass, err
}

// sentinelCredentials are what the Sentinels are sent: sentinel-username and
// sentinel-password when the Secret has either (so a Secret says "no AUTH" with an empty
// sentinel-password: Sentinels often run without a password while the servers require one,
// and a Sentinel without the user refuses AUTH), else the servers' username and password.
func (c *redisConn) sentinelCredentials() (user, pass string, err error) {
	_, uerr := os.Stat(filepath.Join(c.dir, gatewayconfig.RedisSentinelUsernameKey))
	_, perr := os.Stat(filepath.Join(c.dir, gatewayconfig.RedisSentinelPasswordKey))
	if errors.Is(uerr, os.ErrNotExist) && errors.Is(perr, os.ErrNotExist) {
		return c.credentials()
	}
	user, err = readCredential(filepath.Join(c.dir, gatewayconfig.RedisSentinelUsernameKey))
	if err != nil {
		return "", "", err
	}
	pass, err = readCredential(filepath.Join(c.dir, gatewayconfig.RedisSentinelPasswordKey))
	return user, pass, err
}

func readCredential(path string) (string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading credentials file %s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialBytes+1))
	if err != nil || len(b) > maxCredentialBytes {
		return "", fmt.Errorf("reading credentials file %s: unreadable or over %d bytes", filepath.Base(path), maxCredentialBytes)
	}
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	return s, nil
}

// dialTLS dials addr with TLS: the server's certificate is verified against the Secret's
// ca.crt when it has one (read for each connection, so a rotated CA is picked up), else the
// system's roots, for tls.serverName (required by the API; the dialled host without it).
func (c *redisConn) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if t := c.settings.TLS; t != nil && t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	if c.dir != "" {
		pem, err := os.ReadFile(filepath.Join(c.dir, gatewayconfig.RedisCAKey))
		switch {
		case err == nil:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s of Secret %s holds no PEM certificate", gatewayconfig.RedisCAKey, c.settings.CredentialsSecret)
			}
			cfg.RootCAs = pool
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("reading %s of Secret %s: %w", gatewayconfig.RedisCAKey, c.settings.CredentialsSecret, err)
		}
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
	return d.DialContext(ctx, network, addr)
}

// close closes the client, if any.
func (c *redisConn) close() {
	if c != nil && c.client != nil {
		_ = c.client.Close()
	}
}

// SharedStateStatus is the shared state of the policy in force, as /readyz reports it. It
// never holds a credential.
type SharedStateStatus struct {
	Mode      string   `json:"mode"`
	Addresses []string `json:"addresses"`
	// Secret names the Secret the credentials come from (its name only).
	Secret string `json:"secret,omitempty"`
	// Connected: the last PING (at most sharedStatusTTL ago) was answered within Timeout.
	Connected bool   `json:"connected"`
	Timeout   string `json:"timeout"`
	// OnUnavailable is what the gateway does while Redis is out of reach.
	OnUnavailable string `json:"onUnavailable"`
	Detail        string `json:"detail,omitempty"`
	// Breaker is the circuit breaker's state: closed, half-open or open.
	Breaker string `json:"breaker"`
	// FailuresInARow counts the calls failed since the last answer.
	FailuresInARow int64 `json:"failuresInARow"`
	// LastErrorKind and LastErrorTime are of the last failed call (timeout, connection,
	// server, reply), never its text.
	LastErrorKind string     `json:"lastErrorKind,omitempty"`
	LastErrorTime *time.Time `json:"lastErrorTime,omitempty"`
}

// status pings Redis (at most once per sharedStatusTTL) and reports the outcome.
func (c *redisConn) status(timeout time.Duration, now time.Time) (bool, string) {
	if c.client == nil {
		return false, c.problem
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.checkedAt) < sharedStatusTTL && !c.checkedAt.IsZero() {
		return c.connected, c.detail
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := c.client.Ping(ctx).Err()
	c.checkedAt, c.connected, c.detail = now, err == nil, ""
	if err != nil {
		c.detail = "PING failed: " + c.redact(err.Error())
	}
	return c.connected, c.detail
}

// redact removes the passwords (the servers' and the Sentinels') from s, should an error
// ever quote them.
func (c *redisConn) redact(s string) string {
	if c.dir == "" {
		return s
	}
	if _, p, err := c.credentials(); err == nil && len(p) >= 4 {
		s = strings.ReplaceAll(s, p, "[redacted]")
	}
	if c.settings.Mode == gatewayconfig.RedisSentinel {
		if _, p, err := c.sentinelCredentials(); err == nil && len(p) >= 4 {
			s = strings.ReplaceAll(s, p, "[redacted]")
		}
	}
	return s
}
