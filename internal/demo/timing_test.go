package demo

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/market"
	"github.com/offerfeed/offerfeed/internal/render"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// TestDemoTimingOnFakeClock checks on a fake clock the timing TestDemo's story rests on, with
// the demo's own policy at TestDemo's scale and the market's own delays: every accept of a
// raw bot, even at its slowest reaction, is too fast for the policy (so raw bots win nothing
// once it is enforced, with fair draws or without); a compliant bot's and a person's are not;
// a raw bot's polls are throttled, a compliant bot's and a person's are not. TestDemo plays
// in real time and asserts only what a loaded machine cannot change.
func TestDemoTimingOnFakeClock(t *testing.T) {
	const scale = 0.25
	tm := market.DefaultTiming().Scaled(scale)
	pol := Policy(market.ShapeREST, v1alpha1.ModeEnforce, scale).Spec
	minInterval, minReaction := mustDuration(pol.Feed.MinInterval), mustDuration(*pol.Accept.MinReactionTime)
	margin := market.DefaultMargin
	cases := []struct {
		desc                 string
		pollGap, react       time.Duration
		wantPoll, wantAccept string // decisions; "" is served
	}{
		{"raw bot, fastest", tm.BotPoll, tm.BotReactMin, "feed-throttled", "too-fast"},
		{"raw bot, slowest", tm.BotPoll, tm.BotReactMax, "feed-throttled", "too-fast"},
		{"compliant bot", minInterval + margin, minReaction + margin, "", ""},
		{"person, fastest", tm.HumanPollMin, tm.HumanReactMin, "", ""},
	}
	for _, run := range []string{"enforce", "fair"} {
		for _, c := range cases {
			t.Run(run+"/"+c.desc, func(t *testing.T) {
				p := Policy(market.ShapeREST, v1alpha1.ModeEnforce, scale)
				runSpecs[run].apply(p, scale, v1alpha1.AwardLeastRecentlyWon)
				gp, err := render.Policy(p)
				if err != nil {
					t.Fatal(err)
				}
				clock := testingclock.NewFakeClock(time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC))
				svc := market.NewOfferService(market.ServiceConfig{OfferInterval: DefaultOfferInterval, Seed: 7, Now: clock.Now})
				upstream := httptest.NewServer(svc)
				defer upstream.Close()
				u, _ := url.Parse(upstream.URL)
				g, err := gateway.New(gateway.Options{Upstream: u, Clock: clock, PodLabels: map[string]string{"app": AppLabel}})
				if err != nil {
					t.Fatal(err)
				}
				cfg := &gatewayconfig.Config{SchemaVersion: gatewayconfig.SchemaVersion, Namespace: Namespace, Policies: []gatewayconfig.Policy{gp}}
				if err := g.Apply(cfg); err != nil {
					t.Fatal(err)
				}
				send := func(driver, method, path string) (int, string) {
					r := httptest.NewRequest(method, path, nil)
					r.Header.Set(market.DefaultIdentityHeader, driver)
					w := httptest.NewRecorder()
					g.ServeHTTP(w, r)
					return w.Code, w.Header().Get(market.DecisionHeader)
				}

				send("pacer", http.MethodGet, market.RESTFeedPath)
				clock.Step(c.pollGap)
				if code, dec := send("pacer", http.MethodGet, market.RESTFeedPath); dec != c.wantPoll || (dec == "") != (code == http.StatusOK) {
					t.Errorf("poll %s after the first: %d %q, want %q", c.pollGap, code, dec, c.wantPoll)
				}

				offer := svc.Open()[0].ID
				if code, _ := send("reactor", http.MethodGet, market.RESTFeedPath); code != http.StatusOK {
					t.Fatalf("poll: %d", code)
				}
				clock.Step(c.react)
				path := strings.Replace(market.RESTAcceptPathTemplate, "{offerId}", offer, 1)
				if c.wantAccept != "" || run != "fair" {
					if code, dec := send("reactor", http.MethodPost, path); dec != c.wantAccept || (dec == "") != (code == http.StatusOK) {
						t.Errorf("accept %s after the offer was shown: %d %q, want %q", c.react, code, dec, c.wantAccept)
					}
					return
				}
				// With fair draws an accept that passed the checks is held until the window
				// closes on the clock, then wins (it is alone).
				ans := make(chan string, 1)
				go func() {
					code, dec := send("reactor", http.MethodPost, path)
					ans <- fmt.Sprint(code, dec)
				}()
				deadline := time.Now().Add(10 * time.Second)
				for g.HeldAccepts(offer) != 1 {
					if time.Now().After(deadline) {
						t.Fatal("the accept was not held for the draw")
					}
					time.Sleep(time.Millisecond)
				}
				clock.Step(fairnessWindow(scale))
				if got := <-ans; got != "200" {
					t.Errorf("held accept after the window: %s, want 200", got)
				}
			})
		}
	}
}
