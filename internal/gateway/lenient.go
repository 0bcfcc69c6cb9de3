package gateway

import (
	"net/http"
	"strings"
	"unicode/utf8"
)

// The gateway matches routes exactly (route.go), but the offer service behind it may route
// leniently: many frameworks fold case, decode %2F into '/' before routing (gunicorn, uWSGI,
// wsgiref), treat '\' as '/', strip ";params" from segments (Tomcat, Jetty), drop NUL bytes,
// trim trailing dots (IIS), decode twice, take HEAD for GET, or let a header pick the method
// (X-HTTP-Method-Override and friends). A request the offer service would take for a feed
// poll or an accept must never pass the gateway ungoverned. So, in Enforce, a request that
// such a lenient router could map onto a governed route differently from the gateway's exact
// match (another route, another offer id, or a governed route where the gateway saw none) is
// refused: 400 ambiguous-request. A request that matches a governed route exactly but names
// another method in an override header is refused too (the offer service may take it for
// something else). The path named by X-Original-URL or X-Rewrite-URL is read as the request
// line's path is.
//
// Ordinary requests (no override header, not HEAD, a path without '%', ';', '\', '?', '#',
// ' ' or a segment ending in '.') take the fast path: the lenient router's segments are the
// exact ones, matched in any case; nothing is allocated.

// methodOverrideHeaders are the request headers through which frameworks let a client pick
// another method (matched in any case). Headers spelled with '_' never reach the offer
// service (sanitizeHeaders).
var methodOverrideHeaders = [...]string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// urlOverrideHeaders are the request headers through which some frameworks (Symfony before
// 2018, Zend, IIS's URL Rewrite) take the path to route from the client instead of the
// request line.
var urlOverrideHeaders = [...]string{"X-Original-Url", "X-Rewrite-Url"}

// overrideHeaders says which kinds of override header a request has.
type overrideHeaders uint8

const (
	methodOverride overrideHeaders = 1 << iota
	urlOverride
)

// overrideHeader returns the kind of override header named k (in any case), or 0.
func overrideHeader(k string) overrideHeaders {
	for _, o := range methodOverrideHeaders {
		if strings.EqualFold(k, o) {
			return methodOverride
		}
	}
	for _, o := range urlOverrideHeaders {
		if strings.EqualFold(k, o) {
			return urlOverride
		}
	}
	return 0
}

// methodOverrideParam is the query parameter with which some frameworks (Symfony, Laravel,
// Rails' Rack::MethodOverride for forms) let a client pick another method.
const methodOverrideParam = "_method"

// maxLenientDecodes is how many times the lenient model percent-decodes a path (a router that
// decodes, then an application that decodes again, ...).
const maxLenientDecodes = 4

// routeOf matches a request to the policy's routes: the accept first, then the feed. With
// fold, literal segments match in any case.
func (p *policy) routeOf(method string, rp *reqPath, fold bool) (route, string) {
	if p.accept != nil {
		if id, ok := p.accept.match(method, rp, fold); ok {
			return routeAccept, id
		}
	}
	if p.feed != nil && p.feed.match(method, rp, fold) {
		return routeFeed, ""
	}
	return routeOther, ""
}

// ambiguous reports whether a lenient router could take request r (escaped path escaped,
// exactly normalized as rp) for a governed route other than rt with offer id id (rt is
// routeOther when the request matched no route), and that route. overrides says which
// override headers r has. See the comment above.
func (p *policy) ambiguous(r *http.Request, overrides overrideHeaders, escaped string, rp *reqPath, rt route, id string) (route, bool) {
	ms := methodSet{own: r.Method}
	if strings.EqualFold(r.Method, http.MethodHead) {
		ms.add(p, http.MethodGet)
	}
	if overrides&methodOverride != 0 {
		for k, vs := range r.Header {
			if overrideHeader(k) != methodOverride {
				continue
			}
			for _, v := range vs { // every value, every element of a list: any may be the one read
				for m := range strings.SplitSeq(v, ",") {
					ms.add(p, strings.TrimSpace(m))
				}
			}
		}
	}
	if q := r.URL.RawQuery; q != "" {
		addQueryMethods(&ms, p, q)
	}
	if rt != routeOther && ms.other {
		return rt, true
	}
	// A router may ignore the method altogether (http.ServeMux patterns without one, Express's
	// app.all, a handler that never reads r.Method): to it, GET /offers/o9/accept is an accept
	// and POST /offers a poll. That reading applies to requests that carry the identity
	// header: without it the offer service cannot act for a driver (the token is missing, or
	// the ingress did not authenticate a driver), so other APIs on a governed path (a
	// dispatcher's POST /offers, a CORS preflight) go on.
	if len(r.Header[p.identity]) > 0 {
		ms.anyMethod = anyMethod
	}
	conflict := func(lp *reqPath) (route, bool) {
		for i, m := range [...]string{ms.own, ms.feed, ms.accept, ms.anyMethod} {
			if m == "" || i > 0 && i < 3 && strings.EqualFold(m, ms.own) {
				continue
			}
			if lrt, lid := p.routeOf(m, lp, true); lrt != routeOther && (lrt != rt || lid != id) {
				return lrt, true
			}
		}
		return rt, false
	}
	if overrides&urlOverride != 0 {
		// The path such a header names, read as the request line's path is.
		for k, vs := range r.Header {
			if overrideHeader(k) != urlOverride {
				continue
			}
			for _, v := range vs {
				if i := strings.Index(v, "://"); i >= 0 { // an absolute URL: its path
					v = v[i+3:]
					if j := strings.IndexByte(v, '/'); j >= 0 {
						v = v[j:]
					}
				}
				v, _, _ = strings.Cut(v, "?")
				var up reqPath
				up.normalize(v)
				if lrt, amb := conflict(&up); amb {
					return lrt, true
				}
				if lrt, amb := lenientReadings(v, conflict); amb {
					return lrt, true
				}
			}
		}
	}
	if !needsLenientPath(escaped) {
		return conflict(rp)
	}
	return lenientReadings(escaped, conflict)
}

// lenientReadings calls conflict with each lenient reading of an escaped path (Tomcat's split,
// then the path decoded 1 to maxLenientDecodes times) until one conflicts.
func lenientReadings(escaped string, conflict func(*reqPath) (route, bool)) (route, bool) {
	var lp reqPath
	lp.lenientRaw(escaped)
	if lrt, amb := conflict(&lp); amb {
		return lrt, true
	}
	s := escaped
	for range maxLenientDecodes {
		d := lenientUnescape(s)
		if d == s {
			break
		}
		s = d
		lp.lenientDecoded(s)
		if lrt, amb := conflict(&lp); amb {
			return lrt, true
		}
	}
	return routeOther, false
}

// methodSet is what matters of the methods a lenient router could take a request for: the
// request's own, whether any other was named, and whether the feed's or the accept's method
// was. It stays this small however many override values a request carries.
type methodSet struct {
	own          string
	feed, accept string // the route's method when some reading names it, else ""
	other        bool   // some reading names a method other than the request's own
	// anyMethod is anyMethod when a router that ignores the method must be modelled.
	anyMethod string
}

// anyMethod, as the method of routeOf, matches a route whatever its method (a router that
// routes on the path alone). No request method has this spelling.
const anyMethod = "\x00any"

// methodMatches reports whether a request's method m (or anyMethod) matches a route's.
func methodMatches(m, route string) bool {
	return m == anyMethod || strings.EqualFold(m, route)
}

func (s *methodSet) add(p *policy, m string) {
	if m == "" || strings.EqualFold(m, s.own) {
		return
	}
	s.other = true
	if p.feed != nil && strings.EqualFold(m, p.feed.method) {
		s.feed = p.feed.method
	}
	if p.accept != nil && strings.EqualFold(m, p.accept.method) {
		s.accept = p.accept.method
	}
}

// addQueryMethods adds the values of the method-override query parameter (its name decoded,
// in any case) to s. Parameters are separated by '&' or ';'; only a name with '%' or '+' is
// decoded (so ordinary queries allocate nothing).
func addQueryMethods(s *methodSet, p *policy, rawQuery string) {
	for kv := range strings.FieldsFuncSeq(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		k, v, _ := strings.Cut(kv, "=")
		if len(k) > 64 {
			continue // longer than any encoding of the name
		}
		if strings.ContainsAny(k, "%+") {
			k = lenientUnescape(strings.ReplaceAll(k, "+", " "))
		}
		if !strings.EqualFold(strings.Trim(k, " \x00"), methodOverrideParam) {
			continue
		}
		s.add(p, strings.TrimSpace(lenientUnescape(strings.ReplaceAll(v, "+", " "))))
	}
}

// needsLenientPath reports whether a lenient router could split the escaped path into other
// segments than the gateway's exact normalization does (beyond letter case).
func needsLenientPath(escaped string) bool {
	for i := 0; i < len(escaped); i++ {
		switch escaped[i] {
		case '%', ';', '\\', '?', '#', ' ', 0:
			return true
		case '.':
			if i+1 == len(escaped) || escaped[i+1] == '/' {
				return true
			}
		}
	}
	return false
}

// lenientRaw splits an escaped path as a router that strips ";params" before it decodes
// (Tomcat): '\' and '/' separate segments, each segment is cut at ';', then decoded.
func (p *reqPath) lenientRaw(escaped string) {
	p.segs = p.buf[:0]
	p.trailing = strings.HasSuffix(escaped, "/") || strings.HasSuffix(escaped, `\`)
	for seg := range strings.FieldsFuncSeq(escaped, isSlash) {
		seg, _, _ = strings.Cut(seg, ";")
		p.segs = appendLenientSegment(p.segs, lenientUnescape(seg))
	}
}

// lenientDecoded splits a decoded path as a router that decodes first: the path ends at a
// '?' or '#' that decoding revealed, '\' is '/', NUL bytes are dropped, and each segment is
// cut at ';'.
func (p *reqPath) lenientDecoded(path string) {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	path = strings.ReplaceAll(path, "\x00", "")
	p.segs = p.buf[:0]
	p.trailing = strings.HasSuffix(path, "/") || strings.HasSuffix(path, `\`)
	for seg := range strings.FieldsFuncSeq(path, isSlash) {
		seg, _, _ = strings.Cut(seg, ";")
		p.segs = appendLenientSegment(p.segs, seg)
	}
}

func isSlash(r rune) bool { return r == '/' || r == '\\' }

// appendLenientSegment appends a decoded segment as a lenient router sees it: without NUL
// bytes and trailing dots or spaces (as Windows and IIS trim them); "." is dropped and ".."
// removes the segment before it.
func appendLenientSegment(segs []string, seg string) []string {
	if strings.IndexByte(seg, 0) >= 0 {
		seg = strings.ReplaceAll(seg, "\x00", "")
	}
	switch seg {
	case ".":
		return segs
	case "..":
		if len(segs) > 0 {
			segs = segs[:len(segs)-1]
		}
		return segs
	}
	if seg = strings.TrimRight(seg, ". "); seg == "" {
		return segs
	}
	return append(segs, seg)
}

// lenientUnescape decodes s once, as the most lenient decoders do: %XX in either case, IIS's
// %uXXXX, and the overlong UTF-8 forms of '/', '\' and '.' (C0 AF, E0 80 AF, C1 9C, C0 AE) as
// those characters; an invalid escape is kept as it is.
func lenientUnescape(s string) string {
	if strings.IndexByte(s, '%') < 0 && !hasOverlong(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 < len(s) && unhex(s[i+1]) >= 0 && unhex(s[i+2]) >= 0 {
				b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
				i += 2
				continue
			}
			if i+5 < len(s) && (s[i+1] == 'u' || s[i+1] == 'U') {
				r := 0
				ok := true
				for _, h := range []byte(s[i+2 : i+6]) {
					if unhex(h) < 0 {
						ok = false
						break
					}
					r = r<<4 | unhex(h)
				}
				if ok {
					b.WriteRune(rune(r))
					i += 5
					continue
				}
			}
		}
		b.WriteByte(c)
	}
	return fixOverlong(b.String())
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// overlong are the overlong UTF-8 encodings of '/', '\' and '.' that old decoders took for
// those characters.
var overlong = strings.NewReplacer("\xc0\xaf", "/", "\xe0\x80\xaf", "/", "\xc1\x9c", `\`, "\xc0\xae", ".", "\xe0\x80\xae", ".")

func hasOverlong(s string) bool {
	return !utf8.ValidString(s) && (strings.Contains(s, "\xc0") || strings.Contains(s, "\xc1") || strings.Contains(s, "\xe0\x80"))
}

func fixOverlong(s string) string {
	if hasOverlong(s) {
		return overlong.Replace(s)
	}
	return s
}
