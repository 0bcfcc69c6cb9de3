package render

import (
	"testing"

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
