package gatewayconfig

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

var (
	redisAddressRE = regexp.MustCompile(RedisAddressPattern)
	masterNameRE   = regexp.MustCompile(SentinelMasterNamePattern)
	serverNameRE   = regexp.MustCompile(ServerNamePattern)
	secretNameRE   = regexp.MustCompile(SecretNamePattern)
)

// check checks shared state (nil: none) as the API checks spec.sharedState. An address that
// is refused is never quoted in the problem: it may be a URL with a password in it, and
// problems reach logs and /readyz.
func (s *SharedState) check(add problemFunc) {
	if s == nil {
		return
	}
	if s.Timeout.D() < MinSharedTimeout || s.Timeout.D() > MaxSharedTimeout {
		add("sharedState.timeout", "%s is not between %s and %s", s.Timeout.D(), MinSharedTimeout, MaxSharedTimeout)
	}
	if !slices.Contains(OnUnavailables(), string(s.OnUnavailable)) {
		add("sharedState.onUnavailable", "%q is not %s", s.OnUnavailable, strings.Join(OnUnavailables(), " or "))
	}
	r := &s.Redis
	if !slices.Contains(RedisModes(), string(r.Mode)) {
		add("sharedState.redis.mode", "%q is not %s", r.Mode, strings.Join(RedisModes(), ", "))
	}
	if n := len(r.Addresses); n < MinRedisAddresses || n > MaxRedisAddresses {
		add("sharedState.redis.addresses", "%d addresses, not between %d and %d", n, MinRedisAddresses, MaxRedisAddresses)
	}
	for i, a := range r.Addresses {
		if msg := addressProblem(a); msg != "" {
			add(fmt.Sprintf("sharedState.redis.addresses[%d]", i), "%s", msg)
		}
		if slices.Index(r.Addresses, a) < i {
			add(fmt.Sprintf("sharedState.redis.addresses[%d]", i), "duplicate of addresses[%d]", slices.Index(r.Addresses, a))
		}
	}
	if r.Mode == RedisStandalone && len(r.Addresses) > 1 {
		add("sharedState.redis.addresses", "mode Standalone takes exactly one address; list several with Sentinel or Cluster")
	}
	if (r.Mode == RedisSentinel) != (r.SentinelMasterName != "") {
		add("sharedState.redis.sentinelMasterName", "required with mode Sentinel, and only with it")
	}
	if m := r.SentinelMasterName; m != "" && (len(m) < MinSentinelMasterNameLen || len(m) > MaxSentinelMasterNameLen || !masterNameRE.MatchString(m)) {
		add("sharedState.redis.sentinelMasterName", "not a name of letters, digits, '.', '_' and '-' of at most %d characters", MaxSentinelMasterNameLen)
	}
	if r.Database < MinRedisDatabase || r.Database > MaxRedisDatabase {
		add("sharedState.redis.database", "%d is not between %d and %d", r.Database, MinRedisDatabase, MaxRedisDatabase)
	}
	if r.Mode == RedisCluster && r.Database != 0 {
		add("sharedState.redis.database", "must be 0 (or unset) with mode Cluster: a Redis Cluster has only database 0")
	}
	if t := r.TLS; t != nil && (len(t.ServerName) < MinServerNameLen || len(t.ServerName) > MaxServerNameLen || !serverNameRE.MatchString(t.ServerName)) {
		add("sharedState.redis.tls.serverName", "not a DNS name (required with tls)")
	}
	if n := r.CredentialsSecret; n != "" && (len(n) > MaxSecretNameLen || !secretNameRE.MatchString(n)) {
		add("sharedState.redis.credentialsSecret", "not the name of a Secret (a DNS subdomain)")
	} else if n != "" && !strings.HasPrefix(n, RedisSecretPrefix) {
		add("sharedState.redis.credentialsSecret", "the Secret's name must start with %s: the gateways send its credentials to the policy's addresses, so only a Secret made for offerfeed may be named", RedisSecretPrefix)
	}
}

// addressProblem says what is wrong with a Redis address, without quoting it; "" when it is
// host:port.
func addressProblem(a string) string {
	switch {
	case strings.Contains(a, "@"):
		return "an address must not hold credentials (user:password@): put them in the Secret of credentialsSecretRef (the value is not shown)"
	case strings.Contains(a, "://"):
		return "an address is host:port, not a URL: drop the scheme (redis://, rediss://) and set tls for TLS (the value is not shown)"
	case strings.ContainsAny(a, "/?"):
		return "an address is host:port, without a path or query: set database for the database number (the value is not shown)"
	case len(a) < MinRedisAddressLen || len(a) > MaxRedisAddressLen || !redisAddressRE.MatchString(a):
		return "not host:port with a DNS name, an IPv4 address or a bracketed IPv6 address (the value is not shown)"
	}
	port, _ := strconv.Atoi(a[strings.LastIndexByte(a, ':')+1:])
	if port < 1 || port > 65535 {
		return "an address's port must be from 1 to 65535"
	}
	return ""
}
