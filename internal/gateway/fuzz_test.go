package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"hash/maphash"
	"io"
	"math/bits"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

var testSeed = maphash.MakeSeed()

// scanAll runs the shown-offers scanner over doc in chunks of size chunk and returns the
// hashes it found.
func scanAll(path jsonPath, doc []byte, chunk int) (ids []uint64, ok bool) {
	sc := newJSONScanner(path, localHasher(testSeed), func(h uint64) { ids = append(ids, h) })
	if chunk < 1 {
		chunk = 1
	}
	for len(doc) > 0 {
		n := min(chunk, len(doc))
		_, _ = sc.Write(doc[:n])
		doc = doc[n:]
	}
	sc.Finish()
	return ids, sc.Complete()
}

// reference walks a document decoded by encoding/json and returns the hashes of the scalar
// values at path (strings by content, numbers by literal text), in document order.
func reference(path jsonPath, doc []byte) ([]uint64, bool) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false // trailing data
	}
	var out []uint64
	var walk func(v any, steps jsonPath)
	walk = func(v any, steps jsonPath) {
		if len(steps) == 0 {
			switch x := v.(type) {
			case string:
				if len(x) <= maxIDLen {
					out = append(out, maphash.String(testSeed, x))
				}
			case json.Number:
				out = append(out, maphash.String(testSeed, string(x)))
			}
			return
		}
		st := steps[0]
		if st.elem {
			if a, ok := v.([]any); ok {
				for _, e := range a {
					walk(e, steps[1:])
				}
			}
			return
		}
		if m, ok := v.(map[string]any); ok {
			if e, ok := m[st.name]; ok {
				walk(e, steps[1:])
			}
		}
	}
	walk(v, path)
	return out, true
}

func TestJSONScanner(t *testing.T) {
	cases := []struct {
		path, doc string
		want      []string
	}{
		{"offers[].id", `{"offers":[{"id":"o1"},{"id":"o2","x":{"id":"no"}},{"nope":1},{"id":17}],"id":"top"}`, []string{"o1", "o2", "17"}},
		{"offerList[].offerId", `{"offerList":[{"rateInfo":{"offerId":"no"},"offerId":"A\u00e9\"1"}]}`, []string{"Aé\"1"}},
		{"[].id", ` [ {"id" : "a"} , {"id":"b"} ] `, []string{"a", "b"}},
		{"a.b[].c[]", `{"a":{"b":[{"c":["x","y"]},{"c":"z"}]}}`, []string{"x", "y"}},
		{"offers[].id", `{"offers":{"id":"not-an-array"}}`, nil},
		{"offers[].id", `{"offers":[{"id":"\ud83d\ude00"},{"id":"\ud83d"}]}`, []string{"😀", "\uFFFD"}},
		{"offers[].id", `{"offers":[{"id":["deep"]},{"id":{"x":1}},{"id":true},{"id":null}]}`, nil},
	}
	for _, tc := range cases {
		p, err := compileJSONPath(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for _, s := range tc.want {
			want = append(want, maphash.String(testSeed, s))
		}
		for _, chunk := range []int{1, 3, 1 << 20} {
			got, ok := scanAll(p, []byte(tc.doc), chunk)
			if !ok || !slices.Equal(got, want) {
				t.Errorf("%s in %s (chunk %d): got %v ok=%v, want %v", tc.path, tc.doc, chunk, got, ok, tc.want)
			}
		}
	}
	for _, bad := range []string{`{"a":}`, `{"a" 1}`, `[1,]x`, `{"a":"\x"}`, `tru`, `{"a":1}}`, "\"a\x01\"", strings.Repeat("[", 70) + strings.Repeat("]", 70)} {
		if _, ok := scanAll(jsonPath{{name: "a"}}, []byte(bad), 2); ok {
			t.Errorf("%q scanned as JSON", bad)
		}
	}
}

func TestOfferIDFromJSON(t *testing.T) {
	path := jsonPath{{name: "offerId", fold: true}}
	h := func(s string) uint64 { return maphash.String(testSeed, s) }
	cases := []struct {
		doc  string
		want string // "" means no id
	}{
		{`{"offerId":"A1"}`, "A1"},
		{`{"offerid":"A1"}`, "A1"}, // encoding/json matches field names in any case
		{`{"offerId":12345}`, "12345"},
		{`{"x":{"offerId":"no"},"offerId":"A1"}`, "A1"},
		{`{"offerId":"A1","OfferId":"A1"}`, "A1"},
		{`{"offerId":"A1","OfferId":"B2"}`, ""},
		{`{"offerId":{"id":"A1"}}`, ""},
		{`{"offerId":"A1"} x`, ""},
		{`["offerId","A1"]`, ""},
		{``, ""},
	}
	for _, tc := range cases {
		id, ok := offerIDFromJSON([]byte(tc.doc), path, localHasher(testSeed))
		if (tc.want == "") == ok || ok && id != h(tc.want) {
			t.Errorf("%s: got %v %v, want %q", tc.doc, id, ok, tc.want)
		}
	}
}

// FuzzShownOffers: the streaming scanner never panics, allocates nothing per byte, accepts no
// document that encoding/json refuses, and on valid JSON finds exactly the values
// encoding/json finds, whatever the chunking.
func FuzzShownOffers(f *testing.F) {
	f.Add("offers[].id", []byte(`{"offers":[{"id":"o1"},{"id":2}]}`), uint8(3))
	f.Add("offerList[].offerId", []byte(`{"offerList":[{"offerId":"A\u0041"}],"x":[1,2,{"y":null}]}`), uint8(1))
	f.Add("[].id", []byte(`[{"id":"a"},{"id":"b\n"}]`), uint8(7))
	f.Add("a.b", []byte(`{"a":{"b":-1.5e3}}`), uint8(2))
	f.Add("a", []byte(`"\ud800\udc00"`), uint8(1))
	f.Add("a", []byte(`{"a":[01,1.,-,1e+,.5]}`), uint8(1))
	f.Add("a", []byte(`-0.0e-0`), uint8(2))
	f.Fuzz(func(t *testing.T, jp string, doc []byte, chunk uint8) {
		p, err := compileJSONPath(jp)
		if err != nil || !validJSONPath(jp) {
			return
		}
		got, ok := scanAll(p, doc, int(chunk))
		want, wantOK := reference(p, doc)
		if ok && !wantOK {
			t.Fatalf("path %s doc %q: scanned as JSON, encoding/json refuses it", jp, doc)
		}
		if wantOK && (!ok || !slices.Equal(got, want)) {
			if bytes.Count(doc, []byte("["))+bytes.Count(doc, []byte("{")) < maxScanDepth {
				t.Fatalf("path %s doc %q: scanner %v ok=%v, encoding/json %v", jp, doc, got, ok, want)
			}
		}
		// Bounded allocation: scanning allocates nothing, whatever the input.
		sc := newJSONScanner(p, localHasher(testSeed), func(uint64) {})
		if a := testing.AllocsPerRun(1, func() { _, _ = sc.Write(doc) }); a > 0 {
			t.Fatalf("scanner allocated %v times", a)
		}
	})
}

func validJSONPath(s string) bool {
	p := gatewayconfig.Policy{Name: "p", Mode: gatewayconfig.ModeEnforce, IdentityHeader: "X", Selector: standardPolicy().Selector,
		Feed:        &gatewayconfig.Feed{Method: "GET", Path: "/", MinInterval: gatewayconfig.Duration(1e9), Burst: 1},
		ShownOffers: &gatewayconfig.ShownOffers{JSONPath: s}}
	return gatewayconfig.Validate(&gatewayconfig.Config{SchemaVersion: 1, Policies: []gatewayconfig.Policy{p}}) == nil
}

// FuzzPathTemplate: matching never panics, and a path built from a template with any offer id
// matches it and yields that id.
func FuzzPathTemplate(f *testing.F) {
	f.Add("/offers/{offerId}/accept", "o1", "/offers/o1/accept")
	f.Add("/AcceptOffer", "", "/AcceptOffer/")
	f.Add("/a/{offerId}", "x/y", "/a/x%2Fy")
	f.Add("/{offerId}/", "..", "//../a/./b")
	f.Fuzz(func(t *testing.T, tmpl, id, path string) {
		a := &gatewayconfig.Accept{Method: "POST", PathTemplate: tmpl, RequireShown: true}
		if !strings.Contains(tmpl, gatewayconfig.OfferIDSegment) {
			a.OfferIDField = "offerId"
		}
		p := gatewayconfig.Policy{Name: "p", Mode: gatewayconfig.ModeEnforce, IdentityHeader: "X", Selector: standardPolicy().Selector, Accept: a,
			Feed:        &gatewayconfig.Feed{Method: "GET", Path: "/f", MinInterval: gatewayconfig.Duration(1e9), Burst: 1},
			ShownOffers: &gatewayconfig.ShownOffers{JSONPath: "a"}}
		if gatewayconfig.Validate(&gatewayconfig.Config{SchemaVersion: 1, Policies: []gatewayconfig.Policy{p}}) != nil {
			return
		}
		r := compileAcceptRoute(a)
		var rp reqPath
		rp.normalize(path)
		r.match("POST", &rp, false)
		// Bounded allocation: none for a plain path of at most 16 segments; otherwise one per
		// percent-escaped segment plus the growth of the segment list.
		limit := float64(strings.Count(path, "%") + bits.Len(uint(len(path))) + 1)
		if !strings.Contains(path, "%") && strings.Count(path, "/") <= 16 {
			limit = 0
		}
		if n := testing.AllocsPerRun(1, func() { rp.normalize(path); r.match("POST", &rp, false) }); n > limit {
			t.Fatalf("%q: %v allocations, limit %v", path, n, limit)
		}
		if a.OfferIDField != "" || id == "" || id == "." || id == ".." || slices.ContainsFunc(strings.Split(tmpl, "/"), func(s string) bool {
			u, _ := url.PathUnescape(s)
			return u == "." || u == ".."
		}) {
			return
		}
		built := strings.Replace(tmpl, gatewayconfig.OfferIDSegment, url.PathEscape(id), 1)
		rp.normalize(built)
		got, ok := r.match("POST", &rp, false)
		if !ok || got != id {
			t.Fatalf("template %s, id %q: path %s matched %v with id %q", tmpl, id, built, ok, got)
		}
	})
}

// refRouter is a reference model of a lenient offer-service router, written for this test
// apart from lenient.go, for the standard policy's routes (GET /offers, POST
// /offers/{offerId}/accept): it takes HEAD for GET and honours X-HTTP-Method-Override,
// X-HTTP-Method, X-Method-Override and a _method query parameter, and routes the path of
// X-Original-URL or X-Rewrite-URL when there is one as well as the request's; it decodes a path 0 to 3
// times (url.PathUnescape), cuts a decoded path at '?' or '#', treats '\' as '/', drops NUL
// bytes, strips ";params" and trailing dots and spaces from segments, cleans dot segments
// (path.Clean) and matches literal segments in any case. It also splits the raw path the way
// Tomcat does (";params" cut before each segment is decoded). It returns every (route, offer
// id) it could take the request for.
func refRouter(method string, hdr http.Header, escapedPath, rawQuery string) (routes [][2]string) {
	methods := []string{strings.ToUpper(method)}
	if methods[0] == "HEAD" {
		methods = append(methods, "GET")
	}
	for k, vs := range hdr {
		switch strings.ToLower(k) {
		case "x-http-method-override", "x-http-method", "x-method-override":
			for _, v := range vs {
				for _, m := range strings.Split(v, ",") {
					methods = append(methods, strings.ToUpper(strings.TrimSpace(m)))
				}
			}
		}
	}
	for _, kv := range strings.FieldsFunc(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, _ := strings.Cut(kv, "=")
		if dk, err := url.QueryUnescape(k); err == nil && strings.ToLower(dk) == "_method" {
			dv, _ := url.QueryUnescape(v)
			methods = append(methods, strings.ToUpper(strings.TrimSpace(dv)))
		}
	}
	paths := []string{escapedPath}
	for k, vs := range hdr {
		switch strings.ToLower(k) {
		case "x-original-url", "x-rewrite-url":
			for _, v := range vs {
				if u, err := url.Parse(v); err == nil {
					paths = append(paths, u.EscapedPath())
				}
			}
		}
	}
	for _, p := range paths {
		routes = append(routes, refRoutes(methods, p)...)
	}
	return routes
}

// refRoutes is refRouter's reading of one escaped path with each of the methods.
func refRoutes(methods []string, escapedPath string) (routes [][2]string) {
	var segLists [][]string
	clean := func(segs []string) []string {
		var out []string
		for _, s := range segs {
			s = strings.ReplaceAll(s, "\x00", "")
			if s != "." && s != ".." {
				s = strings.TrimRight(s, ". ")
			}
			out = append(out, s)
		}
		c := path.Clean("/" + strings.Join(out, "/"))
		return strings.Split(strings.Trim(c, "/"), "/")
	}
	p := escapedPath
	for d := 0; d <= 3; d++ {
		if d > 0 {
			u, err := url.PathUnescape(p)
			if err != nil {
				break
			}
			p = u
		}
		s := p
		if d > 0 {
			if i := strings.IndexAny(s, "?#"); i >= 0 {
				s = s[:i]
			}
		}
		var segs []string
		for _, seg := range strings.Split(strings.ReplaceAll(s, `\`, "/"), "/") {
			seg, _, _ = strings.Cut(seg, ";")
			segs = append(segs, seg)
		}
		segLists = append(segLists, clean(segs))
	}
	// Tomcat: cut ";params", then decode each segment; a decoded '/' stays in its segment.
	var tomcat []string
	for _, seg := range strings.FieldsFunc(escapedPath, func(r rune) bool { return r == '/' || r == '\\' }) {
		seg, _, _ = strings.Cut(seg, ";")
		if u, err := url.PathUnescape(seg); err == nil {
			seg = u
		}
		seg = strings.ReplaceAll(seg, "\x00", "")
		switch seg {
		case "", ".":
			continue
		case "..":
			if len(tomcat) > 0 {
				tomcat = tomcat[:len(tomcat)-1]
			}
			continue
		}
		if seg = strings.TrimRight(seg, ". "); seg != "" {
			tomcat = append(tomcat, seg)
		}
	}
	segLists = append(segLists, tomcat)
	for _, m := range methods {
		for _, segs := range segLists {
			switch {
			case m == "GET" && len(segs) == 1 && strings.EqualFold(segs[0], "offers"):
				routes = append(routes, [2]string{"feed", ""})
			case m == "POST" && len(segs) == 3 && strings.EqualFold(segs[0], "offers") && segs[1] != "" && strings.EqualFold(segs[2], "accept"):
				routes = append(routes, [2]string{"accept", segs[1]})
			}
		}
	}
	return routes
}

// recordingTransport is an in-memory offer service: it keeps every request the gateway
// forwards and answers feed polls with offer o1.
type recordingTransport struct{ seen []*http.Request }

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.seen = append(rt.seen, r)
	body := ""
	if st := stateFrom(r.Context()); st != nil && st.route == routeFeed {
		body = `{"offers":[{"id":"o1"}]}`
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
}

// FuzzLenientRouting: no request reaches the offer service ungoverned if the reference
// lenient router (refRouter) would take it for the feed or an accept. The gateway enforces the
// standard policy; the driver was shown offer o1 only, so the gateway forwards accepts for o1
// only: a forwarded request that refRouter reads as an accept must be an accept for o1 to the
// gateway too, and one it reads as a feed poll must be a feed poll to the gateway.
func FuzzLenientRouting(f *testing.F) {
	for _, s := range []struct{ method, target, override string }{
		{"POST", "/offers/o9%2Faccept", ""},
		{"POST", "/offers/o1/accept", ""},
		{"POST", "/offers/o1%2F..%2Fo9/accept", ""},
		{"POST", "/offers/o1;x/accept", ""},
		{"POST", "/offers/o9%252Faccept", ""},
		{"POST", "/OFFERS/o9/ACCEPT", ""},
		{"POST", "/offers/o9/accept.", ""},
		{"POST", "/offers/o9/accept%00", ""},
		{"POST", `/offers/o9\accept`, ""},
		{"POST", "http://h/offers/o9%5Caccept", ""},
		{"HEAD", "/offers", ""},
		{"GET", "/offers;x", ""},
		{"GET", "/offers%23", ""},
		{"GET", "/offers/o9/accept", "POST"},
		{"GET", "/offers/o9/accept?_method=POST", ""},
		{"PUT", "/offers", "GET, POST"},
		{"GET", "/offers?area=1", ""},
		{"GET", "/x/..%2F..%2Foffers", ""},
	} {
		f.Add(s.method, s.target, s.override, uint8(0))
	}
	f.Add("POST", "/health", "/offers/o9%2Faccept", uint8(4))
	f.Add("GET", "/other", "http://h/Offers", uint8(5))
	rt := &recordingTransport{}
	clock := newFakeClock()
	u, _ := url.Parse("http://offer-service.invalid")
	g, err := New(Options{Upstream: u, Transport: rt, Clock: clock, PodLabels: map[string]string{"app": "offer-service"}})
	if err != nil {
		f.Fatal(err)
	}
	p := standardPolicy()
	p.Accept.MaxAccepts, p.Accept.Window = 0, 0
	if err := g.Apply(configOf(p)); err != nil {
		f.Fatal(err)
	}
	show := httptest.NewRequest("GET", "/offers", nil)
	show.Header.Set("X-Driver-Id", "d1")
	g.ServeHTTP(httptest.NewRecorder(), show)
	overrideNames := []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "x-http-method-override",
		"X-Original-URL", "X-Rewrite-URL"}
	f.Fuzz(func(t *testing.T, method, target, override string, which uint8) {
		raw := method + " " + target + " HTTP/1.1\r\nHost: offers.example\r\nX-Driver-Id: d1\r\nContent-Length: 0\r\n"
		if override != "" {
			raw += overrideNames[int(which)%len(overrideNames)] + ": " + override + "\r\n"
		}
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + "\r\n")))
		if err != nil {
			return // the server would answer 400 itself
		}
		clock.Advance(time.Hour) // every poll paced out, every reaction time passed
		rt.seen = rt.seen[:0]
		g.ServeHTTP(httptest.NewRecorder(), r)
		for _, out := range rt.seen {
			gw := routeOther
			if st := stateFrom(out.Context()); st != nil {
				gw = st.route
			}
			for _, ref := range refRouter(out.Method, out.Header, out.URL.EscapedPath(), out.URL.RawQuery) {
				switch {
				case routeNames[gw] != ref[0]:
					t.Fatalf("%q: the offer service may take it for %s %q; the gateway forwarded it as %s", raw, ref[0], ref[1], routeNames[gw])
				case ref[0] == "accept" && ref[1] != "o1":
					t.Fatalf("%q: the offer service may take it for an accept of %q; the gateway checked another offer", raw, ref[1])
				}
			}
		}
	})
}
