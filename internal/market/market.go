// Package market simulates a gig-delivery offer market for `offerfeed-demo`: an offer service
// that publishes offers and hands each one to the first driver who accepts it, and drivers of
// four classes (people, raw bots, bots that obey the policy exactly, and such bots with a
// jitter to look human) who poll its feed and accept offers through a base URL, which is the
// offer service itself or an offerfeed gateway in front of it. Run plays one market in real
// time and reports who won the offers; Simulate plays it on a fake clock, fast, through a
// gateway in process.
//
// The package knows nothing of Kubernetes. Every delay of the market is in Timing, and
// Timing.Scaled speeds the whole market up or down, so tests can play it ten times faster.
package market

import (
	"math"
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
	// ScoreHeader is the request header by which a gateway tells the offer service a driver's
	// bot score in [0, 1], once the score is formed, e.g. "0.734".
	ScoreHeader = "OfferFeed-Score"
	// SignalsHeader is the request header with the signals the score is made of, e.g.
	// "cv=0.41;floor=0.00;pres=0.62;draws=0.30;ref=0.02;n=57"; the market keeps it as it is.
	SignalsHeader = "OfferFeed-Signals"
)

// Class is a class of drivers.
type Class string

const (
	// ClassHuman is a person with the app: irregular (log-normal) gaps between polls, now and
	// then a double refresh, sessions broken by pauses, a reaction to an offer with a long
	// tail, and offers taken only when they pay enough for that person (see Timing).
	ClassHuman Class = "human"
	// ClassBot polls every 100 ms, accepts every new offer within 50 ms and ignores
	// Retry-After.
	ClassBot Class = "bot"
	// ClassCompliantBot obeys the policy exactly: it polls every minInterval and accepts
	// every offer it sees minReactionTime after it first saw it.
	ClassCompliantBot Class = "compliant-bot"
	// ClassJitteredBot is a compliant bot that tries to look human: it adds a random jitter
	// (uniform, Timing.JitterPoll and Timing.JitterReact) to minInterval and to
	// minReactionTime, and still accepts every offer it sees.
	ClassJitteredBot Class = "jittered-bot"
)

// Classes lists the driver classes in report order.
var Classes = []Class{ClassHuman, ClassBot, ClassCompliantBot, ClassJitteredBot}

// obeysPolicy reports whether drivers of class c know the policy and keep to it.
func (c Class) obeysPolicy() bool { return c == ClassCompliantBot || c == ClassJitteredBot }

// Timing holds every delay of the market. A zero field takes its value from DefaultTiming.
//
// A person's delays follow shifted log-normal laws: a floor that nobody goes below (reading
// the screen, moving a thumb) plus a log-normal part, so that most delays are near the median
// and a few are much longer (the long tail of people who look away). Sigma is the standard
// deviation of the log of the log-normal part: 0.5 puts its 5th and 95th percentiles at 0.44
// and 2.3 times its median.
type Timing struct {
	// OfferInterval is the time between two offers published by the offer service.
	OfferInterval time.Duration
	// OfferTTL is how long an offer stays open when nobody takes it.
	OfferTTL time.Duration
	// HumanPollMin is the shortest gap between a person's two polls (but a double refresh),
	// HumanPollMedian their median and HumanPollSigma the spread of their log-normal part.
	HumanPollMin, HumanPollMedian time.Duration
	HumanPollSigma                float64
	// HumanDoubleRefresh is the probability that a person, right after a poll, refreshes
	// again, HumanDoubleMin to HumanDoubleMax (uniform) after it.
	HumanDoubleRefresh             float64
	HumanDoubleMin, HumanDoubleMax time.Duration
	// HumanSession is the mean length of a person's session with the app (exponential);
	// HumanPauseMedian and HumanPauseSigma the log-normal pause between two sessions, when
	// the person polls not at all.
	HumanSession, HumanPauseMedian time.Duration
	HumanPauseSigma                float64
	// HumanReactMin is a person's fastest reaction to an offer (from seeing it to the
	// accept), HumanReactMedian the median and HumanReactSigma the spread of the log-normal
	// part.
	HumanReactMin, HumanReactMedian time.Duration
	HumanReactSigma                 float64
	// BotPoll is a raw bot's time between two polls.
	BotPoll time.Duration
	// BotReactMin and BotReactMax bound a raw bot's reaction to a new offer (uniform).
	BotReactMin, BotReactMax time.Duration
	// JitterPoll and JitterReact are the most jitter (uniform from zero) that a jittered bot
	// adds to minInterval and to minReactionTime.
	JitterPoll, JitterReact time.Duration
}

// HumanMinPay bounds what the people of the market want from an offer: each person takes
// only offers that pay at least their own reservation, drawn uniformly from this range once
// per person (offers pay $18 to $58). Bots take every offer.
var HumanMinPay = [2]float64{18, 40}

// DefaultTiming is the market at real speed.
//
// A person polls at least 2 s apart, 4.5 s apart at the median (95th percentile 8.7 s), and
// refreshes twice in a row once in 25 polls (0.3–1 s apart); plays sessions of 6 minutes on
// average, with pauses of 45 s at the median (5th–95th percentile 12 s–2.8 min) between; and
// accepts an offer 1 s at the least, 1.8 s at the median and 5 s at the 99th percentile
// after seeing it. A jittered bot polls minInterval plus up to 2 s and accepts
// minReactionTime plus up to 1 s after seeing an offer.
func DefaultTiming() Timing {
	return Timing{
		OfferInterval:      1500 * time.Millisecond,
		OfferTTL:           20 * time.Second,
		HumanPollMin:       2 * time.Second,
		HumanPollMedian:    4500 * time.Millisecond,
		HumanPollSigma:     0.6,
		HumanDoubleRefresh: 0.04,
		HumanDoubleMin:     300 * time.Millisecond,
		HumanDoubleMax:     1 * time.Second,
		HumanSession:       6 * time.Minute,
		HumanPauseMedian:   45 * time.Second,
		HumanPauseSigma:    0.8,
		HumanReactMin:      1 * time.Second,
		HumanReactMedian:   1800 * time.Millisecond,
		HumanReactSigma:    0.7,
		BotPoll:            100 * time.Millisecond,
		BotReactMin:        5 * time.Millisecond,
		BotReactMax:        50 * time.Millisecond,
		JitterPoll:         2 * time.Second,
		JitterReact:        1 * time.Second,
	}
}

// durations returns pointers to t's durations, in one order for every Timing.
func (t *Timing) durations() []*time.Duration {
	return []*time.Duration{&t.OfferInterval, &t.OfferTTL, &t.HumanPollMin, &t.HumanPollMedian,
		&t.HumanDoubleMin, &t.HumanDoubleMax, &t.HumanSession, &t.HumanPauseMedian,
		&t.HumanReactMin, &t.HumanReactMedian, &t.BotPoll, &t.BotReactMin, &t.BotReactMax,
		&t.JitterPoll, &t.JitterReact}
}

// spreads returns pointers to t's dimensionless fields, which Scaled leaves alone.
func (t *Timing) spreads() []*float64 {
	return []*float64{&t.HumanPollSigma, &t.HumanDoubleRefresh, &t.HumanPauseSigma, &t.HumanReactSigma}
}

// WithDefaults returns t with every zero field taken from DefaultTiming.
func (t Timing) WithDefaults() Timing {
	d := DefaultTiming()
	for i, f := range t.durations() {
		if *f == 0 {
			*f = *d.durations()[i]
		}
	}
	for i, f := range t.spreads() {
		if *f == 0 {
			*f = *d.spreads()[i]
		}
	}
	return t
}

// Scaled returns t with every delay multiplied by factor: 0.1 plays the market ten times
// faster. Spreads and probabilities stay. A factor ≤ 0 returns t unchanged.
func (t Timing) Scaled(factor float64) Timing {
	if factor <= 0 {
		return t
	}
	for _, f := range t.durations() {
		*f = time.Duration(float64(*f) * factor)
	}
	return t
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

// logNormal returns a duration whose log is normal: median times e^(sigma·N(0,1)).
func logNormal(rng *rand.Rand, median time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(median) * math.Exp(sigma*rng.NormFloat64()))
}

// shiftedLogNormal returns floor plus a log-normal duration, with median median overall.
func shiftedLogNormal(rng *rand.Rand, floor, median time.Duration, sigma float64) time.Duration {
	return floor + logNormal(rng, max(median-floor, 0), sigma)
}

// exponential returns a duration drawn from the exponential law of mean mean.
func exponential(rng *rand.Rand, mean time.Duration) time.Duration {
	return time.Duration(float64(mean) * rng.ExpFloat64())
}

// uniform returns a duration drawn uniformly from [lo, hi].
func uniform(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
}
