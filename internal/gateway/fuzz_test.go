package gateway

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"io"
	"math/bits"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

var testSeed = maphash.MakeSeed()

// scanAll runs the shown-offers scanner over doc in chunks of size chunk and returns the
// hashes it found.
func scanAll(path jsonPath, doc []byte, chunk int) (ids []uint64, ok bool) {
	sc := newJSONScanner(path, testSeed, func(h uint64) { ids = append(ids, h) })
	if chunk < 1 {
		chunk = 1
	}
	for len(doc) > 0 {
		n := min(chunk, len(doc))
		sc.Write(doc[:n])
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
		id, ok := offerIDFromJSON([]byte(tc.doc), path, testSeed)
		if (tc.want == "") == ok || ok && id != h(tc.want) {
			t.Errorf("%s: got %v %v, want %q", tc.doc, id, ok, tc.want)
		}
	}
}

// FuzzShownOffers: the streaming scanner never panics, allocates nothing per byte, and on
// valid JSON finds exactly the values encoding/json finds, whatever the chunking.
func FuzzShownOffers(f *testing.F) {
	f.Add("offers[].id", []byte(`{"offers":[{"id":"o1"},{"id":2}]}`), uint8(3))
	f.Add("offerList[].offerId", []byte(`{"offerList":[{"offerId":"A\u0041"}],"x":[1,2,{"y":null}]}`), uint8(1))
	f.Add("[].id", []byte(`[{"id":"a"},{"id":"b\n"}]`), uint8(7))
	f.Add("a.b", []byte(`{"a":{"b":-1.5e3}}`), uint8(2))
	f.Add("a", []byte(`"\ud800\udc00"`), uint8(1))
	f.Fuzz(func(t *testing.T, jp string, doc []byte, chunk uint8) {
		p, err := compileJSONPath(jp)
		if err != nil || !validJSONPath(jp) {
			return
		}
		got, ok := scanAll(p, doc, int(chunk))
		want, wantOK := reference(p, doc)
		if wantOK && (!ok || !slices.Equal(got, want)) {
			if bytes.Count(doc, []byte("["))+bytes.Count(doc, []byte("{")) < maxScanDepth {
				t.Fatalf("path %s doc %q: scanner %v ok=%v, encoding/json %v", jp, doc, got, ok, want)
			}
		}
		// Bounded allocation: scanning allocates nothing, whatever the input.
		sc := newJSONScanner(p, testSeed, func(uint64) {})
		if a := testing.AllocsPerRun(1, func() { sc.Write(doc) }); a > 0 {
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

// FuzzOfferIDFromBody: the accept body extractor never panics, allocates a bounded amount,
// and agrees with encoding/json decoding into a struct.
func FuzzOfferIDFromBody(f *testing.F) {
	f.Add([]byte(`{"offerId":"A1"}`))
	f.Add([]byte(`{"offerId":"A1","OFFERID":"B"}`))
	f.Add([]byte(`{"offerId":1e5,"x":[{"offerId":"no"}]}`))
	f.Add([]byte(`{"offerId":"\u00e9"}`))
	f.Add([]byte(`not json`))
	path := jsonPath{{name: "offerId", fold: true}}
	f.Fuzz(func(t *testing.T, body []byte) {
		id, ok := offerIDFromJSON(body, path, testSeed)
		var v struct {
			OfferID string `json:"offerId"`
		}
		if ok && json.Unmarshal(body, &v) == nil && v.OfferID != "" && maphash.String(testSeed, v.OfferID) != id {
			t.Fatalf("%q: extractor disagrees with encoding/json (%q)", body, v.OfferID)
		}
		if a := testing.AllocsPerRun(1, func() { offerIDFromJSON(body, path, testSeed) }); a > 3 {
			t.Fatalf("extractor allocated %v times", a)
		}
	})
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
		r.match("POST", &rp)
		// Bounded allocation: none for a plain path of at most 16 segments; otherwise one per
		// percent-escaped segment plus the growth of the segment list.
		limit := float64(strings.Count(path, "%") + bits.Len(uint(len(path))) + 1)
		if !strings.Contains(path, "%") && strings.Count(path, "/") <= 16 {
			limit = 0
		}
		if n := testing.AllocsPerRun(1, func() { rp.normalize(path); r.match("POST", &rp) }); n > limit {
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
		got, ok := r.match("POST", &rp)
		if !ok || got != id {
			t.Fatalf("template %s, id %q: path %s matched %v with id %q", tmpl, id, built, ok, got)
		}
	})
}
