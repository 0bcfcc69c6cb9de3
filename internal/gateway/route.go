package gateway

import (
	"net/url"
	"strings"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// Routes are matched on a normalized request path, so that an encoding of the same path cannot
// slip past a governed route: each segment is percent-decoded on its own (an encoded '/' stays
// inside its segment, as the offer id), empty and "." segments are dropped, ".." removes the
// segment before it, and a trailing '/' is ignored except for a feed prefix. The request is
// forwarded unchanged.

// reqPath is the normalized path of a request: its segments, and whether it ended in '/'.
type reqPath struct {
	segs     []string
	trailing bool
	// buf backs segs for the common short path, so that matching does not allocate.
	buf [16]string
}

// normalize splits an escaped request path into decoded segments. It allocates only when
// the path has more than 16 segments or percent-escapes.
func (p *reqPath) normalize(escaped string) {
	p.segs, p.trailing = splitPath(escaped, p.buf[:0])
}

// splitPath appends the decoded segments of an escaped request path to segs, and reports
// whether the path ended in '/'. ServeHTTP calls it with an array of its own stack as segs:
// normalize stores a pointer to the reqPath in itself, which makes escape analysis move the
// reqPath to the heap (one allocation per request).
func splitPath(escaped string, segs []string) ([]string, bool) {
	trailing := strings.HasSuffix(escaped, "/")
	for len(escaped) > 0 {
		var seg string
		i := strings.IndexByte(escaped, '/')
		if i < 0 {
			seg, escaped = escaped, ""
		} else {
			seg, escaped = escaped[:i], escaped[i+1:]
		}
		segs = appendSegment(segs, seg, 0)
	}
	return segs, trailing
}

// appendSegment appends one escaped path segment to segs, decoded, the way request paths and
// templates are cleaned alike: "" and "." are dropped, and ".." removes the last segment when
// more than floor remain.
func appendSegment(segs []string, seg string, floor int) []string {
	if strings.IndexByte(seg, '%') >= 0 {
		if u, err := url.PathUnescape(seg); err == nil {
			seg = u
		}
	}
	switch seg {
	case "", ".":
		return segs
	case "..":
		if len(segs) > floor {
			segs = segs[:len(segs)-1]
		}
		return segs
	}
	return append(segs, seg)
}

// feedRoute matches the feed: an exact path, or every path below a prefix ending in '/'.
type feedRoute struct {
	method string
	segs   []string
	prefix bool
}

func compileFeedRoute(f *gatewayconfig.Feed) feedRoute {
	var p reqPath
	p.normalize(f.Path)
	return feedRoute{method: f.Method, segs: append([]string(nil), p.segs...), prefix: p.trailing}
}

// match reports whether the request is a feed poll. With fold, literal segments match in any
// case (as a lenient router would match them).
func (r *feedRoute) match(method string, p *reqPath, fold bool) bool {
	if !methodMatches(method, r.method) {
		return false
	}
	if r.prefix {
		// /offers/ matches /offers/ and everything below, not /offers itself; a lenient
		// router (Express without strict routing) takes /offers for /offers/ too.
		if len(p.segs) < len(r.segs) || (len(p.segs) == len(r.segs) && !p.trailing && !fold) {
			return false
		}
	} else if len(p.segs) != len(r.segs) {
		return false
	}
	for i, s := range r.segs {
		if !segEqual(p.segs[i], s, fold) {
			return false
		}
	}
	return true
}

func segEqual(a, b string, fold bool) bool {
	if fold {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// acceptRoute matches the accept path template; idSeg is the index of the {offerId} segment,
// or -1 when the offer id is in the body.
type acceptRoute struct {
	method string
	segs   []string
	idSeg  int
}

func compileAcceptRoute(a *gatewayconfig.Accept) acceptRoute {
	// Literal segments are normalized as request paths are (so /a%20b matches "a b"); the
	// {offerId} segment is recognized before decoding.
	r := acceptRoute{method: a.Method, idSeg: -1}
	for _, s := range strings.Split(a.PathTemplate, "/") {
		if s == gatewayconfig.OfferIDSegment {
			r.idSeg = len(r.segs)
			r.segs = append(r.segs, s)
			continue
		}
		r.segs = appendSegment(r.segs, s, r.idSeg+1) // ".." never removes {offerId}
	}
	return r
}

// match reports whether the request is an accept, and the offer id from the path when the
// template has a {offerId} segment. With fold, literal segments match in any case; the offer
// id is taken as it is.
func (r *acceptRoute) match(method string, p *reqPath, fold bool) (offerID string, ok bool) {
	if !methodMatches(method, r.method) || len(p.segs) != len(r.segs) {
		return "", false
	}
	for i, s := range r.segs {
		if i == r.idSeg {
			continue
		}
		if !segEqual(p.segs[i], s, fold) {
			return "", false
		}
	}
	if r.idSeg >= 0 {
		return p.segs[r.idSeg], true
	}
	return "", true
}
