package render

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/internal/celcases"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// TestValidCasesParse renders every spec the API server accepts (the valid cases of the CEL
// table) and checks that the gateway's own parser accepts the result: what the operator writes
// a gateway can enforce.
func TestValidCasesParse(t *testing.T) {
	for _, c := range celcases.Valid() {
		t.Run(c.Desc, func(t *testing.T) {
			p := celcases.Base()
			if c.Mutate != nil {
				c.Mutate(p)
			}
			if c.MutateObject != nil {
				t.Skip("changes the unstructured object only")
			}
			res, err := Render("offers", []v1alpha1.OfferFeedPolicy{*p}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if pr := res.Policies[p.Name]; !pr.Accepted {
				t.Fatalf("not accepted: %s: %s", pr.Reason, pr.Message)
			}
			if _, err := gatewayconfig.Parse(res.Data); err != nil {
				t.Fatalf("the gateway refuses the rendered config: %v\n%s", err, res.Data)
			}
		})
	}
}

// notExpressible lists the invalid cases of the CEL table that no gateway config can hold,
// each with the reason. Every other invalid case must be refused by gatewayconfig.Parse.
var notExpressible = map[string]string{
	"feed minInterval with a fraction": "the API writes durations without fractions; the config holds the value, " +
		"and 1.5s is how it writes 1500ms, which the API accepts",
	"feed minInterval not a duration":          "not a duration: Policy refuses it, no config can carry it",
	"window not a duration":                    "not a duration: Policy refuses it, no config can carry it",
	"minReactionTime in days":                  "not a Go duration: Policy refuses it, no config can carry it",
	"feed override burst 0":                    "0 is an absent burst in the config (omitempty): the override keeps the policy's burst",
	"feed burst not an integer":                "a JSON type the Go types cannot hold",
	"requireShown not a boolean":               "a JSON type the Go types cannot hold",
	"botScore refuseAbovePermille as a string": "a JSON type the Go types cannot hold",
	"unknown field in feed":                    "a field the API does not know; the config has none for it (Parse refuses unknown config fields: TestParseRefuses)",
	"unknown field in spec":                    "a field the API does not know; the config has none for it (Parse refuses unknown config fields: TestParseRefuses)",
}

// TestInvalidCasesRefusedByParse renders every spec the API server refuses (the invalid cases of
// the CEL table), bypassing admission and Render's own checks, into a gateway config and expects
// the gateway's parser to refuse it: a hand-written config is held to the API's rules. Cases
// no config can express are listed in notExpressible, each with its reason.
func TestInvalidCasesRefusedByParse(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range celcases.Invalid() {
		t.Run(c.Desc, func(t *testing.T) {
			seen[c.Desc] = true
			if why := notExpressible[c.Desc]; why != "" {
				t.Skip(why)
			}
			obj, err := c.Object()
			if err != nil {
				t.Fatal(err)
			}
			var p v1alpha1.OfferFeedPolicy
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &p); err != nil {
				t.Fatalf("the case does not convert to the Go types; list it in notExpressible: %v", err)
			}
			gp, err := Policy(&p)
			if err != nil && p.Spec.Refusal != nil {
				// Policy checks a refusal with the gateway's own Refusal.Validate (the schema
				// cannot parse a JSON body); put it in the config unchecked, so that Parse is
				// what refuses it.
				r := p.Spec.Refusal
				p.Spec.Refusal = nil
				if gp, err = Policy(&p); err == nil {
					gp.Refusal = Refusal(r)
				}
			}
			if err != nil {
				t.Fatalf("Policy refuses it before any config holds it; list it in notExpressible: %v", err)
			}
			data, err := gatewayconfig.Marshal(&gatewayconfig.Config{SchemaVersion: gatewayconfig.SchemaVersion,
				Namespace: "offers", Policies: []gatewayconfig.Policy{gp}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := gatewayconfig.Parse(data); err == nil {
				t.Fatalf("the API server refuses it (%q) but the gateway accepts the config:\n%s", c.WantErrors, data)
			}
		})
	}
	for desc, why := range notExpressible {
		if !seen[desc] {
			t.Errorf("notExpressible names %q, which is no invalid case", desc)
		}
		if why == "" {
			t.Errorf("notExpressible gives no reason for %q", desc)
		}
	}
}
