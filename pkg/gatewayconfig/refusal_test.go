package gatewayconfig

import (
	"encoding/json"
	"strings"
	"testing"
)

// flexRefusal is the refusal of the Amazon Flex shape: 400 and the platform's own message.
const flexRefusal = `{"status": 400, "contentType": "application/json", "body": "{\"message\":\"Rate exceeded\"}"}`

func TestParseRefusal(t *testing.T) {
	withRefusal := func(r string) []byte {
		return []byte(strings.Replace(validConfig, `"shownOffers": {"jsonPath": "offerList[].offerId"}`,
			`"shownOffers": {"jsonPath": "offerList[].offerId"}, "refusal": `+r, 1))
	}
	tests := []struct {
		desc    string
		refusal string
		wantErr string // "" for valid
	}{
		{desc: "Flex shape", refusal: flexRefusal},
		{desc: "problem document with every placeholder", refusal: `{"contentType": "application/problem+json",
			"body": "{\"type\":\"https://offers.example/problems/{{decision}}\",\"title\":\"Too many requests\",\"status\":{{status}},\"detail\":\"retry in {{retryAfter}}s\"}"}`},
		{desc: "status only", refusal: `{"status": 503}`},
		{desc: "decisions only", refusal: `{"decisions": [{"decision": "unseen-offer", "status": 404}]}`},
		{desc: "text body with parameters", refusal: `{"contentType": "text/plain; charset=utf-8", "body": "slow down: {{decision}}"}`},
		{desc: "lost-draw of its own", refusal: `{"status": 400, "contentType": "application/json", "body": "{}",
			"decisions": [{"decision": "lost-draw", "status": 410, "contentType": "application/json", "body": "{\"message\":\"Offer taken\"}"}]}`},

		{desc: "empty refusal", refusal: `{}`, wantErr: "refusal must set status, body or decisions"},
		{desc: "status 399", refusal: `{"status": 399}`, wantErr: "refusal.status: 399 is not between 400 and 599"},
		{desc: "status 600", refusal: `{"status": 600}`, wantErr: "refusal.status: 600 is not between 400 and 599"},
		{desc: "body without content type", refusal: `{"body": "{}"}`, wantErr: "refusal: contentType and body must be set together"},
		{desc: "content type without body", refusal: `{"contentType": "application/json"}`, wantErr: "contentType and body must be set together"},
		{desc: "content type with a line break", refusal: `{"contentType": "application/json\r\nSet-Cookie: a=b", "body": "{}"}`,
			wantErr: "refusal.contentType"},
		{desc: "content type without subtype", refusal: `{"contentType": "json", "body": "{}"}`, wantErr: "refusal.contentType"},
		{desc: "content type too long", refusal: `{"contentType": "application/` + strings.Repeat("x", 120) + `", "body": "x"}`,
			wantErr: "refusal.contentType"},
		{desc: "body too long", refusal: `{"contentType": "text/plain", "body": "` + strings.Repeat("x", MaxRefusalBodyLen+1) + `"}`,
			wantErr: "refusal.body: 4097 characters, more than the limit of 4096"},
		{desc: "body of the most characters, twice as many bytes", refusal: `{"contentType": "text/plain", "body": "` + strings.Repeat("é", MaxRefusalBodyLen) + `"}`},
		{desc: "body one character too long, in two-byte characters", refusal: `{"contentType": "text/plain", "body": "` + strings.Repeat("é", MaxRefusalBodyLen+1) + `"}`,
			wantErr: "refusal.body: 4097 characters, more than the limit of 4096"},
		{desc: "unknown placeholder", refusal: `{"contentType": "text/plain", "body": "hi {{driver}}"}`,
			wantErr: "body may hold only the placeholders"},
		{desc: "Go template action", refusal: `{"contentType": "text/plain", "body": "{{ .Request }}"}`,
			wantErr: "body may hold only the placeholders"},
		{desc: "JSON body that is not JSON", refusal: `{"contentType": "application/json", "body": "{\"message\": Rate exceeded}"}`,
			wantErr: "refusal.body: is not valid JSON for content type application/json"},
		{desc: "decision placeholder outside a JSON string", refusal: `{"contentType": "application/problem+json", "body": "{\"d\": {{decision}}}"}`,
			wantErr: "is not valid JSON"},
		{desc: "unknown decision", refusal: `{"decisions": [{"decision": "allowed", "status": 400}]}`,
			wantErr: `refusal.decisions[0].decision: "allowed" is not one of`},
		{desc: "duplicate decision", refusal: `{"decisions": [{"decision": "too-fast", "status": 400}, {"decision": "too-fast", "status": 429}]}`,
			wantErr: `refusal.decisions[1].decision: "too-fast" is shaped by refusal.decisions[0] already`},
		{desc: "decision entry that changes nothing", refusal: `{"decisions": [{"decision": "too-fast"}]}`,
			wantErr: "refusal.decisions[0]: a decision's refusal must set status or body"},
		{desc: "decision body not JSON", refusal: `{"decisions": [{"decision": "too-fast", "contentType": "application/json", "body": "nope"}]}`,
			wantErr: "refusal.decisions[0].body: is not valid JSON"},
		{desc: "eleven decision entries", refusal: `{"decisions": [` + strings.Repeat(`{"decision": "too-fast", "status": 400},`, 10) +
			`{"decision": "too-fast", "status": 400}]}`, wantErr: "refusal.decisions: 11 entries, more than the limit of 10"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c, err := Parse(withRefusal(tc.refusal))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if c.Policies[1].Refusal == nil {
					t.Fatal("refusal not read")
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted refusal %s", tc.refusal)
			}
			if !strings.Contains(err.Error(), "policies[1] (flex): ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not name the policy and contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestRefusalShape(t *testing.T) {
	r := &Refusal{Status: 400, ContentType: "application/json", Body: `{"message":"Rate exceeded"}`,
		Decisions: []DecisionRefusal{
			{Decision: "unseen-offer", Status: 410},
			{Decision: "lost-draw", ContentType: "application/problem+json", Body: `{"title":"taken"}`},
		}}
	tests := []struct {
		decision RefusalDecision
		own      int
		status   int
		ct, body string
	}{
		{"feed-throttled", 429, 400, "application/json", `{"message":"Rate exceeded"}`},
		{"unseen-offer", 403, 410, "application/json", `{"message":"Rate exceeded"}`},
		{"lost-draw", 409, 400, "application/problem+json", `{"title":"taken"}`},
	}
	for _, tc := range tests {
		st, ct, body := r.Shape(tc.decision, tc.own)
		if st != tc.status || ct != tc.ct || body != tc.body {
			t.Errorf("Shape(%s) = %d %q %q, want %d %q %q", tc.decision, st, ct, body, tc.status, tc.ct, tc.body)
		}
	}
	// Without a policy-wide status, each decision keeps its own; without a body, the default.
	r = &Refusal{Decisions: []DecisionRefusal{{Decision: "too-fast", Status: 400}}}
	if st, ct, body := r.Shape("feed-throttled", 429); st != 429 || ct != "" || body != "" {
		t.Errorf("Shape(feed-throttled) = %d %q %q, want 429 and the default body", st, ct, body)
	}
	if st, _, _ := r.Shape("too-fast", 429); st != 400 {
		t.Errorf("Shape(too-fast) status %d, want 400", st)
	}
	if st, ct, body := (*Refusal)(nil).Shape("too-fast", 429); st != 429 || ct != "" || body != "" {
		t.Errorf("nil Shape = %d %q %q", st, ct, body)
	}
}

func TestBodyTemplate(t *testing.T) {
	problem := `{"type":"about:blank","title":"{{decision}}","status":{{status}},"detail":"retry after {{retryAfter}} s"}`
	tests := []struct {
		desc, body string
		json       bool
		decision   string
		status     int
		retry      int64
		want       string
	}{
		{"Flex message, no placeholders", `{"message":"Rate exceeded"}`, true, "feed-throttled", 400, 2, `{"message":"Rate exceeded"}`},
		{"problem, feed-throttled", problem, true, "feed-throttled", 429, 2,
			`{"type":"about:blank","title":"feed-throttled","status":429,"detail":"retry after 2 s"}`},
		{"problem, accept-throttled", problem, true, "accept-throttled", 429, 540,
			`{"type":"about:blank","title":"accept-throttled","status":429,"detail":"retry after 540 s"}`},
		{"problem, too-fast has no Retry-After", problem, true, "too-fast", 429, 0,
			`{"type":"about:blank","title":"too-fast","status":429,"detail":"retry after 0 s"}`},
		{"problem, unseen-offer", problem, true, "unseen-offer", 403, 0,
			`{"type":"about:blank","title":"unseen-offer","status":403,"detail":"retry after 0 s"}`},
		{"problem, missing-identity", problem, true, "missing-identity", 400, 0,
			`{"type":"about:blank","title":"missing-identity","status":400,"detail":"retry after 0 s"}`},
		{"problem, lost-draw", problem, true, "lost-draw", 409, 0,
			`{"type":"about:blank","title":"lost-draw","status":409,"detail":"retry after 0 s"}`},
		{"problem, duplicate-accept", problem, true, "duplicate-accept", 409, 0,
			`{"type":"about:blank","title":"duplicate-accept","status":409,"detail":"retry after 0 s"}`},
		{"placeholder twice and at the ends", "{{status}}-{{status}}", false, "x", 503, 0, "503-503"},
		{"brace before a placeholder", "{{{decision}}}", false, "too-fast", 429, 0, "{too-fast}"},
		{"unknown braces stay literal", "{{sta{{decision}}tus}}", false, "d", 429, 0, "{{stadtus}}"},
		{"JSON escaping of the decision", `{"d":"{{decision}}"}`, true, `a"b\c` + "\n", 400, 0, `{"d":"a\"b\\c\u000a"}`},
		{"no escaping outside JSON", `{{decision}}`, false, `a"b`, 400, 0, `a"b`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got := string(CompileBody(tc.body, tc.json).Append(nil, tc.decision, tc.status, tc.retry))
			if got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			if tc.json && !json.Valid([]byte(got)) {
				t.Fatalf("not JSON: %s", got)
			}
		})
	}
}

func TestIsJSONContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "Application/JSON; charset=utf-8": true, "application/problem+json": true,
		"application/vnd.amazon+json": true, "text/json": false, "text/plain": false, "application/jsonx": false,
	} {
		if got := IsJSONContentType(ct); got != want {
			t.Errorf("IsJSONContentType(%q) = %v, want %v", ct, got, want)
		}
	}
}

// FuzzCompileBody checks the template compiler against strings.Replacer, which replaces the
// placeholders left to right as the compiler does, and that a body without "{{" is answered
// unchanged.
func FuzzCompileBody(f *testing.F) {
	for _, s := range []string{"", `{"message":"Rate exceeded"}`, "{{decision}}", "{{{status}}}", "{{sta{{decision}}tus}}",
		"{{retryAfter", "}}{{", "{{retryAfter}}{{retryAfter}}"} {
		f.Add(s)
	}
	rep := strings.NewReplacer(PlaceholderDecision, "too-fast", PlaceholderStatus, "429", PlaceholderRetryAfter, "7")
	f.Fuzz(func(t *testing.T, body string) {
		got := string(CompileBody(body, false).Append(nil, "too-fast", 429, 7))
		if want := rep.Replace(body); got != want {
			t.Fatalf("body %q: got %q, want %q", body, got, want)
		}
		if !strings.Contains(body, "{{") && got != body {
			t.Fatalf("body %q without placeholders changed to %q", body, got)
		}
	})
}
