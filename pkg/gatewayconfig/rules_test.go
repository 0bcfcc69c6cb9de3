package gatewayconfig

import (
	"fmt"
	"slices"
	"strings"
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
			string(DecisionAmbiguousRequest), string(DecisionUnreadableOffer), string(DecisionBotLike)}},
		{DrawWeightings(), []string{string(DrawWeightingNone), string(DrawWeightingScore)}},
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

// TestSelectorRules holds a policy's selector to the bounds of spec.targetSelector (generated
// from the CRD) and to the API's label syntax, at and just beyond each bound; a refused
// selector names the field and is reported once, not again as a selector that does not parse.
func TestSelectorRules(t *testing.T) {
	labels := func(n int) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[fmt.Sprintf("l%d", i)] = "x"
		}
		return m
	}
	exprs := func(n int) []metav1.LabelSelectorRequirement {
		var out []metav1.LabelSelectorRequirement
		for i := range n {
			out = append(out, metav1.LabelSelectorRequirement{Key: fmt.Sprintf("k%d", i), Operator: metav1.LabelSelectorOpExists})
		}
		return out
	}
	values := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("v%d", i))
		}
		return out
	}
	in := func(key string, vals ...string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOpIn, Values: vals}}}
	}
	// A key of MaxLabelKeyLen characters: a DNS subdomain of 253, '/', a name of 63.
	label63 := strings.Repeat("a", 63)
	longestKey := strings.Join([]string{label63, label63, label63, strings.Repeat("b", 61)}, ".") + "/" + strings.Repeat("c", 63)
	if len(longestKey) != MaxLabelKeyLen {
		t.Fatalf("the longest key has %d characters, not %d", len(longestKey), MaxLabelKeyLen)
	}
	for _, tc := range []struct {
		desc string
		sel  metav1.LabelSelector
		want string // "" when valid, else the start of the only problem
	}{
		{"MaxSelectorLabels labels", metav1.LabelSelector{MatchLabels: labels(MaxSelectorLabels)}, ""},
		{"one label more", metav1.LabelSelector{MatchLabels: labels(MaxSelectorLabels + 1)}, "selector.matchLabels: 33 labels, more than the limit of 32"},
		{"MaxSelectorExpressions requirements", metav1.LabelSelector{MatchExpressions: exprs(MaxSelectorExpressions)}, ""},
		{"one requirement more", metav1.LabelSelector{MatchExpressions: exprs(MaxSelectorExpressions + 1)}, "selector.matchExpressions: 17 requirements"},
		{"MaxSelectorValues values", in("app", values(MaxSelectorValues)...), ""},
		{"one value more", in("app", values(MaxSelectorValues+1)...), "selector.matchExpressions[0].values: 65 values"},
		{"longest key", in(longestKey, "x"), ""},
		{"key one character longer", in(longestKey+"c", "x"), "selector.matchExpressions[0].key: label key of 318 characters"},
		{"key with a name of 64", in(strings.Repeat("c", 64), "x"), "selector.matchExpressions[0].key: invalid label key"},
		{"key with a prefix of 254", in(strings.Repeat("b", 63)+"."+longestKey[:190]+"/c", "x"), "selector.matchExpressions[0].key: invalid label key"},
		{"value of 63", in("app", label63), ""},
		{"value of 64", in("app", label63+"a"), "selector.matchExpressions[0].values[0]: label value of 64 characters"},
		{"empty value", metav1.LabelSelector{MatchLabels: map[string]string{"app": ""}}, ""},
		{"value with a space", metav1.LabelSelector{MatchLabels: map[string]string{"app": "offer service"}}, "selector.matchLabels[app]: invalid label value"},
		{"value with a slash", in("tier", "web", "web/api"), "selector.matchExpressions[0].values[1]: invalid label value"},
		{"value starting with -", metav1.LabelSelector{MatchLabels: map[string]string{"app": "-x"}}, "selector.matchLabels[app]: invalid label value"},
		{"prefixed key", metav1.LabelSelector{MatchLabels: map[string]string{"offerfeed.dev/app": "x"}}, ""},
		{"key with a space", metav1.LabelSelector{MatchLabels: map[string]string{"app name!": "x"}}, "selector.matchLabels: invalid label key"},
		{"prefix not a DNS subdomain", metav1.LabelSelector{MatchLabels: map[string]string{"Offerfeed_dev/app": "x"}}, "selector.matchLabels: invalid label key"},
		{"empty key", metav1.LabelSelector{MatchLabels: map[string]string{"": "x"}}, "selector.matchLabels: invalid label key"},
		{"key starting with -", in("-app"), "selector.matchExpressions[0].key: invalid label key"},
		{"In without values", in("app"), "selector: does not parse"},
		{"no requirement", metav1.LabelSelector{}, "selector: must set matchLabels or matchExpressions"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			var got []string
			checkSelector(func(field, format string, args ...any) {
				got = append(got, field+": "+fmt.Sprintf(format, args...))
			}, tc.sel)
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("refused: %q", got)
			case tc.want != "" && (len(got) != 1 || !strings.HasPrefix(got[0], tc.want)):
				t.Errorf("got %q, want one problem starting %q", got, tc.want)
			}
		})
	}
}
