// Package gatewayconfig is the gateway config file: what the operator renders from the
// OfferFeedPolicies of a namespace into ConfigMap offerfeed-gateway (key config.json), and what
// the gateway sidecar reads. It is a public, versioned format: GitOps pipelines may render and
// check it themselves (see `offerfeed render` and the JSON Schema in config/gateway).
//
// Durations are written as Go duration strings in canonical form ("2s", "800ms", "10m0s").
//
// # Names shared with the API
//
// The enums that the OfferFeedPolicy API and this format have in common, Mode and Award, are
// defined here, once: api/v1alpha1's PolicyMode and FairnessAward are aliases of them, and their
// +kubebuilder:validation:Enum markers, here, are what controller-gen writes into the CRD. This
// package is the one both sides can import: it needs only metav1, whereas api/v1alpha1 brings
// in controller-runtime's scheme, which the gateway and GitOps tools should not link. Duration
// is two types on purpose: the API's v1alpha1.Duration is the text a person wrote ("60s"),
// checked by a pattern and compared in CEL, while Duration here is the parsed value, written in
// canonical form so that the same limits always give the same config and hash.
package gatewayconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SchemaVersion is the version of the config format this package reads and writes. A gateway
// refuses a config of another version and keeps its last good one.
const SchemaVersion = 1

// Config is the whole gateway config of one namespace.
type Config struct {
	// SchemaVersion is the version of this format; always SchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// Generation numbers the configs of a namespace: the operator writes 1 first, then the
	// previous value plus one whenever the config changes, so it only grows. A gateway applies
	// a config only when its generation is at least the one in force, whichever way the config
	// came (pushed from the API server or read from the mounted file), so a late copy never
	// rolls a gateway back. Absent (0) in configs written by hand or by older operators: such
	// a config is older than any numbered one.
	Generation int64 `json:"generation,omitempty"`
	// Namespace is the namespace whose policies this config holds.
	Namespace string `json:"namespace"`
	// Policies are the accepted policies of the namespace in precedence order (older first,
	// then by name). A gateway applies the first policy whose selector matches its pod.
	Policies []Policy `json:"policies"`
}

// Mode is Enforce or DryRun, as in the OfferFeedPolicy API.
//
// +kubebuilder:validation:Enum=Enforce;DryRun
type Mode string

const (
	// ModeEnforce refuses requests at the gateway.
	ModeEnforce Mode = "Enforce"
	// ModeDryRun forwards every request and flags the decision in header OfferFeed-Flag.
	ModeDryRun Mode = "DryRun"
)

// Policy is one accepted OfferFeedPolicy with its defaults applied.
type Policy struct {
	// Name is the OfferFeedPolicy's name; metrics and logs label decisions with it.
	Name string `json:"name"`
	// Hash is "sha256:" and the hex SHA-256 of this policy's entry with Hash empty; the
	// operator reports it in the policy's status.configHash.
	Hash string `json:"hash"`
	// Mode is Enforce or DryRun.
	Mode Mode `json:"mode"`
	// Selector selects the pods (by label) whose gateway applies this policy.
	Selector metav1.LabelSelector `json:"selector"`
	// IdentityHeader is the request header that identifies a driver.
	IdentityHeader string `json:"identityHeader"`
	// Feed paces feed polls; nil when the policy does not govern the feed.
	Feed *Feed `json:"feed,omitempty"`
	// Accept limits accepts; nil when the policy does not govern accepts.
	Accept *Accept `json:"accept,omitempty"`
	// ShownOffers locates the shown offer ids in feed responses; nil when not needed.
	ShownOffers *ShownOffers `json:"shownOffers,omitempty"`
	// Overrides give listed drivers other limits; the first override naming a driver applies.
	Overrides []Override `json:"overrides,omitempty"`
	// Refusal shapes the answers to refused requests; nil keeps the gateway's own.
	Refusal *Refusal `json:"refusal,omitempty"`
	// SharedState keeps the drivers' state in Redis, shared by the policy's gateways; nil
	// keeps it in each gateway.
	SharedState *SharedState `json:"sharedState,omitempty"`
	// BotScore uses the drivers' bot-likeness scores in fair draws and refusals; nil: the
	// scores are only sent to the offer service.
	BotScore *BotScore `json:"botScore,omitempty"`
}

// SharedState says where a policy's gateways share driver state. It holds no credentials:
// the gateway reads them from the Secret CredentialsSecret, mounted under
// RedisCredentialsDir.
type SharedState struct {
	// Redis is how to reach Redis.
	Redis Redis `json:"redis"`
	// Timeout bounds each call to Redis.
	Timeout Duration `json:"timeout"`
	// OnUnavailable is what the gateway does while Redis is out of reach.
	OnUnavailable OnUnavailable `json:"onUnavailable"`
}

// Redis is how a gateway connects to Redis.
type Redis struct {
	// Mode is Standalone, Sentinel or Cluster.
	Mode RedisMode `json:"mode"`
	// Addresses are host:port of the server, the Sentinels or some cluster nodes.
	Addresses []string `json:"addresses"`
	// SentinelMasterName names the master, with Sentinel.
	SentinelMasterName string `json:"sentinelMasterName,omitempty"`
	// Database is the database number; not with Cluster.
	Database int32 `json:"database,omitempty"`
	// TLS, when set, connects with TLS.
	TLS *RedisTLS `json:"tls,omitempty"`
	// CredentialsSecret is the name of the Secret (in the config's namespace) with keys
	// username, password and, optionally, ca.crt; the gateway reads them from
	// RedisCredentialsDir/<CredentialsSecret>/. Empty: no credentials.
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// ServerName is the name the servers' certificates must hold.
	ServerName string `json:"serverName"`
}

// RedisCredentialsDir is where the injection webhook mounts the Secret of a policy's shared
// state in the gateway sidecar: RedisCredentialsDir/<secret name>/{username,password,ca.crt}.
// It is not below the config's directory (/etc/offerfeed), a ConfigMap volume, whose
// updates would fight a mount point inside it.
const RedisCredentialsDir = "/etc/offerfeed-redis"

// RedisSecretPrefix starts the name of every Secret of shared state: the gateways send its
// credentials to the addresses a policy names, so a policy may name only a Secret made for
// offerfeed, never another application's.
const RedisSecretPrefix = "offerfeed-"

// Keys of the Secret of a policy's shared state.
const (
	RedisUsernameKey = "username"
	RedisPasswordKey = "password"
	RedisCAKey       = "ca.crt"
	// RedisSentinelUsernameKey and RedisSentinelPasswordKey, when either is in the Secret,
	// are what the gateways send to the Sentinels (an empty or absent password: no AUTH);
	// without them, the Sentinels get username and password.
	RedisSentinelUsernameKey = "sentinel-username"
	RedisSentinelPasswordKey = "sentinel-password"
)

// RedisMode is how a gateway finds Redis, as in the OfferFeedPolicy API.
//
// +kubebuilder:validation:Enum=Standalone;Sentinel;Cluster
type RedisMode string

const (
	// RedisStandalone is one server.
	RedisStandalone RedisMode = "Standalone"
	// RedisSentinel asks Sentinels for the master of SentinelMasterName.
	RedisSentinel RedisMode = "Sentinel"
	// RedisCluster is a Redis Cluster.
	RedisCluster RedisMode = "Cluster"
)

// BotScore says how the gateway uses the drivers' bot-likeness scores.
type BotScore struct {
	// DrawWeighting is None or Score (fair draws weigh candidates by 1 − score, steeper above
	// 0.5).
	DrawWeighting DrawWeighting `json:"drawWeighting"`
	// RefuseAbovePermille refuses (flags, in DryRun) with bot-like the accepts of drivers
	// whose score is above this many thousandths; 0: none are.
	RefuseAbovePermille int32 `json:"refuseAbovePermille,omitempty"`
}

// DrawWeighting is how fair draws use the candidates' bot-likeness scores: None or Score, as
// in the OfferFeedPolicy API.
//
// +kubebuilder:validation:Enum=None;Score
type DrawWeighting string

const (
	// DrawWeightingNone draws as if no driver had a score.
	DrawWeightingNone DrawWeighting = "None"
	// DrawWeightingScore weighs each candidate of a Random draw by 1 − its score (1 without a
	// score), and under LeastRecentlyWon puts candidates of higher score bands last.
	DrawWeightingScore DrawWeighting = "Score"
)

// Feed is the feed route and its pacing.
type Feed struct {
	// Method is the HTTP method of feed requests.
	Method string `json:"method"`
	// Path is an exact path, or a prefix when it ends in '/'.
	Path string `json:"path"`
	// MinInterval is the emission interval of the pacer.
	MinInterval Duration `json:"minInterval"`
	// Burst is how many polls may come back to back.
	Burst int32 `json:"burst"`
}

// Accept is the accept route and its limits.
type Accept struct {
	// Method is the HTTP method of accept requests.
	Method string `json:"method"`
	// PathTemplate is the accept path; a {offerId} segment matches one segment, the offer id.
	PathTemplate string `json:"pathTemplate"`
	// OfferIDField is the top-level JSON body field with the offer id, when not in the path.
	OfferIDField string `json:"offerIdField,omitempty"`
	// MaxAccepts is the number of 2xx accepts allowed per Window; 0 means no limit.
	MaxAccepts int32 `json:"maxAccepts,omitempty"`
	// Window is the sliding window of MaxAccepts.
	Window Duration `json:"window,omitempty"`
	// MinReactionTime is the earliest accept after an offer was first shown; 0 means none.
	MinReactionTime Duration `json:"minReactionTime,omitempty"`
	// RequireShown refuses accepts for offers never shown to the driver.
	RequireShown bool `json:"requireShown,omitempty"`
	// Fairness holds accepts for one offer in a window and awards it by a draw; nil means
	// first come, first served.
	Fairness *Fairness `json:"fairness,omitempty"`
}

// Fairness configures fair draws.
type Fairness struct {
	// Window is how long after the first accept for an offer others still join its draw.
	Window Duration `json:"window"`
	// Award is Random or LeastRecentlyWon.
	Award Award `json:"award"`
}

// Award is how a fair draw orders the accepts for one offer: Random or LeastRecentlyWon, as in
// the OfferFeedPolicy API.
//
// +kubebuilder:validation:Enum=Random;LeastRecentlyWon
type Award string

const (
	// AwardRandom draws the candidates in a uniformly random order.
	AwardRandom Award = "Random"
	// AwardLeastRecentlyWon puts first the drivers whose last win is oldest (never won
	// first), breaking ties at random.
	AwardLeastRecentlyWon Award = "LeastRecentlyWon"
)

// OnUnavailable is what a gateway does with a governed request while the shared state of its
// policy (Redis) cannot be reached: the call failed or timed out, or the circuit breaker is
// open after repeated failures.
//
// +kubebuilder:validation:Enum=Local;Allow
type OnUnavailable string

const (
	// OnUnavailableLocal decides with this replica's own state, as a gateway without shared
	// state does: the per-replica limits still hold. The default.
	OnUnavailableLocal OnUnavailable = "Local"
	// OnUnavailableAllow lets the request through (counted as a fallback), as if the policy
	// allowed it: no replica refuses anything while the shared state is gone.
	OnUnavailableAllow OnUnavailable = "Allow"
)

// ShownOffers locates the offer ids in a JSON feed response.
type ShownOffers struct {
	// JSONPath is a dotted path where name[] walks an array, such as offers[].id.
	JSONPath string `json:"jsonPath"`
}

// Override gives some drivers other limits; zero fields keep the policy's values.
type Override struct {
	// Drivers are identity header values.
	Drivers []string `json:"drivers"`
	// Feed overrides feed pacing.
	Feed *FeedOverride `json:"feed,omitempty"`
	// Accept overrides accept limits.
	Accept *AcceptOverride `json:"accept,omitempty"`
}

// FeedOverride overrides feed pacing; zero fields are not overridden.
type FeedOverride struct {
	MinInterval Duration `json:"minInterval,omitempty"`
	Burst       int32    `json:"burst,omitempty"`
}

// AcceptOverride overrides accept limits; zero (nil) fields are not overridden.
type AcceptOverride struct {
	MaxAccepts int32    `json:"maxAccepts,omitempty"`
	Window     Duration `json:"window,omitempty"`
	// MinReactionTime is a pointer because "0s" is an override: no reaction time at all.
	MinReactionTime *Duration `json:"minReactionTime,omitempty"`
}

// With returns f with the fields that o sets (o may be nil): the feed limits of a driver
// that the override names.
func (f Feed) With(o *FeedOverride) Feed {
	if o != nil {
		if o.MinInterval != 0 {
			f.MinInterval = o.MinInterval
		}
		if o.Burst != 0 {
			f.Burst = o.Burst
		}
	}
	return f
}

// With returns a with the fields that o sets (o may be nil): the accept limits of a driver
// that the override names.
func (a Accept) With(o *AcceptOverride) Accept {
	if o != nil {
		if o.MaxAccepts != 0 {
			a.MaxAccepts = o.MaxAccepts
		}
		if o.Window != 0 {
			a.Window = o.Window
		}
		if o.MinReactionTime != nil {
			a.MinReactionTime = *o.MinReactionTime
		}
	}
	return a
}

// Duration is a time.Duration written as a Go duration string.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// IsZero reports whether d is zero; with omitempty a zero Duration is left out.
func (d Duration) IsZero() bool { return d == 0 }

// MarshalJSON writes d as a canonical Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"2s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// Marshal writes c as the indented JSON the ConfigMap holds, ending in a newline. The same
// config always gives the same bytes.
func Marshal(c *Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encoding gateway config: %w", err)
	}
	return buf.Bytes(), nil
}

// Hash returns "sha256:" and the hex SHA-256 of b.
func Hash(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// PolicyHash returns the hash of p with its Hash field empty, the value of Policy.Hash.
func PolicyHash(p Policy) (string, error) {
	p.Hash = ""
	b, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encoding policy %s: %w", p.Name, err)
	}
	return Hash(b), nil
}
