package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatedTransport forwards through a real http.Transport, but holds the transport's read of a
// request body past its Content-Length (the writeLoop's check that nothing follows the body)
// until gate is closed, and records what that read returned. It forces the order that a
// loaded machine produces only by chance: the gateway has already written the answer's header
// — and net/http has discarded and closed the client's request body — when that read comes.
type gatedTransport struct {
	rt   http.RoundTripper
	gate chan struct{}

	mu    sync.Mutex
	extra []error // what each read past Content-Length returned
	read  chan struct{}
}

func (t *gatedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.ContentLength <= 0 {
		return t.rt.RoundTrip(req)
	}
	out := *req
	out.Body = &gatedBody{ReadCloser: req.Body, left: req.ContentLength, t: t}
	resp, err := t.rt.RoundTrip(&out)
	if resp != nil {
		resp.Request = req // the gateway's ModifyResponse looks at its own request
	}
	return resp, err
}

type gatedBody struct {
	io.ReadCloser
	left int64
	t    *gatedTransport
	once sync.Once
}

func (b *gatedBody) Read(p []byte) (int, error) {
	if b.left > 0 {
		n, err := b.ReadCloser.Read(p)
		b.left -= int64(n)
		return n, err
	}
	select {
	case <-b.t.gate:
	case <-time.After(10 * time.Second): // the client never got a first chunk: fail, don't hang
	}
	n, err := b.ReadCloser.Read(p)
	b.t.mu.Lock()
	b.t.extra = append(b.t.extra, err)
	b.t.mu.Unlock()
	b.once.Do(func() { close(b.t.read) })
	return n, err
}

// TestStreamAfterBodyClosed: a body read to its end stays at io.EOF for the transport even
// after net/http closed it, so an answer that streams after a body is not cut, with a body
// deadline or without one. Regression
// test of a flake of TestSlowBodyCutOff (1 run in ~40 under load): the server discards and
// closes the request body when the gateway writes the answer's header; when the transport's
// last read of the body came after that, it got ErrBodyReadAfterClose, closed its connection
// to the offer service, and the driver got the first chunk, then unexpected EOF. Here the
// transport's last read is held until the driver has the first chunk, every run.
func TestStreamAfterBodyClosed(t *testing.T) {
	const chunks = 4
	gt := &gatedTransport{rt: newTransport(10 * time.Second), gate: make(chan struct{}), read: make(chan struct{})}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			return
		}
		for i := range chunks {
			if i == 1 {
				// The rest of the answer comes after the transport's last read of the body.
				select {
				case <-gt.read:
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	p := flexPolicy()
	p.Accept.RequireShown = false // the accept goes on to the offer service
	for _, tc := range []struct {
		path        string // streamed, or read by the gateway
		bodyTimeout time.Duration
	}{{"/stream", time.Minute}, {"/AcceptOffer", time.Minute}, {"/stream", -1}, {"/AcceptOffer", -1}} {
		path := tc.path
		t.Run(fmt.Sprintf("%s-%s", strings.TrimPrefix(path, "/"), tc.bodyTimeout), func(t *testing.T) {
			gt.gate, gt.read, gt.extra = make(chan struct{}), make(chan struct{}), nil
			g, err := New(Options{Upstream: u, PodLabels: map[string]string{"app": "offer-service"},
				BodyTimeout: tc.bodyTimeout, Transport: gt})
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Apply(configOf(p)); err != nil {
				t.Fatal(err)
			}
			addr := serve(t, g.NewServer())
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			const body = `{"offerId":"o1"}`
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: offers\r\nX-Amz-Access-Token: d1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body)
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(resp.Body)
			first, err := br.ReadString('\n')
			close(gt.gate) // the request body is closed by now: the header was written
			rest, restErr := io.ReadAll(br)
			if err != nil || first != "chunk 0\n" {
				t.Fatalf("%s: first chunk %q, %v (status %d, decision %q)", path, first, err, resp.StatusCode, resp.Header.Get(HeaderDecision))
			}
			if got := first + string(rest); restErr != nil || strings.Count(got, "chunk") != chunks {
				t.Errorf("%s: the streamed answer was cut: %q, %v", path, got, restErr)
			}
			gt.mu.Lock()
			defer gt.mu.Unlock()
			if len(gt.extra) == 0 {
				t.Fatalf("%s: the transport never read past the body (the test no longer forces the order)", path)
			}
			for _, e := range gt.extra {
				if !errors.Is(e, io.EOF) {
					t.Errorf("%s: the transport's read past the end of the body got %v, want io.EOF", path, e)
				}
			}
		})
	}
}

// TestAnswerBeforeBodyEnds: when the offer service answers before the client's body has
// ended, the body deadline is lifted (bodyWatch.answered): the client may finish its body
// after the body timeout, the answer comes, and nothing is counted as a body timeout. Without
// the lift the deadline fires either on the transport's pending read of the body (counted,
// caught here) or on net/http's own discard of it (not counted), so this test catches the
// lift's removal only in some runs (no entry in hack/mutation). The end of the
// answer is not checked: when the gateway writes the answer's header, net/http discards the
// rest of the body, racing the transport that forwards it, and the loser's error may cut the
// stream (a limitation of answering before the body ended, not of the deadline). The offer
// service's answer must reach the gateway within the body timeout of its first read of the
// body: 1 s, for a loaded machine (the rest of the body comes after 1.25 s).
func TestAnswerBeforeBodyEnds(t *testing.T) {
	const timeout = time.Second
	const chunks = 4
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Answers after the first bytes of the body, without waiting for the rest (full
		// duplex: net/http would otherwise wait for the body, to discard it, before sending
		// the header). Having those bytes, the gateway has armed the deadline, and its
		// transport waits for the rest. (An answer that came before the gateway's first read
		// of the body would race with it: the deadline would be armed after the answer.)
		_ = http.NewResponseController(w).EnableFullDuplex()
		var first [2]byte
		if _, err := io.ReadFull(r.Body, first[:]); err != nil {
			return
		}
		for i := range chunks {
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(timeout / 10):
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.Copy(io.Discard, r.Body) // before returning, as net/http wants in full duplex
	}))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	g, err := New(Options{Upstream: u, PodLabels: map[string]string{"app": "offer-service"}, BodyTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Apply(configOf(flexPolicy())); err != nil {
		t.Fatal(err)
	}
	addr := serve(t, g.NewServer())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const body = `{"filters":{}}`
	fmt.Fprintf(c, "POST /stream HTTP/1.1\r\nHost: offers\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:2])
	time.Sleep(timeout + timeout/4) // the rest of the body comes after the body timeout
	_, _ = io.WriteString(c, body[2:])
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "chunk 0\n") {
		t.Errorf("answer before the body ended: %d %q, %v", resp.StatusCode, b, err)
	}
	if !hasMetric(t, g, "offerfeed_gateway_request_body_timeouts_total 0") {
		t.Errorf("a body whose answer had come was counted as a body timeout:\n%s", metricText(t, g))
	}
}
