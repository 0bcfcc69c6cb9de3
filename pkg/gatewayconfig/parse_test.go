package gatewayconfig

import (
	"strings"
	"testing"
)

const validConfig = `{
  "schemaVersion": 1,
  "namespace": "offers",
  "policies": [
    {
      "name": "standard",
      "mode": "Enforce",
      "selector": {"matchLabels": {"app": "offer-service"}},
      "identityHeader": "X-Driver-Id",
      "feed": {"method": "GET", "path": "/offers", "minInterval": "2s", "burst": 1},
      "accept": {"method": "POST", "pathTemplate": "/offers/{offerId}/accept", "maxAccepts": 3,
                 "window": "10m0s", "minReactionTime": "800ms", "requireShown": true},
      "shownOffers": {"jsonPath": "offers[].id"},
      "overrides": [{"drivers": ["driver-17"], "feed": {"minInterval": "1s"}}]
    },
    {
      "name": "flex",
      "mode": "DryRun",
      "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["flex"]}]},
      "identityHeader": "X-Amz-Access-Token",
      "feed": {"method": "POST", "path": "/GetOffersForProviderPost", "minInterval": "2s", "burst": 1},
      "accept": {"method": "POST", "pathTemplate": "/AcceptOffer", "offerIdField": "offerId", "maxAccepts": 3,
                 "window": "10m0s", "minReactionTime": "800ms", "requireShown": true},
      "shownOffers": {"jsonPath": "offerList[].offerId"}
    }
  ]
}`

func TestParseValid(t *testing.T) {
	c, err := Parse([]byte(validConfig))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(c.Policies) != 2 || c.Policies[0].Feed.MinInterval.D().String() != "2s" || c.Policies[1].Accept.OfferIDField != "offerId" {
		t.Fatalf("unexpected config: %+v", c)
	}
	for _, p := range c.Policies {
		want, _ := PolicyHash(p)
		if p.Hash != want {
			t.Errorf("policy %s: hash %q, want computed %q", p.Name, p.Hash, want)
		}
	}
	// What Marshal writes, Parse reads back to the same bytes.
	b, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal(c)): %v", err)
	}
	b2, _ := Marshal(c2)
	if string(b) != string(b2) {
		t.Errorf("round trip differs:\n%s\n%s", b, b2)
	}
}

func TestParseRefuses(t *testing.T) {
	cases := []struct {
		desc    string
		mutate  func(string) string
		wantErr []string // substrings, all must appear
	}{
		{"not JSON", func(s string) string { return "{" }, []string{"not valid JSON"}},
		{"unknown field", func(s string) string {
			return strings.Replace(s, `"name": "standard"`, `"name": "standard", "colour": "red"`, 1)
		}, []string{"unknown field", "colour"}},
		{"schema version", func(s string) string { return strings.Replace(s, `"schemaVersion": 1`, `"schemaVersion": 2`, 1) },
			[]string{"schemaVersion: 2 is not supported"}},
		{"no schema version", func(s string) string { return strings.Replace(s, `"schemaVersion": 1,`, ``, 1) },
			[]string{"schemaVersion: required"}},
		{"trailing data", func(s string) string { return s + "{}" }, []string{"not valid JSON"}},
		{"bad method", func(s string) string { return strings.Replace(s, `"method": "GET"`, `"method": "DELETE"`, 1) },
			[]string{"policies[0] (standard): feed.method", "DELETE"}},
		{"relative feed path", func(s string) string { return strings.Replace(s, `"path": "/offers"`, `"path": "offers"`, 1) },
			[]string{"(standard): feed.path"}},
		{"two offer ids in template", func(s string) string {
			return strings.Replace(s, `/offers/{offerId}/accept`, `/offers/{offerId}/{offerId}`, 1)
		}, []string{"(standard): accept.pathTemplate", "more than once"}},
		{"bad template segment", func(s string) string {
			return strings.Replace(s, `/offers/{offerId}/accept`, `/offers/{id}/accept`, 1)
		}, []string{"(standard): accept.pathTemplate"}},
		{"two offer id sources", func(s string) string {
			return strings.Replace(s, `"pathTemplate": "/offers/{offerId}/accept",`, `"pathTemplate": "/offers/{offerId}/accept", "offerIdField": "id",`, 1)
		}, []string{"(standard): accept.offerIdField", "exactly one"}},
		{"no offer id source", func(s string) string {
			return strings.Replace(s, `"offerIdField": "offerId", `, ``, 1)
		}, []string{"(flex): accept.offerIdField", "required"}},
		{"interval too short", func(s string) string { return strings.Replace(s, `"minInterval": "2s"`, `"minInterval": "5ms"`, 1) },
			[]string{"(standard): feed.minInterval", "5ms is not between 10ms and 1h0m0s"}},
		{"burst zero", func(s string) string { return strings.Replace(s, `"burst": 1`, `"burst": 0`, 1) },
			[]string{"(standard): feed.burst"}},
		{"window too long", func(s string) string { return strings.Replace(s, `"window": "10m0s"`, `"window": "48h"`, 1) },
			[]string{"(standard): accept.window"}},
		{"window shorter than reaction", func(s string) string {
			return strings.Replace(strings.Replace(s, `"window": "10m0s"`, `"window": "1s"`, 1), `"minReactionTime": "800ms"`, `"minReactionTime": "2s"`, 1)
		}, []string{"(standard): accept.window: window must be at least minReactionTime"}},
		{"reaction too long", func(s string) string {
			return strings.Replace(s, `"minReactionTime": "800ms"`, `"minReactionTime": "2m"`, 1)
		}, []string{"(standard): accept.minReactionTime"}},
		{"negative duration", func(s string) string { return strings.Replace(s, `"minInterval": "2s"`, `"minInterval": "-2s"`, 1) },
			[]string{"negative"}},
		{"bad selector", func(s string) string { return strings.Replace(s, `"operator": "In"`, `"operator": "Near"`, 1) },
			[]string{"(flex): selector"}},
		{"bad jsonPath", func(s string) string { return strings.Replace(s, `offers[].id`, `offers[0].id`, 1) },
			[]string{"(standard): shownOffers.jsonPath"}},
		{"bad mode", func(s string) string { return strings.Replace(s, `"mode": "Enforce"`, `"mode": "Block"`, 1) },
			[]string{"(standard): mode"}},
		{"offerfeed identity header", func(s string) string {
			return strings.Replace(s, `"identityHeader": "X-Driver-Id"`, `"identityHeader": "OfferFeed-Driver"`, 1)
		}, []string{"(standard): identityHeader"}},
		{"requireShown without shownOffers", func(s string) string {
			return strings.Replace(s, `"shownOffers": {"jsonPath": "offers[].id"},`, ``, 1)
		}, []string{"(standard): accept.requireShown", "(standard): accept.minReactionTime"}},
		{"override of nothing", func(s string) string {
			return strings.Replace(s, `"feed": {"minInterval": "1s"}`, `"drivers2": []`, 1)
		}, []string{"unknown field"}},
		{"override without changes", func(s string) string {
			return strings.Replace(s, `, "feed": {"minInterval": "1s"}`, ``, 1)
		}, []string{"(standard): overrides[0]: an override must change feed or accept"}},
		{"duplicate names", func(s string) string { return strings.Replace(s, `"name": "flex"`, `"name": "standard"`, 1) },
			[]string{"duplicate"}},
		{"fairness window", func(s string) string {
			return strings.Replace(s, `"requireShown": true},
      "shownOffers": {"jsonPath": "offers[].id"}`, `"requireShown": true, "fairness": {"window": "50ms", "award": "Random"}},
      "shownOffers": {"jsonPath": "offers[].id"}`, 1)
		}, []string{"(standard): accept.fairness.window"}},
		{"fairness award", func(s string) string {
			return strings.Replace(s, `"requireShown": true},
      "shownOffers": {"jsonPath": "offers[].id"}`, `"requireShown": true, "fairness": {"window": "3s", "award": "Fastest"}},
      "shownOffers": {"jsonPath": "offers[].id"}`, 1)
		}, []string{"(standard): accept.fairness.award"}},
		// The API server refuses these three too (internal/celcases); Parse once accepted them.
		{"feed and accept on the same route", func(s string) string {
			return strings.Replace(s, `"pathTemplate": "/AcceptOffer"`, `"pathTemplate": "/GetOffersForProviderPost"`, 1)
		}, []string{"(flex): accept.pathTemplate: feed and accept must not be the same route"}},
		{"feed prefix path equal to the accept path but for a trailing slash", func(s string) string {
			return strings.Replace(s, `"pathTemplate": "/AcceptOffer"`, `"pathTemplate": "/GetOffersForProviderPost/"`, 1)
		}, []string{"(flex): accept.pathTemplate: feed and accept must not be the same route"}},
		{"empty selector", func(s string) string {
			return strings.Replace(s, `"selector": {"matchLabels": {"app": "offer-service"}}`, `"selector": {}`, 1)
		}, []string{"(standard): selector: must set matchLabels or matchExpressions"}},
		{"empty matchLabels", func(s string) string {
			return strings.Replace(s, `"selector": {"matchLabels": {"app": "offer-service"}}`, `"selector": {"matchLabels": {}, "matchExpressions": []}`, 1)
		}, []string{"(standard): selector: must set matchLabels or matchExpressions"}},
		{"hop-by-hop identity header", func(s string) string {
			return strings.Replace(s, `"identityHeader": "X-Driver-Id"`, `"identityHeader": "Connection"`, 1)
		}, []string{"(standard): identityHeader", "hop-by-hop"}},
		{"identity header Host", func(s string) string {
			return strings.Replace(s, `"identityHeader": "X-Driver-Id"`, `"identityHeader": "host"`, 1)
		}, []string{"(standard): identityHeader", "Host"}},
		{"bad hash", func(s string) string {
			return strings.Replace(s, `"name": "flex",`, `"name": "flex", "hash": "md5:x",`, 1)
		}, []string{"(flex): hash"}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Parse([]byte(tc.mutate(validConfig)))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validConfig))
	f.Add([]byte(`{"schemaVersion":1,"namespace":"x","policies":[]}`))
	f.Add([]byte(`{"schemaVersion":1,"policies":[{"name":"a","mode":"DryRun","selector":{"matchLabels":{"a":"b"}},"identityHeader":"X","accept":{"method":"POST","pathTemplate":"/a/{offerId}","fairness":{"window":"3s","award":"Random"}}}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"schemaVersion":"1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever Parse accepts is valid, and survives a round trip.
		if err := Validate(c); err != nil {
			t.Fatalf("Parse accepted an invalid config: %v", err)
		}
		b, err := Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(b); err != nil {
			t.Fatalf("Parse(Marshal(Parse(x))): %v\n%s", err, b)
		}
	})
}

// TestErrorsNeverEchoDriverIDs: an error about an override names its drivers by index, never
// by id: errors end up in /readyz, logs and statuses.
func TestErrorsNeverEchoDriverIDs(t *testing.T) {
	const secret = "driver-7f3a9c-secret"
	cases := []struct {
		desc, overrides string
		wantErr         string
	}{
		{"listed twice", `[{"drivers": ["` + secret + `", "d2", "` + secret + `"], "feed": {"minInterval": "1s"}}]`,
			"(standard): overrides[0].drivers[2]: duplicate of drivers[0]"},
		{"listed twice, bad interval", `[{"drivers": ["` + secret + `", "` + secret + `"], "feed": {"minInterval": "1ms"}}]`,
			"(standard): overrides[0].feed.minInterval"},
		{"no change", `[{"drivers": ["d1"], "feed": {"minInterval": "1s"}}, {"drivers": ["` + secret + `"]}]`,
			"(standard): overrides[1]: an override must change feed or accept"},
		{"too long", `[{"drivers": ["` + secret + strings.Repeat("x", MaxDriverLen) + `"], "feed": {"minInterval": "1s"}}]`,
			"(standard): overrides[0].drivers[0]: must be 1 to 256 characters"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			cfg := strings.Replace(validConfig, `[{"drivers": ["driver-17"], "feed": {"minInterval": "1s"}}]`, tc.overrides, 1)
			_, err := Parse([]byte(cfg))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error echoes a driver id: %q", err)
			}
		})
	}
}
