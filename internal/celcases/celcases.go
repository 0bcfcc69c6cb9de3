// Package celcases is the table of OfferFeedPolicy specs that the API server must refuse, with
// the messages it refuses them with, and of specs it must accept. It is shared by the envtest
// suite in test/cel, which creates every case on a real kube-apiserver, and by the tests of
// internal/validation, which run every case through `offerfeed validate`: both layers must agree
// with the same table, so the offline check refuses exactly what the cluster refuses.
//
// Each case starts from Base, the example policy of docs/design.md#api, and changes it with Mutate
// (typed) and, for what the Go types cannot express (a missing required field, an unknown field,
// a value of the wrong JSON type), with MutateObject on the unstructured object.
package celcases

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/offerfeed/offerfeed/api/v1alpha1"
)

// Case is one OfferFeedPolicy that the API server must refuse (WantErrors set) or accept
// (WantErrors empty).
type Case struct {
	// Desc names the case; it is the Entry description of the envtest table.
	Desc string
	// Mutate changes a copy of Base; nil keeps Base.
	Mutate func(p *v1alpha1.OfferFeedPolicy)
	// MutateObject, when set, changes the unstructured object after Mutate, for what the Go
	// types cannot express: a missing required field, an unknown field, a wrong JSON type.
	MutateObject func(obj map[string]any)
	// WantErrors are substrings that must each occur in the API server's error: the human
	// message and, where it helps, the field path. Empty for a valid case.
	WantErrors []string
}

// Policy returns Base changed by Mutate.
func (c Case) Policy() *v1alpha1.OfferFeedPolicy {
	p := Base()
	if c.Mutate != nil {
		c.Mutate(p)
	}
	return p
}

// Object returns the case as the unstructured object a client sends: Base changed by Mutate,
// without status and the empty creationTimestamp, then changed by MutateObject.
func (c Case) Object() (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c.Policy())
	if err != nil {
		return nil, fmt.Errorf("converting case %q to unstructured: %w", c.Desc, err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	if c.MutateObject != nil {
		c.MutateObject(m)
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// Base returns a new copy of the valid example policy of docs/design.md#api (REST shape, without status).
func Base() *v1alpha1.OfferFeedPolicy {
	return &v1alpha1.OfferFeedPolicy{
		TypeMeta: metav1.TypeMeta{
			APIVersion: v1alpha1.GroupVersion.String(),
			Kind:       "OfferFeedPolicy",
		},
		ObjectMeta: metav1.ObjectMeta{Name: "standard", Namespace: "offers"},
		Spec: v1alpha1.OfferFeedPolicySpec{
			TargetSelector: v1alpha1.SelectLabels(map[string]string{"app": "offer-service"}),
			Mode:           v1alpha1.ModeEnforce,
			ClientIdentity: v1alpha1.ClientIdentity{Header: "X-Driver-Id"},
			Feed: &v1alpha1.FeedLimits{
				Method:      "GET",
				Path:        "/offers",
				MinInterval: "2s",
				Burst:       1,
			},
			Accept: &v1alpha1.AcceptLimits{
				Method:          "POST",
				PathTemplate:    "/offers/{offerId}/accept",
				MaxAccepts:      ptr.To[int32](3),
				Window:          dur("10m"),
				MinReactionTime: dur("800ms"),
				RequireShown:    ptr.To(true),
			},
			ShownOffers: &v1alpha1.ShownOffers{JSONPath: "offers[].id"},
			Overrides: []v1alpha1.DriverOverride{{
				Drivers: []string{"driver-17"},
				Feed:    &v1alpha1.FeedOverride{MinInterval: dur("1s")},
			}},
		},
	}
}

// Flex turns p into the Amazon Flex shape of docs/design.md#the-two-api-shapes: feed polled with POST, offer id in the
// JSON body of the accept, identity in an access-token header.
func Flex(p *v1alpha1.OfferFeedPolicy) {
	p.Spec.ClientIdentity.Header = "X-Amz-Access-Token"
	p.Spec.Feed = &v1alpha1.FeedLimits{Method: "POST", Path: "/GetOffersForProviderPost", MinInterval: "2s", Burst: 1}
	p.Spec.Accept = &v1alpha1.AcceptLimits{
		Method:          "POST",
		PathTemplate:    "/AcceptOffer",
		OfferIDField:    "offerId",
		MaxAccepts:      ptr.To[int32](3),
		Window:          dur("10m"),
		MinReactionTime: dur("800ms"),
		RequireShown:    ptr.To(true),
	}
	p.Spec.ShownOffers = &v1alpha1.ShownOffers{JSONPath: "offerList[].offerId"}
}

// FeedOnly turns p into the smallest policy that paces the feed: no accept, no shownOffers, no
// overrides, defaults for mode, method and burst.
func FeedOnly(p *v1alpha1.OfferFeedPolicy) {
	p.Spec.Mode = ""
	p.Spec.Feed = &v1alpha1.FeedLimits{Path: "/offers", MinInterval: "2s"}
	p.Spec.Accept = nil
	p.Spec.ShownOffers = nil
	p.Spec.Overrides = nil
}

// AcceptOnly turns p into the smallest policy that limits accepts: maxAccepts per window, no
// feed (so no shownOffers, minReactionTime or requireShown), defaults for mode and method.
func AcceptOnly(p *v1alpha1.OfferFeedPolicy) {
	p.Spec.Mode = ""
	p.Spec.Feed = nil
	p.Spec.Accept = &v1alpha1.AcceptLimits{
		PathTemplate: "/offers/{offerId}/accept",
		MaxAccepts:   ptr.To[int32](3),
		Window:       dur("10m"),
	}
	p.Spec.ShownOffers = nil
	p.Spec.Overrides = nil
}

func dur(s string) *v1alpha1.Duration {
	d := v1alpha1.Duration(s)
	return &d
}

func drivers(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("driver-%d", i)
	}
	return out
}

func overrides(n int) []v1alpha1.DriverOverride {
	out := make([]v1alpha1.DriverOverride, n)
	for i := range out {
		out[i] = v1alpha1.DriverOverride{
			Drivers: []string{fmt.Sprintf("driver-%d", i)},
			Feed:    &v1alpha1.FeedOverride{Burst: ptr.To[int32](2)},
		}
	}
	return out
}

// unset removes the field at path from obj; a number in path indexes a list.
func unset(path ...string) func(obj map[string]any) {
	return func(obj map[string]any) {
		var cur any = obj
		for _, k := range path[:len(path)-1] {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[k]
			case []any:
				i, err := strconv.Atoi(k)
				if err != nil || i < 0 || i >= len(c) {
					panic(fmt.Sprintf("celcases: bad list index %q in %v", k, path))
				}
				cur = c[i]
			}
		}
		m, ok := cur.(map[string]any)
		if !ok {
			panic(fmt.Sprintf("celcases: no object at %v", path))
		}
		delete(m, path[len(path)-1])
	}
}

// set puts v at path in obj, creating maps on the way.
func set(v any, path ...string) func(obj map[string]any) {
	return func(obj map[string]any) {
		m := obj
		for _, k := range path[:len(path)-1] {
			next, ok := m[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[k] = next
			}
			m = next
		}
		m[path[len(path)-1]] = v
	}
}

// Schema messages of the API server (k8s.io/kube-openapi validate, apimachinery field errors).
const (
	shouldMatch   = "should match"
	atLeastChars  = "should be at least 1 chars long"
	unsupported   = "Unsupported value"
	requiredValue = "Required value"
)

// Invalid returns the specs the API server must refuse, each with the substrings of its error,
// field group by field group.
func Invalid() []Case {
	return slices.Concat(
		invalidCrossField(),
		invalidSelector(),
		invalidMode(),
		invalidIdentity(),
		invalidFeed(),
		invalidAcceptOfferID(),
		invalidAcceptLimits(),
		invalidFairness(),
		invalidShownOffers(),
		invalidOverrides(),
		invalidObject(),
		invalidRefusal(),
		invalidBotScore(),
	)
}

// invalidBotScore returns the invalid cases that break spec.botScore.
func invalidBotScore() []Case {
	return []Case{
		{
			Desc:         "botScore without drawWeighting",
			MutateObject: set(map[string]any{"refuseAbovePermille": int64(900)}, "spec", "botScore"),
			WantErrors:   []string{"spec.botScore.drawWeighting", requiredValue},
		},
		{
			Desc: "botScore drawWeighting Score without fairness",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.BotScore = v1alpha1.BotScore{DrawWeighting: v1alpha1.DrawWeightingScore}
			},
			WantErrors: []string{"botScore.drawWeighting Score needs accept.fairness: it weighs the candidates of fair draws"},
		},
		{
			Desc: "botScore drawWeighting unknown",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: "3s"}
				p.Spec.BotScore = v1alpha1.BotScore{DrawWeighting: "Inverse"}
			},
			WantErrors: []string{"spec.botScore.drawWeighting", `supported values: "None", "Score"`},
		},
		{
			Desc: "botScore refuseAbovePermille below 300",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.BotScore = v1alpha1.BotScore{DrawWeighting: v1alpha1.DrawWeightingNone, RefuseAbovePermille: 299}
			},
			WantErrors: []string{"spec.botScore.refuseAbovePermille", "should be greater than or equal to 300"},
		},
		{
			Desc: "botScore refuseAbovePermille of 1000",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.BotScore = v1alpha1.BotScore{DrawWeighting: v1alpha1.DrawWeightingNone, RefuseAbovePermille: 1000}
			},
			WantErrors: []string{"spec.botScore.refuseAbovePermille", "should be less than or equal to 999"},
		},
		{
			Desc: "botScore refuseAbovePermille without accept",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				FeedOnly(p)
				p.Spec.BotScore = v1alpha1.BotScore{DrawWeighting: v1alpha1.DrawWeightingNone, RefuseAbovePermille: 900}
			},
			WantErrors: []string{"botScore.refuseAbovePermille needs accept: it refuses accepts"},
		},
		{
			Desc: "botScore refuseAbovePermille as a string",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.BotScore = v1alpha1.BotScore{DrawWeighting: v1alpha1.DrawWeightingNone, RefuseAbovePermille: 900}
			},
			MutateObject: set("0.9", "spec", "botScore", "refuseAbovePermille"),
			WantErrors:   []string{"spec.botScore.refuseAbovePermille", "must be of type integer"},
		},
	}
}

// invalidCrossField returns the invalid cases that break cross-field rules of the spec: one
// field needs, excludes or bounds another.
func invalidCrossField() []Case {
	return []Case{
		{
			Desc: "neither feed nor accept",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Feed, p.Spec.Accept, p.Spec.ShownOffers, p.Spec.Overrides = nil, nil, nil, nil
			},
			WantErrors: []string{"spec: Invalid value", "at least one of feed and accept must be set"},
		},
		{
			Desc: "shownOffers without feed",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Feed, p.Spec.Overrides = nil, nil
			},
			WantErrors: []string{"shownOffers needs feed: shown offers are read from feed responses"},
		},
		{
			Desc: "accept.minReactionTime without shownOffers",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.ShownOffers = nil
				p.Spec.Accept.RequireShown = nil
			},
			WantErrors: []string{"accept.minReactionTime needs shownOffers, to learn when an offer was shown to a driver"},
		},
		{
			Desc: "accept.requireShown without shownOffers",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.ShownOffers = nil
				p.Spec.Accept.MinReactionTime = nil
			},
			WantErrors: []string{"accept.requireShown needs shownOffers, to learn which offers a driver was shown"},
		},
		{
			Desc: "override of feed without feed",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				AcceptOnly(p)
				p.Spec.Overrides = []v1alpha1.DriverOverride{{Drivers: []string{"driver-17"}, Feed: &v1alpha1.FeedOverride{MinInterval: dur("1s")}}}
			},
			WantErrors: []string{"an override of feed needs feed to be set"},
		},
		{
			Desc: "override of accept without accept",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				FeedOnly(p)
				p.Spec.Overrides = []v1alpha1.DriverOverride{{Drivers: []string{"driver-17"}, Accept: &v1alpha1.AcceptOverride{MaxAccepts: ptr.To[int32](5)}}}
			},
			WantErrors: []string{"an override of accept needs accept to be set"},
		},
		{
			Desc: "override of accept.maxAccepts when accept has no maxAccepts",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.MaxAccepts, p.Spec.Accept.Window = nil, nil
				p.Spec.Overrides = []v1alpha1.DriverOverride{{Drivers: []string{"driver-17"}, Accept: &v1alpha1.AcceptOverride{MaxAccepts: ptr.To[int32](5)}}}
			},
			WantErrors: []string{"an override of accept.maxAccepts or accept.window needs accept.maxAccepts and accept.window to be set"},
		},
		{
			Desc: "override of accept.window when accept has no window",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.MaxAccepts, p.Spec.Accept.Window = nil, nil
				p.Spec.Overrides = []v1alpha1.DriverOverride{{Drivers: []string{"driver-17"}, Accept: &v1alpha1.AcceptOverride{Window: dur("1h")}}}
			},
			WantErrors: []string{"an override of accept.maxAccepts or accept.window needs accept.maxAccepts and accept.window to be set"},
		},
		{
			Desc: "override of accept.minReactionTime without shownOffers",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				AcceptOnly(p)
				p.Spec.Overrides = []v1alpha1.DriverOverride{{Drivers: []string{"driver-17"}, Accept: &v1alpha1.AcceptOverride{MinReactionTime: dur("2s")}}}
			},
			WantErrors: []string{"an override of accept.minReactionTime needs shownOffers"},
		},
		{
			Desc: "override window shorter than the policy's minReactionTime",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.MinReactionTime = dur("5s")
				p.Spec.Overrides = []v1alpha1.DriverOverride{{Drivers: []string{"driver-17"}, Accept: &v1alpha1.AcceptOverride{Window: dur("2s")}}}
			},
			WantErrors: []string{"an override's window must be at least its minReactionTime, including values it keeps from accept"},
		},
		{
			Desc: "override minReactionTime longer than the policy's window",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.Window = dur("10s")
				p.Spec.Overrides = []v1alpha1.DriverOverride{{Drivers: []string{"driver-17"}, Accept: &v1alpha1.AcceptOverride{MinReactionTime: dur("30s")}}}
			},
			WantErrors: []string{"an override's window must be at least its minReactionTime, including values it keeps from accept"},
		},
		{
			Desc: "feed and accept on the same route",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				Flex(p)
				p.Spec.Accept.PathTemplate = "/GetOffersForProviderPost"
			},
			WantErrors: []string{"spec: Invalid value", "feed and accept must not be the same route: the gateway matches accept first, so the feed would never be paced"},
		},
		{
			Desc: "feed path equal to the accept path but for a trailing slash",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Feed.Method = "POST"
				p.Spec.Feed.Path = "/offers"
				p.Spec.Accept.PathTemplate = "/offers/"
				p.Spec.Accept.OfferIDField = "offerId"
			},
			WantErrors: []string{"feed and accept must not be the same route"},
		},
		{
			Desc: "feed path equal to the accept path template",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Feed.Method = "POST"
				p.Spec.Feed.Path = "/offers/{offerId}/accept"
			},
			WantErrors: []string{"feed and accept must not be the same route"},
		},
	}
}

// invalidSelector returns the invalid cases that break spec.targetSelector.
func invalidSelector() []Case {
	return []Case{
		{
			Desc:       "empty targetSelector",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.TargetSelector = v1alpha1.LabelSelector{} },
			WantErrors: []string{"spec.targetSelector", "targetSelector must set matchLabels or matchExpressions; an empty selector would govern every pod in the namespace"},
		},
		{
			Desc:         "targetSelector with empty matchLabels and matchExpressions",
			MutateObject: set(map[string]any{"matchLabels": map[string]any{}, "matchExpressions": []any{}}, "spec", "targetSelector"),
			WantErrors:   []string{"spec.targetSelector", "targetSelector must set matchLabels or matchExpressions"},
		},
		{
			Desc: "targetSelector with an unknown operator",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.TargetSelector.MatchExpressions = []v1alpha1.LabelSelectorRequirement{{Key: "app", Operator: "Equals", Values: []v1alpha1.LabelValue{"offer-service"}}}
			},
			WantErrors: []string{"spec.targetSelector", "targetSelector.matchExpressions: operator must be In or NotIn with values, or Exists or DoesNotExist without"},
		},
		{
			Desc: "targetSelector In without values",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.TargetSelector.MatchExpressions = []v1alpha1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpIn}}
			},
			WantErrors: []string{"spec.targetSelector", "targetSelector.matchExpressions: operator must be In or NotIn with values, or Exists or DoesNotExist without"},
		},
		{
			Desc: "targetSelector Exists with values",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.TargetSelector.MatchExpressions = []v1alpha1.LabelSelectorRequirement{{Key: "app", Operator: metav1.LabelSelectorOpExists, Values: []v1alpha1.LabelValue{"offer-service"}}}
			},
			WantErrors: []string{"spec.targetSelector", "targetSelector.matchExpressions: operator must be In or NotIn with values, or Exists or DoesNotExist without"},
		},
		{
			Desc:       "targetSelector with an invalid label key",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.TargetSelector.MatchLabels["app name!"] = "x" },
			WantErrors: []string{"spec.targetSelector.matchLabels", "invalid label key app name!: a label key is an optional DNS subdomain prefix"},
		},
		{
			Desc:       "targetSelector with a label key whose prefix is not a DNS subdomain",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.TargetSelector.MatchLabels["Offerfeed_dev/app"] = "x" },
			WantErrors: []string{"spec.targetSelector.matchLabels", "invalid label key Offerfeed_dev/app"},
		},
		{
			Desc:       "targetSelector with an invalid label value",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.TargetSelector.MatchLabels["app"] = "offer service" },
			WantErrors: []string{"spec.targetSelector.matchLabels[app]", "invalid label value offer service: a label value is empty, or at most 63"},
		},
		{
			Desc: "targetSelector with a label value longer than 63 characters",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.TargetSelector.MatchLabels["app"] = v1alpha1.LabelValue(strings.Repeat("a", 64))
			},
			WantErrors: []string{"spec.targetSelector.matchLabels.app", "Too long: may not be more than 63 bytes"},
		},
		{
			Desc: "targetSelector with 33 labels",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				for i := range 33 {
					p.Spec.TargetSelector.MatchLabels["l"+strconv.Itoa(i)] = "x"
				}
			},
			WantErrors: []string{"spec.targetSelector.matchLabels", "Too many: 34: must have at most 32 items"},
		},
		{
			Desc: "targetSelector matchExpressions with an invalid key and an invalid value",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.TargetSelector.MatchExpressions = []v1alpha1.LabelSelectorRequirement{
					{Key: "-app", Operator: metav1.LabelSelectorOpExists},
					{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []v1alpha1.LabelValue{"web", "web/api"}},
				}
			},
			WantErrors: []string{"spec.targetSelector.matchExpressions[0].key", "invalid label key -app",
				"spec.targetSelector.matchExpressions[1].values[1]", "invalid label value web/api"},
		},
		{
			Desc:         "targetSelector missing",
			MutateObject: unset("spec", "targetSelector"),
			WantErrors:   []string{"spec.targetSelector: " + requiredValue},
		},
	}
}

// invalidMode returns the invalid cases that break spec.mode.
func invalidMode() []Case {
	return []Case{
		{
			Desc:       "mode not Enforce or DryRun",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Mode = "Audit" },
			WantErrors: []string{"spec.mode", unsupported, `"Audit"`, `supported values: "Enforce", "DryRun"`},
		},
	}
}

// invalidIdentity returns the invalid cases that break spec.clientIdentity.
func invalidIdentity() []Case {
	return []Case{
		{
			Desc:         "clientIdentity missing",
			MutateObject: unset("spec", "clientIdentity"),
			WantErrors:   []string{"spec.clientIdentity: " + requiredValue},
		},
		{
			Desc:       "empty identity header",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.ClientIdentity.Header = "" },
			WantErrors: []string{"spec.clientIdentity.header", atLeastChars},
		},
		{
			Desc:       "identity header with a space",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.ClientIdentity.Header = "X Driver Id" },
			WantErrors: []string{"spec.clientIdentity.header", shouldMatch},
		},
		{
			Desc:       "identity header longer than 128",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.ClientIdentity.Header = "X-" + strings.Repeat("a", 127) },
			WantErrors: []string{"spec.clientIdentity.header", "Too long", "128"},
		},
		{
			Desc:       "identity header in the OfferFeed- namespace",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.ClientIdentity.Header = "offerFeed-Driver" },
			WantErrors: []string{"spec.clientIdentity.header", "header must not start with OfferFeed-: the gateway strips those headers from clients"},
		},
		{
			Desc:       "identity header Host",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.ClientIdentity.Header = "Host" },
			WantErrors: []string{"spec.clientIdentity.header", "header must not be Host or a hop-by-hop header"},
		},
		{
			Desc:       "identity header Connection",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.ClientIdentity.Header = "connection" },
			WantErrors: []string{"spec.clientIdentity.header", "header must not be Host or a hop-by-hop header"},
		},
	}
}

// invalidFeed returns the invalid cases that break spec.feed.
func invalidFeed() []Case {
	return []Case{
		{
			Desc:       "feed method not supported",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.Method = "DELETE" },
			WantErrors: []string{"spec.feed.method", unsupported, `supported values: "GET", "POST", "PUT", "PATCH"`},
		},
		{
			Desc:         "feed path missing",
			MutateObject: unset("spec", "feed", "path"),
			WantErrors:   []string{"spec.feed.path: " + requiredValue},
		},
		{
			Desc:       "feed path empty",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.Path = "" },
			WantErrors: []string{"spec.feed.path", atLeastChars},
		},
		{
			Desc:       "feed path without leading slash",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.Path = "offers" },
			WantErrors: []string{"spec.feed.path", shouldMatch},
		},
		{
			Desc:       "feed path with a query",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.Path = "/offers?region=7" },
			WantErrors: []string{"spec.feed.path", shouldMatch},
		},
		{
			Desc:       "feed path longer than 1024",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.Path = "/" + strings.Repeat("o", 1024) },
			WantErrors: []string{"spec.feed.path", "Too long", "1024"},
		},
		{
			Desc:         "feed minInterval missing",
			MutateObject: unset("spec", "feed", "minInterval"),
			WantErrors:   []string{"spec.feed.minInterval: " + requiredValue},
		},
		{
			Desc:       "feed minInterval not a duration",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.MinInterval = "2 seconds" },
			WantErrors: []string{"spec.feed.minInterval", shouldMatch},
		},
		{
			Desc:       "feed minInterval with a fraction",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.MinInterval = "1.5s" },
			WantErrors: []string{"spec.feed.minInterval", shouldMatch},
		},
		{
			Desc:       "feed minInterval longer than 24 characters",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.MinInterval = "10000h10000m10000s10000ms" },
			WantErrors: []string{"spec.feed.minInterval", "Too long", "24"},
		},
		{
			Desc:       "feed minInterval below 10ms",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.MinInterval = "9ms" },
			WantErrors: []string{"spec.feed.minInterval", "minInterval must be between 10ms and 1h"},
		},
		{
			Desc:       "feed minInterval above 1h",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.MinInterval = "1h1s" },
			WantErrors: []string{"spec.feed.minInterval", "minInterval must be between 10ms and 1h"},
		},
		{
			Desc:       "feed burst below 1",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.Burst = -1 },
			WantErrors: []string{"spec.feed.burst", "should be greater than or equal to 1"},
		},
		{
			Desc:       "feed burst above 100",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Feed.Burst = 101 },
			WantErrors: []string{"spec.feed.burst", "should be less than or equal to 100"},
		},
		{
			Desc:         "feed burst not an integer",
			MutateObject: set("2", "spec", "feed", "burst"),
			WantErrors:   []string{"spec.feed.burst", "must be of type integer"},
		},
		{
			Desc:         "unknown field in feed",
			MutateObject: set("5/s", "spec", "feed", "rate"),
			WantErrors:   []string{`unknown field "spec.feed.rate"`},
		},
	}
}

// invalidAcceptOfferID returns the invalid cases that break where spec.accept finds the offer
// id: its pathTemplate or offerIdField.
func invalidAcceptOfferID() []Case {
	return []Case{
		{
			Desc:       "offer id in both the path and the body",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.OfferIDField = "offerId" },
			WantErrors: []string{"spec.accept", "exactly one of a {offerId} segment in pathTemplate and offerIdField must name the offer"},
		},
		{
			Desc:       "offer id in neither the path nor the body",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.PathTemplate = "/offers/accept" },
			WantErrors: []string{"spec.accept", "exactly one of a {offerId} segment in pathTemplate and offerIdField must name the offer"},
		},
		{
			Desc: "Flex shape without offerIdField",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				Flex(p)
				p.Spec.Accept.OfferIDField = ""
			},
			WantErrors: []string{"exactly one of a {offerId} segment in pathTemplate and offerIdField must name the offer"},
		},
		{
			Desc:       "{offerId} twice in pathTemplate",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.PathTemplate = "/offers/{offerId}/accept/{offerId}" },
			WantErrors: []string{"spec.accept.pathTemplate", "pathTemplate may hold {offerId} at most once"},
		},
		{
			Desc:       "pathTemplate with another placeholder",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.PathTemplate = "/offers/{id}/accept" },
			WantErrors: []string{"spec.accept.pathTemplate", shouldMatch, "exactly one of a {offerId} segment in pathTemplate and offerIdField must name the offer"},
		},
		{
			Desc:       "pathTemplate with {offerId} inside a segment",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.PathTemplate = "/offers/id-{offerId}/accept" },
			WantErrors: []string{"spec.accept.pathTemplate", shouldMatch},
		},
		{
			Desc:       "pathTemplate without leading slash",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.PathTemplate = "offers/{offerId}/accept" },
			WantErrors: []string{"spec.accept.pathTemplate", shouldMatch},
		},
		{
			Desc:         "pathTemplate missing",
			MutateObject: unset("spec", "accept", "pathTemplate"),
			WantErrors:   []string{"spec.accept.pathTemplate: " + requiredValue},
		},
		{
			Desc: "offerIdField not a JSON field name",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				Flex(p)
				p.Spec.Accept.OfferIDField = "offer.id"
			},
			WantErrors: []string{"spec.accept.offerIdField", shouldMatch},
		},
		{
			Desc: "offerIdField longer than 128",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				Flex(p)
				p.Spec.Accept.OfferIDField = "o" + strings.Repeat("f", 128)
			},
			WantErrors: []string{"spec.accept.offerIdField", "Too long", "128"},
		},
		{
			Desc:       "accept method not supported",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.Method = "DELETE" },
			WantErrors: []string{"spec.accept.method", unsupported},
		},
	}
}

// invalidAcceptLimits returns the invalid cases that break the limits of spec.accept.
func invalidAcceptLimits() []Case {
	return []Case{
		{
			Desc:       "maxAccepts without window",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.Window = nil },
			WantErrors: []string{"spec.accept", "maxAccepts and window must be set together"},
		},
		{
			Desc:       "window without maxAccepts",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.MaxAccepts = nil },
			WantErrors: []string{"spec.accept", "maxAccepts and window must be set together"},
		},
		{
			Desc: "window shorter than minReactionTime",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.Window = dur("2s")
				p.Spec.Accept.MinReactionTime = dur("5s")
			},
			WantErrors: []string{"spec.accept", "window must be at least minReactionTime"},
		},
		{
			Desc: "accept limits nothing",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.MaxAccepts, p.Spec.Accept.Window, p.Spec.Accept.MinReactionTime = nil, nil, nil
				p.Spec.Accept.RequireShown = ptr.To(false)
			},
			WantErrors: []string{"spec.accept", "accept must limit something: set maxAccepts and window, minReactionTime, requireShown, or fairness"},
		},
		{
			Desc:       "maxAccepts 0",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.MaxAccepts = ptr.To[int32](0) },
			WantErrors: []string{"spec.accept.maxAccepts", "should be greater than or equal to 1"},
		},
		{
			Desc:       "maxAccepts above 10000",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.MaxAccepts = ptr.To[int32](10001) },
			WantErrors: []string{"spec.accept.maxAccepts", "should be less than or equal to 10000"},
		},
		{
			Desc: "window below 1s",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.Window = dur("900ms")
				p.Spec.Accept.MinReactionTime = nil
			},
			WantErrors: []string{"spec.accept.window", "window must be between 1s and 24h"},
		},
		{
			Desc:       "window above 24h",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.Window = dur("25h") },
			WantErrors: []string{"spec.accept.window", "window must be between 1s and 24h"},
		},
		{
			Desc:       "window not a duration",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.Window = dur("10 minutes") },
			WantErrors: []string{"spec.accept.window", shouldMatch},
		},
		{
			Desc:       "minReactionTime above 1m",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.MinReactionTime = dur("61s") },
			WantErrors: []string{"spec.accept.minReactionTime", "minReactionTime must be at most 1m"},
		},
		{
			Desc:       "minReactionTime in days",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Accept.MinReactionTime = dur("1d") },
			WantErrors: []string{"spec.accept.minReactionTime", shouldMatch},
		},
		{
			Desc:         "requireShown not a boolean",
			MutateObject: set("yes", "spec", "accept", "requireShown"),
			WantErrors:   []string{"spec.accept.requireShown", "must be of type boolean"},
		},
	}
}

// invalidFairness returns the invalid cases that break spec.accept.fairness, the fair draws.
func invalidFairness() []Case {
	return []Case{
		{
			Desc: "fairness window below 100ms",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: "50ms"}
			},
			WantErrors: []string{"spec.accept.fairness.window", "fairness.window must be between 100ms and 30s"},
		},
		{
			Desc: "fairness window above 30s",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: "1m"}
			},
			WantErrors: []string{"spec.accept.fairness.window", "fairness.window must be between 100ms and 30s"},
		},
		{
			Desc: "fairness award unknown",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: "3s", Award: "Fastest"}
			},
			WantErrors: []string{"spec.accept.fairness.award", `supported values: "Random", "LeastRecentlyWon"`},
		},
		{
			Desc: "fairness without an offer id",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Accept.PathTemplate = "/accept"
				p.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: "3s"}
			},
			WantErrors: []string{"fairness needs the offer id of each accept", "exactly one of a {offerId} segment in pathTemplate and offerIdField must name the offer"},
		},
	}
}

// invalidShownOffers returns the invalid cases that break spec.shownOffers.
func invalidShownOffers() []Case {
	return []Case{
		{
			Desc:         "shownOffers without jsonPath",
			MutateObject: set(map[string]any{}, "spec", "shownOffers"),
			WantErrors:   []string{"spec.shownOffers.jsonPath: " + requiredValue},
		},
		{
			Desc:       "shownOffers jsonPath in JSONPath syntax",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.ShownOffers.JSONPath = "$.offers[*].id" },
			WantErrors: []string{"spec.shownOffers.jsonPath", shouldMatch},
		},
		{
			Desc:       "shownOffers jsonPath with an empty name",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.ShownOffers.JSONPath = "offers..id" },
			WantErrors: []string{"spec.shownOffers.jsonPath", shouldMatch},
		},
		{
			Desc:       "shownOffers jsonPath longer than 256",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.ShownOffers.JSONPath = strings.Repeat("a", 257) },
			WantErrors: []string{"spec.shownOffers.jsonPath", "Too long", "256"},
		},
	}
}

// invalidOverrides returns the invalid cases that break spec.overrides.
func invalidOverrides() []Case {
	return []Case{
		{
			Desc:       "more than 64 overrides",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides = overrides(65) },
			WantErrors: []string{"spec.overrides", "Too many", "must have at most 64 items"},
		},
		{
			Desc:       "override changes nothing",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Feed = nil },
			WantErrors: []string{"spec.overrides[0]", "an override must change feed or accept"},
		},
		{
			Desc:       "override without drivers",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Drivers = []string{} },
			WantErrors: []string{"spec.overrides[0].drivers", "should have at least 1 items"},
		},
		{
			Desc:         "override drivers missing",
			MutateObject: unset("spec", "overrides", "0", "drivers"),
			WantErrors:   []string{"spec.overrides[0].drivers: " + requiredValue},
		},
		{
			Desc: "override names a driver twice",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Overrides[0].Drivers = []string{"driver-17", "driver-18", "driver-17"}
			},
			WantErrors: []string{"spec.overrides[0].drivers[2]", "Duplicate value", `"driver-17"`},
		},
		{
			Desc:       "override with an empty driver",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Drivers = []string{""} },
			WantErrors: []string{"spec.overrides[0].drivers[0]", atLeastChars},
		},
		{
			Desc:       "override driver longer than 256",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Drivers = []string{strings.Repeat("d", 257)} },
			WantErrors: []string{"spec.overrides[0].drivers[0]", "Too long", "256"},
		},
		{
			Desc:       "override with more than 256 drivers",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Drivers = drivers(257) },
			WantErrors: []string{"spec.overrides[0].drivers", "Too many", "must have at most 256 items"},
		},
		{
			Desc:       "feed override sets nothing",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Feed = &v1alpha1.FeedOverride{} },
			WantErrors: []string{"spec.overrides[0].feed", "a feed override must set minInterval or burst"},
		},
		{
			Desc:       "feed override minInterval below 10ms",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Feed.MinInterval = dur("1ms") },
			WantErrors: []string{"spec.overrides[0].feed.minInterval", "minInterval must be between 10ms and 1h"},
		},
		{
			Desc:       "feed override minInterval not a duration",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Feed.MinInterval = dur("-1s") },
			WantErrors: []string{"spec.overrides[0].feed.minInterval", shouldMatch},
		},
		{
			Desc:       "feed override burst 0",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Feed.Burst = ptr.To[int32](0) },
			WantErrors: []string{"spec.overrides[0].feed.burst", "should be greater than or equal to 1"},
		},
		{
			Desc:       "feed override burst above 100",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Feed.Burst = ptr.To[int32](1000) },
			WantErrors: []string{"spec.overrides[0].feed.burst", "should be less than or equal to 100"},
		},
		{
			Desc:       "accept override sets nothing",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Accept = &v1alpha1.AcceptOverride{} },
			WantErrors: []string{"spec.overrides[0].accept", "an accept override must set maxAccepts, window or minReactionTime"},
		},
		{
			Desc: "accept override window shorter than its minReactionTime",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Overrides[0].Accept = &v1alpha1.AcceptOverride{Window: dur("3s"), MinReactionTime: dur("4s")}
			},
			WantErrors: []string{"spec.overrides[0].accept", "window must be at least minReactionTime"},
		},
		{
			Desc: "accept override maxAccepts 0",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Overrides[0].Accept = &v1alpha1.AcceptOverride{MaxAccepts: ptr.To[int32](0)}
			},
			WantErrors: []string{"spec.overrides[0].accept.maxAccepts", "should be greater than or equal to 1"},
		},
		{
			Desc: "accept override window above 24h",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Overrides[0].Accept = &v1alpha1.AcceptOverride{Window: dur("48h")}
			},
			WantErrors: []string{"spec.overrides[0].accept.window", "window must be between 1s and 24h"},
		},
		{
			Desc: "accept override minReactionTime above 1m",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Overrides[0].Accept = &v1alpha1.AcceptOverride{MinReactionTime: dur("90s")}
			},
			WantErrors: []string{"spec.overrides[0].accept.minReactionTime", "minReactionTime must be at most 1m"},
		},
	}
}

// invalidObject returns the invalid cases that break the object as a whole.
func invalidObject() []Case {
	return []Case{
		{
			Desc:         "spec missing",
			MutateObject: unset("spec"),
			WantErrors:   []string{"spec: " + requiredValue},
		},
		{
			Desc:         "unknown field in spec",
			MutateObject: set(true, "spec", "enabled"),
			WantErrors:   []string{`unknown field "spec.enabled"`},
		},
	}
}

// invalidRefusal returns the invalid cases that break spec.refusal, the shape of the gateway's refusals.
func invalidRefusal() []Case {
	return []Case{
		{
			Desc:       "refusal that sets nothing",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Refusal = &v1alpha1.Refusal{} },
			WantErrors: []string{"spec.refusal", "refusal must set status, body or decisions"},
		},
		{
			Desc:       "refusal status 302",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Refusal = &v1alpha1.Refusal{Status: ptr.To[int32](302)} },
			WantErrors: []string{"spec.refusal.status", "should be greater than or equal to 400"},
		},
		{
			Desc:       "refusal status 600",
			Mutate:     func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Refusal = &v1alpha1.Refusal{Status: ptr.To[int32](600)} },
			WantErrors: []string{"spec.refusal.status", "should be less than or equal to 599"},
		},
		{
			Desc: "refusal body without contentType",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Refusal = &v1alpha1.Refusal{Body: `{"message":"Rate exceeded"}`}
			},
			WantErrors: []string{"spec.refusal", "refusal.contentType and refusal.body must be set together"},
		},
		{
			Desc: "refusal contentType that smuggles a header",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Refusal = &v1alpha1.Refusal{ContentType: "application/json\r\nSet-Cookie: a=b", Body: "{}"}
			},
			WantErrors: []string{"spec.refusal.contentType", shouldMatch},
		},
		{
			Desc: "refusal body over 4096 bytes",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Refusal = &v1alpha1.Refusal{ContentType: "text/plain", Body: strings.Repeat("x", 4097)}
			},
			WantErrors: []string{"spec.refusal.body", "Too long", "4096"},
		},
		{
			Desc: "refusal body with an unknown placeholder",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Refusal = &v1alpha1.Refusal{ContentType: "text/plain", Body: "slow down, {{driver}}"}
			},
			WantErrors: []string{"spec.refusal.body", "body may hold only the placeholders {{decision}}, {{status}} and {{retryAfter}}"},
		},
		{
			Desc: "refusal for decision allowed",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Refusal = &v1alpha1.Refusal{Decisions: []v1alpha1.DecisionRefusal{{Decision: "allowed", Status: ptr.To[int32](400)}}}
			},
			WantErrors: []string{"spec.refusal.decisions[0].decision", unsupported},
		},
		{
			Desc: "refusal shaping one decision twice",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Refusal = &v1alpha1.Refusal{Decisions: []v1alpha1.DecisionRefusal{
					{Decision: "too-fast", Status: ptr.To[int32](400)}, {Decision: "too-fast", Status: ptr.To[int32](429)}}}
			},
			WantErrors: []string{"spec.refusal.decisions[1]", "Duplicate value"},
		},
		{
			Desc: "refusal decision entry that changes nothing",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Refusal = &v1alpha1.Refusal{Decisions: []v1alpha1.DecisionRefusal{{Decision: "too-fast"}}}
			},
			WantErrors: []string{"spec.refusal.decisions[0]", "a decision's refusal must set status or body"},
		},
		{
			Desc: "refusal decision entry with body but no contentType",
			Mutate: func(p *v1alpha1.OfferFeedPolicy) {
				p.Spec.Refusal = &v1alpha1.Refusal{Decisions: []v1alpha1.DecisionRefusal{{Decision: "lost-draw", Body: "{}"}}}
			},
			WantErrors: []string{"spec.refusal.decisions[0]", "contentType and body must be set together"},
		},
	}
}

// Valid returns specs the API server must accept: both API shapes of docs/design.md#the-two-api-shapes, DryRun,
// overrides, the smallest feed-only and accept-only policies, and the bounds themselves.
func Valid() []Case {
	return []Case{
		{Desc: "design.md example (REST shape)"},
		{Desc: "Amazon Flex shape", Mutate: Flex},
		{Desc: "DryRun", Mutate: func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Mode = v1alpha1.ModeDryRun }},
		{Desc: "Amazon Flex shape in DryRun", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			Flex(p)
			p.Spec.Mode = v1alpha1.ModeDryRun
		}},
		{Desc: "minimal feed-only", Mutate: FeedOnly},
		{Desc: "minimal accept-only", Mutate: AcceptOnly},
		{Desc: "accept-only with the offer id in the body", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			AcceptOnly(p)
			p.Spec.Accept.PathTemplate = "/AcceptOffer"
			p.Spec.Accept.OfferIDField = "offerId"
		}},
		{Desc: "fair draws, award by least recent win", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: "3s", Award: v1alpha1.AwardLeastRecentlyWon}
		}},
		{Desc: "accept limited by fairness only (Flex shape)", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			Flex(p)
			p.Spec.Accept.MaxAccepts, p.Spec.Accept.Window, p.Spec.Accept.MinReactionTime, p.Spec.Accept.RequireShown = nil, nil, nil, nil
			p.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: "100ms"}
		}},
		{Desc: "accept limited by requireShown only", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.Accept.MaxAccepts, p.Spec.Accept.Window, p.Spec.Accept.MinReactionTime = nil, nil, nil
		}},
		{Desc: "accept limited by minReactionTime only", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.Accept.MaxAccepts, p.Spec.Accept.Window, p.Spec.Accept.RequireShown = nil, nil, nil
		}},
		{Desc: "overrides of feed and accept", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.Overrides = []v1alpha1.DriverOverride{
				{Drivers: []string{"driver-17"}, Feed: &v1alpha1.FeedOverride{MinInterval: dur("1s")}},
				{Drivers: []string{"driver-18", "driver-19"}, Feed: &v1alpha1.FeedOverride{Burst: ptr.To[int32](3)},
					Accept: &v1alpha1.AcceptOverride{MaxAccepts: ptr.To[int32](10), Window: dur("1h")}},
				{Drivers: []string{"trainee-1"}, Accept: &v1alpha1.AcceptOverride{MinReactionTime: dur("0s")}},
				{Drivers: []string{"slow-reader"}, Accept: &v1alpha1.AcceptOverride{Window: dur("30s"), MinReactionTime: dur("30s")}},
			}
		}},
		{Desc: "64 overrides", Mutate: func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides = overrides(64) }},
		{Desc: "override with 256 drivers", Mutate: func(p *v1alpha1.OfferFeedPolicy) { p.Spec.Overrides[0].Drivers = drivers(256) }},
		{Desc: "targetSelector with matchExpressions only", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.TargetSelector = v1alpha1.LabelSelector{MatchExpressions: []v1alpha1.LabelSelectorRequirement{
				{Key: "app", Operator: metav1.LabelSelectorOpIn, Values: []v1alpha1.LabelValue{"offer-service", "offer-service-canary"}},
			}}
		}},
		{Desc: "targetSelector with prefixed label keys, an empty value and 32 labels", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.TargetSelector.MatchLabels["app.kubernetes.io/name"] = "offer-service"
			p.Spec.TargetSelector.MatchLabels["tier"] = ""
			for i := range 29 {
				p.Spec.TargetSelector.MatchLabels["example.com/l"+strconv.Itoa(i)] = "A-b_c.9"
			}
		}},
		{Desc: "targetSelector with every operator", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.TargetSelector.MatchExpressions = []v1alpha1.LabelSelectorRequirement{
				{Key: "tier", Operator: metav1.LabelSelectorOpNotIn, Values: []v1alpha1.LabelValue{"batch"}},
				{Key: "offerfeed.dev/governed", Operator: metav1.LabelSelectorOpExists},
				{Key: "canary", Operator: metav1.LabelSelectorOpDoesNotExist},
			}
		}},
		{Desc: "feed path prefix and PUT/PATCH methods", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.Feed.Path = "/v2/offers/"
			p.Spec.Feed.Method = "PUT"
			p.Spec.Accept.Method = "PATCH"
			p.Spec.Accept.PathTemplate = "/v2/offers/{offerId}/"
		}},
		{Desc: "feed prefix above the accept path, same method", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.Feed.Method = "POST"
			p.Spec.Feed.Path = "/offers/"
		}},
		{Desc: "feed and accept on one path with different methods", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			Flex(p)
			p.Spec.Feed.Method = "GET"
			p.Spec.Accept.PathTemplate = "/GetOffersForProviderPost"
		}},
		{Desc: "lower bounds", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.Feed.MinInterval, p.Spec.Feed.Burst = "10ms", 1
			p.Spec.Accept.MaxAccepts, p.Spec.Accept.Window, p.Spec.Accept.MinReactionTime = ptr.To[int32](1), dur("1s"), dur("0s")
			p.Spec.Overrides[0].Feed = &v1alpha1.FeedOverride{MinInterval: dur("10ms"), Burst: ptr.To[int32](1)}
		}},
		{Desc: "upper bounds", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.ClientIdentity.Header = "X-" + strings.Repeat("a", 126)
			p.Spec.Feed.MinInterval, p.Spec.Feed.Burst = "1h", 100
			p.Spec.Accept.MaxAccepts, p.Spec.Accept.Window, p.Spec.Accept.MinReactionTime = ptr.To[int32](10000), dur("24h"), dur("1m")
			p.Spec.Overrides[0].Feed = &v1alpha1.FeedOverride{MinInterval: dur("1h"), Burst: ptr.To[int32](100)}
		}},
		{Desc: "compound durations", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.Feed.MinInterval = "1s500ms"
			p.Spec.Accept.Window, p.Spec.Accept.MinReactionTime = dur("1h30m"), dur("1s250ms")
		}},
		{Desc: "shownOffers of a feed answering a top-level array of ids", Mutate: func(p *v1alpha1.OfferFeedPolicy) { p.Spec.ShownOffers.JSONPath = "[]" }},
		{Desc: "shownOffers nested path", Mutate: func(p *v1alpha1.OfferFeedPolicy) { p.Spec.ShownOffers.JSONPath = "data.offerList[].offer.offer_id" }},
		{Desc: "refusal in the Amazon Flex shape", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			Flex(p)
			p.Spec.Refusal = &v1alpha1.Refusal{Status: ptr.To[int32](400), ContentType: "application/json", Body: `{"message":"Rate exceeded"}`}
		}},
		{Desc: "refusal as a problem document, decisions of their own", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.Refusal = &v1alpha1.Refusal{ContentType: "application/problem+json; charset=utf-8",
				Body: `{"type":"https://offers.example/problems/{{decision}}","title":"Request refused","status":{{status}},"detail":"retry after {{retryAfter}} s"}`,
				Decisions: []v1alpha1.DecisionRefusal{
					{Decision: "unseen-offer", Status: ptr.To[int32](404)},
					{Decision: "lost-draw", Status: ptr.To[int32](410), ContentType: "application/json", Body: `{"error":"TAKEN"}`},
					{Decision: "missing-identity", Status: ptr.To[int32](401)},
				}}
		}},
		{Desc: "botScore: score-weighted fair draws, bot-like refused above 0.9, its own refusal shape", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.Accept.Fairness = &v1alpha1.Fairness{Window: "3s"}
			p.Spec.BotScore = v1alpha1.BotScore{DrawWeighting: v1alpha1.DrawWeightingScore, RefuseAbovePermille: 900}
			p.Spec.Refusal = &v1alpha1.Refusal{Decisions: []v1alpha1.DecisionRefusal{{Decision: "bot-like", Status: ptr.To[int32](429)}}}
		}},
		{Desc: "botScore bounds: refuseAbovePermille 300 and 999, drawWeighting None without fairness", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.BotScore = v1alpha1.BotScore{DrawWeighting: v1alpha1.DrawWeightingNone, RefuseAbovePermille: 300}
			p.Spec.Overrides = nil
		}},
		{Desc: "botScore refuseAbovePermille 999 with drawWeighting None", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.BotScore = v1alpha1.BotScore{DrawWeighting: v1alpha1.DrawWeightingNone, RefuseAbovePermille: 999}
		}},
		{Desc: "refusal bounds: status 400 and 599, body of 4096 bytes", Mutate: func(p *v1alpha1.OfferFeedPolicy) {
			p.Spec.Refusal = &v1alpha1.Refusal{Status: ptr.To[int32](599), ContentType: "text/plain", Body: strings.Repeat("x", 4096),
				Decisions: []v1alpha1.DecisionRefusal{{Decision: "feed-throttled", Status: ptr.To[int32](400)}}}
		}},
	}
}
