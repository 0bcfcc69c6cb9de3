package gateway

import (
	"fmt"
	"testing"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// TestNamesAreDistinct: every decision, draw result and draw outcome has a name of its own,
// because the names are metric label values and header values. A value added to one of the
// enums without a name would share the empty label with nothing to tell it apart; a value out
// of range is "unknown", never another value's name.
func TestNamesAreDistinct(t *testing.T) {
	for _, tc := range []struct {
		enum  string
		names []string
		out   fmt.Stringer
	}{
		{"Decision", names(numDecisions), numDecisions},
		{"drawResult", names(numDrawResults), numDrawResults},
		{"drawOutcome", names(numDrawOutcomes), numDrawOutcomes},
		{"DrawDecision", []string{DecisionLostDraw.String(), DecisionDuplicateAccept.String(), FlagDraw.String()}, nil},
	} {
		seen := map[string]bool{}
		for i, n := range tc.names {
			if n == "" || n == "unknown" || seen[n] {
				t.Errorf("%s %d is named %q: empty, unknown or taken", tc.enum, i, n)
			}
			seen[n] = true
		}
		if tc.out != nil && tc.out.String() != "unknown" {
			t.Errorf("%s out of range is %q, want unknown", tc.enum, tc.out)
		}
	}
	// The draw's refusals are gatewayconfig's names, which spec.refusal shapes them by.
	if string(DecisionLostDraw) != string(gatewayconfig.DecisionLostDraw) ||
		string(DecisionDuplicateAccept) != string(gatewayconfig.DecisionDuplicateAccept) {
		t.Errorf("draw refusals %s, %s are not gatewayconfig's", DecisionLostDraw, DecisionDuplicateAccept)
	}
}

// names returns the String of every value of an enum below n.
func names[E interface {
	~uint8
	fmt.Stringer
}](n E) []string {
	var out []string
	for v := E(0); v < n; v++ {
		out = append(out, v.String())
	}
	return out
}
