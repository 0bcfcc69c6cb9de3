package gatewayconfig

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestNamedValuesAreInTheEnums checks that the names the code uses for modes, awards and refusal
// decisions are the values of the CRD's enums (generated into Modes, Awards and
// RefusalDecisions from the markers on Mode, Award and RefusalDecision), and that nothing else
// is: a constant added without its marker value, or the other way round, fails here.
func TestNamedValuesAreInTheEnums(t *testing.T) {
	for _, tc := range []struct {
		enum, named []string
	}{
		{Modes(), []string{string(ModeEnforce), string(ModeDryRun)}},
		{Awards(), []string{string(AwardRandom), string(AwardLeastRecentlyWon)}},
		{RefusalDecisions(), []string{string(DecisionFeedThrottled), string(DecisionAcceptThrottled), string(DecisionTooFast),
			string(DecisionUnseenOffer), string(DecisionMissingIdentity), string(DecisionLostDraw), string(DecisionDuplicateAccept),
			string(DecisionAmbiguousRequest), string(DecisionUnreadableOffer)}},
	} {
		if !slices.Equal(slices.Sorted(slices.Values(tc.enum)), slices.Sorted(slices.Values(tc.named))) {
			t.Errorf("the CRD's enum is %v, the named constants are %v", tc.enum, tc.named)
		}
	}
}

// TestReservedHeaders: every name the CRD reserves, in any case, and any name with the
// reserved prefix, is refused as an identity header; a look-alike is not.
func TestReservedHeaders(t *testing.T) {
	p := func(h string) *Policy {
		return &Policy{Name: "p", Mode: ModeEnforce, IdentityHeader: h,
			Selector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "offer-service"}},
			Feed:     &Feed{Method: "GET", Path: "/offers", MinInterval: Duration(MinFeedInterval), Burst: MinBurst}}
	}
	if err := ValidatePolicy(p("X-Driver-Id")); err != nil {
		t.Fatalf("a valid policy is refused: %v", err)
	}
	for _, h := range append(ReservedHeaders(), "Connection", "TRANSFER-ENCODING", "OfferFeed-Driver") {
		if ValidatePolicy(p(h)) == nil {
			t.Errorf("identity header %q accepted", h)
		}
	}
	for _, h := range []string{"X-Connection", "Hosts", "OfferFeedDriver"} {
		if err := ValidatePolicy(p(h)); err != nil {
			t.Errorf("identity header %q refused: %v", h, err)
		}
	}
}
