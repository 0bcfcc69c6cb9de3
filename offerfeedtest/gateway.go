package offerfeedtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"k8s.io/utils/clock"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Headers of the gateway, and the values of HeaderDecision and HeaderFlag: the decisions of
// the table in offerfeed's docs/design.md#decisions-and-headers. Each is the gateway's own name (gatewayconfig's
// RefusalDecision constants), as a plain string to compare with a header.
const (
	// HeaderDecision is the response header that names the decision of a refused request.
	HeaderDecision = gateway.HeaderDecision
	// HeaderFlag is the request header that tells the offer service, in DryRun, what the
	// gateway would have decided.
	HeaderFlag = gateway.HeaderFlag
	// HeaderScore is the request header with a driver's bot-likeness score (three decimals),
	// once formed; HeaderSignals the one with its signals (docs/gateway.md, Bot-likeness score).
	HeaderScore   = gateway.HeaderScore
	HeaderSignals = gateway.HeaderSignals

	// DecisionFeedThrottled: a poll sooner than minInterval (beyond burst); 429.
	DecisionFeedThrottled = string(gatewayconfig.DecisionFeedThrottled)
	// DecisionAcceptThrottled: more than maxAccepts accepts in window; 429.
	DecisionAcceptThrottled = string(gatewayconfig.DecisionAcceptThrottled)
	// DecisionTooFast: an accept sooner than minReactionTime after the offer was shown; 429.
	DecisionTooFast = string(gatewayconfig.DecisionTooFast)
	// DecisionUnseenOffer: an accept for an offer never shown to this driver; 403.
	DecisionUnseenOffer = string(gatewayconfig.DecisionUnseenOffer)
	// DecisionMissingIdentity: a governed request without the identity header; 400.
	DecisionMissingIdentity = string(gatewayconfig.DecisionMissingIdentity)
	// DecisionAmbiguousRequest: a request that a lenient router could take for the feed or an
	// accept other than the gateway's exact match (encoded '/', ;params, case, HEAD, method
	// override headers, ...); 400.
	DecisionAmbiguousRequest = string(gatewayconfig.DecisionAmbiguousRequest)
	// DecisionUnreadableOffer: an accept whose offer id cannot be read (body too large, not
	// JSON, field missing or conflicting) while minReactionTime or fairness needs it; 400.
	DecisionUnreadableOffer = string(gatewayconfig.DecisionUnreadableOffer)
	// DecisionLostDraw: an accept held for its offer's fair draw that another driver won; 409.
	DecisionLostDraw = string(gatewayconfig.DecisionLostDraw)
	// DecisionDuplicateAccept: a second accept of a driver already in the offer's open draw; 409.
	DecisionDuplicateAccept = string(gatewayconfig.DecisionDuplicateAccept)
	// DecisionBotLike: an accept of a driver whose bot-likeness score is above the policy's
	// botScore.refuseAbovePermille; 403.
	DecisionBotLike = string(gatewayconfig.DecisionBotLike)
)

// GatewayOption configures NewGateway.
type GatewayOption func(*gatewayOptions)

type gatewayOptions struct{ gateway.Options }

// WithClock makes the gateway run on clock c instead of the real clock: every time it reads
// (minInterval, window, minReactionTime) and the timers that close fair draw windows, so that
// a test decides when they pass and nothing happens on its own. Use a FakeClock, or any
// k8s.io/utils/clock clock with AfterFunc, such as k8s.io/utils/clock/testing.FakeClock. The
// gateway's upstream and request body timeouts still use real time.
func WithClock(c clock.WithDelayedExecution) GatewayOption {
	return func(o *gatewayOptions) { o.Clock = c }
}

// WithDrawSeed makes the order of fair draws with award Random reproducible: two gateways
// with the same seed, config and arrivals draw the same order. Without it (or with 0) each
// policy draws from a random seed.
func WithDrawSeed(seed uint64) GatewayOption {
	return func(o *gatewayOptions) { o.DrawSeed = seed }
}

// WithMaxTrackedDrivers bounds the drivers whose state the gateway keeps (default one
// million); beyond it the least recently seen driver is forgotten.
func WithMaxTrackedDrivers(n int) GatewayOption {
	return func(o *gatewayOptions) { o.MaxTrackedDrivers = n }
}

// WithUpstreamTransport makes the gateway forward requests with rt, for example an
// httptest.Server's Client().Transport for a TLS upstream.
func WithUpstreamTransport(rt http.RoundTripper) GatewayOption {
	return func(o *gatewayOptions) { o.Transport = rt }
}

// Gateway is the offerfeed gateway sidecar as an http.Handler: it applies the policy of its
// pod to each request, as the sidecar does, and forwards what it allows to the upstream.
// Serve it directly (handler.ServeHTTP with an httptest.ResponseRecorder) or behind an
// httptest.Server. It is safe for concurrent use.
type Gateway struct {
	g *gateway.Gateway
}

// NewGateway returns the gateway of a pod with labels podLabels, with config cfg, forwarding
// to upstreamURL (such as an httptest.Server's URL). As the sidecar does, it applies the
// first policy of cfg whose selector matches podLabels; with none (or a nil cfg) it forwards
// every request unchanged: Policy tells which policy is in force. cfg is checked as the
// sidecar checks a config file: an invalid one is an error.
//
// Each Gateway has its own driver state and its own metrics registry; nothing is shared.
func NewGateway(cfg *gatewayconfig.Config, upstreamURL string, podLabels map[string]string, opts ...GatewayOption) (*Gateway, error) {
	u, err := url.Parse(upstreamURL)
	if err != nil {
		return nil, fmt.Errorf("offerfeedtest: upstream URL: %w", err)
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("offerfeedtest: upstream URL %q is not absolute, such as http://127.0.0.1:8080", upstreamURL)
	}
	o := gatewayOptions{gateway.Options{Upstream: u, PodLabels: podLabels}}
	for _, opt := range opts {
		opt(&o)
	}
	g, err := gateway.New(o.Options)
	if err != nil {
		return nil, fmt.Errorf("offerfeedtest: %w", err)
	}
	if cfg != nil {
		if err := g.Apply(cfg); err != nil {
			return nil, fmt.Errorf("offerfeedtest: %w", err)
		}
	}
	return &Gateway{g: g}, nil
}

// ServeHTTP decides r and forwards it to the upstream or refuses it, as the sidecar does.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.g.ServeHTTP(w, r) }

// Apply puts a new config in force, as the sidecar does when its config file changes: driver
// state is kept while the same policy (name and identity header) stays in force. An invalid
// cfg is an error and the config in force stays. A nil cfg forwards everything.
func (g *Gateway) Apply(cfg *gatewayconfig.Config) error { return g.g.Apply(cfg) }

// SetPodLabels changes the pod's labels and picks the policy in force again.
func (g *Gateway) SetPodLabels(labels map[string]string) error { return g.g.SetPodLabels(labels) }

// Policy returns the name of the policy in force, "" when none applies to the pod.
func (g *Gateway) Policy() string { return g.g.Status().Policy }

// Mode returns the mode of the policy in force (Enforce or DryRun), "" when none applies.
func (g *Gateway) Mode() gatewayconfig.Mode { return gatewayconfig.Mode(g.g.Status().Mode) }

// HeldAccepts returns how many accepts for offerID the open fair draw holds (0 when no
// window is open for that offer). offerID is the id as it appears in the accept path, or the
// string value of the body's offerIdField. A held accept's ServeHTTP returns once the draw
// has answered it, so a test sends accepts from goroutines and reads HeldAccepts (or calls
// WaitHeld) to know they are held before it moves the clock past the window.
func (g *Gateway) HeldAccepts(offerID string) int { return g.g.HeldAccepts(offerID) }

// WaitHeld waits until the open fair draw of offerID holds n accepts, or ctx ends. It
// polls: give ctx a deadline.
func (g *Gateway) WaitHeld(ctx context.Context, offerID string, n int) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		got := g.g.HeldAccepts(offerID)
		if got == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("offerfeedtest: %d accepts held for offer %q, waiting for %d: %w", got, offerID, n, ctx.Err())
		case <-tick.C:
		}
	}
}

// FakeClock is a clock for WithClock that moves only when told to: it is
// k8s.io/utils/clock/testing.FakeClock, whose Step (and Advance) moves the time and fires
// the timers that are due, fair draw windows included. It is safe for concurrent use. As in
// k8s.io/utils/clock/testing, Advance runs the function of an AfterFunc timer while it holds
// the clock's lock: such a function must not call the clock (the gateway's do not).
type FakeClock struct {
	*testingclock.FakeClock
}

// NewFakeClock returns a FakeClock that reads start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{testingclock.NewFakeClock(start)}
}

// Advance moves the clock forward by d and fires the timers that are due; a negative d is
// refused with a panic, as a gateway's clock never goes back. The work of a fired timer (a
// fair draw) runs in goroutines of the gateway: wait for its results (the answers to held
// accepts), not for Advance.
func (c *FakeClock) Advance(d time.Duration) {
	if d < 0 {
		panic(errors.New("offerfeedtest: FakeClock.Advance with a negative duration"))
	}
	c.Step(d)
}
