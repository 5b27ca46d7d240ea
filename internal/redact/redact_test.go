package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://app.test/admin", "https://app.test/admin"},
		{"https://user:hunter2@app.test/admin/k_push_not_before", "https://app.test/admin/k_push_not_before"},
		{"https://tok3n@app.test/hook?x=1", "https://app.test/hook?x=1"},
		{"http://u:hunter2@app.test:99999/x", "http://app.test:99999/x"}, // parses
		{"http://u:hunter2@app.test:port/x", "http://app.test:port/x"},   // invalid port: does not parse
		{"http://u:hun ter2@app.test/x\x7f", "http://app.test/x\x7f"},    // control character: does not parse
		{"u:hunter2@app.test/x", "u:app.test/x"},                         // no scheme: "u" reads as one
		{"https:u:hunter2@app.test/x", "https:app.test/x"},               // opaque
		{"mailto:ops@example.test", "mailto:example.test"},               // opaque with @
		{"", ""},
		{"not a url", "not a url"},
		{"https://app.test/path@with-at", "https://app.test/path@with-at"},
	} {
		got := URL(tc.in)
		if got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "hunter2") {
			t.Errorf("URL(%q) = %q keeps the password", tc.in, got)
		}
	}
}
