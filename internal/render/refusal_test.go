package render

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/ptr"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// TestRenderRefusal renders spec.refusal into the gateway config, and refuses a policy whose
// JSON body is not JSON (which the schema cannot see) with a message naming the field.
func TestRenderRefusal(t *testing.T) {
	tests := []struct {
		desc    string
		refusal *v1alpha1.Refusal
		want    *gatewayconfig.Refusal
		wantErr string // substring of the Invalid message
	}{{
		desc: "none",
	}, {
		desc:    "Flex: 400 and the platform's message",
		refusal: &v1alpha1.Refusal{Status: ptr.To[int32](400), ContentType: "application/json", Body: `{"message":"Rate exceeded"}`},
		want:    &gatewayconfig.Refusal{Status: 400, ContentType: "application/json", Body: `{"message":"Rate exceeded"}`},
	}, {
		desc: "problem document with a decision of its own",
		refusal: &v1alpha1.Refusal{ContentType: "application/problem+json",
			Body: `{"type":"about:blank","title":"{{decision}}","status":{{status}}}`,
			Decisions: []v1alpha1.DecisionRefusal{
				{Decision: "unseen-offer", Status: ptr.To[int32](404)},
				{Decision: "lost-draw", ContentType: "application/json", Body: `{"error":"TAKEN"}`},
			}},
		want: &gatewayconfig.Refusal{ContentType: "application/problem+json",
			Body: `{"type":"about:blank","title":"{{decision}}","status":{{status}}}`,
			Decisions: []gatewayconfig.DecisionRefusal{
				{Decision: "unseen-offer", Status: 404},
				{Decision: "lost-draw", ContentType: "application/json", Body: `{"error":"TAKEN"}`},
			}},
	}, {
		desc:    "JSON content type, body not JSON",
		refusal: &v1alpha1.Refusal{ContentType: "application/json", Body: `{"message": Rate exceeded}`},
		wantErr: "spec.refusal.body: is not valid JSON for content type application/json",
	}, {
		desc: "a decision's JSON body not JSON",
		refusal: &v1alpha1.Refusal{Decisions: []v1alpha1.DecisionRefusal{
			{Decision: "too-fast", ContentType: "application/problem+json", Body: `{"title": {{decision}}}`}}},
		wantErr: "spec.refusal.decisions[0].body: is not valid JSON",
	}}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := policy("flex", time.Hour, map[string]string{"app": "offer-service"})
			p.Spec.Refusal = tc.refusal
			res, err := Render("offers", []v1alpha1.OfferFeedPolicy{p}, nil)
			if err != nil {
				t.Fatal(err)
			}
			pr := res.Policies["flex"]
			if tc.wantErr != "" {
				if pr.Accepted || pr.Reason != v1alpha1.ReasonInvalid || !strings.Contains(pr.Message, tc.wantErr) {
					t.Fatalf("got %v %s %q, want Invalid with %q", pr.Accepted, pr.Reason, pr.Message, tc.wantErr)
				}
				if len(res.Config.Policies) != 0 {
					t.Fatal("an invalid policy is in the config")
				}
				return
			}
			if !pr.Accepted {
				t.Fatalf("not accepted: %s", pr.Message)
			}
			if diff := cmp.Diff(tc.want, res.Config.Policies[0].Refusal); diff != "" {
				t.Fatalf("rendered refusal (-want +got):\n%s", diff)
			}
			// What the operator writes, the gateway reads.
			if _, err := gatewayconfig.Parse(res.Data); err != nil {
				t.Fatalf("Parse: %v", err)
			}
		})
	}
}
