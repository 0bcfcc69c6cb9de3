package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// discardWriter is a ResponseWriter that keeps nothing but its header map, reused between
// answers, so that the benchmark measures refuse and not a recorder.
type discardWriter struct {
	h http.Header
	n int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(int)             {}
func (w *discardWriter) Write(b []byte) (int, error) { w.n += len(b); return len(b), nil }

// BenchmarkRefusal is the answer to a refused feed poll (feed-throttled, Retry-After 2):
// the gateway's own text/plain answer, the Flex shape (a fixed body) and an RFC 9457 problem
// document with every placeholder.
func BenchmarkRefusal(b *testing.B) {
	for _, bc := range []struct {
		name    string
		refusal *gatewayconfig.Refusal
	}{
		{"default", nil},
		{"flex", &gatewayconfig.Refusal{Status: 400, ContentType: "application/json", Body: `{"message":"Rate exceeded"}`}},
		{"problem", problemRefusal()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			u, _ := url.Parse("http://upstream.invalid")
			g, err := New(Options{Upstream: u, PodLabels: map[string]string{"app": "offer-service"}})
			if err != nil {
				b.Fatal(err)
			}
			p := standardPolicy()
			p.Refusal = bc.refusal
			if err := g.Apply(configOf(p)); err != nil {
				b.Fatal(err)
			}
			pol := g.active.Load().policy
			r := httptest.NewRequest("GET", "/offers", nil)
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				g.refuse(w, r, pol, routeFeed, FeedThrottled, 1_500_000_000)
			}
			if w.n == 0 {
				b.Fatal("nothing written")
			}
		})
	}
}
