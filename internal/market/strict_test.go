package market

import (
	"net/http"
	"testing"
)

// TestStrictErrors: what an app that reads only the offer API's own errors accepts as an
// error answer, and which answers it takes for the platform's rate limit.
func TestStrictErrors(t *testing.T) {
	tests := []struct {
		desc        string
		status      int
		contentType string
		body        string
		readable    bool
		rateLimited bool
	}{
		{"Flex rate limit", 400, "application/json", `{"message":"Rate exceeded"}`, true, true},
		{"Flex rate limit with charset", 400, "application/json; charset=utf-8", `{"message":"Rate exceeded"}`, true, true},
		{"offer taken", 410, "application/json", `{"offerId":"o-1","error":"offer already taken or expired"}`, true, false},
		{"other 400 message", 400, "application/json", `{"message":"Invalid offer"}`, true, false},
		{"gateway text refusal", 429, "text/plain; charset=utf-8", "feed-throttled\n", false, true},
		{"problem document", 429, "application/problem+json", `{"title":"x"}`, false, true},
		{"JSON null", 400, "application/json", `null`, false, false},
		{"JSON array", 400, "application/json", `[]`, false, false},
		{"no content type", 400, "", `{"message":"Rate exceeded"}`, false, true},
	}
	strict := NewDriver(DriverConfig{ID: "d", StrictErrors: true})
	lenient := NewDriver(DriverConfig{ID: "d"})
	for _, tc := range tests {
		h := http.Header{}
		if tc.contentType != "" {
			h.Set("Content-Type", tc.contentType)
		}
		if got := platformError(h, []byte(tc.body)); got != tc.readable {
			t.Errorf("%s: readable %v, want %v", tc.desc, got, tc.readable)
		}
		if got := strict.rateLimited(tc.status, []byte(tc.body)); got != tc.rateLimited {
			t.Errorf("%s: rate limited %v, want %v", tc.desc, got, tc.rateLimited)
		}
		if got := lenient.rateLimited(tc.status, []byte(tc.body)); got != (tc.status == 429) {
			t.Errorf("%s: a lenient driver takes only 429 for a rate limit, got %v", tc.desc, got)
		}
	}
}
