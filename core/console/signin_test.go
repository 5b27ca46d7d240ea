package console_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/console"
)

func TestSignInKeepsARandomIdInAStrictHttpOnlyCookie(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	res := b.post("/admin/console/signin", url.Values{"credential": {adminCred}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/console/realms/" {
		t.Fatalf("sign in: %d to %q, want 303 to the realm picker", res.StatusCode, res.Header.Get("Location"))
	}
	cookies := res.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v, want one", cookies)
	}
	c := cookies[0]
	if c.Name != console.CookieName || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/admin/console/" || c.Secure {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/admin/console/, not Secure over plain HTTP", c)
	}
	if strings.Contains(c.Value, adminCred) || len(c.Value) < 40 {
		t.Errorf("cookie value %q: want a random id of 32 bytes, never the credential", c.Value)
	}
	if c.MaxAge != int(console.DefaultMaxLifetime/time.Second) {
		t.Errorf("cookie Max-Age %d, want the session's max lifetime %s", c.MaxAge, console.DefaultMaxLifetime)
	}
	page := b.get("/admin/console/realms/")
	if page.StatusCode != http.StatusOK || page.textOf("actor") != "admin" {
		t.Errorf("realm picker after sign in: %d, actor %q", page.StatusCode, page.textOf("actor"))
	}
	if got := f.audit.actions(); !slices.Contains(got, "admin console-sign-in success") {
		t.Errorf("audit %v: want the sign-in", got)
	}
}

func TestSignInCookieIsSecureUnderTLS(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		req  func() *http.Request
	}{
		{"TLS connection", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "https://sso.test/admin/console/signin", strings.NewReader("credential="+adminCred))
			r.TLS = &tls.ConnectionState{}
			return r
		}},
		{"https behind a trusted proxy", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/admin/console/signin", strings.NewReader("credential="+adminCred))
			r.URL.Scheme = "https" // as core/forwarded sets it
			return r
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req()
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			w := httptest.NewRecorder()
			f.console.ServeHTTP(w, r)
			cs := w.Result().Cookies()
			if w.Code != http.StatusSeeOther || len(cs) != 1 || !cs[0].Secure {
				t.Errorf("%d, cookies %+v: want a Secure cookie", w.Code, cs)
			}
		})
	}
}

func TestEveryAnswerCarriesTheSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	for _, path := range []string{"/admin/console/", "/admin/console/static/console.css", "/admin/console/nowhere", "/admin/console/realms/acme/sessions", "/admin/console"} {
		res := b.get(path)
		h := res.Header
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'none'") {
			t.Errorf("%s: Content-Security-Policy %q", path, csp)
		}
		if h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", path, h)
		}
	}
}

func TestFailedSignInsAreRefusedAuditedAndThrottled(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	for _, tc := range []struct {
		cred   string
		status int
		reason string
	}{
		{"", http.StatusUnauthorized, "anonymous missing_credentials console-sign-in"},
		{"wrong", http.StatusUnauthorized, "anonymous invalid_credential console-sign-in"},
		{frontendCred, http.StatusForbidden, "frontend forbidden console-sign-in"},
	} {
		res := b.post("/admin/console/signin", url.Values{"credential": {tc.cred}})
		if res.StatusCode != tc.status || res.textOf("error") == "" || len(res.Cookies()) != 0 {
			t.Errorf("credential %q: %d, error %q, cookies %v; want %d, an error and no cookie", tc.cred, res.StatusCode, res.textOf("error"), res.Cookies(), tc.status)
		}
		if got := f.refusals.reasons(); !slices.Contains(got, tc.reason) {
			t.Errorf("credential %q: refusals %v, want %q", tc.cred, got, tc.reason)
		}
	}
	// The guard allows 5 failures a minute per address; the forbidden one was not a failure.
	var last *response
	for range 5 {
		last = b.post("/admin/console/signin", url.Values{"credential": {"wrong"}})
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("after repeated failures: %d (Retry-After %q), want 429", last.StatusCode, last.Header.Get("Retry-After"))
	}
	// Throttled: even the right credential is not compared.
	if res := b.post("/admin/console/signin", url.Values{"credential": {adminCred}}); res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right credential while throttled: %d, want 429", res.StatusCode)
	}
}

func TestSignOutEndsTheSessionAndItsCookie(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	csrf := b.signIn(adminCred)
	u, _ := url.Parse(f.srv.URL + "/admin/console/")
	old := b.client.Jar.Cookies(u)
	res := b.post("/admin/console/signout", url.Values{"csrf": {csrf}})
	if res.StatusCode != http.StatusSeeOther || len(res.Cookies()) != 1 || res.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("sign out: %d, cookies %+v; want 303 and the cookie cleared", res.StatusCode, res.Cookies())
	}
	// The old cookie, replayed, opens nothing.
	replay := f.browser()
	replay.client.Jar.SetCookies(u, old)
	if res := replay.get("/admin/console/realms/"); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/console/" {
		t.Errorf("old cookie after sign out: %d to %q, want the sign-in page", res.StatusCode, res.Header.Get("Location"))
	}
	if got := f.audit.actions(); !slices.Contains(got, "admin console-sign-out success") {
		t.Errorf("audit %v: want the sign-out", got)
	}
}

func TestSignOutNeedsTheSessionsCSRFToken(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	b.signIn(adminCred)
	if res := b.post("/admin/console/signout", url.Values{}); res.StatusCode != http.StatusForbidden {
		t.Errorf("sign out without the token: %d, want 403", res.StatusCode)
	}
	if res := b.get("/admin/console/realms/"); res.StatusCode != http.StatusOK {
		t.Errorf("after a refused sign out: %d, want still signed in", res.StatusCode)
	}
}

func TestConsoleSessionsExpireWhenIdleAndAtTheirMax(t *testing.T) {
	f := newFixture(t)
	t.Run("idle", func(t *testing.T) {
		b := f.browser()
		b.signIn(viewerCred)
		f.now = f.now.Add(console.DefaultIdleTimeout - time.Second)
		if res := b.get("/admin/console/realms/"); res.StatusCode != http.StatusOK {
			t.Fatalf("just before the idle timeout: %d", res.StatusCode)
		}
		f.now = f.now.Add(console.DefaultIdleTimeout)
		if res := b.get("/admin/console/realms/"); res.StatusCode != http.StatusSeeOther {
			t.Errorf("after the idle timeout: %d, want the sign-in page", res.StatusCode)
		}
	})
	t.Run("max", func(t *testing.T) {
		b := f.browser()
		b.signIn(viewerCred)
		start := f.now
		for f.now.Sub(start) < console.DefaultMaxLifetime-10*time.Minute {
			f.now = f.now.Add(10 * time.Minute)
			if res := b.get("/admin/console/realms/"); res.StatusCode != http.StatusOK {
				t.Fatalf("used every 10 minutes, at %s: %d", f.now.Sub(start), res.StatusCode)
			}
		}
		f.now = start.Add(console.DefaultMaxLifetime)
		if res := b.get("/admin/console/realms/"); res.StatusCode != http.StatusSeeOther {
			t.Errorf("at the max lifetime: %d, want the sign-in page", res.StatusCode)
		}
	})
}

func TestSignInFromAnotherSiteIsRefused(t *testing.T) {
	f := newFixture(t)
	b := f.browser()
	res := b.postWith("/admin/console/signin", url.Values{"credential": {adminCred}}, map[string]string{"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"})
	if res.StatusCode != http.StatusForbidden || len(res.Cookies()) != 0 {
		t.Errorf("cross-site sign in: %d, cookies %v; want 403 and no session", res.StatusCode, res.Cookies())
	}
}
