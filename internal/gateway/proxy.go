package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// newTransport is tuned for one upstream on the same pod: many idle keep-alive connections (so
// a burst does not open and close sockets), a short dial timeout (a down upstream answers 502
// at once), the response header timeout as the 504 deadline, and no transparent compression.
func newTransport(timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          2048,
		MaxIdleConnsPerHost:   2048,
		IdleConnTimeout:       60 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
}

// timedTransport observes the time to the upstream's response headers, by route.
type timedTransport struct {
	rt http.RoundTripper
	g  *Gateway
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(req)
	rt := routeOther
	if st := stateFrom(req.Context()); st != nil {
		rt = st.route
	}
	t.g.m.upstream[rt].Observe(time.Since(start).Seconds())
	return resp, err
}

// bufferPool recycles the proxy's 32 KiB copy buffers (held as array pointers, so that Put
// does not allocate).
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return v[:]
	}
	return new([copyBufferSize]byte)[:]
}

func (b *bufferPool) Put(v []byte) {
	if len(v) == copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(v))
	}
}

func (g *Gateway) newProxy() http.Handler {
	up := g.opts.Upstream
	rt := g.opts.Transport
	if rt == nil {
		rt = newTransport(g.opts.UpstreamTimeout)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.Out.Host = pr.In.Host
			// Keep what the ingress said about the client; add this hop.
			for _, k := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
			host, proto := pr.Out.Header["X-Forwarded-Host"], pr.Out.Header["X-Forwarded-Proto"]
			pr.SetXForwarded()
			if host != nil {
				pr.Out.Header["X-Forwarded-Host"] = host
			}
			if proto != nil {
				pr.Out.Header["X-Forwarded-Proto"] = proto
			}
		},
		Transport:      &timedTransport{rt: rt, g: g},
		BufferPool:     &bufferPool{},
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.upstreamError,
	}
}

// modifyResponse settles an accept's slot and starts reading shown offers from a feed answer.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	st := stateFrom(resp.Request.Context())
	if st == nil {
		return nil
	}
	st.accept.finish(resp.StatusCode)
	if st.shown != nil && resp.StatusCode >= 200 && resp.StatusCode < 300 &&
		resp.Header.Get("Content-Encoding") == "" && isJSON(resp.Header.Get("Content-Type")) {
		resp.Body = g.wrapShown(resp.Body, st.shown)
	}
	return nil
}

// upstreamError answers when the offer service gave no answer: 504 after the upstream timeout,
// 502 otherwise (refused connection, reset).
func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if st := stateFrom(r.Context()); st != nil {
		st.accept.finish(http.StatusBadGateway)
	}
	kind, code := "unreachable", http.StatusBadGateway
	var ne net.Error
	// Accepts are forwarded with a deadline of their own (they wait for the answer even when
	// the driver hangs up), so an expired request context is a timeout, not a cancellation.
	switch {
	case errors.Is(r.Context().Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		kind, code = "timeout", http.StatusGatewayTimeout
	case r.Context().Err() != nil:
		kind = "canceled"
	}
	g.m.upstreamErrors.WithLabelValues(kind).Inc()
	if l := g.log.V(1); l.Enabled() {
		l.Info("upstream error", "kind", kind, "method", r.Method, "path", r.URL.Path, "error", err.Error())
	}
	w.WriteHeader(code)
}
