package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// reqState travels with a forwarded request of a governed route (in its context) to the
// proxy's response and error hooks.
type reqState struct {
	route route
	// shown is set on feed requests of a policy that reads shown offers: where to record them.
	shown *shownTarget
	// accept is set on accepts that hold an in-flight slot or belong to a policy with
	// fairness: the offer service's answer settles it.
	accept *acceptAnswer
}

type reqStateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(reqStateKey{}).(*reqState)
	return st
}

// ServeHTTP applies the policy in force to r and forwards it, or answers a refusal.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b := g.watchBody(w, r); b != nil { // the body deadline (proxy.go)
		defer b.release()
	}
	p := g.active.Load().policy
	if p == nil {
		sanitizeHeaders(r.Header, "")
		g.proxy.ServeHTTP(w, r)
		return
	}
	overrides := sanitizeHeaders(r.Header, p.identity)
	var segs [16]string
	var rp reqPath
	escaped := r.URL.EscapedPath()
	rp.segs, rp.trailing = splitPath(escaped, segs[:0])
	rt, pathID := p.routeOf(r.Method, &rp, false)
	// A request that a lenient offer service could take for a governed route other than the
	// one matched (or for one, when none matched) is refused (lenient.go).
	if lrt, amb := p.ambiguous(r, overrides, escaped, &rp, rt, pathID); amb {
		p.counters[lrt][AmbiguousRequest].Inc()
		if !p.dryRun {
			g.refuse(w, r, p, lrt, AmbiguousRequest, 0)
			return
		}
		r.Header.Set(HeaderFlag, AmbiguousRequest.String())
		g.forward(w, r, &reqState{route: lrt})
		return
	}
	if rt == routeOther {
		g.proxy.ServeHTTP(w, r)
		return
	}
	// The identity is one value (identity.go). A header sent several times, or as a list,
	// with different values is no identity: an ingress that appends rather than replaces would
	// otherwise let a client pick a new identity on every request.
	key, ok := identityKey(p.ids, r.Header[p.identity])
	if !ok {
		p.counters[rt][MissingIdentity].Inc()
		if !p.dryRun {
			g.refuse(w, r, p, rt, MissingIdentity, 0)
			return
		}
		r.Header.Set(HeaderFlag, MissingIdentity.String())
		g.forward(w, r, &reqState{route: rt})
		return
	}
	if rt == routeFeed {
		g.serveFeed(w, r, p, key)
		return
	}
	g.serveAccept(w, r, p, key, pathID)
}

func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, st *reqState) {
	g.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), reqStateKey{}, st)))
}

// feedDecision decides a feed poll of driver key at now and returns the verdict, the driver's
// limits and, when the policy reads shown offers and the poll goes on, the driver's ref to
// record them with (ref.x != nil for the local store). It is the hot path measured by
// BenchmarkFeedDecision.
func (g *Gateway) feedDecision(p *policy, key uint64, now int64) (feedVerdict, *limits, driverRef, bool) {
	l := p.limitsFor(key)
	v, ref := p.store.feed(driverRef{key: key}, l, now, p.dryRun, p.shown != nil)
	return v, l, ref, p.shown != nil && (v.decision == Allowed || p.dryRun)
}

func (g *Gateway) serveFeed(w http.ResponseWriter, r *http.Request, p *policy, key uint64) {
	v, l, ref, record := g.feedDecision(p, key, g.nowNS())
	p.counters[routeFeed][v.decision].Inc()
	setRateLimitHeaders(w.Header(), l, v)
	if v.decision != Allowed {
		if !p.dryRun {
			g.refuse(w, r, p, routeFeed, v.decision, v.retry)
			return
		}
		r.Header.Set(HeaderFlag, v.decision.String())
	}
	if v.hasSig {
		p.setScoreHeaders(r.Header, &v.sig)
	}
	st := &reqState{route: routeFeed}
	if record {
		st.shown = &shownTarget{store: p.store, ref: ref, path: p.shown, ids: p.ids}
		// The gateway must read the offers of the answer: ask for it uncompressed (every
		// client accepts identity). An answer compressed all the same is not read.
		r.Header.Del("Accept-Encoding")
	}
	g.forward(w, r, st)
}

// setRateLimitHeaders writes the RateLimit and RateLimit-Policy fields of
// draft-ietf-httpapi-ratelimit-headers-10 (structured fields): the policy "feed" allows q
// polls per w seconds; r polls are left now and the full quota is back in t seconds.
func setRateLimitHeaders(h http.Header, l *limits, v feedVerdict) {
	var buf [64]byte
	b := append(buf[:0], `"feed";r=`...)
	b = strconv.AppendInt(b, v.remaining, 10)
	b = append(b, ";t="...)
	reset := int64(0)
	if v.reset > 0 {
		reset = ceilSeconds(v.reset)
	}
	b = strconv.AppendInt(b, reset, 10)
	h["Ratelimit-Policy"] = l.rlPolicy
	h["Ratelimit"] = []string{string(b)}
}

// acceptAnswer is a forwarded accept that the offer service's answer settles, once: the
// status, 502 when the service gave no answer, or 0 when the accept was not forwarded or the
// proxy never got as far as its hooks. A held in-flight slot becomes a counted accept on 2xx
// and is freed otherwise; with fairness a 2xx records the driver's win (for LeastRecentlyWon),
// and the answer to a draw candidate's try settles its draw.
type acceptAnswer struct {
	g     *Gateway
	store driverStore
	ref   driverRef
	slot  bool       // holds an in-flight slot of its driver
	t     *drawTable // nil without fairness
	d     *draw      // nil: not a draw candidate's try
	c     *candidate
	done  bool
}

func (a *acceptAnswer) finish(status int) {
	if a == nil || a.done {
		return
	}
	a.done = true
	won := status >= 200 && status < 300
	if a.slot || (won && a.t != nil) {
		a.store.settle(a.ref, a.slot, won, a.t != nil, a.g.nowNS())
	}
	if a.d == nil {
		return
	}
	if won {
		a.t.mResults[resWon].Inc()
	} else {
		a.t.mResults[resFailed].Inc()
	}
	a.t.settle(a.d, a.c, won)
}

// serveAccept decides an accept in two steps: the checks (unseen-offer, too-fast,
// accept-throttled) and the admission that takes an in-flight slot. With accept.fairness the
// accept then goes to serveFairAccept (draw.go), which holds it, slot and all, for its offer's
// draw.
func (g *Gateway) serveAccept(w http.ResponseWriter, r *http.Request, p *policy, key uint64, pathID string) {
	var id uint64
	var hasID bool
	if p.offerField != nil {
		id, hasID = g.offerFromBody(r, p.offerField, p.ids)
		if hasID && r.URL.RawQuery != "" && queryNamesOtherOffer(r.URL.RawQuery, p.offerField[0].name, id, p.ids) {
			hasID = false
		}
	} else if pathID != "" {
		// An accept a fair draw may hold is forwarded only at its turn: its body must be in
		// by then, or a client that never sends it stalls the draw for --body-timeout.
		id, hasID = p.ids.sumString(pathID), p.draws == nil || g.bodyInFull(r)
	}
	l := p.limitsFor(key)
	now := g.nowNS()
	v, ref := p.store.accept(p, driverRef{key: key}, l, id, hasID, now)
	d, retry, slot, lastWin := v.decision, v.retry, v.slot, v.lastWin // lastWin: for a fair draw's award
	p.counters[routeAccept][d].Inc()
	if d != Allowed {
		if !p.dryRun {
			g.refuse(w, r, p, routeAccept, d, retry)
			return
		}
		r.Header.Set(HeaderFlag, d.String())
	}
	score := int32(-1) // none: the driver has no score yet, or the store keeps no signals
	if v.hasSig {
		if sc, ok := v.sig.scorePermille(); ok {
			score = sc
		}
		p.setScoreHeaders(r.Header, &v.sig)
	}
	var a *acceptAnswer
	if slot || p.draws != nil {
		a = &acceptAnswer{g: g, store: p.store, ref: ref, slot: slot, t: p.draws}
	}
	// Settles what no answer settled: an accept a draw did not forward, or one whose proxy
	// never reached the response or error hook (a panic, an aborted handler).
	defer a.finish(0)
	st := &reqState{route: routeAccept, accept: a}
	if p.draws != nil {
		g.serveFairAccept(w, r, p, d, st, key, id, hasID, lastWin, score, now)
		return
	}
	g.forwardAccept(w, r, st)
}

// setScoreHeaders sets the request headers OfferFeed-Signals and, once the score is formed,
// OfferFeed-Score, from the signals s of the driver, and counts the score. Clients' own
// OfferFeed-* headers were stripped already (sanitizeHeaders); these replace any value.
func (p *policy) setScoreHeaders(h http.Header, s *signals) {
	// One string and one backing array for both values: two allocations.
	var buf [128]byte
	b := s.appendHeader(buf[:0])
	n := len(b)
	sc, ok := s.scorePermille()
	if ok {
		b = appendMilli(b, float64(sc)/1000)
	}
	all := string(b)
	vs := make([]string, 2)
	vs[0] = all[:n]
	h[keySignals] = vs[0:1:1]
	if !ok {
		delete(h, keyScore)
		return
	}
	vs[1] = all[n:]
	h[keyScore] = vs[1:2:2]
	if p.scoreObs != nil {
		p.scoreObs.Observe(float64(sc) / 1000)
	}
}

// The canonical keys of HeaderSignals and HeaderScore in an http.Header.
var (
	keySignals = http.CanonicalHeaderKey(HeaderSignals)
	keyScore   = http.CanonicalHeaderKey(HeaderScore)
)

// refuse answers a refused request itself.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, p *policy, rt route, d Decision, retry int64) {
	h := w.Header()
	h.Set(HeaderDecision, d.String())
	h.Set("Cache-Control", "no-store")
	// Retry-After on the quota refusals only: on too-fast it would tell a bot the exact
	// reaction time to wait for.
	var retryAfter int64
	if (d == FeedThrottled || d == AcceptThrottled) && retry > 0 {
		retryAfter = ceilSeconds(retry)
		h.Set("Retry-After", strconv.FormatInt(retryAfter, 10))
	}
	p.refusals.write(w, d.String(), d.Status(), retryAfter) // refusal.go: spec.refusal's shape
	if l := g.log.V(1); l.Enabled() {
		l.Info("request refused", "policy", p.name, "route", routeNames[rt], "decision", d.String(), "method", r.Method, "path", r.URL.Path)
	}
}

// sanitizeHeaders removes the request headers a client may not send: every OfferFeed-*
// header (in any case), and, as nginx does by default (underscores_in_headers off,
// ignore_invalid_headers on), every header whose name holds anything but letters, digits and
// '-'. A CGI or WSGI gateway (gunicorn before 22, uWSGI, wsgiref, PHP) maps '-' and '_' (and
// often any other character) of a name to '_': OfferFeed_Flag would reach the offer service
// as HTTP_OFFERFEED_FLAG, X_HTTP_Method_Override as a method override, X_Driver_Id as the
// identity. The exception is the identity header of the policy in force (identity, canonical),
// when its name holds such characters: it is kept, and every other name a CGI gateway maps to
// the same variable is removed instead. It reports whether a method-override header or a
// URL-override header is left (see lenient.go).
func sanitizeHeaders(h http.Header, identity string) (overrides overrideHeaders) {
	plainIdentity := tokenName(identity)
	for k := range h {
		switch {
		case len(k) >= len(headerPrefix) && strings.EqualFold(k[:len(headerPrefix)], headerPrefix):
			delete(h, k)
		case k == identity:
		case !tokenName(k):
			delete(h, k)
		case !plainIdentity && sameCGIName(k, identity):
			delete(h, k)
		case len(k) >= len("X-Http-Method"):
			overrides |= overrideHeader(k)
		}
	}
	if c, ok := h["Connection"]; ok {
		if c = keepConnectionTokens(c, identity); c == nil {
			delete(h, "Connection")
		} else {
			h["Connection"] = c
		}
	}
	// An h2c upgrade is never forwarded: an offer service that honours it would serve the rest
	// of the connection as HTTP/2, every request of it past the gateway (h2c smuggling). The
	// request goes on as plain HTTP/1.1.
	if u, ok := h["Upgrade"]; ok && upgradesToH2C(u) {
		delete(h, "Upgrade")
		delete(h, "Http2-Settings")
	}
	return overrides
}

// upgradesToH2C reports whether Upgrade header values name the h2c protocol.
func upgradesToH2C(vs []string) bool {
	for _, v := range vs {
		for tok := range strings.SplitSeq(v, ",") {
			if p, _, _ := strings.Cut(strings.TrimSpace(tok), "/"); strings.EqualFold(strings.TrimSpace(p), "h2c") {
				return true
			}
		}
	}
	return false
}

// keepConnectionTokens returns the values of a Connection header without the tokens that name
// the identity header or an OfferFeed-* header. A proxy drops the headers that Connection names
// before it forwards a request (httputil.ReverseProxy does): naming the identity would have
// the gateway key a driver on a header the offer service never sees, and naming
// OfferFeed-Flag would hide the DryRun flag from it.
func keepConnectionTokens(vs []string, identity string) []string {
	drop := func(tok string) bool {
		tok = strings.TrimSpace(tok)
		return identity != "" && strings.EqualFold(tok, identity) ||
			len(tok) >= len(headerPrefix) && strings.EqualFold(tok[:len(headerPrefix)], headerPrefix)
	}
	dirty := false
	for _, v := range vs {
		for tok := range strings.SplitSeq(v, ",") {
			dirty = dirty || drop(tok)
		}
	}
	if !dirty {
		return vs
	}
	var kept []string
	for _, v := range vs {
		for tok := range strings.SplitSeq(v, ",") {
			if t := strings.TrimSpace(tok); t != "" && !drop(t) {
				kept = append(kept, t)
			}
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return []string{strings.Join(kept, ", ")}
}

// tokenName reports whether a header name holds only letters, digits and '-'.
func tokenName(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// sameCGIName reports whether a CGI gateway maps header names a and b to the same variable:
// letters in upper case, every other character but a digit as '_'.
func sameCGIName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if cgiByte(a[i]) != cgiByte(b[i]) {
			return false
		}
	}
	return true
}

func cgiByte(c byte) byte {
	switch {
	case 'a' <= c && c <= 'z':
		return c - 'a' + 'A'
	case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return c
	}
	return '_'
}

// offerFromBody reads at most maxBody bytes of an accept's body to find the offer id field, and
// puts the body back unchanged (what was read, then the rest). The id counts only when the
// whole body was read and is JSON; when the field appears more than once (in any case, as
// encoding/json would match it) with different values, the id is unknown.
func (g *Gateway) offerFromBody(r *http.Request, path jsonPath, ids idHasher) (uint64, bool) {
	if r.Body == nil || r.Body == http.NoBody {
		return 0, false
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, g.maxBody+1))
	r.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(buf), r.Body), c: r.Body}
	if err != nil || int64(len(buf)) > g.maxBody {
		return 0, false
	}
	return offerIDFromJSON(buf, path, ids)
}

// bodyInFull reads r's body, at most maxBody bytes, within the body deadline, and keeps it to
// be forwarded whole. It reports whether the body is in: read to its end within the bound.
func (g *Gateway) bodyInFull(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return true
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, g.maxBody+1))
	r.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(buf), r.Body), c: r.Body}
	return err == nil && int64(len(buf)) <= g.maxBody
}

// offerIDFromJSON finds the value at path in the JSON document b: its hash, and whether it was
// found exactly once (or always with the same value) in a valid document.
func offerIDFromJSON(b []byte, path jsonPath, ids idHasher) (uint64, bool) {
	var id uint64
	n, conflict := 0, false
	var sc jsonScanner
	sc.init(path, ids, func(h uint64) {
		if n > 0 && h != id {
			conflict = true
		}
		id = h
		n++
	})
	_, _ = sc.Write(b)
	sc.Finish()
	if !sc.Complete() || n == 0 || conflict || sc.Ambiguous() {
		return 0, false
	}
	return id, true
}

// queryNamesOtherOffer reports whether a query string has a parameter named field (its name
// decoded, in any case) whose value (decoded) is another offer id than id. A lenient offer
// service may read the id from the query as well as from the body (Werkzeug's request.values
// looks in the query first; PHP's $_REQUEST, Spring's @RequestParam and ASP.NET's model
// binding read both): the gateway must not check one offer while the service accepts another.
func queryNamesOtherOffer(rawQuery, field string, id uint64, ids idHasher) bool {
	for kv := range strings.FieldsFuncSeq(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, _ := strings.Cut(kv, "=")
		if len(k) > 3*len(field)+8 {
			continue // longer than any encoding of the name
		}
		if strings.ContainsAny(k, "%+") {
			k = lenientUnescape(strings.ReplaceAll(k, "+", " "))
		}
		if !strings.EqualFold(strings.TrimSpace(k), field) {
			continue
		}
		v = strings.TrimSpace(lenientUnescape(strings.ReplaceAll(v, "+", " ")))
		if ids.sumString(v) != id {
			return true
		}
	}
	return false
}

type replayBody struct {
	io.Reader
	c io.Closer
}

func (b *replayBody) Close() error { return b.c.Close() }

// shownRecorder records the offers of a feed response in the driver's state as the body
// streams to the client: the ids found in each chunk are recorded before the chunk is handed
// on, so a driver can never accept an offer the gateway has not recorded as shown.
type shownRecorder struct {
	g *Gateway
	shownTarget
	sc    jsonScanner
	batch [16]uint64
	n     int
	add   func(uint64)
}

// shownTarget is the driver state a feed answer's offers are recorded in.
type shownTarget struct {
	store driverStore
	ref   driverRef
	path  jsonPath
	ids   idHasher // how the policy names offers
}

var recorderPool = sync.Pool{New: func() any {
	sr := &shownRecorder{}
	sr.add = sr.record
	return sr
}}

func (sr *shownRecorder) record(h uint64) {
	if sr.n == len(sr.batch) {
		sr.flush()
	}
	sr.batch[sr.n] = h
	sr.n++
}

func (sr *shownRecorder) flush() {
	if sr.n == 0 {
		return
	}
	sr.store.recordShown(sr.ref, sr.batch[:sr.n], sr.g.nowNS())
	sr.n = 0
}

// wrapShown returns body with a recorder scanning it for the offers shown to t's driver.
func (g *Gateway) wrapShown(body io.ReadCloser, t *shownTarget) io.ReadCloser {
	sr := recorderPool.Get().(*shownRecorder)
	sr.g, sr.shownTarget, sr.n = g, *t, 0
	sr.sc.init(t.path, t.ids, sr.add)
	return &shownBody{rc: body, sr: sr}
}

type shownBody struct {
	rc io.ReadCloser
	sr *shownRecorder
}

func (b *shownBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if sr := b.sr; n > 0 && sr != nil && !sr.sc.Err() {
		_, _ = sr.sc.Write(p[:n])
		sr.flush()
	}
	return n, err
}

func (b *shownBody) Close() error {
	if sr := b.sr; sr != nil {
		b.sr = nil
		sr.g, sr.shownTarget = nil, shownTarget{}
		recorderPool.Put(sr)
	}
	return b.rc.Close()
}

// isJSON reports whether a Content-Type is JSON (application/json or a +json type).
func isJSON(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	const app = "application/"
	if len(ct) < len(app) || !strings.EqualFold(ct[:len(app)], app) {
		return false
	}
	sub := ct[len(app):]
	return strings.EqualFold(sub, "json") || len(sub) > 5 && strings.EqualFold(sub[len(sub)-5:], "+json")
}
