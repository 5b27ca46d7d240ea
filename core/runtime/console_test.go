package runtime

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

// TestStartServesTheAdminConsoleUnlessDisabled: start serves the admin console on the
// public listener, signed in with admin-token; admin-console-enabled=false leaves it out,
// and the path is then the admin API's unknown path (401 without a bearer credential).
func TestStartServesTheAdminConsoleUnlessDisabled(t *testing.T) {
	const adminToken = "admin-token-of-the-runtime-tests-0123456789"
	t.Run("enabled by default", func(t *testing.T) {
		rt := newEnv(t).start(Options{}, nil, "--admin-token="+adminToken)
		jar, _ := cookiejar.New(nil)
		browser := &http.Client{Jar: jar}
		req, _ := http.NewRequest(http.MethodPost, base(rt)+"/admin/console/signin", strings.NewReader(url.Values{"credential": {adminToken}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base(rt))
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		resp, err = browser.Get(base(rt) + "/admin/console/realms/offline/sessions")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `id="sessions"`) {
			t.Fatalf("sessions page after sign in: %d\n%s", resp.StatusCode, page)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		rt := newEnv(t).start(Options{}, nil, "--admin-token="+adminToken, "--admin-console-enabled=false")
		if code := status(t, http.DefaultClient, base(rt)+"/admin/console/"); code != http.StatusUnauthorized {
			t.Errorf("/admin/console/ with the console disabled: %d, want the admin API's 401", code)
		}
	})
}
