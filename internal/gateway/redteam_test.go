package gateway

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Red team (issue 12, "close every way around a rule"): each test is one way a paid bot could
// try to get around a rule of the gateway, in front of the recording fake offer service, with
// the REST policy (standardPolicy) and the Flex policy (flexPolicy). A finding that is not
// fixed is skipped with t.Skip("finding: ...").

// flexToken is a driver of the Flex policy.
func flexToken(tok string) []string { return []string{"X-Amz-Access-Token", tok} }

// upstreamSaw reports how many requests the offer service got for path.
func (h *harness) upstreamSaw(path string) int {
	n := 0
	for _, r := range h.up.records() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// TestRedteamMethodAgnosticRouter: many offer services route on the path alone (Go's
// http.ServeMux with a pattern without a method, Express's app.all, Flask's route without
// methods=, a handler that never looks at r.Method). For them GET /offers/o9/accept is an
// accept and POST /offers a poll. Before the fix the gateway forwarded those ungoverned: an
// accept for an offer never shown, as often as the bot liked.
func TestRedteamMethodAgnosticRouter(t *testing.T) {
	t.Run("rest", func(t *testing.T) {
		for _, m := range []string{"GET", "PUT", "PATCH", "DELETE", "FOO", "get", "OPTIONS"} {
			h := newHarness(t, configOf(standardPolicy()))
			// d1 was never shown o9: the honest request is refused 403.
			expect(t, h.do("POST", "/offers/o9/accept", "", drv("d1")...), 403, "unseen-offer")
			w := h.do(m, "/offers/o9/accept", "", drv("d1")...)
			expect(t, w, 400, "ambiguous-request")
			if n := h.upstreamSaw("/offers/o9/accept"); n != 0 {
				t.Fatalf("%s: the offer service got %d accepts", m, n)
			}
		}
		for _, m := range []string{"POST", "PUT", "DELETE", "FOO", "OPTIONS"} {
			h := newHarness(t, configOf(standardPolicy()))
			expect(t, h.do("GET", "/offers", "", drv("d1")...), 200, "")
			expect(t, h.do("GET", "/offers", "", drv("d1")...), 429, "feed-throttled")
			expect(t, h.do(m, "/offers", "", drv("d1")...), 400, "ambiguous-request")
			expect(t, h.do(m, "/OFFERS/", "", drv("d1")...), 400, "ambiguous-request")
			if n := h.upstreamSaw("/offers"); n != 1 {
				t.Fatalf("%s: the offer service got %d polls, want 1", m, n)
			}
		}
	})
	t.Run("flex", func(t *testing.T) {
		for _, m := range []string{"GET", "PUT", "post ", "FOO"} {
			m = strings.TrimSpace(m)
			h := newHarness(t, configOf(flexPolicy()))
			w := h.do(m, "/AcceptOffer", `{"offerId":"o9"}`, flexToken("t1")...)
			if m == "post" {
				expect(t, w, 403, "unseen-offer") // the route's method in any case is the route
			} else {
				expect(t, w, 400, "ambiguous-request")
			}
			expect(t, h.do("POST", "/GetOffersForProviderPost", "{}", flexToken("t1")...), 200, "")
			w = h.do(m, "/GetOffersForProviderPost", "{}", flexToken("t1")...)
			if m == "post" {
				expect(t, w, 429, "feed-throttled")
			} else {
				expect(t, w, 400, "ambiguous-request")
			}
			if n := h.upstreamSaw("/AcceptOffer"); n != 0 {
				t.Fatalf("%s: the offer service got %d accepts", m, n)
			}
		}
	})
	t.Run("without identity and on other paths they pass", func(t *testing.T) {
		h := newHarness(t, configOf(standardPolicy()))
		// A CORS preflight, or a dispatcher's POST /offers, carries no driver's identity: the
		// offer service cannot act for a driver on it, so it goes on.
		w := h.do("OPTIONS", "/offers/o9/accept", "", "Access-Control-Request-Method", "POST")
		if w.Code != 200 || h.upstreamSaw("/offers/o9/accept") != 1 {
			t.Fatalf("preflight: %d, upstream saw %d", w.Code, h.upstreamSaw("/offers/o9/accept"))
		}
		if w := h.do("POST", "/offers", `{"id":"o10"}`); w.Code != 200 || h.upstreamSaw("/offers") != 1 {
			t.Fatalf("POST /offers without identity: %d, upstream saw %d", w.Code, h.upstreamSaw("/offers"))
		}
		// Other methods on other paths are none of the gateway's business.
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			if w := h.do(m, "/offers/o9", "", drv("d1")...); w.Code != 200 {
				t.Fatalf("%s /offers/o9: %d", m, w.Code)
			}
		}
	})
}

// TestRedteamIdentityVariants: the gateway keyed a driver on the exact bytes of the identity
// header, so "t1," or "t1, t1" or "T1" or "Bearer  t1" was a fresh driver with a fresh pacer and
// quota, while an offer service that reads the header as a list (RFC 9110 §5.3: field lines
// may be combined with commas), splits on white space, compares the auth scheme in any case or
// looks tokens up with a case-insensitive collation (MySQL's default) saw the same driver.
func TestRedteamIdentityVariants(t *testing.T) {
	for _, v := range []string{"t1,", ",t1", "t1, t1", "t1 ,t1", "T1", "t1\t", " t1", "  t1  "} {
		h := newHarness(t, configOf(standardPolicy()))
		expect(t, h.do("GET", "/offers", "", drv("t1")...), 200, "")
		expect(t, h.do("GET", "/offers", "", drv(v)...), 429, "feed-throttled")
	}
	for _, v := range []string{"bearer  abc", "BEARER abc", "Bearer\tabc", "Bearer abc, Bearer abc"} {
		h := newHarness(t, configOf(standardPolicy()))
		expect(t, h.do("GET", "/offers", "", drv("Bearer abc")...), 200, "")
		expect(t, h.do("GET", "/offers", "", drv(v)...), 429, "feed-throttled")
	}
	// Two identities in one header are no identity, as two header lines are; so are an
	// identity of nothing but commas and one with bytes outside visible ASCII (a look-alike
	// such as "té" or "ｔ1" is the same driver to a service whose collation or normalization
	// folds it; tokens and driver ids are ASCII).
	for _, v := range []string{"t1, t2", "t1,t2", ",", " , ", "t\u00e91", "\uff541", "t1\x00", "t1\x7f"} {
		h := newHarness(t, configOf(standardPolicy()))
		expect(t, h.do("GET", "/offers", "", drv(v)...), 400, "missing-identity")
	}
	// Several lines: the same identity in different spellings is one driver; different ones
	// are none.
	h := newHarness(t, configOf(standardPolicy()))
	expect(t, h.do("GET", "/offers", "", "X-Driver-Id", "t1", "X-Driver-Id", "T1 "), 200, "")
	expect(t, h.do("GET", "/offers", "", drv("t1")...), 429, "feed-throttled")
	expect(t, h.do("GET", "/offers", "", "X-Driver-Id", "t1", "X-Driver-Id", "t2"), 400, "missing-identity")
	// An override names a driver the same way.
	p := standardPolicy()
	p.Overrides = []gatewayconfig.Override{{Drivers: []string{"Driver-17"}, Feed: &gatewayconfig.FeedOverride{Burst: 3}}}
	h = newHarness(t, configOf(p))
	for range 3 {
		expect(t, h.do("GET", "/offers", "", drv(" driver-17,")...), 200, "")
	}
	expect(t, h.do("GET", "/offers", "", drv("DRIVER-17")...), 429, "feed-throttled")
}

// TestRedteamIdentityOnTheWire: through a real connection, the identity header in another
// case, twice, with white space around it, folded or with a second line in another case is
// one driver or none, never a fresh one.
func TestRedteamIdentityOnTheWire(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()))
	srv := h.g.NewServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	send := func(headers string) (int, string) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /offers HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n", headers)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(HeaderDecision)
	}
	if code, d := send("X-Driver-Id: t1\r\n"); code != 200 {
		t.Fatalf("first poll: %d %s", code, d)
	}
	for _, hd := range []string{
		"x-driver-id: t1\r\n",
		"X-DRIVER-ID:   t1   \r\n",
		"X-Driver-Id: t1\r\nx-driver-id: t1\r\n",
		"X-Driver-Id: T1,\r\n",
		"X-Driver-Id: t1, t1\r\n",
	} {
		if code, d := send(hd); code != 429 || d != "feed-throttled" {
			t.Errorf("%q: %d %q, want 429 feed-throttled", hd, code, d)
		}
	}
	for _, hd := range []string{
		"X-Driver-Id: t1\r\nx-driver-id: t2\r\n",
		"X-Driver-Id: t1, t2\r\n",
	} {
		if code, d := send(hd); code != 400 || d != "missing-identity" {
			t.Errorf("%q: %d %q, want 400 missing-identity", hd, code, d)
		}
	}
	// obs-fold (a continuation line): Go's server joins the lines with a space, and the offer
	// service gets that one value, the driver "t2 t3" to the gateway too.
	if code, _ := send("X-Driver-Id: t2\r\n t3\r\n"); code != 200 {
		t.Errorf("folded identity: %d, want 200", code)
	}
	if got := h.up.last().Header.Get("X-Driver-Id"); got != "t2 t3" {
		t.Errorf("the offer service saw the folded identity as %q", got)
	}
	if code, d := send("X-Driver-Id: T2   t3\r\n"); code != 429 {
		t.Errorf("folded identity respelled: %d %q, want 429 feed-throttled", code, d)
	}
}

// TestRedteamConnectionHidesHeaders: a client may name headers in Connection, and a proxy drops
// those before forwarding (RFC 9110 §7.6.1; httputil.ReverseProxy does). Naming the identity
// header there let the gateway key a driver on a header the offer service never saw (so a
// service that falls back to another credential, say Authorization, gets a fresh driver to the
// gateway on every request); naming OfferFeed-Flag hid a bot's DryRun flags from the offer
// service.
func TestRedteamConnectionHidesHeaders(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()))
	expect(t, h.do("GET", "/offers", "", "X-Driver-Id", "t1", "Connection", "keep-alive, X-Driver-Id"), 200, "")
	if got := h.up.last().Header.Get("X-Driver-Id"); got != "t1" {
		t.Fatalf("the offer service saw identity %q, want t1", got)
	}
	p := standardPolicy()
	p.Mode = gatewayconfig.ModeDryRun
	h = newHarness(t, configOf(p))
	h.do("GET", "/offers", "", drv("t1")...)
	h.do("GET", "/offers", "", "X-Driver-Id", "t1", "Connection", "offerfeed-flag")
	if got := h.up.last().Header.Get(HeaderFlag); got != "feed-throttled" {
		t.Fatalf("the offer service saw flag %q, want feed-throttled", got)
	}
}

// TestRedteamQueryOfferID: in the Flex shape the gateway reads the offer id from the body, but
// a lenient offer service may read it from the query string too (Werkzeug's request.values
// looks in the query first, PHP's $_REQUEST, Spring's @RequestParam, ASP.NET's model binding).
// An accept of o1 (shown long ago) in the body and o9 (just shown, or never) in the query was
// checked as o1.
func TestRedteamQueryOfferID(t *testing.T) {
	for _, q := range []string{"?offerId=o9", "?OFFERID=o9", "?offer%49d=o9", "?a=1&offerId=o9", "?offerId=o1&offerId=o9", "?offerId=%6F9"} {
		h := newHarness(t, configOf(flexPolicy()))
		h.up.offers = []string{"o1"}
		expect(t, h.do("POST", "/GetOffersForProviderPost", "{}", flexToken("t1")...), 200, "")
		h.clock.Advance(3 * time.Second)
		w := h.do("POST", "/AcceptOffer"+q, `{"offerId":"o1"}`, flexToken("t1")...)
		expect(t, w, 403, "unseen-offer")
		if n := h.upstreamSaw("/AcceptOffer"); n != 0 {
			t.Fatalf("%s: the offer service got the accept", q)
		}
	}
	// The same id in the query, or other parameters, change nothing.
	for _, q := range []string{"?offerId=o1", "?offerId=%6F1", "?x=o9"} {
		h := newHarness(t, configOf(flexPolicy()))
		h.up.offers = []string{"o1"}
		expect(t, h.do("POST", "/GetOffersForProviderPost", "{}", flexToken("t1")...), 200, "")
		h.clock.Advance(3 * time.Second)
		expect(t, h.do("POST", "/AcceptOffer"+q, `{"offerId":"o1"}`, flexToken("t1")...), 200, "")
	}
}

// TestRedteamBodyTricks: accept bodies a lenient offer service may read an offer id from while
// the gateway cannot are refused (requireShown: unseen-offer; minReactionTime without it:
// unreadable-offer), never forwarded unchecked. These pass as the gateway stood; they pin it.
func TestRedteamBodyTricks(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"offerId":"o9"}`))
	zw.Close()
	cases := []struct {
		name, body string
		hdr        []string
	}{
		{"gzip", gz.String(), []string{"Content-Encoding", "gzip"}},
		{"form", "offerId=o9", []string{"Content-Type", "application/x-www-form-urlencoded"}},
		{"multipart", "--b\r\nContent-Disposition: form-data; name=\"offerId\"\r\n\r\no9\r\n--b--\r\n",
			[]string{"Content-Type", "multipart/form-data; boundary=b"}},
		{"bom", "\ufeff{\"offerId\":\"o9\"}", nil},
		{"comment", `{/*x*/"offerId":"o9"}`, nil},
		{"nan", `{"offerId":NaN}`, nil},
		{"single quotes", `{'offerId':'o9'}`, nil},
		{"trailing comma", `{"offerId":"o9",}`, nil},
		{"two documents", `{"offerId":"o1"}{"offerId":"o9"}`, nil},
		{"duplicate", `{"offerId":"o1","offerId":"o9"}`, nil},
		{"folded duplicate", `{"offerId":"o1","OFFERID":"o9"}`, nil},
		{"float", `{"offerId":9.0}`, nil},
		{"utf16", "\xff\xfe{\x00\"\x00o\x00\"\x00}\x00", []string{"Content-Type", "application/json; charset=utf-16"}},
		{"too large", `{"pad":"` + strings.Repeat("x", 70<<10) + `","offerId":"o1"}`, nil},
	}
	for _, c := range cases {
		for _, requireShown := range []bool{true, false} {
			p := flexPolicy()
			p.Accept.RequireShown = requireShown
			h := newHarness(t, configOf(p))
			h.up.offers = []string{"o1"}
			expect(t, h.do("POST", "/GetOffersForProviderPost", "{}", flexToken("t1")...), 200, "")
			h.clock.Advance(3 * time.Second)
			w := h.do("POST", "/AcceptOffer", c.body, append(flexToken("t1"), c.hdr...)...)
			if requireShown {
				expect(t, w, 403, "unseen-offer")
			} else {
				expect(t, w, 400, "unreadable-offer")
			}
			if n := h.upstreamSaw("/AcceptOffer"); n != 0 {
				t.Fatalf("%s: the offer service got the accept", c.name)
			}
		}
	}
}

// TestRedteamReactionEdge: an accept exactly minReactionTime after the offer was shown passes,
// one nanosecond earlier is too-fast, and a too-fast answer says nothing of the time left
// (no Retry-After, no RateLimit fields).
func TestRedteamReactionEdge(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()))
	h.up.offers = []string{"o9"}
	expect(t, h.do("GET", "/offers", "", drv("t1")...), 200, "")
	h.clock.Advance(800*time.Millisecond - time.Nanosecond)
	w := h.do("POST", "/offers/o9/accept", "", drv("t1")...)
	expect(t, w, 429, "too-fast")
	for _, k := range []string{"Retry-After", "Ratelimit", "Ratelimit-Policy"} {
		if v := w.Header().Get(k); v != "" {
			t.Fatalf("too-fast carries %s: %s", k, v)
		}
	}
	h.clock.Advance(time.Nanosecond)
	expect(t, h.do("POST", "/offers/o9/accept", "", drv("t1")...), 200, "")
}

// TestRedteamLongFeedForgetsShown: a driver remembers the last 64 offers shown. A feed answer
// listing more forgets the first of them at once: with requireShown an honest driver's accept
// of an offer near the top of a long list is refused unseen-offer; without it a bot accepts
// such an offer with no reaction-time check at all.
func TestRedteamLongFeedForgetsShown(t *testing.T) {
	t.Skip("finding: shown-offer ring of 64 per driver; a feed answer of more than 64 offers forgets the first ones (a design bound: docs/gateway.md#open-findings-red-team-issue-12)")
	p := standardPolicy()
	p.Accept.RequireShown = false
	h := newHarness(t, configOf(p))
	var offers []string
	for i := range 100 {
		offers = append(offers, fmt.Sprintf("o%d", i))
	}
	h.up.offers = offers
	expect(t, h.do("GET", "/offers", "", drv("t1")...), 200, "")
	expect(t, h.do("POST", "/offers/o0/accept", "", drv("t1")...), 429, "too-fast")
}

// tunnelUpstream is an offer service that honours "Upgrade: h2c" the way a lax h2c server
// does: it answers 101 and then serves the connection itself (HTTP/1.1 here, which stands for
// the HTTP/2 a real one would speak), recording every request it serves there.
type tunnelUpstream struct {
	mu   sync.Mutex
	seen []string
}

func (u *tunnelUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "h2c") {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"offers":[]}`)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	brw.Flush()
	for {
		req, err := http.ReadRequest(brw.Reader)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		u.mu.Lock()
		u.seen = append(u.seen, req.Method+" "+req.URL.Path)
		u.mu.Unlock()
		_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		brw.Flush()
	}
}

// TestRedteamH2CUpgrade: "Upgrade: h2c" (with HTTP2-Settings not named in Connection, so that
// the proxy keeps it) on any path turned the client's connection into a tunnel to the offer
// service once the service switched protocols: every request after it, accepts included,
// reached the service without the gateway seeing it (h2c smuggling). The gateway forwards no
// h2c upgrade: the request goes on as plain HTTP/1.1.
func TestRedteamH2CUpgrade(t *testing.T) {
	up := &tunnelUpstream{}
	us := httptest.NewServer(up)
	t.Cleanup(us.Close)
	h := newHarness(t, configOf(standardPolicy()), func(o *Options) { o.Upstream, _ = url.Parse(us.URL) })
	srv := h.g.NewServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	for _, upgrade := range []string{"h2c", "H2C", "websocket, h2c"} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /health HTTP/1.1\r\nHost: x\r\nX-Driver-Id: t1\r\nConnection: Upgrade\r\nUpgrade: %s\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", upgrade)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// Whatever the answer, the next request on the connection must be the gateway's.
		fmt.Fprintf(c, "POST /offers/o9/accept HTTP/1.1\r\nHost: x\r\nX-Driver-Id: t1\r\nContent-Length: 0\r\n\r\n")
		resp, err = http.ReadResponse(br, nil)
		c.Close()
		up.mu.Lock()
		seen := append([]string(nil), up.seen...)
		up.mu.Unlock()
		if len(seen) > 0 {
			t.Fatalf("%s: the offer service served %v through a tunnel", upgrade, seen)
		}
		if err != nil || resp.StatusCode != 403 || resp.Header.Get(HeaderDecision) != "unseen-offer" {
			t.Fatalf("%s: the accept after the upgrade: %v %v", upgrade, resp, err)
		}
	}
}

// TestRedteamPipelining: HTTP/1.1 requests pipelined on one connection are decided one by one
// like any others: of five polls written at once, one reaches the offer service.
func TestRedteamPipelining(t *testing.T) {
	h := newHarness(t, configOf(standardPolicy()))
	srv := h.g.NewServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, strings.Repeat("GET /offers HTTP/1.1\r\nHost: x\r\nX-Driver-Id: t1\r\n\r\n", 5))
	br := bufio.NewReader(c)
	var codes []int
	for range 5 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if fmt.Sprint(codes) != "[200 429 429 429 429]" || h.upstreamSaw("/offers") != 1 {
		t.Fatalf("pipelined polls: %v, the offer service saw %d", codes, h.upstreamSaw("/offers"))
	}
}

// BenchmarkIdentityKey is the key of a driver from its identity header (identity.go) against
// the hash of the exact bytes it replaced: a lower-case driver id (hashed as it is), and a
// Flex-like access token of 360 characters with upper case (folded into a buffer).
func BenchmarkIdentityKey(b *testing.B) {
	seed := maphash.MakeSeed()
	tok := "Atza|" + strings.Repeat("IwEBIAbCdEfGhIjK", 22) + "xyz"
	for _, c := range []struct{ name, v string }{{"driver-id", "driver-000123"}, {"token", tok}} {
		b.Run(c.name+"/exact-bytes", func(b *testing.B) {
			for b.Loop() {
				keySink = maphash.String(seed, c.v)
			}
		})
		b.Run(c.name+"/identityKey", func(b *testing.B) {
			vs := []string{c.v}
			b.ReportAllocs()
			for b.Loop() {
				keySink, _ = identityKey(localHasher(seed), vs)
			}
		})
	}
}

var keySink uint64

// BenchmarkRouteRequestWithIdentity is BenchmarkRouteRequest's ordinary requests with the
// identity header, which adds the reading of a router that ignores the method.
func BenchmarkRouteRequestWithIdentity(b *testing.B) {
	_, p := benchGateway(b, nil)
	for _, c := range []struct{ name, method, target string }{
		{"feed", "GET", "/offers?area=north"},
		{"accept", "POST", "/offers/o-000123/accept"},
		{"other", "GET", "/drivers/me"},
	} {
		b.Run(c.name, func(b *testing.B) {
			r := httptest.NewRequest(c.method, c.target, nil)
			r.Header.Set(p.identity, "driver-000123")
			b.ReportAllocs()
			for b.Loop() {
				routeSink = routeOnce(p, r)
			}
		})
	}
}

// identityRef is identity.go's rule written plainly: the elements of every line, trimmed,
// empty ones dropped, runs of spaces and tabs as one space, in lower case; no byte outside
// visible ASCII; all elements alike.
func identityRef(vs []string) (string, bool) {
	var id string
	found := false
	for _, v := range vs {
		for _, e := range strings.Split(v, ",") {
			e = strings.Join(strings.FieldsFunc(e, func(r rune) bool { return r == ' ' || r == '\t' }), " ")
			if e == "" {
				continue
			}
			for i := 0; i < len(e); i++ {
				if c := e[i]; (c < 0x21 || c > 0x7e) && c != ' ' {
					return "", false
				}
			}
			e = strings.ToLower(e)
			if found && e != id {
				return "", false
			}
			id, found = e, true
		}
	}
	return id, found
}

// FuzzIdentityKey: identityKey (8-byte folding, the slow path for white space, buffers of 64
// and 512 bytes) names the same identity as the plain rule, and keys it as the plain rule's
// identity hashed whole.
func FuzzIdentityKey(f *testing.F) {
	for _, s := range []string{"t1", "T1,", "t1, t2", "Bearer  abc", "a\tb", "té", "\x7f", "@[`{AZaz",
		strings.Repeat("AbCdEfGh", 70) + "Z", "x, ,X", strings.Repeat("q", 64), strings.Repeat("Q", 65)} {
		f.Add(s, "")
		f.Add(s, strings.ToUpper(s))
	}
	seed := maphash.MakeSeed()
	f.Fuzz(func(t *testing.T, a, b string) {
		vs := []string{a}
		if b != "" {
			vs = append(vs, b)
		}
		want, wok := identityRef(vs)
		got, ok := identityKey(localHasher(seed), vs)
		if ok != wok || ok && got != maphash.String(seed, want) {
			t.Fatalf("identityKey(%q) = %x, %v; the rule says %q, %v", vs, got, ok, want, wok)
		}
	})
}

// serveOnLoopback serves the harness's gateway with NewServer on a loopback port.
func (h *harness) serveOnLoopback(t *testing.T) string {
	srv := h.g.NewServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestRedteamBodyFraming: Expect: 100-continue and a chunked body split inside the offer id
// (with a trailer) are read like any body: the accept of an offer never shown is refused.
func TestRedteamBodyFraming(t *testing.T) {
	h := newHarness(t, configOf(flexPolicy()))
	addr := h.serveOnLoopback(t)
	for _, req := range []struct{ head, body string }{
		{"Expect: 100-continue\r\nContent-Length: 16\r\n", `{"offerId":"o9"}`},
		{"Transfer-Encoding: chunked\r\nTrailer: X-Offer-Id\r\n", "b\r\n{\"offerId\":\r\n5\r\n\"o9\"}\r\n0\r\nX-Offer-Id: o1\r\n\r\n"},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "POST /AcceptOffer HTTP/1.1\r\nHost: x\r\nX-Amz-Access-Token: t1\r\nContent-Type: application/json\r\n%s\r\n", req.head)
		if strings.Contains(req.head, "Expect") {
			line, err := br.ReadString('\n')
			if err != nil || !strings.Contains(line, "100") {
				t.Fatalf("no 100 Continue: %q %v", line, err)
			}
			_, _ = br.ReadString('\n')
		}
		_, _ = io.WriteString(c, req.body)
		resp, err := http.ReadResponse(br, nil)
		c.Close()
		if err != nil || resp.StatusCode != 403 || resp.Header.Get(HeaderDecision) != "unseen-offer" {
			t.Fatalf("%q: %v %v", req.head, resp, err)
		}
	}
	if n := h.upstreamSaw("/AcceptOffer"); n != 0 {
		t.Fatalf("the offer service got %d accepts", n)
	}
}

// TestRedteamUnshownVariantSkipsReaction: without requireShown an accept for an offer the
// driver was never shown is not checked for reaction time (by design: docs/gateway.md,
// "Reaction time"), and the gateway does not fold offer ids. So against an offer service that
// takes "O9" or "o9 " for o9 (a case-insensitive collation, a trimming lookup), a bot accepts
// o9 the moment it is shown, and with accept.fairness it gets a draw of its own that closes
// before the honest drivers' draw for o9.
func TestRedteamUnshownVariantSkipsReaction(t *testing.T) {
	t.Skip("finding: without requireShown, an offer-id variant (O9 for o9) skips minReactionTime and the fair draw; set requireShown (docs/gateway.md#open-findings-red-team-issue-12)")
	p := standardPolicy()
	p.Accept.RequireShown = false
	h := newHarness(t, configOf(p))
	h.up.offers = []string{"o9"}
	expect(t, h.do("GET", "/offers", "", drv("t1")...), 200, "")
	expect(t, h.do("POST", "/offers/O9/accept", "", drv("t1")...), 429, "too-fast")
}

// TestRedteamDrawTicketsByIdentitySpelling: with accept.fairness and the Random award, every
// spelling of one identity was a candidate of its own, so a bot that sent "t1", "T1", "t1,"
// and " t1, t1" held four tickets in the offer's draw against an honest driver's one. They are
// one driver now: the second spelling is answered 409 duplicate-accept at once.
func TestRedteamDrawTicketsByIdentitySpelling(t *testing.T) {
	h := newDrawHarness(t, fairPolicy("Random"))
	first := h.hold("o9", "t1")
	for _, v := range []string{"T1", "t1,", "t1, t1"} {
		a := <-h.accept(context.Background(), v, "o9")
		if a.code != 409 || a.decision != "duplicate-accept" {
			t.Fatalf("%q: %d %q, want 409 duplicate-accept", v, a.code, a.decision)
		}
	}
	if n := h.held("o9"); n != 1 {
		t.Fatalf("%d candidates in the draw, want 1", n)
	}
	h.clock.Advance(3 * time.Second)
	if a := <-first[0]; a.code != 200 {
		t.Fatalf("the one candidate: %d %q", a.code, a.decision)
	}
}
