package forwarded

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestProxyHeadersAreIgnoredUnlessConfigured(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	cases := []struct {
		name       string
		opts       Options
		peer       string
		headers    map[string]string
		wantAddr   string
		wantScheme string
	}{
		{"not configured: Forwarded ignored", Options{}, "198.51.100.7:4000",
			map[string]string{"Forwarded": "for=203.0.113.9;proto=https"}, "198.51.100.7:4000", ""},
		{"not configured: X-Forwarded-For ignored", Options{}, "198.51.100.7:4000",
			map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}, "198.51.100.7:4000", ""},
		{"forwarded configured: X-Forwarded-For ignored", Options{Headers: Forwarded}, "198.51.100.7:4000",
			map[string]string{"X-Forwarded-For": "203.0.113.9"}, "198.51.100.7:4000", ""},
		{"xforwarded configured: Forwarded ignored", Options{Headers: XForwarded}, "198.51.100.7:4000",
			map[string]string{"Forwarded": "for=203.0.113.9"}, "198.51.100.7:4000", ""},
		{"forwarded", Options{Headers: Forwarded}, "10.0.0.2:4000",
			map[string]string{"Forwarded": "for=203.0.113.9;proto=https"}, "203.0.113.9:0", "https"},
		{"forwarded IPv6 with port", Options{Headers: Forwarded}, "10.0.0.2:4000",
			map[string]string{"Forwarded": `for="[2001:db8::1]:4711";proto=http`}, "[2001:db8::1]:4711", "http"},
		{"forwarded: the rightmost is the one the proxy added", Options{Headers: Forwarded}, "10.0.0.2:4000",
			map[string]string{"Forwarded": "for=192.0.2.66, for=203.0.113.9"}, "203.0.113.9:0", ""},
		{"xforwarded", Options{Headers: XForwarded}, "10.0.0.2:4000",
			map[string]string{"X-Forwarded-For": "192.0.2.66, 203.0.113.9", "X-Forwarded-Proto": "https"}, "203.0.113.9:0", "https"},
		{"trusted list: peer not a proxy, headers ignored", Options{Headers: XForwarded, Trusted: trusted}, "198.51.100.7:4000",
			map[string]string{"X-Forwarded-For": "203.0.113.9"}, "198.51.100.7:4000", ""},
		{"trusted list: a chain of proxies is skipped", Options{Headers: Forwarded, Trusted: trusted}, "10.0.0.2:4000",
			map[string]string{"Forwarded": "for=192.0.2.66, for=203.0.113.9, for=10.0.0.3"}, "203.0.113.9:0", ""},
		{"obfuscated identifier: unchanged", Options{Headers: Forwarded}, "10.0.0.2:4000",
			map[string]string{"Forwarded": "for=_hidden"}, "10.0.0.2:4000", ""},
		{"no header: unchanged", Options{Headers: Forwarded}, "10.0.0.2:4000", nil, "10.0.0.2:4000", ""},
		{"unknown scheme is not taken", Options{Headers: XForwarded}, "10.0.0.2:4000",
			map[string]string{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "gopher"}, "203.0.113.9:0", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var addr, scheme string
			h := Handler(tc.opts, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				addr, scheme = r.RemoteAddr, r.URL.Scheme
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = tc.peer
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if addr != tc.wantAddr || scheme != tc.wantScheme {
				t.Errorf("handler saw %q %q; want %q %q", addr, scheme, tc.wantAddr, tc.wantScheme)
			}
		})
	}
}
