package gatewayconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Refusal is the shape of a policy's refusals: the status, content type and body the gateway
// answers a refused request with, with entries for single decisions. Response headers
// OfferFeed-Decision, and Retry-After where the decision carries one, are sent whatever the
// shape.
type Refusal struct {
	// Status is the status of every refusal, 400 to 599; 0 keeps each decision's own.
	Status int `json:"status,omitempty"`
	// ContentType is the Content-Type of Body; set together with Body.
	ContentType string `json:"contentType,omitempty"`
	// Body is the body template of every refusal, with placeholders {{decision}}, {{status}}
	// and {{retryAfter}}; absent keeps the text/plain body naming the decision.
	Body string `json:"body,omitempty"`
	// Decisions shape single decisions; fields they leave empty come from the refusal.
	Decisions []DecisionRefusal `json:"decisions,omitempty"`
}

// DecisionRefusal is the shape of the refusals of one decision.
type DecisionRefusal struct {
	// Decision is the refused decision, one of RefusalDecisions.
	Decision RefusalDecision `json:"decision"`
	// Status replaces Refusal.Status for this decision; 0 keeps it.
	Status int `json:"status,omitempty"`
	// ContentType replaces Refusal.ContentType for this decision; set together with Body.
	ContentType string `json:"contentType,omitempty"`
	// Body replaces Refusal.Body for this decision; absent keeps it.
	Body string `json:"body,omitempty"`
}

// RefusalDecision names a gateway decision that refuses a request: the value of response
// header OfferFeed-Decision, as in the OfferFeedPolicy API's spec.refusal.decisions.
//
// +kubebuilder:validation:Enum=feed-throttled;accept-throttled;too-fast;unseen-offer;missing-identity;lost-draw;duplicate-accept;ambiguous-request;unreadable-offer;bot-like
type RefusalDecision string

// The decisions the gateway refuses a request with, and their status unless a refusal says
// otherwise. They are the values of response header OfferFeed-Decision (and, in DryRun, of
// request header OfferFeed-Flag).
const (
	// DecisionFeedThrottled: a poll sooner than minInterval (beyond burst); 429.
	DecisionFeedThrottled RefusalDecision = "feed-throttled"
	// DecisionAcceptThrottled: more than maxAccepts accepts in window; 429.
	DecisionAcceptThrottled RefusalDecision = "accept-throttled"
	// DecisionTooFast: an accept sooner than minReactionTime after the offer was shown; 429.
	DecisionTooFast RefusalDecision = "too-fast"
	// DecisionUnseenOffer: an accept for an offer never shown to this driver; 403.
	DecisionUnseenOffer RefusalDecision = "unseen-offer"
	// DecisionMissingIdentity: a governed request without the identity header; 400.
	DecisionMissingIdentity RefusalDecision = "missing-identity"
	// DecisionLostDraw: an accept held for its offer's fair draw that another driver won, or
	// for an offer whose draw is full; 409.
	DecisionLostDraw RefusalDecision = "lost-draw"
	// DecisionDuplicateAccept: a second accept of a driver already in the offer's open draw;
	// 409.
	DecisionDuplicateAccept RefusalDecision = "duplicate-accept"
	// DecisionAmbiguousRequest: a request that a lenient router could take for the feed or an
	// accept other than the gateway's exact match (encoded '/', ;params, case, HEAD, method
	// override headers, ...); 400.
	DecisionAmbiguousRequest RefusalDecision = "ambiguous-request"
	// DecisionUnreadableOffer: an accept whose offer id cannot be read (body too large, not
	// JSON, field missing or conflicting) while minReactionTime or fairness needs it; 400.
	DecisionUnreadableOffer RefusalDecision = "unreadable-offer"
	// DecisionBotLike: an accept of a driver whose bot-likeness score is above the policy's
	// botScore.refuseAbovePermille; 403.
	DecisionBotLike RefusalDecision = "bot-like"
)

// The bounds, the pattern and the decisions of a Refusal (MinRefusalStatus, MaxRefusalStatus,
// MinContentTypeLen, MaxContentTypeLen, ContentTypePattern, MinRefusalBodyLen,
// MaxRefusalBodyLen, MaxRefusalDecisions, RefusalDecisions) are generated from the CRD into
// zz_generated.rules.go; the entries of Refusal.Decisions are held to the same ones.

// The placeholders of a refusal body template.
const (
	// PlaceholderDecision is replaced by the decision's name, such as too-fast.
	PlaceholderDecision = "{{decision}}"
	// PlaceholderStatus is replaced by the answer's status code.
	PlaceholderStatus = "{{status}}"
	// PlaceholderRetryAfter is replaced by the seconds of header Retry-After, 0 without one.
	PlaceholderRetryAfter = "{{retryAfter}}"
)

var contentTypeRE = regexp.MustCompile(ContentTypePattern)

// Shape returns the status, content type and body template of the refusals of decision,
// whose own status is status: the decision's entry, then the refusal's fields. An empty
// content type means the gateway's default body (text/plain, the decision's name).
func (r *Refusal) Shape(decision RefusalDecision, status int) (int, string, string) {
	if r == nil {
		return status, "", ""
	}
	st, ct, body := r.Status, r.ContentType, r.Body
	for _, d := range r.Decisions {
		if d.Decision != decision {
			continue
		}
		if d.Status != 0 {
			st = d.Status
		}
		if d.Body != "" {
			ct, body = d.ContentType, d.Body
		}
		break
	}
	if st == 0 {
		st = status
	}
	return st, ct, body
}

// Validate checks a refusal as the OfferFeedPolicy schema does, and that a body with a JSON
// content type is JSON once its placeholders are replaced. Errors name the field under
// "refusal".
func (r *Refusal) Validate() error {
	var errs []error
	r.check(collect(&errs))
	return errors.Join(errs...)
}

// check reports the problems of a refusal (none for nil) to add.
func (r *Refusal) check(add problemFunc) {
	if r == nil {
		return
	}
	if r.Status == 0 && r.Body == "" && len(r.Decisions) == 0 {
		add("refusal", "refusal must set status, body or decisions")
	}
	checkShape(add, "refusal", r.Status, r.ContentType, r.Body)
	if len(r.Decisions) > MaxRefusalDecisions {
		add("refusal.decisions", "%d entries, more than the limit of %d", len(r.Decisions), MaxRefusalDecisions)
	}
	seen := make(map[RefusalDecision]int, len(r.Decisions))
	for i, d := range r.Decisions {
		f := fmt.Sprintf("refusal.decisions[%d]", i)
		if !slices.Contains(RefusalDecisions(), string(d.Decision)) {
			add(f+".decision", "%q is not one of %s", d.Decision, strings.Join(RefusalDecisions(), ", "))
		}
		if j, dup := seen[d.Decision]; dup {
			add(f+".decision", "%q is shaped by refusal.decisions[%d] already", d.Decision, j)
		}
		seen[d.Decision] = i
		if d.Status == 0 && d.Body == "" {
			add(f, "a decision's refusal must set status or body")
		}
		checkShape(add, f, d.Status, d.ContentType, d.Body)
	}
}

func checkShape(add problemFunc, f string, status int, ct, body string) {
	if status != 0 && (status < MinRefusalStatus || status > MaxRefusalStatus) {
		add(f+".status", "%d is not between %d and %d", status, MinRefusalStatus, MaxRefusalStatus)
	}
	if (ct == "") != (body == "") {
		add(f, "contentType and body must be set together")
	}
	if ct != "" && (len(ct) < MinContentTypeLen || len(ct) > MaxContentTypeLen || !contentTypeRE.MatchString(ct)) {
		add(f+".contentType", "%q is not a media type such as application/json (%d to %d characters)", truncate(ct, 64), MinContentTypeLen, MaxContentTypeLen)
	}
	if body == "" {
		return
	}
	// The schema's maxLength counts characters, not bytes.
	if n := utf8.RuneCountInString(body); n > MaxRefusalBodyLen {
		add(f+".body", "%d characters, more than the limit of %d", n, MaxRefusalBodyLen)
		return
	}
	if err := checkPlaceholders(body); err != nil {
		add(f+".body", "%v", err)
		return
	}
	if IsJSONContentType(ct) {
		t := CompileBody(body, true)
		sample := t.Append(nil, "feed-throttled", 429, 1)
		var v any
		if err := json.Unmarshal(sample, &v); err != nil {
			add(f+".body", "is not valid JSON for content type %s once its placeholders are replaced (as in %s): %v", ct, truncate(string(sample), 80), err)
		}
	}
}

// checkPlaceholders refuses a body with "{{" other than the three placeholders. It is the rule
// of the schema, word for word: remove each placeholder, then look for "{{".
func checkPlaceholders(body string) error {
	rest := strings.ReplaceAll(body, PlaceholderDecision, "")
	rest = strings.ReplaceAll(rest, PlaceholderStatus, "")
	rest = strings.ReplaceAll(rest, PlaceholderRetryAfter, "")
	if strings.Contains(rest, "{{") {
		return errors.New("body may hold only the placeholders {{decision}}, {{status}} and {{retryAfter}}")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// IsJSONContentType reports whether a content type is JSON: application/json or a +json type
// such as application/problem+json, parameters aside.
func IsJSONContentType(ct string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.ToLower(strings.TrimSpace(ct))
	return ct == "application/json" || strings.HasPrefix(ct, "application/") && strings.HasSuffix(ct, "+json")
}

// BodyTemplate is a refusal body compiled once, at config load: literal text and placeholders.
// Answering a refusal only appends; no template language runs on user input.
type BodyTemplate struct {
	parts []bodyPart
	json  bool
}

type bodyPart struct {
	lit string
	ph  byte // 0: lit; 'd' decision, 's' status, 'r' retryAfter
}

// CompileBody compiles a body template. It scans left to right and takes each placeholder
// where it starts; every other byte is literal. With escapeJSON the decision's name is escaped
// for a JSON string (names are plain tokens, so this only guards the format).
func CompileBody(body string, escapeJSON bool) *BodyTemplate {
	t := &BodyTemplate{json: escapeJSON}
	lit := 0
	for i := 0; i < len(body); {
		if body[i] != '{' || !strings.HasPrefix(body[i:], "{{") {
			i++
			continue
		}
		var ph byte
		var n int
		switch {
		case strings.HasPrefix(body[i:], PlaceholderDecision):
			ph, n = 'd', len(PlaceholderDecision)
		case strings.HasPrefix(body[i:], PlaceholderStatus):
			ph, n = 's', len(PlaceholderStatus)
		case strings.HasPrefix(body[i:], PlaceholderRetryAfter):
			ph, n = 'r', len(PlaceholderRetryAfter)
		default:
			i++
			continue
		}
		if lit < i {
			t.parts = append(t.parts, bodyPart{lit: body[lit:i]})
		}
		t.parts = append(t.parts, bodyPart{ph: ph})
		i += n
		lit = i
	}
	if lit < len(body) {
		t.parts = append(t.parts, bodyPart{lit: body[lit:]})
	}
	return t
}

// Append appends the body of a refusal to dst: the template with decision, status and
// retryAfter (seconds, 0 when the refusal has no Retry-After) in place of the placeholders.
func (t *BodyTemplate) Append(dst []byte, decision string, status int, retryAfter int64) []byte {
	for _, p := range t.parts {
		switch p.ph {
		case 0:
			dst = append(dst, p.lit...)
		case 'd':
			if t.json {
				dst = appendJSONEscaped(dst, decision)
			} else {
				dst = append(dst, decision...)
			}
		case 's':
			dst = strconv.AppendInt(dst, int64(status), 10)
		case 'r':
			dst = strconv.AppendInt(dst, retryAfter, 10)
		}
	}
	return dst
}

// appendJSONEscaped appends s escaped for the inside of a JSON string.
func appendJSONEscaped(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
