package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// Defaults of the server timeouts in Options.
const (
	// DefaultBodyTimeout is how long a client has to send a request body, from the gateway's
	// first read of it: an accept's body (at most 64 KiB) or a feed's filters take a fraction
	// of that on a slow mobile link.
	DefaultBodyTimeout = 10 * time.Second
	// DefaultReadHeaderTimeout is how long a client has to send a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection may wait for its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// adminWriteTimeout bounds writing an admin answer (a /metrics page is small).
	adminWriteTimeout = 30 * time.Second
)

// NewServer returns the server of the proxy port, serving g with its timeouts: the request
// headers within ReadHeaderTimeout, each request body within BodyTimeout of its first read
// (ServeHTTP sets that deadline per request, so that answers may stream as long as the
// offer service takes: there is no write timeout and no whole-request ReadTimeout, which
// would also cancel a request whose answer streams past it), and keep-alive connections
// closed after IdleTimeout without a request.
func (g *Gateway) NewServer() *http.Server {
	return &http.Server{
		Handler:           g,
		ReadHeaderTimeout: g.opts.ReadHeaderTimeout,
		IdleTimeout:       g.opts.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logr.ToSlogHandler(g.log), slog.LevelDebug),
	}
}

// NewAdminServer returns the server of the admin port (AdminHandler). Its requests have no
// body and its answers are small: each request is read within ReadHeaderTimeout and answered
// within 30 s, and idle connections are closed after IdleTimeout.
func (g *Gateway) NewAdminServer() *http.Server {
	return &http.Server{
		Handler:           g.AdminHandler(),
		ReadHeaderTimeout: g.opts.ReadHeaderTimeout,
		ReadTimeout:       g.opts.ReadHeaderTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       g.opts.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logr.ToSlogHandler(g.log), slog.LevelDebug),
	}
}

// bodyWatch puts the body deadline on a request's body: the connection's read deadline is set
// BodyTimeout after the first read of the body (not at the start of the request: a forwarded
// request is read as the proxy sends it on) and cleared when the body
// ends (all of a known length read, or io.EOF) or the offer service answers, so that the
// server's check for a closed connection while the answer streams is not cut off. A body the
// handler leaves unread, or not read to its end, gets the deadline when the handler returns,
// for the server's discarding of it. After the handler returned the connection is not touched
// (it may serve the next request), whoever still reads the body.
type bodyWatch struct {
	io.ReadCloser
	rc      *http.ResponseController
	g       *Gateway
	timeout time.Duration

	mu       sync.Mutex
	state    uint8     // bodyIdle, bodyArmed or bodyOver
	deadline time.Time // set when armed
	timedOut bool
	// left is what is still to come of a body of known length (-1: unknown); complete is set
	// when the body was read to its end.
	left     int64
	complete bool

	// out is the body of the request the proxy forwards (see proxyBody).
	out proxyBody
}

const (
	bodyIdle  = iota // no read yet: no deadline
	bodyArmed        // read deadline set
	bodyOver         // the body ended, or the handler returned
)

// watchBody wraps r.Body in a bodyWatch when r has a body; the caller calls release when its
// handler returns. Without a deadline (BodyTimeout negative) the bodyWatch only keeps a body
// read to its end at io.EOF (see Read).
func (g *Gateway) watchBody(w http.ResponseWriter, r *http.Request) *bodyWatch {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	b := &bodyWatch{ReadCloser: r.Body, rc: http.NewResponseController(w), g: g, timeout: g.opts.BodyTimeout, left: r.ContentLength}
	r.Body = b
	return b
}

func (b *bodyWatch) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.complete {
		// A body read to its end stays at io.EOF without asking net/http again: when the
		// handler writes the answer's header, the server discards what is left of the request
		// body and closes it, and the transport's writeLoop, which after sending
		// Content-Length bytes reads once more to check that nothing follows, may get there
		// only later (under load). That read would then fail with ErrBodyReadAfterClose, the
		// transport would take it for a broken request and close its connection to the offer
		// service, cutting the answer streaming on it after its first chunk.
		b.mu.Unlock()
		return 0, io.EOF
	}
	if b.state == bodyIdle {
		b.state = bodyArmed
		b.deadline = time.Now().Add(b.timeout)
		b.setDeadline(b.deadline)
	}
	b.mu.Unlock()
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	if b.left > 0 {
		b.left -= int64(n)
	}
	whole := b.left == 0
	b.mu.Unlock()
	if err != nil {
		b.end(err)
	} else if whole {
		// Every byte of a body of known length is in: the transport need not read on to
		// io.EOF before the answer streams.
		b.end(io.EOF)
	}
	return n, err
}

// answered is called when the offer service's answer arrived: a body it did not wait for is
// no longer read while the answer streams, so the deadline is lifted (release puts it back
// for the server's discarding of what is left, once the handler returns).
func (b *bodyWatch) answered() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == bodyArmed {
		b.state = bodyOver
		b.setDeadline(time.Time{})
	}
}

// end settles the deadline when the body ends: cleared at its end (io.EOF or another error
// of the client's), kept after a timeout (the connection is done for), counted.
func (b *bodyWatch) end(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if errors.Is(err, io.EOF) {
		b.complete = true // also after answered: see Read
	}
	if b.state != bodyArmed {
		return
	}
	b.state = bodyOver
	if errors.Is(err, os.ErrDeadlineExceeded) {
		b.timedOut = true
		b.g.m.bodyTimeouts.Inc()
		return
	}
	b.setDeadline(time.Time{})
}

// release is called when the handler returns: a body never read gets its deadline now, for
// the server's discarding of it.
func (b *bodyWatch) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.complete && !b.timedOut {
		b.setDeadline(time.Now().Add(b.timeout))
	}
	b.state = bodyOver
}

// expired reports whether the client failed to send the body in time: its read timed out, or
// is about to report it (the server cancels the request's context as the read fails, so the
// proxy may give up on the request before the body's Read returns).
func (b *bodyWatch) expired() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.timedOut || b.timeout > 0 && b.state == bodyArmed && !time.Now().Before(b.deadline)
}

// setDeadline sets the connection's read deadline when a body deadline applies.
func (b *bodyWatch) setDeadline(t time.Time) {
	if b.timeout > 0 {
		_ = b.rc.SetReadDeadline(t) // ErrNotSupported: no deadline
	}
}

// proxyBody is the body of the request the proxy forwards when the client's has a bodyWatch,
// so that the proxy's error handler, which sees only the forwarded request, finds it.
type proxyBody struct {
	io.ReadCloser
	w *bodyWatch
}

// watchOf returns the bodyWatch of a request body, also through the replayBody of an accept.
func watchOf(body io.ReadCloser) *bodyWatch {
	if rb, ok := body.(*replayBody); ok {
		body, _ = rb.c.(io.ReadCloser)
	}
	b, _ := body.(*bodyWatch)
	return b
}

// bodyExpired reports whether the client of the forwarded request r failed to send its body
// in time.
func bodyExpired(r *http.Request) bool {
	pb, ok := r.Body.(*proxyBody)
	return ok && pb.w.expired()
}

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
			if b := watchOf(pr.In.Body); b != nil && pr.Out.Body != nil {
				b.out = proxyBody{ReadCloser: pr.Out.Body, w: b}
				pr.Out.Body = &b.out
			}
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
	if pb, ok := resp.Request.Body.(*proxyBody); ok {
		pb.w.answered()
	}
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
// 408 when the client did not send its body within BodyTimeout, 502 otherwise (refused
// connection, reset).
func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if st := stateFrom(r.Context()); st != nil {
		st.accept.finish(http.StatusBadGateway)
	}
	if bodyExpired(r) {
		// The client did not send its body in time (counted by the bodyWatch); the offer
		// service got an incomplete request, which it drops.
		w.WriteHeader(http.StatusRequestTimeout)
		return
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
