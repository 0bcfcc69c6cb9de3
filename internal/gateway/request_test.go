package gateway

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// lenientCase is one request that a lenient offer service could take for a governed route.
type lenientCase struct {
	method, path string
	hdr          []string // name, value pairs besides the identity
	// status and decision are the wanted answer: ambiguous-request, or the decision of the
	// route the request is governed as.
	status   int
	decision string
}

func amb(method, path string, hdr ...string) lenientCase {
	return lenientCase{method, path, hdr, 400, "ambiguous-request"}
}

// TestLenientRouting: every request that a lenient router could map onto the feed or an
// accept is governed or refused ambiguous-request in Enforce; the offer service records none
// of them. The driver never polled (so no accept may pass) and, for the feed cases, has just
// polled (so no poll may pass).
func TestLenientRouting(t *testing.T) {
	accepts := []lenientCase{
		amb("POST", "/offers/o9%2Faccept"), // the finding: gunicorn, uWSGI, wsgiref decode %2F
		amb("POST", "/offers/o9%2faccept"),
		amb("POST", "/offers/o9%252Faccept"), // decoded twice
		amb("POST", "/offers/o9%25252faccept"),
		amb("POST", "/offers/o9%5Caccept"),
		amb("POST", `/offers/o9\accept`),
		amb("POST", "/offers/o9/accept;x"),
		amb("POST", "/offers;x/o9/accept"),
		amb("POST", "/offers/o9;x/accept"), // the gateway sees offer "o9;x", the service o9
		amb("POST", "/offers/o9/accept%3Bx"),
		amb("POST", "/offers/o9/accept%00"),
		amb("POST", "/offers/o9%00/accept"),
		amb("POST", "/OFFERS/o9/ACCEPT"),
		amb("POST", "/offers/o9/Accept"),
		amb("POST", "/offers/o9/accept."),
		amb("POST", "/offers/o9/accept%2e"),
		amb("POST", "/offers/o9/accept%20"),
		amb("POST", "/offers/o9/accept%23x"), // an encoded fragment
		amb("POST", "/offers/o9/accept%3Fx=1"),
		amb("POST", "/offers/o1%2F..%2Fo9/accept"), // the gateway sees "o1/../o9", the service o9
		amb("POST", "/offers/o1%252F..%252Fo9/accept"),
		amb("POST", "/offers/o9/%25u0061ccept"), // IIS %u, decoded twice
		amb("POST", "/offers/o9%c0%afaccept"),   // overlong '/'
		amb("POST", "http://offers.example/offers/o9%2Faccept"),
		amb("GET", "/offers/o9/accept", "X-HTTP-Method-Override", "POST"),
		amb("PUT", "/offers/o9/accept", "X-HTTP-Method", "POST"),
		amb("GET", "/offers/o9/accept", "X-Method-Override", "post"),
		amb("GET", "/offers/o9/accept", "X-HTTP-Method-Override", "GET", "X-HTTP-Method-Override", "POST"),
		amb("GET", "/offers/o9/accept", "X-HTTP-Method-Override", "GET, POST"),
		amb("GET", "/offers/o9/accept?_method=POST"),
		amb("GET", "/offers/o9/accept?a=1&%5Fmethod=post"),
		amb("GET", "/offers/o9/accept?_METHOD=POST"),
		// A URL-override header names the route (Symfony, Zend, IIS URL Rewrite).
		amb("POST", "/health", "X-Original-URL", "/offers/o9/accept"),
		amb("POST", "/health", "X-Rewrite-URL", "/offers/o9%2Faccept?x=1"),
		amb("POST", "/health", "x-original-url", "http://h/OFFERS/o9/accept"),
		amb("POST", "/offers/o1/accept", "X-Original-URL", "/offers/o9/accept"),
		// Governed exactly, but an override names another method.
		amb("POST", "/offers/o9/accept", "X-HTTP-Method-Override", "DELETE"),
		amb("POST", "/offers/o9/accept?_method=PUT"),
		// Governed exactly, and lenient readings agree.
		{"POST", "//offers//o9//accept", nil, 403, "unseen-offer"},
		{"POST", "/offers/o9/%61ccept", nil, 403, "unseen-offer"},
		{"post", "/offers/o9/accept", nil, 403, "unseen-offer"},
		{"POST", "/offers/o9/accept", []string{"X-HTTP-Method-Override", "POST"}, 403, "unseen-offer"},
		{"POST", "/offers/a%2Fb/accept", nil, 403, "unseen-offer"}, // an id with '/': no lenient reading is an accept
		{"POST", "/offers/o9/accept", []string{"X-Original-URL", "/offers/o9/accept"}, 403, "unseen-offer"},
	}
	feeds := []lenientCase{
		amb("HEAD", "/offers"),
		amb("GET", "/OFFERS"),
		amb("GET", "/Offers/"),
		amb("GET", "/offers;jsessionid=1"),
		amb("GET", "/offers%00"),
		amb("GET", "/offers."),
		amb("GET", "/offers%23"),
		amb("GET", "/offers%2F"),
		amb("POST", "/offers", "X-HTTP-Method-Override", "GET"),
		amb("GET", "/offers", "X-HTTP-Method-Override", "PUT"),
		amb("GET", "/other", "X-Original-URL", "/offers"),
		{"GET", "/%6Fffers", nil, 429, "feed-throttled"},
		{"GET", "/x/../offers/", nil, 429, "feed-throttled"},
		{"GET", "/offers?area=north%20east&_methods=x", nil, 429, "feed-throttled"},
	}
	for _, tc := range accepts {
		t.Run("accept "+tc.method+" "+tc.path+" "+strings.Join(tc.hdr, ":"), func(t *testing.T) {
			h := newHarness(t, configOf(standardPolicy()))
			checkLenient(t, h, tc)
		})
	}
	for _, tc := range feeds {
		t.Run("feed "+tc.method+" "+tc.path+" "+strings.Join(tc.hdr, ":"), func(t *testing.T) {
			h := newHarness(t, configOf(standardPolicy()))
			expect(t, h.do("GET", "/offers", "", drv("d1")...), 200, "")
			checkLenient(t, h, tc)
		})
	}
}

func checkLenient(t *testing.T, h *harness, tc lenientCase) {
	t.Helper()
	before := len(h.up.records())
	w := h.do(tc.method, tc.path, "", append(drv("d1"), tc.hdr...)...)
	expect(t, w, tc.status, tc.decision)
	if recs := h.up.records(); len(recs) > before {
		t.Errorf("the offer service saw %s %s", recs[len(recs)-1].Method, recs[len(recs)-1].Path)
	}
}

// TestLenientRoutingFlex: the same for the Amazon Flex shape (offer id in the body, POST feed).
func TestLenientRoutingFlex(t *testing.T) {
	for _, tc := range []lenientCase{
		amb("POST", "/acceptoffer"),
		amb("POST", "/AcceptOffer;x"),
		amb("POST", "/AcceptOffer%00"),
		{"POST", "/AcceptOffer/.", nil, 403, "unseen-offer"},
		amb("PUT", "/AcceptOffer", "X-HTTP-Method-Override", "POST"),
		amb("POST", "/getoffersforproviderpost"),
		amb("POST", "/x%2F..%2FGetOffersForProviderPost"),
		{"POST", "/AcceptOffer/", nil, 403, "unseen-offer"},
	} {
		h := newHarness(t, configOf(flexPolicy()))
		before := len(h.up.records())
		w := h.do(tc.method, tc.path, `{"offerId":"A1"}`, append(flexHdr("tok"), tc.hdr...)...)
		if w.Code != tc.status || w.Header().Get(HeaderDecision) != tc.decision {
			t.Errorf("%s %s: got %d %q, want %d %q", tc.method, tc.path, w.Code, w.Header().Get(HeaderDecision), tc.status, tc.decision)
		}
		if len(h.up.records()) > before {
			t.Errorf("%s %s reached the offer service", tc.method, tc.path)
		}
	}
}

// TestLenientRoutingKeepsOrdinaryRequests: requests no lenient router takes for a governed
// route pass as before.
func TestLenientRoutingKeepsOrdinaryRequests(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()))
	runSteps(t, h, []step{
		{method: "GET", path: "/offers?area=north%20east", hdr: drv("d1"), status: 200, forwarded: true},
		{advance: time.Second, method: "POST", path: "/offers/o1/accept", hdr: drv("d1"), status: 200, forwarded: true},
		{method: "GET", path: "/offers/o1/accept", status: 200, forwarded: true}, // no identity: see TestRedteamMethodAgnosticRouter
		{method: "GET", path: "/drivers/me;v=2", hdr: drv("d1"), status: 200, forwarded: true},
		{method: "DELETE", path: "/offers", status: 200, forwarded: true},
		{method: "HEAD", path: "/drivers/me", hdr: drv("d1"), status: 200, forwarded: true},
		{method: "GET", path: "/drivers/%2Fme.", hdr: drv("d1"), status: 200, forwarded: true},
		{method: "POST", path: "/other", hdr: []string{"X-Driver-Id", "d1", "X-HTTP-Method-Override", "PUT"}, status: 200, forwarded: true},
	})
}

// TestLenientRoutingDryRun: DryRun forwards an ambiguous request flagged ambiguous-request,
// and counts it under the route a lenient router would take it for.
func TestLenientRoutingDryRun(t *testing.T) {
	p := standardPolicy()
	p.Mode = gatewayconfig.ModeDryRun
	h := newHarness(t, configOf(p))
	runSteps(t, h, []step{
		{method: "POST", path: "/offers/o9%2Faccept", hdr: drv("d1"), status: 200, forwarded: true, flag: "ambiguous-request"},
		{method: "HEAD", path: "/offers", hdr: drv("d1"), status: 200, forwarded: true, flag: "ambiguous-request"},
		{method: "GET", path: "/OFFERS", hdr: drv("d1"), status: 200, forwarded: true, flag: "ambiguous-request"},
	})
	for _, want := range []string{
		`offerfeed_gateway_decisions_total{decision="ambiguous-request",policy="standard",route="accept"} 1`,
		`offerfeed_gateway_decisions_total{decision="ambiguous-request",policy="standard",route="feed"} 2`,
	} {
		if !hasMetric(t, h.g, want) {
			t.Errorf("metric %s missing", want)
		}
	}
}

// TestUnreadableOfferID: an accept whose offer id cannot be read is never cheaper than one
// whose id can. With minReactionTime (and without requireShown) it is refused
// unreadable-offer, whatever made it unreadable; DryRun flags it; a driver without a
// reaction time (override 0s) passes, since only the quota applies.
func TestUnreadableOfferID(t *testing.T) {
	p := flexPolicy()
	p.Accept.RequireShown = false
	p.Overrides = []gatewayconfig.Override{{Drivers: []string{"instant"}, Accept: &gatewayconfig.AcceptOverride{MinReactionTime: durp("0s")}}}
	big := `{"offerId":"A1","pad":"` + strings.Repeat("x", DefaultMaxAcceptBody) + `"}`
	unreadable := map[string]string{
		"conflicting keys":    `{"offerId":"Z9","offerId":"A1"}`,
		"conflicting in case": `{"offerId":"A1","OFFERID":"Z9"}`,
		"over 64 KiB":         big,
		"not JSON":            `offerId=A1`,
		"truncated":           `{"offerId":"A1"`,
		"field missing":       `{"offer":"A1"}`,
		"empty":               ``,
	}
	for _, mode := range []gatewayconfig.Mode{gatewayconfig.ModeEnforce, gatewayconfig.ModeDryRun} {
		p.Mode = mode
		for name, body := range unreadable {
			t.Run(string(mode)+" "+name, func(t *testing.T) {
				h := newHarness(t, configOf(p))
				h.up.offers = []string{"A1"}
				fp := step{method: "POST", path: "/GetOffersForProviderPost", body: `{}`, hdr: flexHdr("tok"), status: 200, forwarded: true}
				st := step{advance: 100 * time.Millisecond, method: "POST", path: "/AcceptOffer", body: body, hdr: flexHdr("tok"), status: 400, decision: "unreadable-offer"}
				if mode == gatewayconfig.ModeDryRun {
					st.status, st.decision, st.forwarded, st.flag = 200, "", true, "unreadable-offer"
				}
				runSteps(t, h, []step{
					fp,
					st,
					// The same accept readable is too-fast: the unreadable one was not cheaper.
					{method: "POST", path: "/AcceptOffer", body: `{"offerId":"A1"}`, hdr: flexHdr("tok"),
						status:    map[bool]int{true: 429, false: 200}[mode == gatewayconfig.ModeEnforce],
						decision:  map[bool]string{true: "too-fast", false: ""}[mode == gatewayconfig.ModeEnforce],
						forwarded: mode == gatewayconfig.ModeDryRun, flag: "too-fast"},
					// A driver without a reaction time: only the quota needs no id.
					{method: "POST", path: "/AcceptOffer", body: body, hdr: flexHdr("instant"), status: 200, forwarded: true},
				})
				if !hasMetric(t, h.g, `offerfeed_gateway_decisions_total{decision="unreadable-offer",policy="flex",route="accept"} 1`) {
					t.Error("unreadable-offer not counted")
				}
			})
		}
	}
	// With requireShown, an unreadable id is unseen-offer, as before.
	h := newHarness(t, configOf(flexPolicy()))
	expect(t, h.do("POST", "/AcceptOffer", `{"offerId":"A1","offerId":"Z9"}`, flexHdr("tok")...), 403, "unseen-offer")
}

// TestHeaderAliasesStripped: a CGI or WSGI offer service reads OfferFeed_Flag as
// HTTP_OFFERFEED_FLAG, so no spelling of an OfferFeed header reaches it; no header with
// characters other than letters, digits and '-' does either (nginx's default), so that
// X_Driver_Id cannot stand in for the identity, nor X_HTTP_Method_Override for an override.
func TestHeaderAliasesStripped(t *testing.T) {
	forbidden := []string{"OfferFeed_Flag", "offerfeed_decision", "OfferFeed-Flag", "Offerfeed.Flag", "OFFERFEED_X",
		"OfferFeed-Score", "OfferFeed-Signals", "Offerfeed_Score",
		"X_Driver_Id", "X_HTTP_Method_Override", "X.Driver.Id", "X-Driver_Id"}
	send := func(h *harness, path string, identity string) http.Header {
		t.Helper()
		r := httptest.NewRequest("GET", path, nil)
		r.Header[identity] = []string{"d1"}
		for _, k := range forbidden {
			r.Header[k] = []string{"allowed"}
		}
		r.Header["X-Other"] = []string{"kept"}
		w := httptest.NewRecorder()
		h.g.ServeHTTP(w, r)
		expect(t, w, 200, "")
		return h.up.last().Header
	}
	check := func(what string, got http.Header, keep ...string) {
		t.Helper()
		for k := range got {
			if k == keySignals || k == keyScore {
				// The gateway's own, never a client's value (TestScoreHeadersNotForgeable).
				if got.Get(k) == "allowed" {
					t.Errorf("%s: the offer service saw the client's %s", what, k)
				}
				continue
			}
			if strings.ContainsAny(k, "_.") && !contains(keep, k) || strings.HasPrefix(strings.ToLower(k), "offerfeed") {
				t.Errorf("%s: the offer service saw %s", what, k)
			}
		}
		if got.Get("X-Other") != "kept" {
			t.Errorf("%s: X-Other lost", what)
		}
	}
	h := newHarness(t, configOf(standardPolicy()))
	check("feed", send(h, "/offers", "X-Driver-Id"))
	check("other route", send(h, "/other", "X-Driver-Id"))
	check("no policy", send(newHarness(t, nil), "/offers", "X-Driver-Id"))
	// An identity header named with '_' is kept; its aliases go.
	p := standardPolicy()
	p.IdentityHeader = "X_Driver_Id"
	h = newHarness(t, configOf(p))
	r := httptest.NewRequest("GET", "/offers", nil)
	r.Header["X_driver_id"] = []string{"d1"} // as Go canonicalizes it
	r.Header["X-Driver-Id"] = []string{"someone-else"}
	r.Header["X-DRIVER_ID"] = []string{"someone-else"}
	w := httptest.NewRecorder()
	h.g.ServeHTTP(w, r)
	expect(t, w, 200, "")
	got := h.up.last().Header
	if len(got["X_driver_id"]) != 1 || got["X_driver_id"][0] != "d1" || got["X-Driver-Id"] != nil || got["X-DRIVER_ID"] != nil { //nolint:staticcheck // SA1008: the non-canonical key is the alias under test
		t.Errorf("identity aliases reached the offer service: %v", got)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestRefusedConfigNeverEchoesDriverIDs: a config refused for an invalid override shows the
// error in /readyz and the log, naming the override's drivers by index, never by id.
func TestRefusedConfigNeverEchoesDriverIDs(t *testing.T) {
	const secret = "driver-7f3a9c-secret"
	var mu sync.Mutex
	var logs bytes.Buffer
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logs.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{Verbosity: 1})
	h := newHarness(t, nil, func(o *Options) { o.Logger = log })
	file := filepath.Join(t.TempDir(), "config.json")
	good := configOf(standardPolicy())
	b, err := gatewayconfig.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.g.LoadFile(file); err != nil {
		t.Fatal(err)
	}
	bad := standardPolicy()
	bad.Overrides = []gatewayconfig.Override{{Drivers: []string{secret, "d2", secret}, Feed: &gatewayconfig.FeedOverride{MinInterval: dur("1s")}}}
	b, err = gatewayconfig.Marshal(configOf(bad))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.g.LoadFile(file); err == nil {
		t.Fatal("a config listing a driver twice was applied")
	} else if strings.Contains(err.Error(), secret) {
		t.Errorf("error echoes a driver id: %v", err)
	}
	readyz := httptestGet(h.g.AdminHandler(), "/readyz").Body.String()
	if !strings.Contains(readyz, "overrides[0].drivers[2]: duplicate of drivers[0]") {
		t.Errorf("/readyz does not name the override: %s", readyz)
	}
	mu.Lock()
	logged := logs.String()
	mu.Unlock()
	for what, text := range map[string]string{"/readyz": readyz, "log": logged, "/metrics": metricText(t, h.g)} {
		if strings.Contains(text, secret) {
			t.Errorf("%s echoes a driver id:\n%s", what, text)
		}
	}
	if !strings.Contains(logged, "config refused") {
		t.Errorf("refusal not logged:\n%s", logged)
	}
}
