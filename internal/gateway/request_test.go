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
	if len(got["X_driver_id"]) != 1 || got["X_driver_id"][0] != "d1" || got["X-Driver-Id"] != nil || got["X-DRIVER_ID"] != nil {
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
