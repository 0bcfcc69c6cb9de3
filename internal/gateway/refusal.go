package gateway

import (
	"io"
	"net/http"
	"sync"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// refusalShapes are a policy's refusals in the offer API's own shape (spec.refusal), compiled
// at config load, by decision name. nil keeps the gateway's own refusals: the decision's
// status and a text/plain body naming it.
type refusalShapes map[string]*refusalShape

// refusalShape is the answer to one decision's refusals.
type refusalShape struct {
	status      int
	contentType []string                    // the Content-Type header value; nil with body nil
	body        *gatewayconfig.BodyTemplate // nil: the default text/plain body
}

// compileRefusals compiles r for every decision the gateway refuses with: those the config
// can shape one by one, and the gateway's own (which take the policy-wide shape).
func compileRefusals(r *gatewayconfig.Refusal) refusalShapes {
	if r == nil {
		return nil
	}
	out := refusalShapes{}
	add := func(name string, status int) {
		st, ct, body := r.Shape(gatewayconfig.RefusalDecision(name), status)
		sh := &refusalShape{status: st}
		if body != "" {
			sh.contentType = []string{ct}
			sh.body = gatewayconfig.CompileBody(body, gatewayconfig.IsJSONContentType(ct))
		}
		out[name] = sh
	}
	for d := Allowed + 1; d < numDecisions; d++ {
		add(d.String(), d.Status())
	}
	add(DecisionLostDraw.String(), http.StatusConflict)
	add(DecisionDuplicateAccept.String(), http.StatusConflict)
	return out
}

var refusalBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// write answers a refusal of decision, whose own status is status, in the policy's shape for
// it, or as the gateway's own refusal (status and a text/plain body naming the decision) when
// the policy shapes none; retryAfter is the seconds of the Retry-After header already set (0
// without one). The caller has set OfferFeed-Decision.
func (rs refusalShapes) write(w http.ResponseWriter, decision string, status int, retryAfter int64) {
	h := w.Header()
	sh := rs[decision]
	if sh == nil || sh.body == nil {
		if sh != nil {
			status = sh.status
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, decision+"\n")
		return
	}
	h["Content-Type"] = sh.contentType
	bp := refusalBufs.Get().(*[]byte)
	b := sh.body.Append((*bp)[:0], decision, sh.status, retryAfter)
	w.WriteHeader(sh.status)
	_, _ = w.Write(b)
	*bp = b[:0]
	refusalBufs.Put(bp)
}
