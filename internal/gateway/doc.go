// Package gateway is the offerfeed gateway sidecar: a reverse proxy in front of one offer
// service that enforces the OfferFeedPolicy of its pod, per driver.
//
// The gateway reads the config rendered by the operator (package gatewayconfig), picks the
// first policy whose selector matches its pod's labels (no match: it proxies everything
// unchanged) and decides each request of the policy's routes as the table of docs/design.md#decisions-and-headers says:
//
//   - feed polls are paced by a GCRA pacer (minInterval, burst); a poll too soon gets 429
//     feed-throttled with Retry-After and the RateLimit / RateLimit-Policy fields of
//     draft-ietf-httpapi-ratelimit-headers-10, which allowed polls carry too;
//   - accepts are counted in a sliding window (maxAccepts per window): 2xx answers count,
//     forwarded accepts hold a slot while in flight, refused ones do not count (429
//     accept-throttled with Retry-After);
//   - the ids of the offers in feed answers (shownOffers.jsonPath) are read while the body
//     streams to the driver; an accept sooner than minReactionTime after its offer was first
//     shown gets 429 too-fast, an accept for an offer never shown gets 403 unseen-offer when
//     requireShown;
//   - a governed request without the identity header gets 400 missing-identity;
//   - a request that a lenient router (decoding %2F, stripping ;params, folding case, taking
//     HEAD for GET, honouring method-override headers, ...) could take for the feed or an
//     accept other than its exact match gets 400 ambiguous-request (lenient.go);
//   - an accept whose offer id cannot be read gets 403 unseen-offer with requireShown, else
//     400 unreadable-offer when minReactionTime or fairness needs the id;
//   - with accept.fairness, accepts that passed every check are held for a fair draw: the
//     first accept for an offer opens the offer's window, the accepts for it within the
//     window join (one place per driver); when the window closes they are tried one at a
//     time in award order (Random, or LeastRecentlyWon: never-won and oldest win first) until
//     the offer service answers one 2xx; the candidates never tried get 409 lost-draw and
//     their maxAccepts slots back. Accepts after the window are forwarded as usual. Draws are
//     bounded (Options.MaxDraws per policy: beyond, forwarded as usual; MaxDrawCandidates per
//     draw: beyond, 409 lost-draw), and SetDraining or a reload that replaces the policy runs
//     the open draws at once, so that no held accept is left unanswered. In DryRun nothing is
//     held: accepts that would have been are flagged "draw", and who would have been tried
//     first is counted when the window closes. See docs/gateway.md, "Fair draws". With
//     Options.SharedState a draw belongs to the offer and spans the replicas sharing the
//     Redis (draw_shared.go): one window, one place per driver, one try at a time; a draining
//     replica's candidates stay in the draw, and a replica that is gone is skipped when its
//     turn's lease lapses.
//
// Refusals carry the response header OfferFeed-Decision. A policy's refusal (refusal.go)
// answers them in the offer API's own status, content type and body instead of the statuses
// above and a text/plain body, from body templates compiled at config load. In DryRun every request is forwarded
// and the offer service sees the decision in the request header OfferFeed-Flag. Clients cannot
// send OfferFeed-* headers, nor headers named with other characters than letters, digits and
// '-' (which CGI maps onto the same variables): they are stripped.
//
// Drivers are known only by a 64-bit seeded hash of their identity header value; at most
// Options.MaxTrackedDrivers are tracked. New identities start in a small probation area; on
// leaving it they take the place of the driver whose state is worth least only when theirs is
// worth more (accepts > shown offers > pacing > nothing live), so made-up identities cannot push
// out drivers with live state. The state of the policy in force survives config reloads while
// the policy keeps its name and identity header. See docs/gateway.md for flags, metrics and reload behaviour.
//
// A Gateway is an http.Handler: tests and tools can put one in front of an httptest server:
//
//	clk := testingclock.NewFakeClock(start) // k8s.io/utils/clock/testing: Step moves time and timers
//	g, err := gateway.New(gateway.Options{Upstream: upstreamURL, Clock: clk})
//	err = g.Apply(cfg)
//	srv := httptest.NewServer(g)
package gateway
