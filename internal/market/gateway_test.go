package market_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/offerfeed/offerfeed/internal/gateway"
	"github.com/offerfeed/offerfeed/internal/market"
	"github.com/offerfeed/offerfeed/internal/render/rendertest"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// TestMarketThroughGateway plays the demo's story, ten times faster, through the real
// gateway: in DryRun raw bots are flagged and nothing is refused; in Enforce they are refused.
// It plays in real time, so it asserts only what a loaded machine cannot change: that the
// gateway saw and flagged or refused the bots, not who won how much. Who is too fast or too
// frequent is TestClassTimingOnFakeClock's, on a fake clock.
func TestMarketThroughGateway(t *testing.T) {
	for _, tc := range []struct {
		mode  gatewayconfig.Mode
		shape market.Shape
	}{
		{gatewayconfig.ModeDryRun, market.ShapeREST},
		{gatewayconfig.ModeEnforce, market.ShapeFlex},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			t.Parallel()
			// The standard policy of docs/design.md#api, scaled like the market.
			known := market.Policy{MinInterval: 200 * time.Millisecond, MinReactionTime: 80 * time.Millisecond}
			cfg := market.Config{
				Title: "Run: " + string(tc.mode), Shape: tc.shape, Seed: 1, Scale: 0.1, Duration: 1500 * time.Millisecond,
				Humans: 4, Bots: 2, CompliantBots: 2, Policy: known,
			}
			svc := market.NewOfferService(cfg.ServiceConfig())
			upstream := httptest.NewServer(svc)
			defer upstream.Close()
			u, _ := url.Parse(upstream.URL)
			g, err := gateway.New(gateway.Options{Upstream: u, PodLabels: map[string]string{"app": "offer-service"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Apply(gatewayConfig(tc.mode, tc.shape, known)); err != nil {
				t.Fatal(err)
			}
			gw := httptest.NewServer(g)
			defer gw.Close()
			cfg.BaseURL, cfg.Service = gw.URL, svc

			rep, err := market.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			var table strings.Builder
			_ = rep.WriteTable(&table)
			t.Logf("\n%s", table.String())

			bot, compliant := rep.Class(market.ClassBot), rep.Class(market.ClassCompliantBot)
			t.Logf("offers won: raw bots %d, compliant bots %d (not asserted: real time)", bot.OffersWon, compliant.OffersWon)
			switch tc.mode {
			case gatewayconfig.ModeDryRun:
				if bot.Flags["feed-throttled"] == 0 || bot.Flags["too-fast"] == 0 || bot.WonFlagged == 0 {
					t.Errorf("DryRun: raw bots should be flagged feed-throttled and too-fast: %v, won flagged %d", bot.Flags, bot.WonFlagged)
				}
				for _, c := range rep.Classes {
					if len(c.Decisions) != 0 {
						t.Errorf("DryRun refused %s: %v", c.Class, c.Decisions)
					}
				}
			case gatewayconfig.ModeEnforce:
				if bot.Decisions["feed-throttled"] == 0 || bot.Decisions["too-fast"] == 0 || bot.PollsRefused == 0 {
					t.Errorf("Enforce: raw bots should be refused: %v", bot.Decisions)
				}
				// Safe in real time: the gateway marks an offer shown before the bot reads it, and
				// the bot accepts minReactionTime+margin after it read it.
				if compliant.Decisions["too-fast"] != 0 {
					t.Errorf("Enforce: compliant bots accept after minReactionTime and should never be too fast: %v", compliant.Decisions)
				}
			}
		})
	}
}

// gatewayConfig is a gateway config with one policy for shape, in mode, with the limits a
// compliant bot knows.
func gatewayConfig(mode gatewayconfig.Mode, shape market.Shape, known market.Policy) *gatewayconfig.Config {
	rt := shape.Routes()
	p := gatewayconfig.Policy{
		Name: "standard", Mode: mode, IdentityHeader: market.DefaultIdentityHeader,
		Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "offer-service"}},
		Feed:     &gatewayconfig.Feed{Method: rt.FeedMethod, Path: rt.FeedPath, MinInterval: gatewayconfig.Duration(known.MinInterval), Burst: 1},
		Accept: &gatewayconfig.Accept{Method: "POST", PathTemplate: rt.AcceptPathTemplate, OfferIDField: rt.OfferIDField, MaxAccepts: 30,
			Window: gatewayconfig.Duration(time.Minute), MinReactionTime: gatewayconfig.Duration(known.MinReactionTime), RequireShown: true},
		ShownOffers: &gatewayconfig.ShownOffers{JSONPath: rt.ShownOffersPath},
	}
	return &gatewayconfig.Config{SchemaVersion: gatewayconfig.SchemaVersion, Namespace: "offers", Policies: []gatewayconfig.Policy{p}}
}

// TestStrictAppThroughGateway plays the Flex market with apps that read only the platform's
// own errors, as the apps already on drivers' phones do. With the gateway's own refusals
// (text/plain 429) they crash; with spec.refusal in the Flex shape (400 {"message":"Rate
// exceeded"}) they keep working while the gateway refuses the bots. The Flex shape is the
// one the operator renders from config/samples' flex policy (the golden file that the
// controller's tests hold the operator to), so the shipped sample is what is played.
func TestStrictAppThroughGateway(t *testing.T) {
	golden, err := rendertest.Read("../render/testdata/samples.out.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := gatewayconfig.Parse([]byte(golden.Config))
	if err != nil {
		t.Fatal(err)
	}
	var flex *gatewayconfig.Refusal
	for _, p := range rendered.Policies {
		if p.Name == "flex" {
			flex = p.Refusal
		}
	}
	if want := (&gatewayconfig.Refusal{Status: 400, ContentType: "application/json", Body: `{"message":"` + market.FlexRateExceeded + `"}`}); !reflect.DeepEqual(flex, want) {
		t.Fatalf("the flex sample renders refusal %+v, want the Flex app's own %+v", flex, want)
	}
	for _, tc := range []struct {
		desc    string
		refusal *gatewayconfig.Refusal
	}{
		{"gateway's own refusals", nil},
		{"refusals in the Flex shape", flex},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			known := market.Policy{MinInterval: 200 * time.Millisecond, MinReactionTime: 80 * time.Millisecond}
			cfg := market.Config{
				Title: tc.desc, Shape: market.ShapeFlex, Seed: 2, Scale: 0.1, Duration: 1500 * time.Millisecond,
				Humans: 3, Bots: 2, CompliantBots: 2, Policy: known, StrictErrors: true,
			}
			svc := market.NewOfferService(cfg.ServiceConfig())
			upstream := httptest.NewServer(svc)
			defer upstream.Close()
			u, _ := url.Parse(upstream.URL)
			g, err := gateway.New(gateway.Options{Upstream: u, PodLabels: map[string]string{"app": "offer-service"}})
			if err != nil {
				t.Fatal(err)
			}
			gc := gatewayConfig(gatewayconfig.ModeEnforce, market.ShapeFlex, known)
			gc.Policies[0].Refusal = tc.refusal
			if err := gatewayconfig.Validate(gc); err != nil {
				t.Fatal(err)
			}
			if err := g.Apply(gc); err != nil {
				t.Fatal(err)
			}
			gw := httptest.NewServer(g)
			defer gw.Close()
			cfg.BaseURL, cfg.Service = gw.URL, svc

			rep, err := market.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			bot := rep.Class(market.ClassBot)
			if tc.refusal == nil {
				// The raw bots poll too fast from the start: their apps meet a refusal and crash.
				if len(rep.Crashed) == 0 {
					t.Fatalf("no app crashed on the gateway's text/plain refusals; bot decisions %v", bot.Decisions)
				}
				for _, c := range rep.Crashed {
					if !strings.Contains(c, "is not the offer API's JSON error") {
						t.Errorf("crash: %s", c)
					}
				}
				return
			}
			if len(rep.Crashed) != 0 {
				t.Fatalf("apps crashed with refusals in the Flex shape: %v", rep.Crashed)
			}
			if bot.Decisions["feed-throttled"] == 0 || bot.PollsRefused == 0 {
				t.Errorf("raw bots should be refused: %v", bot.Decisions)
			}
			won := 0
			for _, c := range rep.Classes {
				won += c.OffersWon
			}
			if won == 0 {
				t.Errorf("no offer won: the market did not keep working")
			}
		})
	}
}
