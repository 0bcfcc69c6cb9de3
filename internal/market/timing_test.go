package market_test

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/market"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// clockMarket is the offer service of one shape behind the real gateway in Enforce, both on
// one fake clock: a driver's requests are sent by hand at the fake times the test picks.
type clockMarket struct {
	t     *testing.T
	clock *testingclock.FakeClock
	shape market.Shape
	gw    http.Handler
}

func newClockMarket(t *testing.T, shape market.Shape, timing market.Timing, cfg *gatewayconfig.Config) *clockMarket {
	t.Helper()
	clock := testingclock.NewFakeClock(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
	svc := market.NewOfferService(market.ServiceConfig{Shape: shape, OfferInterval: timing.OfferInterval,
		OfferTTL: timing.OfferTTL, Seed: 1, Now: clock.Now})
	upstream := httptest.NewServer(svc)
	t.Cleanup(upstream.Close)
	u, _ := url.Parse(upstream.URL)
	g, err := gateway.New(gateway.Options{Upstream: u, Clock: clock, PodLabels: map[string]string{"app": "offer-service"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	return &clockMarket{t: t, clock: clock, shape: shape, gw: g}
}

// send makes one request of driver through the gateway: its status, decision and body.
func (m *clockMarket) send(driver, method, path, body string) (int, string, []byte) {
	m.t.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	r.Header.Set(market.DefaultIdentityHeader, driver)
	w := httptest.NewRecorder()
	m.gw.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, w.Header().Get(market.DecisionHeader), b
}

// poll reads the feed as the market's drivers do: its status, decision and first offer id.
func (m *clockMarket) poll(driver string) (int, string, string) {
	m.t.Helper()
	rt := m.shape.Routes()
	body := ""
	if m.shape == market.ShapeFlex {
		body = `{"apiVersion":"V2","filters":{},"serviceAreaIds":[]}`
	}
	code, decision, b := m.send(driver, rt.FeedMethod, rt.FeedPath, body)
	var feed struct {
		Offers []struct {
			ID string `json:"id"`
		} `json:"offers"`
		OfferList []struct {
			OfferID string `json:"offerId"`
		} `json:"offerList"`
	}
	_ = json.NewDecoder(bytes.NewReader(b)).Decode(&feed)
	switch {
	case len(feed.Offers) > 0:
		return code, decision, feed.Offers[0].ID
	case len(feed.OfferList) > 0:
		return code, decision, feed.OfferList[0].OfferID
	}
	return code, decision, ""
}

// accept accepts offer as the market's drivers do: its status and decision.
func (m *clockMarket) accept(driver, offer string) (int, string) {
	m.t.Helper()
	rt := m.shape.Routes()
	path := strings.Replace(rt.AcceptPathTemplate, "{offerId}", url.PathEscape(offer), 1)
	body := ""
	if rt.OfferIDField != "" {
		body = `{"` + rt.OfferIDField + `":"` + offer + `"}`
	}
	code, decision, _ := m.send(driver, http.MethodPost, path, body)
	return code, decision
}

// TestClassTimingOnFakeClock checks, on a fake clock, the timing that the market runs of
// TestMarketThroughGateway rest on: each class's poll interval and reaction time, at the ends
// of its ranges (Timing, scaled like those runs), against the scaled standard policy. The
// runs themselves play in real time and assert only what a loaded machine cannot change.
func TestClassTimingOnFakeClock(t *testing.T) {
	const scale = 0.1
	known := market.Policy{MinInterval: 200 * time.Millisecond, MinReactionTime: 80 * time.Millisecond}
	timing := market.DefaultTiming().Scaled(scale)
	margin := market.DefaultMargin
	cases := []struct {
		desc                     string
		pollGap, react           time.Duration
		wantPollCode, wantAccept int
		wantPollDec, wantAccDec  string
	}{
		{"raw bot, fastest", timing.BotPoll, timing.BotReactMin, 429, 429, "feed-throttled", "too-fast"},
		{"raw bot, slowest", timing.BotPoll, timing.BotReactMax, 429, 429, "feed-throttled", "too-fast"},
		{"compliant bot", known.MinInterval + margin, known.MinReactionTime + margin, 200, 200, "", ""},
		{"human, fastest", timing.HumanPollMin, timing.HumanReactMin, 200, 200, "", ""},
		{"human, median", timing.HumanPollMedian, timing.HumanReactMedian, 200, 200, "", ""},
		{"human, slow tail", 3 * timing.HumanPollMedian, humanReactP99(timing), 200, 200, "", ""},
		{"jittered bot, least jitter", known.MinInterval + margin, known.MinReactionTime + margin, 200, 200, "", ""},
		{"jittered bot, most jitter", known.MinInterval + margin + timing.JitterPoll, known.MinReactionTime + margin + timing.JitterReact, 200, 200, "", ""},
	}
	for _, shape := range []market.Shape{market.ShapeREST, market.ShapeFlex} {
		for _, c := range cases {
			t.Run(string(shape)+"/"+c.desc, func(t *testing.T) {
				m := newClockMarket(t, shape, timing, gatewayConfig(gatewayconfig.ModeEnforce, shape, known))

				// Pacing: the second poll, pollGap after the first.
				if code, _, _ := m.poll("pacer"); code != 200 {
					t.Fatalf("first poll: %d", code)
				}
				m.clock.Step(c.pollGap)
				if code, dec, _ := m.poll("pacer"); code != c.wantPollCode || dec != c.wantPollDec {
					t.Errorf("poll %s after the first: %d %q, want %d %q", c.pollGap, code, dec, c.wantPollCode, c.wantPollDec)
				}

				// Reaction: an accept react after the offer was shown.
				code, _, offer := m.poll("reactor")
				if code != 200 || offer == "" {
					t.Fatalf("poll: %d, offer %q", code, offer)
				}
				m.clock.Step(c.react)
				if code, dec := m.accept("reactor", offer); code != c.wantAccept || dec != c.wantAccDec {
					t.Errorf("accept %s after the offer was shown: %d %q, want %d %q", c.react, code, dec, c.wantAccept, c.wantAccDec)
				}
			})
		}
	}
}

// humanReactP99 is the 99th percentile of a person's reaction time.
func humanReactP99(t market.Timing) time.Duration {
	return t.HumanReactMin + time.Duration(float64(t.HumanReactMedian-t.HumanReactMin)*math.Exp(2.326*t.HumanReactSigma))
}

// TestTimingOrdersTheClasses: without a gateway raw bots win most offers because they react
// first: a raw bot's slowest reaction comes before a compliant bot's and a human's fastest.
// This is the timing the real-time runs of TestRunAgainstOfferService rest on.
func TestTimingOrdersTheClasses(t *testing.T) {
	for _, scale := range []float64{1, 0.25, 0.1} {
		tm := market.DefaultTiming().Scaled(scale)
		compliant := 80*time.Millisecond + market.DefaultMargin // TestRunAgainstOfferService's policy
		if !(tm.BotReactMax < compliant && compliant < tm.HumanReactMin && tm.BotPoll < tm.HumanPollMin) {
			t.Errorf("scale %v: bot reacts within %s and polls every %s, compliant bot %s, human from %s (polls from %s)",
				scale, tm.BotReactMax, tm.BotPoll, compliant, tm.HumanReactMin, tm.HumanPollMin)
		}
	}
}
