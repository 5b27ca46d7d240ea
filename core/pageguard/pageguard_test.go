package pageguard

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/spi"
)

func TestCheckTextRefusesWhatNoStoreCanHold(t *testing.T) {
	for _, tc := range []struct {
		name, method, target, body string
		ok                         bool
	}{
		{"plain GET", http.MethodGet, "/p?q=alice", "", true},
		{"plain POST", http.MethodPost, "/p", "csrf=x&user=alice", true},
		{"NUL in the path", http.MethodGet, "/p%00", "", false},
		{"invalid UTF-8 in a query value", http.MethodGet, "/p?q=%ff", "", false},
		{"NUL in a query name", http.MethodGet, "/p?a%00=1", "", false},
		{"malformed query", http.MethodGet, "/p?q=%zz", "", false},
		{"invalid UTF-8 in a form value", http.MethodPost, "/p", "user=%c3%28", false},
		{"form over MaxForm", http.MethodPost, "/p", "a=" + strings.Repeat("x", MaxForm), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			if tc.method == http.MethodPost {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			err := CheckText(r)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, spi.ErrInvalid)) {
				t.Errorf("CheckText = %v, want ok %v (errors wrap spi.ErrInvalid)", err, tc.ok)
			}
		})
	}
}

func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		name     string
		headers  map[string]string
		hostname string
		want     bool
	}{
		{"Sec-Fetch-Site same-origin", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "null"}, "", true},
		{"Sec-Fetch-Site cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, "", false},
		{"Sec-Fetch-Site same-site is not enough", map[string]string{"Sec-Fetch-Site": "same-site"}, "", false},
		{"neither header", nil, "", true},
		{"Origin of the host", map[string]string{"Origin": "http://sessiond.test"}, "", true},
		{"Origin of another host", map[string]string{"Origin": "http://evil.test"}, "", false},
		{"Origin null without Sec-Fetch-Site", map[string]string{"Origin": "null"}, "", false},
		{"Origin of the configured hostname", map[string]string{"Origin": "https://id.example"}, "https://id.example", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://sessiond.test/p", nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			if got := SameOrigin(r, tc.hostname); got != tc.want {
				t.Errorf("SameOrigin = %v, want %v", got, tc.want)
			}
		})
	}
}
