package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Duration is a length of time written as in Go and Gateway API: one to four numbers, each
// followed by a unit of h, m, s or ms, such as "2s", "800ms" or "1m30s".
//
// It is not gatewayconfig.Duration, on purpose: this is the text a person wrote, checked by a
// pattern and compared in CEL with duration(); gatewayconfig.Duration is the parsed value that
// render writes in canonical form, so that "60s" and "1m" give the same config and hash.
//
// +kubebuilder:validation:Pattern=`^([0-9]{1,5}(h|m|s|ms)){1,4}$`
// +kubebuilder:validation:MaxLength=24
type Duration string

// PolicyMode says whether the gateway blocks the requests a policy refuses: Enforce or DryRun.
//
// One definition for the API and the gateway config: PolicyMode is an alias of
// gatewayconfig.Mode, FairnessAward of gatewayconfig.Award and RefusalDecision of
// gatewayconfig.RefusalDecision. Those types carry the enum markers that controller-gen writes
// into the CRD, and the constants. They live in pkg/gatewayconfig, not here, because the
// gateway and GitOps tools import gatewayconfig, which needs only metav1, and should not link
// this package, which brings in controller-runtime. The spec's fields name the gatewayconfig
// types rather than these aliases: controller-gen (v0.23) fails on a field whose type is a
// local alias of another package's string type, and reads the markers fine through a field
// that names the package.
type PolicyMode = gatewayconfig.Mode

const (
	// ModeEnforce answers a refused request itself; it never reaches the offer service.
	ModeEnforce = gatewayconfig.ModeEnforce
	// ModeDryRun forwards every request and tells the offer service what the gateway would have
	// decided in the request header OfferFeed-Flag.
	ModeDryRun = gatewayconfig.ModeDryRun
)

// HTTPMethod is an HTTP request method that a governed route answers to.
//
// +kubebuilder:validation:Enum=GET;POST;PUT;PATCH
type HTTPMethod string

// OfferFeedPolicySpec declares how often each driver may poll the offer feed and how fast and
// how often each driver may accept offers.
//
// +kubebuilder:validation:XValidation:rule="has(self.feed) || has(self.accept)",message="at least one of feed and accept must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.shownOffers) || has(self.feed)",message="shownOffers needs feed: shown offers are read from feed responses"
// +kubebuilder:validation:XValidation:rule="!has(self.accept) || !has(self.accept.minReactionTime) || has(self.shownOffers)",message="accept.minReactionTime needs shownOffers, to learn when an offer was shown to a driver"
// +kubebuilder:validation:XValidation:rule="!has(self.accept) || !has(self.accept.requireShown) || !self.accept.requireShown || has(self.shownOffers)",message="accept.requireShown needs shownOffers, to learn which offers a driver was shown"
// +kubebuilder:validation:XValidation:rule="!has(self.overrides) || self.overrides.all(o, !has(o.feed) || has(self.feed))",message="an override of feed needs feed to be set"
// +kubebuilder:validation:XValidation:rule="!has(self.overrides) || self.overrides.all(o, !has(o.accept) || has(self.accept))",message="an override of accept needs accept to be set"
// +kubebuilder:validation:XValidation:rule="!has(self.overrides) || !has(self.accept) || self.overrides.all(o, !has(o.accept) || (!has(o.accept.maxAccepts) && !has(o.accept.window)) || (has(self.accept.maxAccepts) && has(self.accept.window)))",message="an override of accept.maxAccepts or accept.window needs accept.maxAccepts and accept.window to be set"
// +kubebuilder:validation:XValidation:rule="!has(self.overrides) || self.overrides.all(o, !has(o.accept) || !has(o.accept.minReactionTime) || has(self.shownOffers))",message="an override of accept.minReactionTime needs shownOffers, to learn when an offer was shown to a driver"
// +kubebuilder:validation:XValidation:rule="!has(self.overrides) || !has(self.accept) || self.overrides.all(o, !has(o.accept) || has(o.accept.window) == has(o.accept.minReactionTime) || (has(o.accept.window) ? (!has(self.accept.minReactionTime) || duration(o.accept.window) >= duration(self.accept.minReactionTime)) : (!has(self.accept.window) || duration(self.accept.window) >= duration(o.accept.minReactionTime))))",message="an override's window must be at least its minReactionTime, including values it keeps from accept"
// +kubebuilder:validation:XValidation:rule="!has(self.botScore) || !has(self.botScore.drawWeighting) || self.botScore.drawWeighting != 'Score' || (has(self.accept) && has(self.accept.fairness))",message="botScore.drawWeighting Score needs accept.fairness: it weighs the candidates of fair draws"
// +kubebuilder:validation:XValidation:rule="!has(self.botScore) || !has(self.botScore.refuseAbovePermille) || has(self.accept)",message="botScore.refuseAbovePermille needs accept: it refuses accepts"
// +kubebuilder:validation:XValidation:rule="!has(self.feed) || !has(self.accept) || self.feed.method != self.accept.method || (self.feed.path != self.accept.pathTemplate && (self.feed.path.endsWith('/') || self.feed.path + '/' != self.accept.pathTemplate))",message="feed and accept must not be the same route: the gateway matches accept first, so the feed would never be paced; give them different paths or methods"
type OfferFeedPolicySpec struct {
	// targetSelector selects, by label, the offer-service pods in this namespace whose gateway
	// enforces this policy. It must not be empty: a policy always names what it governs. Label
	// keys and values must be valid Kubernetes label keys and values.
	//
	// +required
	// +kubebuilder:validation:XValidation:rule="(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)",message="targetSelector must set matchLabels or matchExpressions; an empty selector would govern every pod in the namespace"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'] && (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="targetSelector.matchExpressions: operator must be In or NotIn with values, or Exists or DoesNotExist without"
	TargetSelector LabelSelector `json:"targetSelector"`

	// mode is Enforce (refused requests are answered by the gateway) or DryRun (every request
	// is forwarded, flagged with the decision the gateway would have taken).
	//
	// +optional
	// +default="Enforce"
	Mode gatewayconfig.Mode `json:"mode,omitempty"`

	// clientIdentity says how the gateway tells drivers apart.
	//
	// +required
	ClientIdentity ClientIdentity `json:"clientIdentity"`

	// feed paces each driver's polls of the offer feed.
	//
	// +optional
	Feed *FeedLimits `json:"feed,omitempty"`

	// accept limits how often and how fast each driver accepts offers.
	//
	// +optional
	Accept *AcceptLimits `json:"accept,omitempty"`

	// shownOffers says where in a feed response the gateway finds the ids of the offers it
	// showed a driver. Needed by accept.minReactionTime and accept.requireShown.
	//
	// +optional
	ShownOffers *ShownOffers `json:"shownOffers,omitempty"`

	// overrides give some drivers other limits than the rest. When a driver is listed in
	// several overrides, the first one applies.
	//
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Overrides []DriverOverride `json:"overrides,omitempty"`

	// refusal shapes the answers the gateway gives to the requests it refuses, so that apps
	// that only understand the offer API's own errors keep working (such as the Amazon Flex
	// app's 400 with {"message":"Rate exceeded"}). Unset, a refusal is the decision's status
	// with a text/plain body naming the decision. Header OfferFeed-Decision, and Retry-After
	// where the decision carries one, are sent whatever the shape.
	//
	// +optional
	Refusal *Refusal `json:"refusal,omitempty"`

	// sharedState keeps the state of the policy's drivers (feed pacing, the accept quota with
	// its accepts in flight, the offers each driver was shown) in Redis, shared by every
	// gateway replica the policy governs, so that a driver gets the same decisions whichever
	// replica a request reaches. Unset, each gateway keeps its own state: exact for one
	// replica, or when routing sends each driver to one pod.
	//
	// +optional
	SharedState SharedState `json:"sharedState,omitzero"`

	// botScore uses the drivers' bot-likeness scores: in fair draws (drawWeighting) and to
	// refuse the accepts of drivers above a threshold (refuseAbovePermille). Whether set or
	// not, the gateway sends each driver's score and signals to the offer service in request
	// headers OfferFeed-Score and OfferFeed-Signals. Tune it in DryRun first.
	//
	// +optional
	BotScore BotScore `json:"botScore,omitzero"`
}

// SharedState says where a policy's gateways share driver state, and what they do when it is
// out of reach. The zero value is an unset spec.sharedState.
type SharedState struct {
	// redis is the Redis (or Valkey) the gateways share.
	//
	// +required
	Redis RedisConnection `json:"redis,omitzero"`

	// timeout bounds each call of a gateway to Redis: a call that fails or takes longer is
	// decided as onUnavailable says. From 1ms to 1s.
	//
	// +optional
	// +default="20ms"
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1ms') && duration(self) <= duration('1s')",message="sharedState.timeout must be between 1ms and 1s"
	Timeout Duration `json:"timeout,omitempty"`

	// onUnavailable is what a gateway does with a request while Redis is out of reach: Local
	// decides it with the gateway's own state (the per-replica limits still hold), Allow
	// forwards it undecided.
	//
	// +optional
	// +default="Local"
	OnUnavailable gatewayconfig.OnUnavailable `json:"onUnavailable,omitempty"`
}

// IsZero reports whether s is unset (encoding/json's omitzero uses it).
func (s SharedState) IsZero() bool {
	return s.Redis.IsZero() && s.Timeout == "" && s.OnUnavailable == ""
}

// IsZero reports whether r is unset.
func (r RedisConnection) IsZero() bool {
	return r.Mode == "" && len(r.Addresses) == 0 && r.SentinelMasterName == "" && r.Database == nil &&
		r.TLS.IsZero() && r.CredentialsSecretRef.IsZero()
}

// IsZero reports whether t is unset: no TLS.
func (t RedisTLS) IsZero() bool { return t.ServerName == "" }

// IsZero reports whether r is unset.
func (r SecretReference) IsZero() bool { return r.Name == "" }

// RedisMode is how the gateways find Redis: Standalone, Sentinel or Cluster. It is
// gatewayconfig.RedisMode, which holds the enum marker (see PolicyMode).
type RedisMode = gatewayconfig.RedisMode

const (
	// RedisStandalone is one Redis server at the one address.
	RedisStandalone = gatewayconfig.RedisStandalone
	// RedisSentinel asks the Sentinels at the addresses for the master of
	// sentinelMasterName, and follows its failovers.
	RedisSentinel = gatewayconfig.RedisSentinel
	// RedisCluster is a Redis Cluster; the addresses are some of its nodes.
	RedisCluster = gatewayconfig.RedisCluster
)

// OnUnavailable is what the gateways do while Redis is out of reach: Local or Allow. It is
// gatewayconfig.OnUnavailable, which holds the enum marker (see PolicyMode).
type OnUnavailable = gatewayconfig.OnUnavailable

const (
	// OnUnavailableLocal decides with the gateway's own state.
	OnUnavailableLocal = gatewayconfig.OnUnavailableLocal
	// OnUnavailableAllow forwards requests undecided.
	OnUnavailableAllow = gatewayconfig.OnUnavailableAllow
)

// RedisAddress is the host and port of a Redis server, Sentinel or Cluster node: a DNS name,
// an IPv4 address or a bracketed IPv6 address, then ':' and the port, such as
// redis.offers.svc:6379 or [fd00::1]:6379. Never a URL: no scheme, no credentials, no path.
//
// +kubebuilder:validation:MinLength=3
// +kubebuilder:validation:MaxLength=261
// +kubebuilder:validation:XValidation:rule="!self.contains('@')",message="an address must not hold credentials (user:password@): put them in the Secret of credentialsSecretRef"
// +kubebuilder:validation:XValidation:rule="!self.contains('://')",message="an address is host:port, not a URL: drop the scheme (redis://, rediss://) and set tls for TLS"
// +kubebuilder:validation:XValidation:rule="!self.contains('/') && !self.contains('?')",message="an address is host:port, without a path or query: set database for the database number"
// +kubebuilder:validation:Pattern=`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?):[0-9]{1,5}$`
// +kubebuilder:validation:XValidation:rule="!self.matches('^.*:[0-9]{1,5}$') || (int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535)",message="an address's port must be from 1 to 65535"
type RedisAddress string

// RedisConnection says how the gateways connect to Redis. Credentials are never here: they
// are in the Secret that credentialsSecretRef names, which only the gateway sidecar mounts.
//
// +kubebuilder:validation:XValidation:rule="(has(self.mode) && self.mode == 'Sentinel') == has(self.sentinelMasterName)",message="sentinelMasterName is required with mode Sentinel, and only with it"
// +kubebuilder:validation:XValidation:rule="(has(self.mode) && self.mode != 'Standalone') || size(self.addresses) == 1",message="mode Standalone takes exactly one address; list several with Sentinel or Cluster"
// +kubebuilder:validation:XValidation:rule="!has(self.mode) || self.mode != 'Cluster' || !has(self.database) || self.database == 0",message="database must be 0 (or unset) with mode Cluster: a Redis Cluster has only database 0"
type RedisConnection struct {
	// mode is Standalone (one server), Sentinel (the addresses are Sentinels, which name the
	// master of sentinelMasterName) or Cluster (the addresses are some of the cluster's
	// nodes).
	//
	// +optional
	// +default="Standalone"
	Mode gatewayconfig.RedisMode `json:"mode,omitempty"`

	// addresses are host:port of the server (Standalone), the Sentinels (Sentinel) or some
	// cluster nodes (Cluster). From 1 to 16.
	//
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Addresses []RedisAddress `json:"addresses,omitempty"`

	// sentinelMasterName is the name under which the Sentinels know the master. Required
	// with mode Sentinel, and only with it.
	//
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._-]*$`
	SentinelMasterName string `json:"sentinelMasterName,omitempty"`

	// database is the number of the Redis database, from 0 to 15; 0 when unset. Not with
	// mode Cluster.
	//
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=15
	Database *int32 `json:"database,omitempty"`

	// tls connects with TLS (rediss) when set: the server's certificate is verified against
	// the ca.crt of the Secret when it has one, else against the system's roots, for
	// tls.serverName. There is no way to skip verification: a gateway that would send its
	// Redis password to whoever answers is worse than one without TLS.
	//
	// +optional
	TLS RedisTLS `json:"tls,omitzero"`

	// credentialsSecretRef names a Secret in the policy's namespace with keys username and
	// password (a Redis ACL user; password alone for the default user) and, optionally,
	// ca.crt (PEM) for tls. The injection webhook mounts it, read-only, into the gateway
	// sidecar only; the gateway reads it on every new connection, so a rotated Secret takes
	// effect without a restart. Unset, the gateways connect without credentials. Its name
	// must start with offerfeed-: the gateways send the credentials to the addresses of the
	// policy, so only a Secret made for offerfeed may be named, never another application's.
	//
	// +optional
	CredentialsSecretRef SecretReference `json:"credentialsSecretRef,omitzero"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// serverName is the name the servers' certificates must hold, such as
	// redis.offers.svc. It is required: with Sentinel and Cluster the gateway dials the
	// addresses the servers announce, often IP addresses, which certificates rarely name.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`
	ServerName string `json:"serverName,omitempty"`
}

// SecretReference names a Secret in the policy's namespace.
type SecretReference struct {
	// name is the Secret's name; it starts with offerfeed-.
	//
	// +required
	// +kubebuilder:validation:XValidation:rule="self.startsWith('offerfeed-')",message="the Secret's name must start with offerfeed-: the gateways send its credentials to the policy's addresses, so only a Secret made for offerfeed may be named"
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name,omitempty"`
}

// DrawWeighting is how fair draws use the candidates' bot-likeness scores: None or Score. It
// is gatewayconfig.DrawWeighting, which holds the enum marker (see PolicyMode).
type DrawWeighting = gatewayconfig.DrawWeighting

const (
	// DrawWeightingNone draws as if no driver had a score.
	DrawWeightingNone = gatewayconfig.DrawWeightingNone
	// DrawWeightingScore weighs the candidates of a draw by their scores.
	DrawWeightingScore = gatewayconfig.DrawWeightingScore
)

// BotScore says how the gateway uses the drivers' bot-likeness scores (docs/gateway.md,
// "Bot-likeness score").
type BotScore struct {
	// drawWeighting is None or Score: under accept.fairness.award Random each
	// candidate's chance is weighed by 1 − its score, steeper above 0.5
	// ((1 − score) × (2 × (1 − score))²), and 1 for a driver without a score yet;
	// under LeastRecentlyWon candidates whose score is 0.5 or more go after the others, in
	// bands of 0.1. Needs accept.fairness.
	//
	// +required
	DrawWeighting gatewayconfig.DrawWeighting `json:"drawWeighting,omitempty"`

	// refuseAbovePermille refuses, with 403 and decision bot-like, the accepts of drivers
	// whose score is formed and above this many thousandths (900: above 0.900). In DryRun
	// they are flagged instead. Feed polls are never refused for it, so a driver keeps its
	// signals up to date and recovers when it stops behaving like a bot. From 300 to 999;
	// 500 is the recommended lowest value.
	//
	// +optional
	// +kubebuilder:validation:Minimum=300
	// +kubebuilder:validation:Maximum=999
	RefuseAbovePermille int32 `json:"refuseAbovePermille,omitempty"`
}

// ClientIdentity names the request header that identifies a driver.
type ClientIdentity struct {
	// header is the name of the request header that carries the driver's identity, set by a
	// trusted ingress (a driver id, or an access token). The gateway keeps only a fixed-size
	// hash of its value. Requests on a governed route without it are refused with 400.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
	// +kubebuilder:validation:XValidation:rule="!self.lowerAscii().startsWith('offerfeed-')",message="header must not start with OfferFeed-: the gateway strips those headers from clients"
	// +kubebuilder:validation:XValidation:rule="!(self.lowerAscii() in ['host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])",message="header must not be Host or a hop-by-hop header (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade): proxies and the gateway's HTTP server do not pass them on as request headers"
	Header string `json:"header"`
}

// FeedLimits paces one driver's polls of the offer feed with a virtual-time (GCRA) pacer:
// after burst back-to-back polls, polls are allowed one per minInterval.
type FeedLimits struct {
	// method is the HTTP method of the feed request.
	//
	// +optional
	// +default="GET"
	Method HTTPMethod `json:"method,omitempty"`

	// path is the feed's request path: an exact path such as /offers, or a prefix ending in
	// '/' such as /offers/ that matches every path below it.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/[^?#\s]*$`
	Path string `json:"path"`

	// minInterval is the shortest time between two polls of one driver, once its burst is used.
	// From 10ms to 1h.
	//
	// +required
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10ms') && duration(self) <= duration('1h')",message="minInterval must be between 10ms and 1h"
	MinInterval Duration `json:"minInterval"`

	// burst is how many polls a driver may make back to back before minInterval applies.
	//
	// +optional
	// +default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Burst int32 `json:"burst,omitempty"`
}

// AcceptLimits limits one driver's accepts. The accepted offer's id comes either from a
// {offerId} segment of pathTemplate or from offerIdField in the JSON request body.
//
// +kubebuilder:validation:XValidation:rule="self.pathTemplate.contains('{offerId}') != has(self.offerIdField)",message="exactly one of a {offerId} segment in pathTemplate and offerIdField must name the offer"
// +kubebuilder:validation:XValidation:rule="has(self.maxAccepts) == has(self.window)",message="maxAccepts and window must be set together"
// +kubebuilder:validation:XValidation:rule="!has(self.window) || !has(self.minReactionTime) || duration(self.window) >= duration(self.minReactionTime)",message="window must be at least minReactionTime"
// +kubebuilder:validation:XValidation:rule="has(self.maxAccepts) || has(self.minReactionTime) || (has(self.requireShown) && self.requireShown) || has(self.fairness)",message="accept must limit something: set maxAccepts and window, minReactionTime, requireShown, or fairness"
// +kubebuilder:validation:XValidation:rule="!has(self.fairness) || self.pathTemplate.contains('{offerId}') || has(self.offerIdField)",message="fairness needs the offer id of each accept: a {offerId} segment in pathTemplate or offerIdField"
type AcceptLimits struct {
	// method is the HTTP method of the accept request.
	//
	// +optional
	// +default="POST"
	Method HTTPMethod `json:"method,omitempty"`

	// pathTemplate is the accept's request path. A segment written {offerId} matches any one
	// path segment and is the id of the accepted offer, as in /offers/{offerId}/accept.
	// Without it the path is matched exactly and the id is read from offerIdField.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^(/([^/{}?#\s]+|\{offerId\}))+/?$`
	// +kubebuilder:validation:XValidation:rule="self.indexOf('{offerId}') == self.lastIndexOf('{offerId}')",message="pathTemplate may hold {offerId} at most once"
	PathTemplate string `json:"pathTemplate"`

	// offerIdField is the top-level field of the JSON request body that holds the offer id,
	// for offer APIs that send it in the body (such as {"offerId": "..."}). The gateway reads
	// a small, bounded prefix of the body and passes the body on unchanged.
	//
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_-]*$`
	OfferIDField string `json:"offerIdField,omitempty"`

	// maxAccepts is how many accepts of one driver the offer service may answer with 2xx
	// within window. Accepts refused by the gateway do not count; accepts in flight do.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxAccepts *int32 `json:"maxAccepts,omitempty"`

	// window is the sliding window over which maxAccepts counts. From 1s to 24h.
	//
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="window must be between 1s and 24h"
	Window *Duration `json:"window,omitempty"`

	// minReactionTime is the earliest time after an offer was first shown to a driver at which
	// that driver may accept it. Up to 1m.
	//
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1m')",message="minReactionTime must be at most 1m"
	MinReactionTime *Duration `json:"minReactionTime,omitempty"`

	// requireShown refuses, with 403, an accept for an offer that the feed never showed to
	// this driver.
	//
	// +optional
	RequireShown *bool `json:"requireShown,omitempty"`

	// fairness turns first-come-first-served into a fair draw: the accepts for one offer that
	// arrive within fairness.window of the first compete equally, and the offer goes to the
	// winner of a draw. Accepts are held for at most the window.
	//
	// +optional
	Fairness *Fairness `json:"fairness,omitempty"`
}

// FairnessAward is how a fair draw picks among the accepts for one offer: Random or
// LeastRecentlyWon. It is gatewayconfig.Award, which holds the enum marker of
// spec.accept.fairness.award (see PolicyMode).
type FairnessAward = gatewayconfig.Award

const (
	// AwardRandom draws the candidates in a uniformly random order.
	AwardRandom = gatewayconfig.AwardRandom
	// AwardLeastRecentlyWon puts first the drivers whose last win is oldest (never won
	// first), breaking ties at random.
	AwardLeastRecentlyWon = gatewayconfig.AwardLeastRecentlyWon
)

// Fairness configures fair draws of offers among the accepts that arrive close together.
type Fairness struct {
	// window is how long after the first accept for an offer other accepts for it still join
	// the draw. From 100ms to 30s.
	//
	// +required
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms') && duration(self) <= duration('30s')",message="fairness.window must be between 100ms and 30s"
	Window Duration `json:"window"`

	// award is how the draw orders the candidates: Random or LeastRecentlyWon.
	//
	// +optional
	// +default="Random"
	Award gatewayconfig.Award `json:"award,omitempty"`
}

// ShownOffers says where the feed response lists the ids of the offers shown to the driver.
type ShownOffers struct {
	// jsonPath is a path into the JSON feed response: field names joined by '.', where a name
	// followed by [] walks every element of an array, such as offers[].id or
	// offerList[].offerId. A path that starts with [] walks a top-level array.
	//
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^(\[\]|[A-Za-z_][A-Za-z0-9_-]*(\[\])?)(\.[A-Za-z_][A-Za-z0-9_-]*(\[\])?)*$`
	JSONPath string `json:"jsonPath"`
}

// DriverOverride gives the listed drivers other limits. Unset fields keep the policy's value.
//
// +kubebuilder:validation:XValidation:rule="has(self.feed) || has(self.accept)",message="an override must change feed or accept"
type DriverOverride struct {
	// drivers are the identities (values of the identity header) this override applies to.
	//
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	Drivers []string `json:"drivers"`

	// feed overrides the feed pacing of these drivers.
	//
	// +optional
	Feed *FeedOverride `json:"feed,omitempty"`

	// accept overrides the accept limits of these drivers.
	//
	// +optional
	Accept *AcceptOverride `json:"accept,omitempty"`
}

// FeedOverride overrides feed pacing for some drivers.
//
// +kubebuilder:validation:XValidation:rule="has(self.minInterval) || has(self.burst)",message="a feed override must set minInterval or burst"
type FeedOverride struct {
	// minInterval replaces feed.minInterval. From 10ms to 1h.
	//
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10ms') && duration(self) <= duration('1h')",message="minInterval must be between 10ms and 1h"
	MinInterval *Duration `json:"minInterval,omitempty"`

	// burst replaces feed.burst.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Burst *int32 `json:"burst,omitempty"`
}

// AcceptOverride overrides accept limits for some drivers.
//
// +kubebuilder:validation:XValidation:rule="has(self.maxAccepts) || has(self.window) || has(self.minReactionTime)",message="an accept override must set maxAccepts, window or minReactionTime"
// +kubebuilder:validation:XValidation:rule="!has(self.window) || !has(self.minReactionTime) || duration(self.window) >= duration(self.minReactionTime)",message="window must be at least minReactionTime"
type AcceptOverride struct {
	// maxAccepts replaces accept.maxAccepts.
	//
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxAccepts *int32 `json:"maxAccepts,omitempty"`

	// window replaces accept.window. From 1s to 24h.
	//
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('24h')",message="window must be between 1s and 24h"
	Window *Duration `json:"window,omitempty"`

	// minReactionTime replaces accept.minReactionTime. Up to 1m.
	//
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1m')",message="minReactionTime must be at most 1m"
	MinReactionTime *Duration `json:"minReactionTime,omitempty"`
}

// RefusalDecision names a gateway decision that refuses a request: the value of response
// header OfferFeed-Decision. It is gatewayconfig.RefusalDecision, which holds the enum marker
// and a constant for each decision (see PolicyMode).
type RefusalDecision = gatewayconfig.RefusalDecision

// Refusal is the shape of the gateway's refusals: status, content type and body, for every
// refused decision, with optional entries for single decisions.
//
// The body is a template with three placeholders, replaced when the gateway answers:
// {{decision}} (the decision's name, such as too-fast), {{status}} (the answer's status code)
// and {{retryAfter}} (the seconds of header Retry-After, 0 when the refusal has none). Any
// other "{{" is refused. Driver identities never appear in a body.
//
// +kubebuilder:validation:XValidation:rule="has(self.status) || has(self.body) || (has(self.decisions) && size(self.decisions) > 0)",message="refusal must set status, body or decisions"
// +kubebuilder:validation:XValidation:rule="has(self.contentType) == has(self.body)",message="refusal.contentType and refusal.body must be set together"
type Refusal struct {
	// status is the HTTP status of every refusal, from 400 to 599. Unset, each decision keeps
	// its own: 429 for feed-throttled, accept-throttled and too-fast, 403 for unseen-offer,
	// 400 for missing-identity, 409 for lost-draw and duplicate-accept.
	//
	// +optional
	// +kubebuilder:validation:Minimum=400
	// +kubebuilder:validation:Maximum=599
	Status *int32 `json:"status,omitempty"`

	// contentType is the Content-Type of the body, such as application/json or
	// application/problem+json: a media type with optional parameters. Set with body.
	//
	// +optional
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*( *; *[A-Za-z0-9!#$&^_.+-]+=[A-Za-z0-9!#$&^_.+-]+)*$`
	ContentType string `json:"contentType,omitempty"`

	// body is the body template of every refusal, with placeholders {{decision}}, {{status}}
	// and {{retryAfter}}. With a JSON content type (application/json or a +json type) it must
	// be valid JSON once the placeholders are replaced. Set with contentType.
	//
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="!self.replace('{{decision}}', '').replace('{{status}}', '').replace('{{retryAfter}}', '').contains('{{')",message="body may hold only the placeholders {{decision}}, {{status}} and {{retryAfter}}"
	Body string `json:"body,omitempty"`

	// decisions give single decisions another status, content type or body than the rest;
	// the fields an entry leaves unset come from refusal. At most one entry per decision.
	//
	// +optional
	// +listType=map
	// +listMapKey=decision
	// +kubebuilder:validation:MaxItems=10
	Decisions []DecisionRefusal `json:"decisions,omitempty"`
}

// DecisionRefusal is the shape of the refusals of one decision.
//
// +kubebuilder:validation:XValidation:rule="has(self.status) || has(self.body)",message="a decision's refusal must set status or body"
// +kubebuilder:validation:XValidation:rule="has(self.contentType) == has(self.body)",message="contentType and body must be set together"
type DecisionRefusal struct {
	// decision is the refusal this entry shapes: feed-throttled, accept-throttled, too-fast,
	// unseen-offer, missing-identity, lost-draw, duplicate-accept, ambiguous-request,
	// unreadable-offer or bot-like.
	//
	// +required
	Decision gatewayconfig.RefusalDecision `json:"decision"`

	// status replaces refusal.status for this decision, from 400 to 599.
	//
	// +optional
	// +kubebuilder:validation:Minimum=400
	// +kubebuilder:validation:Maximum=599
	Status *int32 `json:"status,omitempty"`

	// contentType replaces refusal.contentType for this decision. Set with body.
	//
	// +optional
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*( *; *[A-Za-z0-9!#$&^_.+-]+=[A-Za-z0-9!#$&^_.+-]+)*$`
	ContentType string `json:"contentType,omitempty"`

	// body replaces refusal.body for this decision; the same placeholders apply. Set with
	// contentType.
	//
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="!self.replace('{{decision}}', '').replace('{{status}}', '').replace('{{retryAfter}}', '').contains('{{')",message="body may hold only the placeholders {{decision}}, {{status}} and {{retryAfter}}"
	Body string `json:"body,omitempty"`
}

// OfferFeedPolicyStatus is what the operator observed and did with a policy.
type OfferFeedPolicyStatus struct {
	// conditions are Accepted (the policy is valid and not in conflict), Programmed (the
	// policy is in the gateway config of its namespace), Ready (both, at the current
	// generation), Enforced (every governed pod's gateway enforces this configHash) and,
	// while someone must act before it can become Ready, Stalled.
	//
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the metadata.generation that the status was last computed from;
	// 0 until the operator has reconciled the policy once. The API server fills in 0 when it
	// is unset, so a policy read from it always carries observedGeneration and GitOps tools
	// (kstatus, the Argo CD health check) see a policy no manager has reconciled yet as in
	// progress (0 is less than metadata.generation).
	//
	// +optional
	// +default=0
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// targetedPods is how many running pods this policy governs: pods it selects that carry
	// the gateway sidecar.
	//
	// +optional
	// +default=0
	TargetedPods int32 `json:"targetedPods"`

	// enforcedPods is how many of the targeted pods report (annotation
	// offerfeed.dev/enforced-policy-hash) that their gateway enforces this policy's configHash.
	// It equals targetedPods when every governed pod enforces the current spec.
	//
	// +optional
	// +default=0
	EnforcedPods int32 `json:"enforcedPods"`

	// configHash is the hash ("sha256:" and hex) of this policy's entry in the gateway config,
	// as the gateway reports it in its /readyz detail and metrics.
	//
	// +optional
	// +kubebuilder:validation:MaxLength=80
	ConfigHash string `json:"configHash,omitempty"`
}

// OfferFeedPolicy enforces fair refresh and acceptance rates on the offer feed of the
// offer-service pods it selects.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ofp,categories=offerfeed
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=`.status.conditions[?(@.type=="Accepted")].status`
// +kubebuilder:printcolumn:name="Programmed",type=string,JSONPath=`.status.conditions[?(@.type=="Programmed")].status`
// +kubebuilder:printcolumn:name="Targeted",type=integer,JSONPath=`.status.targetedPods`
// +kubebuilder:printcolumn:name="Enforced",type=integer,JSONPath=`.status.enforcedPods`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OfferFeedPolicy struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	//
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the policy.
	//
	// +required
	Spec OfferFeedPolicySpec `json:"spec"`

	// status is what the operator observed and did with the policy. The API server fills
	// in an empty status, with its defaults (observedGeneration 0, targetedPods 0), until the
	// operator writes one.
	//
	// +optional
	// +default={}
	Status OfferFeedPolicyStatus `json:"status,omitempty"`
}

// OfferFeedPolicyList is a list of OfferFeedPolicy.
//
// +kubebuilder:object:root=true
type OfferFeedPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`

	// items are the policies.
	Items []OfferFeedPolicy `json:"items"`
}
