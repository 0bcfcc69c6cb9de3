package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Decision is what the gateway decided about one request on a governed route.
type Decision uint8

// The decisions of the table of docs/design.md#decisions-and-headers. Allowed requests are proxied.
const (
	Allowed Decision = iota
	FeedThrottled
	AcceptThrottled
	TooFast
	UnseenOffer
	MissingIdentity
	// AmbiguousRequest: a request that a lenient router (one that folds case, decodes %2F,
	// strips ;params, honours method-override headers, takes HEAD for GET, ...) could map onto
	// a governed route, differently from the gateway's exact match. See lenientRoutes.
	AmbiguousRequest
	// UnreadableOffer: an accept whose offer id cannot be read (body too large, not JSON,
	// field missing or given twice with different values) while minReactionTime or fairness
	// applies and requireShown does not (then it is UnseenOffer).
	UnreadableOffer
	// BotLike: an accept that passed every other check, of a driver whose bot-likeness score
	// is formed and above the policy's botScore.refuseAbove (signals.go).
	BotLike
	numDecisions
)

// decisionNames are the names of the decisions; those of the refusals are gatewayconfig's.
var decisionNames = [numDecisions]string{"allowed",
	string(gatewayconfig.DecisionFeedThrottled), string(gatewayconfig.DecisionAcceptThrottled),
	string(gatewayconfig.DecisionTooFast), string(gatewayconfig.DecisionUnseenOffer),
	string(gatewayconfig.DecisionMissingIdentity), string(gatewayconfig.DecisionAmbiguousRequest),
	string(gatewayconfig.DecisionUnreadableOffer), string(gatewayconfig.DecisionBotLike)}

// String returns the decision's name, the value of headers OfferFeed-Decision and OfferFeed-Flag.
func (d Decision) String() string {
	if d < numDecisions {
		return decisionNames[d]
	}
	return "unknown"
}

// Status is the HTTP status of a refusal with this decision (200 for Allowed).
func (d Decision) Status() int {
	switch d {
	case FeedThrottled, AcceptThrottled, TooFast:
		return http.StatusTooManyRequests
	case UnseenOffer, BotLike:
		return http.StatusForbidden
	case MissingIdentity, AmbiguousRequest, UnreadableOffer:
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// Headers the gateway reads and writes.
const (
	// HeaderDecision is the response header naming the decision of a refused request.
	HeaderDecision = "OfferFeed-Decision"
	// HeaderFlag is the request header that tells the offer service, in DryRun, what the
	// gateway would have decided.
	HeaderFlag = "OfferFeed-Flag"
	// HeaderScore is the request header that carries a driver's bot-likeness score, three
	// decimals in [0,1], to the offer service once the score is formed.
	HeaderScore = "OfferFeed-Score"
	// HeaderSignals is the request header that carries a driver's signals to the offer
	// service (signals.appendHeader).
	HeaderSignals = "OfferFeed-Signals"
	// headerPrefix is the prefix of the headers clients may not send.
	headerPrefix = "offerfeed-"
)

// route is a governed route of a policy.
type route uint8

const (
	routeFeed route = iota
	routeAccept
	routeOther
	numRoutes
)

var routeNames = [numRoutes]string{"feed", "accept", "other"}

// limits are the effective limits of a driver: the policy's, or an override's.
type limits struct {
	interval int64 // feed emission interval, ns
	tau      int64 // feed burst tolerance, ns: (burst-1)*interval
	burst    int32
	// rlPolicy is the value of response header RateLimit-Policy for this driver.
	rlPolicy []string

	maxAccepts  int32
	window      int64
	minReaction int64
}

// policy is a gatewayconfig.Policy compiled for the hot path.
type policy struct {
	name, hash string
	mode       string // Enforce or DryRun, for status, logs and metrics
	dryRun     bool
	// identity is the canonical identity header key.
	identity string

	feed         *feedRoute
	accept       *acceptRoute
	shown        jsonPath // nil when the policy does not read shown offers
	offerField   jsonPath // one step with the offerIdField, nil when the id is in the path
	requireShown bool

	base      limits
	overrides map[uint64]*limits

	table    *driverTable
	store    driverStore // where the decisions read and write driver state: table, unless shared
	draws    *drawTable  // nil without accept.fairness
	counters [numRoutes][numDecisions]prometheus.Counter

	refusals refusalShapes // nil: the gateway's own refusals (refusal.go)

	// ids names the policy's drivers and offers: per process for local state, alike on
	// every replica for shared state (hash.go).
	ids idHasher
	// scoreWeighted: fair draws weigh candidates by their bot-likeness score
	// (botScore.drawWeighting Score). botRefuse: accepts of drivers whose score is above
	// this many permille are BotLike (botScore.refuseAbove; 0: never).
	scoreWeighted bool
	botRefuse     int32
	scoreObs      prometheus.Observer // offerfeed_gateway_bot_score of the policy
}

// stateKey names the driver state a policy uses. State is kept across reloads while the
// policy in force keeps its namespace, name and identity header: what the table records
// (poll times, successful accepts, shown offers) stays true when limits change, and the new
// limits apply to it from the next request.
func stateKey(ns string, p *gatewayconfig.Policy) string {
	return ns + "/" + p.Name + "\x00" + strings.ToLower(p.IdentityHeader)
}

func compilePolicy(p *gatewayconfig.Policy, ids idHasher) (*policy, error) {
	c := &policy{
		ids:      ids,
		name:     p.Name,
		hash:     p.Hash,
		mode:     string(p.Mode),
		dryRun:   p.Mode == gatewayconfig.ModeDryRun,
		identity: http.CanonicalHeaderKey(p.IdentityHeader),
		refusals: compileRefusals(p.Refusal),
	}
	if b := p.BotScore; b != nil {
		c.scoreWeighted = b.DrawWeighting == gatewayconfig.DrawWeightingScore
		c.botRefuse = b.RefuseAbovePermille
	}
	if p.Feed != nil {
		r := compileFeedRoute(p.Feed)
		c.feed = &r
	}
	if p.Accept != nil {
		r := compileAcceptRoute(p.Accept)
		c.accept = &r
		c.requireShown = p.Accept.RequireShown
		if p.Accept.OfferIDField != "" {
			c.offerField = jsonPath{{name: p.Accept.OfferIDField, fold: true}}
		}
	}
	if p.ShownOffers != nil {
		jp, err := compileJSONPath(p.ShownOffers.JSONPath)
		if err != nil {
			return nil, fmt.Errorf("policy %s: shownOffers.jsonPath: %w", p.Name, err)
		}
		c.shown = jp
	}
	c.base = *makeLimits(p, nil)
	for i := range p.Overrides {
		o := &p.Overrides[i]
		l := makeLimits(p, o)
		for _, d := range o.Drivers {
			k, ok := identityKey(ids, []string{d})
			if !ok {
				continue // no request can name this driver (identity.go)
			}
			if c.overrides == nil {
				c.overrides = make(map[uint64]*limits)
			}
			if _, dup := c.overrides[k]; !dup { // the first override naming a driver applies
				c.overrides[k] = l
			}
		}
	}
	return c, nil
}

func makeLimits(p *gatewayconfig.Policy, o *gatewayconfig.Override) *limits {
	var of *gatewayconfig.FeedOverride
	var oa *gatewayconfig.AcceptOverride
	if o != nil {
		of, oa = o.Feed, o.Accept
	}
	l := &limits{}
	if p.Feed != nil {
		f := p.Feed.With(of)
		burst := max(f.Burst, 1)
		l.interval, l.burst = int64(f.MinInterval), burst
		l.tau = int64(burst-1) * l.interval
		w := ceilSeconds(int64(burst) * l.interval)
		l.rlPolicy = []string{`"feed";q=` + strconv.Itoa(int(burst)) + `;w=` + strconv.FormatInt(w, 10)}
	}
	if p.Accept != nil {
		a := p.Accept.With(oa)
		l.maxAccepts, l.window, l.minReaction = a.MaxAccepts, int64(a.Window), int64(a.MinReactionTime)
	}
	return l
}

// limitsFor returns the limits of the driver with identity hash key.
func (p *policy) limitsFor(key uint64) *limits {
	if p.overrides != nil {
		if l, ok := p.overrides[key]; ok {
			return l
		}
	}
	return &p.base
}

// feedVerdict is the outcome of a feed decision.
type feedVerdict struct {
	decision  Decision
	retry     int64 // ns until the next poll is allowed (refusals)
	remaining int64 // polls left back to back (allowed)
	reset     int64 // ns until the full burst is available again
	// sig are the driver's signals after the poll; hasSig: the store keeps signals.
	sig    signals
	hasSig bool
}

// decideFeed is the GCRA pacer (virtual scheduling): a poll at now is allowed when the
// theoretical arrival time tat is at most tau ahead of now; an allowed poll moves tat one
// interval on. A refused poll (or one only flagged in DryRun) leaves the state alone, so the
// pacer measures what Enforce would let through.
func decideFeed(e *entry, l *limits, now int64) feedVerdict {
	tat := e.tat
	if tat < now {
		tat = now
	}
	if tat-now > l.tau {
		return feedVerdict{decision: FeedThrottled, retry: tat - l.tau - now, reset: tat - now}
	}
	next := tat + l.interval
	e.tat = next
	return feedVerdict{decision: Allowed, remaining: (now + l.tau + l.interval - next) / l.interval, reset: next - now}
}

// checkAccept decides an accept for offer id (known when hasID) of a driver with state x.
// Checks run from the most specific to the quota: unseen-offer (or unreadable-offer),
// too-fast, accept-throttled.
// It changes no state; admit takes the in-flight slot of an allowed accept.
//
// An accept whose offer id cannot be read is never cheaper than one whose id can: it is
// refused whenever a check needs the id (requireShown: unseen-offer; minReactionTime or a
// fair draw: unreadable-offer), so that a bot cannot skip the reaction time or the draw by
// sending a body the gateway cannot read and the offer service can.
func (p *policy) checkAccept(x *driverExt, l *limits, id uint64, hasID bool, now int64) (Decision, int64) {
	if !hasID {
		switch {
		case p.requireShown:
			return UnseenOffer, 0
		case l.minReaction > 0 || p.draws != nil:
			return UnreadableOffer, 0
		}
	}
	if hasID && (p.requireShown || l.minReaction > 0) {
		if at, ok := x.shownAt(id); !ok {
			if p.requireShown {
				return UnseenOffer, 0
			}
		} else if l.minReaction > 0 && now-at < l.minReaction {
			return TooFast, at + l.minReaction - now
		}
	}
	if l.maxAccepts > 0 {
		x.pruneAccepts(now, l.window)
		used := int64(len(x.done)) + int64(x.inflight)
		if used >= int64(l.maxAccepts) {
			// The slot that frees first: the k-th oldest 2xx accept leaving the window. When
			// only accepts in flight hold slots, one of them may fail soon: retry in a second.
			k := used - int64(l.maxAccepts) + 1
			retry := int64(1e9)
			if k <= int64(len(x.done)) {
				retry = x.done[k-1] + l.window - now
			}
			return AcceptThrottled, retry
		}
	}
	return Allowed, 0
}

// observeAccept updates the signals s of a driver with state x for an accept of offer id
// (known when hasID) at now, decided d by checkAccept: a refusal or not, and, when the offer
// was shown to the driver, its presence and its reaction time. An accept-throttled accept is
// no presence or reaction sample: a replica's deny cache answers those without Redis, and
// what the signals count must not depend on which replica an accept reached.
func (p *policy) observeAccept(s *signals, x *driverExt, l *limits, id uint64, hasID bool, d Decision, now int64) {
	s.observeAcceptRefusal(d)
	if !hasID || d == AcceptThrottled {
		return
	}
	if at, ok := x.shownAt(id); ok {
		s.observeTried()
		s.observeReaction(now-at, l.minReaction)
	}
}

// botLike reports whether the policy refuses (or flags) the accepts of a driver with signals
// s: its score is formed and above botScore.refuseAbove.
func (p *policy) botLike(s *signals) bool {
	if p.botRefuse <= 0 {
		return false
	}
	sc, ok := s.scorePermille()
	return ok && sc > p.botRefuse
}

// ceilSeconds rounds a positive duration in ns up to whole seconds, at least 1.
func ceilSeconds(ns int64) int64 {
	s := (ns + 1e9 - 1) / 1e9
	if s < 1 {
		s = 1
	}
	return s
}
