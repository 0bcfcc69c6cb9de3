package gatewayconfig

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBotScoreChecks: botScore's enum, bound and what it needs, as the API's rules say.
func TestBotScoreChecks(t *testing.T) {
	base := func(b *BotScore, fair, accept bool) *Policy {
		p := &Policy{Name: "p", Mode: ModeEnforce, IdentityHeader: "X-Driver-Id",
			Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "offer-service"}},
			Feed:     &Feed{Method: "GET", Path: "/offers", MinInterval: Duration(MinFeedInterval), Burst: MinBurst},
			BotScore: b}
		if accept {
			p.Accept = &Accept{Method: "POST", PathTemplate: "/offers/{offerId}/accept", RequireShown: true}
			p.ShownOffers = &ShownOffers{JSONPath: "offers[].id"}
			if fair {
				p.Accept.Fairness = &Fairness{Window: Duration(MinFairnessWindow), Award: AwardRandom}
			}
		}
		return p
	}
	for _, tc := range []struct {
		desc    string
		p       *Policy
		wantErr string
	}{
		{"no botScore", base(nil, false, false), ""},
		{"Score with fairness", base(&BotScore{DrawWeighting: DrawWeightingScore}, true, true), ""},
		{"None alone", base(&BotScore{DrawWeighting: DrawWeightingNone}, false, false), ""},
		{"refuse above 0.3", base(&BotScore{DrawWeighting: DrawWeightingNone, RefuseAbovePermille: MinRefuseAbovePermille}, false, true), ""},
		{"None and a threshold", base(&BotScore{DrawWeighting: DrawWeightingNone, RefuseAbovePermille: MaxRefuseAbovePermille}, false, true), ""},
		{"no drawWeighting", base(&BotScore{RefuseAbovePermille: 900}, true, true), `botScore.drawWeighting: "" is not None or Score`},
		{"Score without fairness", base(&BotScore{DrawWeighting: DrawWeightingScore}, false, true), "botScore.drawWeighting: Score needs accept.fairness"},
		{"unknown weighting", base(&BotScore{DrawWeighting: "Inverse"}, true, true), `botScore.drawWeighting: "Inverse" is not None or Score`},
		{"threshold 1000", base(&BotScore{DrawWeighting: DrawWeightingNone, RefuseAbovePermille: 1000}, false, true), "botScore.refuseAbovePermille: 1000 is not between 300 and 999"},
		{"threshold 299", base(&BotScore{DrawWeighting: DrawWeightingNone, RefuseAbovePermille: 299}, false, true), "botScore.refuseAbovePermille: 299 is not between"},
		{"threshold without accept", base(&BotScore{DrawWeighting: DrawWeightingNone, RefuseAbovePermille: 900}, false, false), "botScore.refuseAbovePermille: needs accept"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := ValidatePolicy(tc.p)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidatePolicy: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}
