package pages

import "testing"

func TestContentSecurityPolicy_formActionAllowsTheRedirectsOrigins(t *testing.T) {
	const base = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
	tests := []struct {
		name           string
		formTo, frames []string
		want           string
	}{
		{"no redirect", nil, nil, base + "; frame-ancestors 'none'"},
		{"client redirect URI: its origin only", []string{"https://app.example:8443/cb?x=1#f"}, nil,
			base + " https://app.example:8443; frame-ancestors 'none'"},
		{"native app scheme", []string{"com.example.app:/callback"}, nil,
			base + " com.example.app:; frame-ancestors 'none'"},
		{"empty and relative URLs add nothing", []string{"", "/relative"}, nil, base + "; frame-ancestors 'none'"},
		{"front-channel frames", nil, []string{"https://a.example/fc?sid=1", "http://b.example:81/x"},
			base + "; frame-ancestors 'none'; frame-src https://a.example http://b.example:81"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ContentSecurityPolicy(tt.formTo, tt.frames); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
