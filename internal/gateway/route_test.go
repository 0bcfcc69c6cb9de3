package gateway

import (
	"testing"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// TestRouteMatch: the exact route match of a request (before the lenient check): method in
// any case, the path normalized segment by segment, an exact feed path or a prefix, and an
// accept template whose {offerId} is one whole segment of a path of the same length.
func TestRouteMatch(t *testing.T) {
	prefix := standardPolicy()
	prefix.Feed.Path = "/feed/"
	pols := map[string]gatewayconfig.Policy{"standard": standardPolicy(), "prefix": prefix, "flex": flexPolicy()}
	cases := []struct {
		policy, method, path string
		want                 route
		id                   string
	}{
		{"standard", "GET", "/offers", routeFeed, ""},
		{"standard", "GET", "/offers/", routeFeed, ""},
		{"standard", "get", "/offers", routeFeed, ""},
		{"standard", "GET", "//offers/.", routeFeed, ""},
		{"standard", "GET", "/offers/x", routeOther, ""},
		{"standard", "GET", "/offer", routeOther, ""},
		{"standard", "GET", "/Offers", routeOther, ""},
		{"standard", "POST", "/offers", routeOther, ""},
		{"standard", "POST", "/offers/o1/accept", routeAccept, "o1"},
		{"standard", "POST", "/offers/o%2F1/accept", routeAccept, "o/1"},
		{"standard", "POST", "/offers//o1/./accept/", routeAccept, "o1"},
		{"standard", "POST", "/x/../offers/o1/accept", routeAccept, "o1"},
		{"standard", "POST", "/offers/o1/accept/x", routeOther, ""},
		{"standard", "POST", "/offers/o1/accept/accept", routeOther, ""},
		{"standard", "POST", "/api/offers/o1/accept", routeOther, ""},
		{"standard", "POST", "/offers/o1", routeOther, ""},
		{"standard", "POST", "/offers/accept", routeOther, ""},
		{"standard", "POST", "/offers/o1/Accept", routeOther, ""},
		{"standard", "GET", "/offers/o1/accept", routeOther, ""},
		{"prefix", "GET", "/feed/", routeFeed, ""},
		{"prefix", "GET", "/feed/north/today", routeFeed, ""},
		{"prefix", "GET", "/feed", routeOther, ""},
		{"prefix", "GET", "/feeds/north", routeOther, ""},
		{"flex", "POST", "/AcceptOffer", routeAccept, ""},
		{"flex", "POST", "/AcceptOffer/o1", routeOther, ""},
		{"flex", "POST", "/acceptoffer", routeOther, ""},
		{"flex", "POST", "/GetOffersForProviderPost", routeFeed, ""},
		{"flex", "GET", "/GetOffersForProviderPost", routeOther, ""},
		{"flex", "POST", "/GetOffersForProviderPost/x", routeOther, ""},
	}
	for _, c := range cases {
		gp := pols[c.policy]
		p, err := compilePolicy(&gp, localHasher(testSeed))
		if err != nil {
			t.Fatal(err)
		}
		var rp reqPath
		rp.normalize(c.path)
		rt, id := p.routeOf(c.method, &rp, false)
		if rt != c.want || id != c.id {
			t.Errorf("%s: %s %s: route %s %q, want %s %q", c.policy, c.method, c.path, routeNames[rt], id, routeNames[c.want], c.id)
		}
	}
}
