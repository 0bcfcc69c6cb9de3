// Package market simulates a gig-delivery offer market for `offerfeed-demo`: an offer service
// that publishes offers and hands each one to the first driver who accepts it, and drivers of
// three classes (humans, raw bots, bots that obey the policy exactly) who poll its feed and
// accept offers through a base URL, which is the offer service itself or an offerfeed gateway
// in front of it. Run plays one market and reports who won the offers.
//
// The package knows nothing of Kubernetes. Every delay of the market is in Timing, and
// Timing.Scaled speeds the whole market up or down, so tests can play it ten times faster.
package market

import (
	"math/rand/v2"
	"time"
)

// Shape is the API shape of an offer service (see docs/design.md#the-two-api-shapes).
type Shape string

const (
	// ShapeREST is `GET /offers` → {"offers":[{"id":…}]} and `POST /offers/{offerId}/accept`.
	ShapeREST Shape = "rest"
	// ShapeFlex is the Amazon Flex shape: `POST /GetOffersForProviderPost` with JSON filters →
	// {"offerList":[{"offerId":…}]}, and `POST /AcceptOffer` with body {"offerId":"…"}.
	ShapeFlex Shape = "flex"
)

// Paths of the two API shapes and of the service's record endpoint.
const (
	// RESTFeedPath is the feed path of ShapeREST.
	RESTFeedPath = "/offers"
	// RESTAcceptPathTemplate is the accept path template of ShapeREST.
	RESTAcceptPathTemplate = "/offers/{offerId}/accept"
	// FlexFeedPath is the feed path of ShapeFlex.
	FlexFeedPath = "/GetOffersForProviderPost"
	// FlexAcceptPath is the accept path of ShapeFlex; the offer id is body field "offerId".
	FlexAcceptPath = "/AcceptOffer"
	// RecordsPath serves the Records of a run as JSON (`GET /market/records?run=<id>`), so
	// that Run can read the records of an offer service that runs elsewhere.
	RecordsPath = "/market/records"
)

// FlexRateExceeded is the message of the Amazon Flex offer API's answer to a request over its
// rate limit, which its app handles: 400 with body {"message":"Rate exceeded"}.
const FlexRateExceeded = "Rate exceeded"

// Routes are where an offer service of one shape takes polls and accepts, in the terms of an
// OfferFeedPolicy.
type Routes struct {
	FeedMethod, FeedPath string
	// AcceptPathTemplate is the accept path, with a {offerId} segment when the id is in it;
	// accepts are POSTs.
	AcceptPathTemplate string
	// OfferIDField is the accept body's offer id field when the id is not in the path.
	OfferIDField string
	// ShownOffersPath is where a feed answer lists the offer ids (shownOffers.jsonPath).
	ShownOffersPath string
}

// Routes returns the routes of shape s (ShapeREST unless s is ShapeFlex).
func (s Shape) Routes() Routes {
	if s == ShapeFlex {
		return Routes{FeedMethod: "POST", FeedPath: FlexFeedPath, AcceptPathTemplate: FlexAcceptPath,
			OfferIDField: "offerId", ShownOffersPath: "offerList[].offerId"}
	}
	return Routes{FeedMethod: "GET", FeedPath: RESTFeedPath, AcceptPathTemplate: RESTAcceptPathTemplate,
		ShownOffersPath: "offers[].id"}
}

// Headers the market reads and writes.
const (
	// DefaultIdentityHeader carries the driver id unless configured otherwise.
	DefaultIdentityHeader = "X-Driver-Id"
	// RunHeader carries the run id on every driver request, so that one offer service can
	// keep apart the records of several runs.
	RunHeader = "X-Market-Run"
	// DecisionHeader is the gateway's response header naming the decision that refused a
	// request (Enforce).
	DecisionHeader = "OfferFeed-Decision"
	// FlagHeader is the request header by which a gateway in DryRun tells the offer service
	// the decision it would have taken.
	FlagHeader = "OfferFeed-Flag"
)

// Class is a class of drivers.
type Class string

const (
	// ClassHuman polls every 3–6 s and accepts an offer 1–3 s after seeing it.
	ClassHuman Class = "human"
	// ClassBot polls every 100 ms, accepts every new offer within 50 ms and ignores
	// Retry-After.
	ClassBot Class = "bot"
	// ClassCompliantBot obeys the policy exactly: it polls every minInterval and accepts
	// minReactionTime after it first saw an offer.
	ClassCompliantBot Class = "compliant-bot"
)

// Classes lists the driver classes in report order.
var Classes = []Class{ClassHuman, ClassBot, ClassCompliantBot}

// Timing holds every delay of the market. A zero field takes its value from DefaultTiming.
type Timing struct {
	// OfferInterval is the time between two offers published by the offer service.
	OfferInterval time.Duration
	// OfferTTL is how long an offer stays open when nobody takes it.
	OfferTTL time.Duration
	// HumanPollMin and HumanPollMax bound a human's time between two polls (uniform).
	HumanPollMin, HumanPollMax time.Duration
	// HumanReactMin and HumanReactMax bound a human's reaction to a new offer (uniform).
	HumanReactMin, HumanReactMax time.Duration
	// BotPoll is a raw bot's time between two polls.
	BotPoll time.Duration
	// BotReactMin and BotReactMax bound a raw bot's reaction to a new offer (uniform).
	BotReactMin, BotReactMax time.Duration
}

// DefaultTiming is the market at real speed.
func DefaultTiming() Timing {
	return Timing{
		OfferInterval: 1500 * time.Millisecond,
		OfferTTL:      20 * time.Second,
		HumanPollMin:  3 * time.Second,
		HumanPollMax:  6 * time.Second,
		HumanReactMin: 1 * time.Second,
		HumanReactMax: 3 * time.Second,
		BotPoll:       100 * time.Millisecond,
		BotReactMin:   5 * time.Millisecond,
		BotReactMax:   50 * time.Millisecond,
	}
}

// WithDefaults returns t with every zero field taken from DefaultTiming.
func (t Timing) WithDefaults() Timing {
	d := DefaultTiming()
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.OfferInterval, &d.OfferInterval}, {&t.OfferTTL, &d.OfferTTL},
		{&t.HumanPollMin, &d.HumanPollMin}, {&t.HumanPollMax, &d.HumanPollMax},
		{&t.HumanReactMin, &d.HumanReactMin}, {&t.HumanReactMax, &d.HumanReactMax},
		{&t.BotPoll, &d.BotPoll}, {&t.BotReactMin, &d.BotReactMin}, {&t.BotReactMax, &d.BotReactMax},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	return t
}

// Scaled returns t with every delay multiplied by factor: 0.1 plays the market ten times
// faster. A factor ≤ 0 returns t unchanged.
func (t Timing) Scaled(factor float64) Timing {
	if factor <= 0 {
		return t
	}
	s := func(d time.Duration) time.Duration { return time.Duration(float64(d) * factor) }
	return Timing{
		OfferInterval: s(t.OfferInterval), OfferTTL: s(t.OfferTTL),
		HumanPollMin: s(t.HumanPollMin), HumanPollMax: s(t.HumanPollMax),
		HumanReactMin: s(t.HumanReactMin), HumanReactMax: s(t.HumanReactMax),
		BotPoll: s(t.BotPoll), BotReactMin: s(t.BotReactMin), BotReactMax: s(t.BotReactMax),
	}
}

// Policy is what a compliant bot knows of the OfferFeedPolicy that the gateway enforces. Its
// durations are the gateway's own and are never scaled.
type Policy struct {
	// MinInterval is the policy's feed.minInterval; compliant bots poll this often. Zero
	// means no feed limit: they poll as often as raw bots.
	MinInterval time.Duration
	// MinReactionTime is the policy's accept.minReactionTime; compliant bots accept this
	// long after they first saw an offer. Zero means as fast as raw bots.
	MinReactionTime time.Duration
	// MaxAccepts and Window are accept.maxAccepts and accept.window; compliant bots do not
	// try more accepts than these allow. Zero MaxAccepts means no limit.
	MaxAccepts int
	Window     time.Duration
	// Margin is added to MinInterval and MinReactionTime against jitter between the bot's
	// clock and the gateway's; zero means DefaultMargin.
	Margin time.Duration
}

// DefaultMargin is the default Policy.Margin: "a few ms".
const DefaultMargin = 5 * time.Millisecond

// uniform returns a duration drawn uniformly from [lo, hi].
func uniform(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}
