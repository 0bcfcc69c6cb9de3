package gateway

import (
	"bytes"
	"encoding/json"
	"hash/maphash"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// TestFoldIntoASCII: exactly two runes outside ASCII fold to an ASCII letter (U+017F ſ to 's',
// U+212A Kelvin sign to 'k'), each at most 3 bytes long, so that a key longer than maxKeyLen
// can match no offerIdField.
func TestFoldIntoASCII(t *testing.T) {
	var into []rune
	longest := 0
	for r := rune(utf8.RuneSelf); r <= unicode.MaxRune; r++ {
		if foldKey(r) < utf8.RuneSelf {
			into = append(into, r)
			longest = max(longest, utf8.RuneLen(r))
		}
	}
	if !slices.Equal(into, []rune{'\u017f', '\u212a'}) {
		t.Errorf("runes outside ASCII that fold into it: %q", into)
	}
	if maxKeyLen < longest*gatewayconfig.MaxFieldLen {
		t.Errorf("maxKeyLen %d < %d × MaxFieldLen", maxKeyLen, longest)
	}
}

// TestOfferIDDifferentials: bodies on which a lenient or differently-folding reader could see
// another offer id than the gateway. want is the id the gateway reads, "" when it must call the
// id unknown; svc is what encoding/json decodes into a string field (json.Unmarshal), for the
// record (checked: the gateway never reads another id than the service).
func TestOfferIDDifferentials(t *testing.T) {
	long := strings.Repeat("x", maxIDLen+1)
	kelvins := strings.Repeat("\u212a", gatewayconfig.MaxFieldLen)
	cases := []struct {
		field, doc string
		want       string
	}{
		// Key folding: encoding/json folds ſ (U+017F) to s and the Kelvin sign to K, and the
		// last key that folds to the field wins.
		{"taskId", `{"taskId":"o1","ta\u017fkId":"o9"}`, ""},
		{"taskId", "{\"taskId\":\"o1\",\"ta\u017fkId\":\"o9\"}", ""},
		{"taskId", "{\"ta\u017fkId\":\"o9\"}", "o9"},
		{"taskId", `{"tas\u212aId":"o9"}`, "o9"},
		{"taskId", `{"taskId":"o1","tas\u212aId":"o9"}`, ""},
		{"taskId", `{"taskId":"o1","TASKID":"o1"}`, "o1"},
		{"offerId", `{"offer\u0049d":"o1"}`, "o1"},
		{"offerId", `{"offer\u0049d":"o1","offerId":"o2"}`, ""},
		{"offerId", `{"offerId":"o1","offerId":"o2"}`, ""},
		{"offerId", `{"offerId":"o1","offerId":null}`, "o1"},
		{"offerId", `{"offerId":"o1","offerId":{"id":"o2"}}`, "o1"},
		// Literals and containers are no id, and hide none nested in them.
		{"offerId", `{"offerId":true}`, ""},
		{"offerId", `{"offerId":null}`, ""},
		{"offerId", `{"offerId":["o1"]}`, ""},
		{"offerId", `{"x":{"offerId":"o1"}}`, ""},
		{"offerId", `{"offer_id":"o2","offerId":"o1","offer-id":"o3"}`, "o1"},
		// A key of 128 Kelvin signs (384 bytes) folds to a field of 128 k's.
		{strings.Repeat("k", gatewayconfig.MaxFieldLen), `{"` + strings.Repeat("k", gatewayconfig.MaxFieldLen) + `":"o1","` + kelvins + `":"o9"}`, ""},
		{strings.Repeat("k", gatewayconfig.MaxFieldLen), `{"` + kelvins + `":"o9"}`, "o9"},
		// Invalid UTF-8 and surrogates in keys match no ASCII field.
		{"offerId", "{\"offerI\xffd\":\"o9\",\"offerId\":\"o1\"}", "o1"},
		{"offerId", `{"offerI\ud800d":"o9","offerId":"o1"}`, "o1"},
		// ... and in values they read as U+FFFD, as in encoding/json.
		{"offerId", "{\"offerId\":\"o\xff1\"}", "o\uFFFD1"},
		{"offerId", `{"offerId":"o\ud8001"}`, "o\uFFFD1"},
		{"offerId", `{"offerId":"o\udc00\ud83d\ude00"}`, "o\uFFFD😀"},
		// Numbers and strings: a canonical integer reads as its text, like the string.
		{"offerId", `{"offerId":123}`, "123"},
		{"offerId", `{"offerId":"123","OFFERID":123}`, "123"},
		{"offerId", `{"offerId":0}`, "0"},
		{"offerId", `{"offerId":123.0}`, ""},
		{"offerId", `{"offerId":1.23e2}`, ""},
		{"offerId", `{"offerId":-0}`, ""},
		{"offerId", `{"offerId":"o1","x":1.5e3}`, "o1"},
		// Numbers that are not JSON.
		{"offerId", `{"offerId":0123}`, ""},
		{"offerId", `{"offerId":1.}`, ""},
		{"offerId", `{"offerId":-}`, ""},
		{"offerId", `{"offerId":1e}`, ""},
		{"offerId", `{"offerId":+1}`, ""},
		{"offerId", `{"offerId":1-2}`, ""},
		{"offerId", `{"offerId":"o1","x":.5}`, ""},
		// A value too long to hash is no id, and makes a second key unknown too.
		{"offerId", `{"offerId":"` + long + `"}`, ""},
		{"offerId", `{"offerid":"o1","offerId":"` + long + `"}`, ""},
		// Not one JSON document.
		{"offerId", "\ufeff{\"offerId\":\"o1\"}", ""},
		{"offerId", `{"offerId":"o1"} x`, ""},
		{"offerId", `{"offerId":"o1"}{"offerId":"o2"}`, ""},
		{"offerId", `{"offerId":"o1"`, ""},
		{"offerId", `{"offerId":"o1","x":` + strings.Repeat("[", maxScanDepth) + strings.Repeat("]", maxScanDepth) + `}`, ""},
		{"offerId", " \t\r\n{\"offerId\":\"o1\"} \t\r\n", "o1"},
	}
	for _, tc := range cases {
		path := jsonPath{{name: tc.field, fold: true}}
		id, ok := offerIDFromJSON([]byte(tc.doc), path, localHasher(testSeed))
		if (tc.want == "") == ok || ok && id != maphash.String(testSeed, tc.want) {
			t.Errorf("%s in %.80q: got ok=%v, want %q", tc.field, tc.doc, ok, tc.want)
		}
		if msg := differs(tc.field, []byte(tc.doc), id, ok); msg != "" {
			t.Errorf("%s in %.80q: %s", tc.field, tc.doc, msg)
		}
	}
}

// structFor returns a struct type with one field F of type typ named field in JSON, as a Go
// offer service would declare it.
func structFor(field string, typ reflect.Type) reflect.Type {
	return reflect.StructOf([]reflect.StructField{{Name: "F", Type: typ, Tag: reflect.StructTag(`json:"` + field + `"`)}})
}

// differs decodes doc with json.Unmarshal into a struct whose field field is a string, an
// int64, a float64 or a json.Number, as offer services declare ids, and reports how the id
// the gateway read (h, when ok) differs from one the service would act on. A field the
// decoder set counts even when Unmarshal also returned an error (a type mismatch of another
// key), for services that ignore such errors.
func differs(field string, doc []byte, h uint64, ok bool) string {
	if ok && !json.Valid(doc) {
		return "the gateway read an id from a document that is not JSON"
	}
	decode := func(typ reflect.Type, unset any) (any, bool) {
		v := reflect.New(structFor(field, typ))
		f := v.Elem().Field(0)
		f.Set(reflect.ValueOf(unset).Convert(typ))
		_ = json.Unmarshal(doc, v.Interface())
		got := f.Interface()
		if g, ok := got.(float64); ok && math.IsNaN(g) {
			return nil, false
		}
		return got, got != reflect.ValueOf(unset).Convert(typ).Interface()
	}
	var ids []string
	// A decoded string is valid UTF-8, so "\xff" is never one.
	if v, set := decode(reflect.TypeFor[string](), "\xff"); set {
		ids = append(ids, v.(string))
	}
	if v, set := decode(reflect.TypeFor[json.Number](), "x"); set {
		ids = append(ids, string(v.(json.Number)))
	}
	if v, set := decode(reflect.TypeFor[int64](), int64(math.MinInt64)); set {
		ids = append(ids, strconv.FormatInt(v.(int64), 10))
	}
	// float64 ids are exact up to 2^53; beyond, distinct literals name one float (docs).
	if v, set := decode(reflect.TypeFor[float64](), math.NaN()); set && math.Abs(v.(float64)) < 1<<53 {
		ids = append(ids, strconv.FormatFloat(v.(float64), 'f', -1, 64))
	}
	if !ok {
		return ""
	}
	if len(ids) == 0 {
		return "the gateway read an id where encoding/json reads none"
	}
	for _, id := range ids {
		if maphash.String(testSeed, id) != h {
			return "the gateway read another id than encoding/json's " + strconv.Quote(id)
		}
	}
	return ""
}

var fieldRE = regexp.MustCompile(gatewayconfig.FieldPattern)

// FuzzOfferIDDifferential is the differential test of the accept body reader against
// encoding/json: for any offerIdField and body, when json.Unmarshal into a struct with that
// field (string, json.Number, int64 or float64) yields an id, the gateway reads the same id or
// calls it unknown, never another; when none of them yields one, the gateway reads none
// either; it reads no id from a body that is not JSON; and it allocates at most 3 times.
func FuzzOfferIDDifferential(f *testing.F) {
	f.Add("offerId", []byte(`{"offerId":"A1"}`))
	f.Add("offerId", []byte(`{"offerId":1e5,"x":[{"offerId":"no"}]}`))
	f.Add("offerId", []byte(`{"offerId":"\u00e9"}`))
	f.Add("offerId", []byte(`{"offerId":true,"x":{"offerId":"o1"}}`))
	f.Add("offerId", []byte(`{"offerId":false}`))
	f.Add("offerId", []byte(`["offerId","o1"]`))
	f.Add("offerId", []byte(`not json`))
	f.Add("taskId", []byte(`{"taskId":"o1","taſkId":"o9"}`))
	f.Add("taskId", []byte(`{"taskId":"o1","tas\u212aId":"o9"}`))
	f.Add("taskId", []byte(`{"TASKID":"o1","taskid":"o1","task\u0049d":"o2"}`))
	f.Add("offerId", []byte(`{"offerId":"o1","offerId":null,"offerId":{"a":"o2"},"offerId":["o3"]}`))
	f.Add("offerId", []byte(`{"offerId":12,"offerid":"12","OFFERID":1.2e1,"offerId":-0}`))
	f.Add("offerId", []byte("{\"offerId\":\"o\xff\\ud800\\udc00\\udbff\"}"))
	f.Add("offerId", []byte("\ufeff{\"offerId\":\"o1\"}"))
	f.Add("offerId", []byte(`{"offerId":"o1"} {"offerId":"o2"}`))
	f.Add("id", []byte(`{"id":9007199254740993}`))
	f.Add("Kk_s-S", []byte(`{"ſk_\u017f-\u212aK":"a","KK_S-S":"a"}`))
	f.Fuzz(func(t *testing.T, field string, body []byte) {
		if len(field) > gatewayconfig.MaxFieldLen || !fieldRE.MatchString(field) {
			field = "offerId"
		}
		path := jsonPath{{name: field, fold: true}}
		id, ok := offerIDFromJSON(body, path, localHasher(testSeed))
		if msg := differs(field, body, id, ok); msg != "" {
			t.Fatalf("field %s, body %q: %s", field, body, msg)
		}
		if a := testing.AllocsPerRun(1, func() { offerIDFromJSON(body, path, localHasher(testSeed)) }); a > 3 {
			t.Fatalf("field %s, body %q: the reader allocated %v times", field, body, a)
		}
	})
}

// FuzzFoldEqual: foldEqual is bytes.EqualFold, the relation encoding/json's foldName keys on.
func FuzzFoldEqual(f *testing.F) {
	f.Add([]byte("taſkId"), "taskId")
	f.Add([]byte("\u212a"), "k")
	f.Add([]byte("\xff"), "\xfe")
	f.Add([]byte("ΣΑΣ"), "σας")
	f.Fuzz(func(t *testing.T, k []byte, name string) {
		if got, want := foldEqual(k, name), bytes.EqualFold(k, []byte(name)); got != want {
			t.Fatalf("foldEqual(%q, %q) = %v, bytes.EqualFold %v", k, name, got, want)
		}
	})
}

// BenchmarkOfferIDFromJSON reads the offer id of an Amazon Flex shaped accept body.
func BenchmarkOfferIDFromJSON(b *testing.B) {
	body := []byte(`{"__type":"AcceptOfferInput:http://internal.amazon.com/coral/com.amazon.omwbuseyservice.offers/","offerId":"OfferId-aGVsbG8gd29ybGQgdGhpcyBpcyBhbiBvZmZlciBpZA==","clientContext":{"deviceId":"d-42","appVersion":"3.88.1"}}`)
	path := jsonPath{{name: "offerId", fold: true}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := offerIDFromJSON(body, path, localHasher(testSeed)); !ok {
			b.Fatal("no id")
		}
	}
}
