package celcases

import (
	"strings"

	"k8s.io/utils/ptr"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
)

// WithSharedState gives p a valid spec.sharedState on one standalone Redis with a Secret.
func WithSharedState(p *v1alpha1.OfferFeedPolicy) {
	p.Spec.SharedState = v1alpha1.SharedState{Redis: v1alpha1.RedisConnection{
		Addresses:            []v1alpha1.RedisAddress{"redis.offers.svc:6379"},
		CredentialsSecretRef: v1alpha1.SecretReference{Name: "offerfeed-redis"},
	}}
}

// sharedState returns a Mutate that sets a valid spec.sharedState and then changes it.
func sharedState(f func(s *v1alpha1.SharedState)) func(p *v1alpha1.OfferFeedPolicy) {
	return func(p *v1alpha1.OfferFeedPolicy) {
		WithSharedState(p)
		f(&p.Spec.SharedState)
	}
}

func addresses(as ...string) []v1alpha1.RedisAddress {
	out := make([]v1alpha1.RedisAddress, len(as))
	for i, a := range as {
		out[i] = v1alpha1.RedisAddress(a)
	}
	return out
}

const (
	credentialsInAddress = "an address must not hold credentials (user:password@): put them in the Secret of credentialsSecretRef"
	schemeInAddress      = "an address is host:port, not a URL: drop the scheme (redis://, rediss://) and set tls for TLS"
	pathInAddress        = "an address is host:port, without a path or query: set database for the database number"
)

// invalidSharedState returns the invalid cases that break spec.sharedState: where the
// gateways share driver state. Credentials must never be written into the policy.
func invalidSharedState() []Case {
	addr := "spec.sharedState.redis.addresses[0]"
	return []Case{
		{
			Desc:         "sharedState without redis",
			Mutate:       WithSharedState,
			MutateObject: unset("spec", "sharedState", "redis"),
			WantErrors:   []string{"spec.sharedState.redis", requiredValue},
		},
		{
			Desc:         "sharedState without addresses",
			Mutate:       WithSharedState,
			MutateObject: unset("spec", "sharedState", "redis", "addresses"),
			WantErrors:   []string{"spec.sharedState.redis.addresses", requiredValue},
		},
		{
			Desc: "sharedState with 17 addresses",
			Mutate: sharedState(func(s *v1alpha1.SharedState) {
				s.Redis.Mode = v1alpha1.RedisCluster
				for i := range 17 {
					s.Redis.Addresses = append(s.Redis.Addresses, v1alpha1.RedisAddress("node-"+strings.Repeat("a", i+1)+":6379"))
				}
				s.Redis.Addresses = s.Redis.Addresses[1:18]
			}),
			WantErrors: []string{"spec.sharedState.redis.addresses", "must have at most 16 items"},
		},
		{
			Desc:       "address with a password",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Addresses = addresses(":hunter2@redis:6379") }),
			WantErrors: []string{addr, credentialsInAddress},
		},
		{
			Desc:       "address as a redis URL with user and password",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Addresses = addresses("redis://gw:hunter2@redis:6379/0") }),
			WantErrors: []string{addr, credentialsInAddress, schemeInAddress, pathInAddress},
		},
		{
			Desc:       "address as a rediss URL",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Addresses = addresses("rediss://redis:6380") }),
			WantErrors: []string{addr, schemeInAddress},
		},
		{
			Desc:       "address with a database path",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Addresses = addresses("redis:6379/2") }),
			WantErrors: []string{addr, pathInAddress},
		},
		{
			Desc:       "address with a password query",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Addresses = addresses("redis:6379?password=hunter2") }),
			WantErrors: []string{addr, pathInAddress},
		},
		{
			Desc:       "address without a port",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Addresses = addresses("redis.offers.svc") }),
			WantErrors: []string{addr, shouldMatch},
		},
		{
			Desc:       "address with port 0",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Addresses = addresses("redis:0") }),
			WantErrors: []string{addr, "an address's port must be from 1 to 65535"},
		},
		{
			Desc:       "address with port 65536",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Addresses = addresses("redis:65536") }),
			WantErrors: []string{addr, "an address's port must be from 1 to 65535"},
		},
		{
			Desc:       "address with an unbracketed IPv6 address",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Addresses = addresses("fd00::1:6379") }),
			WantErrors: []string{addr, shouldMatch},
		},
		{
			Desc: "address listed twice",
			Mutate: sharedState(func(s *v1alpha1.SharedState) {
				s.Redis.Mode, s.Redis.Addresses = v1alpha1.RedisCluster, addresses("a:1", "a:1")
			}),
			WantErrors: []string{"spec.sharedState.redis.addresses[1]", "Duplicate value"},
		},
		{
			Desc:       "Standalone with two addresses",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Addresses = addresses("a:6379", "b:6379") }),
			WantErrors: []string{"spec.sharedState.redis", "mode Standalone takes exactly one address"},
		},
		{
			Desc:       "Sentinel without sentinelMasterName",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Mode = v1alpha1.RedisSentinel }),
			WantErrors: []string{"spec.sharedState.redis", "sentinelMasterName is required with mode Sentinel, and only with it"},
		},
		{
			Desc:       "sentinelMasterName without Sentinel",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.SentinelMasterName = "mymaster" }),
			WantErrors: []string{"spec.sharedState.redis", "sentinelMasterName is required with mode Sentinel, and only with it"},
		},
		{
			Desc: "sentinelMasterName with a password in it",
			Mutate: sharedState(func(s *v1alpha1.SharedState) {
				s.Redis.Mode, s.Redis.SentinelMasterName = v1alpha1.RedisSentinel, "mymaster password=hunter2"
			}),
			WantErrors: []string{"spec.sharedState.redis.sentinelMasterName", shouldMatch},
		},
		{
			Desc:       "mode Primary",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Mode = "Primary" }),
			WantErrors: []string{"spec.sharedState.redis.mode", unsupported},
		},
		{
			Desc:       "database 16",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Database = ptr.To[int32](16) }),
			WantErrors: []string{"spec.sharedState.redis.database", "should be less than or equal to 15"},
		},
		{
			Desc:       "database -1",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.Database = ptr.To[int32](-1) }),
			WantErrors: []string{"spec.sharedState.redis.database", "should be greater than or equal to 0"},
		},
		{
			Desc: "database 1 with Cluster",
			Mutate: sharedState(func(s *v1alpha1.SharedState) {
				s.Redis.Mode, s.Redis.Database = v1alpha1.RedisCluster, ptr.To[int32](1)
			}),
			WantErrors: []string{"spec.sharedState.redis", "database must be 0 (or unset) with mode Cluster"},
		},
		{
			Desc:       "tls serverName with a scheme",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.TLS = v1alpha1.RedisTLS{ServerName: "rediss://redis"} }),
			WantErrors: []string{"spec.sharedState.redis.tls.serverName", shouldMatch},
		},
		{
			Desc:         "tls insecureSkipVerify, which is not offered",
			Mutate:       sharedState(func(s *v1alpha1.SharedState) { s.Redis.TLS = v1alpha1.RedisTLS{ServerName: "redis"} }),
			MutateObject: set(true, "spec", "sharedState", "redis", "tls", "insecureSkipVerify"),
			WantErrors:   []string{"insecureSkipVerify"},
		},
		{
			Desc:         "tls without serverName",
			Mutate:       sharedState(func(s *v1alpha1.SharedState) { s.Redis.TLS = v1alpha1.RedisTLS{ServerName: "redis"} }),
			MutateObject: unset("spec", "sharedState", "redis", "tls", "serverName"),
			WantErrors:   []string{"spec.sharedState.redis.tls.serverName", requiredValue},
		},
		{
			Desc:         "an inline password field",
			Mutate:       WithSharedState,
			MutateObject: set("hunter2", "spec", "sharedState", "redis", "password"),
			WantErrors:   []string{"password"},
		},
		{
			Desc:       "credentialsSecretRef naming a Secret with a path",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.CredentialsSecretRef.Name = "../admin" }),
			WantErrors: []string{"spec.sharedState.redis.credentialsSecretRef.name", shouldMatch},
		},
		{
			Desc:       "credentialsSecretRef naming another application's Secret",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Redis.CredentialsSecretRef.Name = "billing-db" }),
			WantErrors: []string{"spec.sharedState.redis.credentialsSecretRef.name", "the Secret's name must start with offerfeed-"},
		},
		{
			Desc:       "timeout 0s",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Timeout = "0s" }),
			WantErrors: []string{"spec.sharedState.timeout", "sharedState.timeout must be between 1ms and 1s"},
		},
		{
			Desc:       "timeout 2s",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.Timeout = "2s" }),
			WantErrors: []string{"spec.sharedState.timeout", "sharedState.timeout must be between 1ms and 1s"},
		},
		{
			Desc:       "onUnavailable Deny",
			Mutate:     sharedState(func(s *v1alpha1.SharedState) { s.OnUnavailable = "Deny" }),
			WantErrors: []string{"spec.sharedState.onUnavailable", unsupported},
		},
	}
}

// validSharedState returns valid specs with spec.sharedState.
func validSharedState() []Case {
	return []Case{
		{Desc: "sharedState on one Redis with a Secret", Mutate: WithSharedState},
		{Desc: "sharedState on one Redis without credentials, bounds of timeout", Mutate: sharedState(func(s *v1alpha1.SharedState) {
			s.Redis.CredentialsSecretRef, s.Timeout, s.OnUnavailable = v1alpha1.SecretReference{}, "1ms", v1alpha1.OnUnavailableAllow
		})},
		{Desc: "sharedState on Sentinels with TLS and database 15", Mutate: sharedState(func(s *v1alpha1.SharedState) {
			s.Redis.Mode, s.Redis.SentinelMasterName = v1alpha1.RedisSentinel, "offers.master-1"
			s.Redis.Addresses = addresses("sentinel-0.offers.svc:26379", "10.0.0.7:26379", "[fd00::7]:26379")
			s.Redis.Database, s.Redis.TLS, s.Timeout = ptr.To[int32](15), v1alpha1.RedisTLS{ServerName: "redis.offers.svc"}, "1s"
		})},
		{Desc: "sharedState on a Redis Cluster of 16 seed nodes", Mutate: sharedState(func(s *v1alpha1.SharedState) {
			s.Redis.Mode, s.Redis.Addresses, s.Redis.TLS = v1alpha1.RedisCluster, nil, v1alpha1.RedisTLS{ServerName: "redis.offers.svc"}
			for i := range 16 {
				s.Redis.Addresses = append(s.Redis.Addresses, v1alpha1.RedisAddress("node-"+strings.Repeat("n", i+1)+".redis:65535"))
			}
		})},
	}
}
