package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// fakeClock is the gateway's clock in tests: k8s.io/utils/clock/testing.FakeClock, whose
// Step moves the time and fires the timers that are due (fair draw windows).
type fakeClock struct{ *testingclock.FakeClock }

func newFakeClock() *fakeClock {
	return &fakeClock{testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
}

// Advance moves the clock forward by d and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) { c.Step(d) }

func dur(s string) gatewayconfig.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return gatewayconfig.Duration(d)
}

// standardPolicy is the example policy of docs/design.md#api (path-segment offer ids).
func standardPolicy() gatewayconfig.Policy {
	return gatewayconfig.Policy{
		Name:           "standard",
		Mode:           gatewayconfig.ModeEnforce,
		Selector:       metav1.LabelSelector{MatchLabels: map[string]string{"app": "offer-service"}},
		IdentityHeader: "X-Driver-Id",
		Feed:           &gatewayconfig.Feed{Method: "GET", Path: "/offers", MinInterval: dur("2s"), Burst: 1},
		Accept: &gatewayconfig.Accept{Method: "POST", PathTemplate: "/offers/{offerId}/accept", MaxAccepts: 3,
			Window: dur("10m"), MinReactionTime: dur("800ms"), RequireShown: true},
		ShownOffers: &gatewayconfig.ShownOffers{JSONPath: "offers[].id"},
	}
}

// flexPolicy is the Amazon Flex shaped policy of docs/design.md#the-two-api-shapes (body offer ids, POST feed).
func flexPolicy() gatewayconfig.Policy {
	return gatewayconfig.Policy{
		Name:           "flex",
		Mode:           gatewayconfig.ModeEnforce,
		Selector:       metav1.LabelSelector{MatchLabels: map[string]string{"app": "offer-service"}},
		IdentityHeader: "X-Amz-Access-Token",
		Feed:           &gatewayconfig.Feed{Method: "POST", Path: "/GetOffersForProviderPost", MinInterval: dur("2s"), Burst: 1},
		Accept: &gatewayconfig.Accept{Method: "POST", PathTemplate: "/AcceptOffer", OfferIDField: "offerId", MaxAccepts: 3,
			Window: dur("10m"), MinReactionTime: dur("800ms"), RequireShown: true},
		ShownOffers: &gatewayconfig.ShownOffers{JSONPath: "offerList[].offerId"},
	}
}

func configOf(ps ...gatewayconfig.Policy) *gatewayconfig.Config {
	c := &gatewayconfig.Config{SchemaVersion: gatewayconfig.SchemaVersion, Namespace: "offers", Policies: ps}
	for i := range c.Policies {
		c.Policies[i].Hash, _ = gatewayconfig.PolicyHash(c.Policies[i])
	}
	return c
}

// upstreamRecord is what the fake offer service saw.
type upstreamRecord struct {
	Method, Path string
	Header       http.Header
	Body         string
}

// fakeUpstream is an offer service: GET /offers and POST /GetOffersForProviderPost list the
// offers of ?offers= (or the offers field), accepts answer acceptStatus.
type fakeUpstream struct {
	*httptest.Server
	mu           sync.Mutex
	seen         []upstreamRecord
	offers       []string
	acceptStatus int
}

func newFakeUpstream(t testing.TB) *fakeUpstream {
	u := &fakeUpstream{offers: []string{"o1", "o2"}, acceptStatus: 200}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, upstreamRecord{r.Method, r.URL.Path, r.Header.Clone(), string(b)})
		offers, status := u.offers, u.acceptStatus
		u.mu.Unlock()
		switch {
		case r.URL.Path == "/offers" || strings.HasPrefix(r.URL.Path, "/feed/"):
			w.Header().Set("Content-Type", "application/json")
			var list []map[string]string
			for _, o := range offers {
				list = append(list, map[string]string{"id": o})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"offers": list})
		case r.URL.Path == "/GetOffersForProviderPost":
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			var list []map[string]any
			for _, o := range offers {
				list = append(list, map[string]any{"offerId": o, "rateInfo": map[string]any{"priceAmount": 42.5}})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"offerList": list})
		case strings.HasSuffix(r.URL.Path, "/accept") || r.URL.Path == "/AcceptOffer":
			w.WriteHeader(status)
		default:
			_, _ = io.WriteString(w, "other")
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *fakeUpstream) records() []upstreamRecord {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]upstreamRecord(nil), u.seen...)
}

func (u *fakeUpstream) last() upstreamRecord {
	r := u.records()
	if len(r) == 0 {
		return upstreamRecord{}
	}
	return r[len(r)-1]
}

type harness struct {
	t     testing.TB
	clock *fakeClock
	up    *fakeUpstream
	g     *Gateway
}

func newHarness(t testing.TB, cfg *gatewayconfig.Config, mod ...func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), up: newFakeUpstream(t)}
	u, _ := url.Parse(h.up.URL)
	opts := Options{Upstream: u, Clock: h.clock, PodLabels: map[string]string{"app": "offer-service"}}
	for _, m := range mod {
		m(&opts)
	}
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		if err := g.Apply(cfg); err != nil {
			t.Fatalf("Apply: %v", err)
		}
	}
	h.g = g
	return h
}

// do sends a request through the gateway; hdr holds name, value pairs.
func (h *harness) do(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header[hdr[i]] = append(r.Header[hdr[i]], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.g.ServeHTTP(w, r)
	return w
}

// durp is dur as a pointer, for optional durations.
func durp(s string) *gatewayconfig.Duration { d := dur(s); return &d }

func drv(id string) []string { return []string{"X-Driver-Id", id} }

// expect checks a response's status and decision header.
func expect(t testing.TB, w *httptest.ResponseRecorder, status int, decision string) {
	t.Helper()
	if w.Code != status || w.Header().Get(HeaderDecision) != decision {
		t.Fatalf("got %d %q (%s), want %d %q", w.Code, w.Header().Get(HeaderDecision), strings.TrimSpace(w.Body.String()), status, decision)
	}
}

func metricText(t testing.TB, g *Gateway) string {
	t.Helper()
	w := httptest.NewRecorder()
	g.AdminHandler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	return w.Body.String()
}

func hasMetric(t testing.TB, g *Gateway, line string) bool {
	t.Helper()
	for _, l := range strings.Split(metricText(t, g), "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func httptestGet(h http.Handler, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
	return w
}
