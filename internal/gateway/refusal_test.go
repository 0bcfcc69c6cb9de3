package gateway

import (
	"context"
	"maps"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// problemRefusal answers every refusal with an RFC 9457 problem document, and unseen-offer
// with a 404 of its own.
func problemRefusal() *gatewayconfig.Refusal {
	return &gatewayconfig.Refusal{
		ContentType: "application/problem+json",
		Body:        `{"type":"https://offers.example/problems/{{decision}}","title":"Request refused","status":{{status}},"detail":"retry after {{retryAfter}} s"}`,
		Decisions: []gatewayconfig.DecisionRefusal{{Decision: "unseen-offer", Status: 404,
			ContentType: "application/json", Body: `{"error":"NOT_FOUND"}`}},
	}
}

func problem(decision, status, retry string) string {
	return `{"type":"https://offers.example/problems/` + decision + `","title":"Request refused","status":` + status +
		`,"detail":"retry after ` + retry + ` s"}`
}

// TestRefusalShapes answers each decision of the table in the configured shape, and keeps the
// headers OfferFeed-Decision, Retry-After (where the decision has one) and RateLimit.
func TestRefusalShapes(t *testing.T) {
	type req struct {
		advance      time.Duration
		method, path string
		hdr          []string
		status       int
		decision     string
		contentType  string
		body         string
		retryAfter   string // "" must be absent
		rateLimit    bool   // RateLimit must be present
	}
	const problemCT = "application/problem+json"
	tests := []struct {
		desc    string
		refusal *gatewayconfig.Refusal
		reqs    []req
	}{{
		desc:    "problem documents, unseen-offer a 404 of its own",
		refusal: problemRefusal(),
		reqs: []req{
			{method: "GET", path: "/offers", hdr: drv("d1"), status: 200},
			{method: "GET", path: "/offers", hdr: drv("d1"), status: 429, decision: "feed-throttled", contentType: problemCT,
				body: problem("feed-throttled", "429", "2"), retryAfter: "2", rateLimit: true},
			{method: "GET", path: "/offers", status: 400, decision: "missing-identity", contentType: problemCT,
				body: problem("missing-identity", "400", "0")},
			{method: "POST", path: "/offers/o9/accept", hdr: drv("d1"), status: 404, decision: "unseen-offer",
				contentType: "application/json", body: `{"error":"NOT_FOUND"}`},
			{method: "POST", path: "/offers/o1/accept", hdr: drv("d1"), status: 429, decision: "too-fast", contentType: problemCT,
				body: problem("too-fast", "429", "0")},
			{advance: time.Second, method: "POST", path: "/offers/o1/accept", hdr: drv("d1"), status: 200},
			{method: "POST", path: "/offers/o2/accept", hdr: drv("d1"), status: 200},
			{method: "POST", path: "/offers/o1/accept", hdr: drv("d1"), status: 200},
			{method: "POST", path: "/offers/o2/accept", hdr: drv("d1"), status: 429, decision: "accept-throttled", contentType: problemCT,
				body: problem("accept-throttled", "429", "600"), retryAfter: "600"},
		},
	}, {
		desc:    "Flex: one 400 with the platform's message for every decision",
		refusal: &gatewayconfig.Refusal{Status: 400, ContentType: "application/json", Body: `{"message":"Rate exceeded"}`},
		reqs: []req{
			{method: "GET", path: "/offers", hdr: drv("d1"), status: 200},
			{method: "GET", path: "/offers", hdr: drv("d1"), status: 400, decision: "feed-throttled", contentType: "application/json",
				body: `{"message":"Rate exceeded"}`, retryAfter: "2", rateLimit: true},
			{method: "POST", path: "/offers/o1/accept", hdr: drv("d1"), status: 400, decision: "too-fast", contentType: "application/json",
				body: `{"message":"Rate exceeded"}`},
			{method: "POST", path: "/offers/o7/accept", hdr: drv("d1"), status: 400, decision: "unseen-offer", contentType: "application/json",
				body: `{"message":"Rate exceeded"}`},
		},
	}, {
		desc:    "status only: the text body stays",
		refusal: &gatewayconfig.Refusal{Decisions: []gatewayconfig.DecisionRefusal{{Decision: "unseen-offer", Status: 404}}},
		reqs: []req{
			{method: "POST", path: "/offers/o7/accept", hdr: drv("d1"), status: 404, decision: "unseen-offer",
				contentType: "text/plain; charset=utf-8", body: "unseen-offer\n"},
			{method: "GET", path: "/offers", status: 400, decision: "missing-identity",
				contentType: "text/plain; charset=utf-8", body: "missing-identity\n"},
		},
	}, {
		desc: "no refusal: the gateway's own answers",
		reqs: []req{
			{method: "GET", path: "/offers", hdr: drv("d1"), status: 200},
			{method: "GET", path: "/offers", hdr: drv("d1"), status: 429, decision: "feed-throttled",
				contentType: "text/plain; charset=utf-8", body: "feed-throttled\n", retryAfter: "2", rateLimit: true},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := standardPolicy()
			p.Refusal = tc.refusal
			cfg := configOf(p)
			if err := gatewayconfig.Validate(cfg); err != nil {
				t.Fatalf("test config invalid: %v", err)
			}
			h := newHarness(t, cfg)
			for i, rq := range tc.reqs {
				h.clock.Advance(rq.advance)
				before := len(h.up.records())
				w := h.do(rq.method, rq.path, "", rq.hdr...)
				expect(t, w, rq.status, rq.decision)
				if rq.decision == "" {
					continue
				}
				hd := w.Header()
				if got := hd.Get("Content-Type"); got != rq.contentType {
					t.Errorf("%d: Content-Type %q, want %q", i, got, rq.contentType)
				}
				if got := w.Body.String(); got != rq.body {
					t.Errorf("%d: body %s, want %s", i, got, rq.body)
				}
				if got := hd.Get("Retry-After"); got != rq.retryAfter {
					t.Errorf("%d: Retry-After %q, want %q", i, got, rq.retryAfter)
				}
				if (hd.Get("RateLimit") != "") != rq.rateLimit {
					t.Errorf("%d: RateLimit %q, want present=%v", i, hd.Get("RateLimit"), rq.rateLimit)
				}
				if hd.Get("Cache-Control") != "no-store" {
					t.Errorf("%d: Cache-Control %q", i, hd.Get("Cache-Control"))
				}
				if len(h.up.records()) != before {
					t.Errorf("%d: a refused request reached the offer service", i)
				}
			}
		})
	}
}

// TestRefusalShapesDryRun: in DryRun nothing is refused, so no shape is ever answered.
func TestRefusalShapesDryRun(t *testing.T) {
	p := standardPolicy()
	p.Mode = gatewayconfig.ModeDryRun
	p.Refusal = problemRefusal()
	h := newHarness(t, configOf(p))
	h.do("GET", "/offers", "", drv("d1")...)
	w := h.do("GET", "/offers", "", drv("d1")...)
	expect(t, w, 200, "")
	if f := h.up.last().Header.Get(HeaderFlag); f != "feed-throttled" {
		t.Fatalf("flag %q", f)
	}
}

// TestRefusalShapesDraw: the answers of a fair draw (lost-draw, duplicate-accept) take the
// policy's shape too, with their own 409 unless a status is set.
func TestRefusalShapesDraw(t *testing.T) {
	p := fairPolicy("Random")
	p.Refusal = &gatewayconfig.Refusal{ContentType: "application/json", Body: `{"message":"{{decision}}","code":{{status}}}`,
		Decisions: []gatewayconfig.DecisionRefusal{{Decision: "duplicate-accept", Status: 400}}}
	h := newDrawHarness(t, p, func(o *Options) { o.MaxDrawCandidates = 1 })
	held := h.hold("o1", "a")
	send := func(driver string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/offers/o1/accept", nil).WithContext(context.Background())
		r.Header.Set("X-Driver-Id", driver)
		w := httptest.NewRecorder()
		h.g.ServeHTTP(w, r)
		return w
	}
	for _, tc := range []struct {
		driver, decision, body string
		status                 int
	}{
		{"b", DecisionLostDraw.String(), `{"message":"lost-draw","code":409}`, 409},               // the draw is full
		{"a", DecisionDuplicateAccept.String(), `{"message":"duplicate-accept","code":400}`, 400}, // a is held already
	} {
		w := send(tc.driver)
		expect(t, w, tc.status, tc.decision)
		if w.Body.String() != tc.body || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %s %q, want %s", tc.decision, w.Header().Get("Content-Type"), w.Body.String(), tc.body)
		}
	}
	h.clock.Advance(3 * time.Second)
	if a := answers(t, held)[0]; a.code != 200 {
		t.Fatalf("the held accept got %d %q", a.code, a.decision)
	}
}

// TestRefusalDecisionsAreTheGatewaysRefusals checks the CRD's enum of refusal decisions
// (gatewayconfig.RefusalDecisions, generated from spec.refusal.decisions[].decision) against the
// gateway's own decisions: every Decision except Allowed, and the fair draw's lost-draw and
// duplicate-accept. A decision added to the gateway without the enum (or the other way round)
// fails here; so does a shape compiled for a decision the enum does not name.
func TestRefusalDecisionsAreTheGatewaysRefusals(t *testing.T) {
	var gw []string
	for d := Allowed + 1; d < numDecisions; d++ {
		gw = append(gw, d.String())
	}
	gw = append(gw, DecisionLostDraw.String(), DecisionDuplicateAccept.String())
	enum := gatewayconfig.RefusalDecisions()
	if !slices.Equal(slices.Sorted(slices.Values(enum)), slices.Sorted(slices.Values(gw))) {
		t.Errorf("the CRD's refusal decisions are %v, the gateway refuses with %v", enum, gw)
	}
	if slices.Contains(enum, Allowed.String()) {
		t.Errorf("the enum %v names %s, which is no refusal", enum, Allowed)
	}
	if len(enum) != gatewayconfig.MaxRefusalDecisions {
		t.Errorf("spec.refusal.decisions holds at most %d entries, one per decision, but there are %d decisions",
			gatewayconfig.MaxRefusalDecisions, len(enum))
	}
	shapes := compileRefusals(&gatewayconfig.Refusal{Status: 400})
	compiled := slices.Sorted(maps.Keys(shapes))
	if !slices.Equal(compiled, slices.Sorted(slices.Values(enum))) {
		t.Errorf("shapes are compiled for %v, the enum is %v", compiled, enum)
	}
}
