package runtime

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const consoleAdminToken = "admin-token-of-the-runtime-tests-0123456789"

// consoleBrowser signs in to rt's admin console as a browser on its origin would, and
// returns it with the session's CSRF token.
func consoleBrowser(t *testing.T, rt *Runtime) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp := consolePost(t, browser, rt, "/admin/console/signin", url.Values{"credential": {consoleAdminToken}})
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("sign in to the console: %d\n%s", resp.StatusCode, page)
	}
	return browser, string(m[1])
}

func consolePost(t *testing.T, browser *http.Client, rt *Runtime, path string, form url.Values) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base(rt)+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base(rt))
	resp, err := browser.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestStartServesTheAdminConsoleUnlessDisabled: start serves the admin console on the
// public listener, signed in with admin-token; a session signed out from its row there
// ends, and its client gets its back-channel logout through the revocation-push provider,
// as from the admin API. admin-console-enabled=false leaves the console out, and the path
// is then the admin API's unknown path (401 without a bearer credential).
func TestStartServesTheAdminConsoleUnlessDisabled(t *testing.T) {
	t.Run("enabled by default", func(t *testing.T) {
		var mu sync.Mutex
		var sids []string
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			if parts := strings.Split(r.PostForm.Get("logout_token"), "."); r.URL.Path == "/bc" && len(parts) == 3 {
				raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
				var claims struct {
					SID string `json:"sid"`
				}
				_ = json.Unmarshal(raw, &claims)
				mu.Lock()
				sids = append(sids, claims.SID)
				mu.Unlock()
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(rcv.Close)
		e := newEnv(t)
		realmJSON := fmt.Sprintf(`{"realm": %q, "clients": [{"clientId": %q, "secret": %q,
			"attributes": {"backchannel.logout.url": %q}}]}`, testRealm, testClient, testSecret, rcv.URL+"/bc")
		if err := os.WriteFile(e.realmFile, []byte(realmJSON), 0o600); err != nil {
			t.Fatal(err)
		}
		rt := e.start(Options{}, nil, "--admin-token="+consoleAdminToken,
			"--spi-revocation-push-provider=adapter", "--spi-revocation-push-adapter-in-process=true")
		waitReady(t, rt, nil)
		alice := login(t, rt, "alice", "192.0.2.1", false)
		sid := alice.sessionID

		browser, csrf := consoleBrowser(t, rt)
		resp, err := browser.Get(base(rt) + "/admin/console/realms/" + testRealm + "/sessions")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `data-id="`+sid+`"`) {
			t.Fatalf("sessions page: %d, want alice's session %s\n%s", resp.StatusCode, sid, page)
		}
		resp = consolePost(t, browser, rt, "/admin/console/realms/"+testRealm+"/sessions/"+sid+"/logout", url.Values{"csrf": {csrf}, "offline": {"false"}})
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("sign out from the row: %d", resp.StatusCode)
		}
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			n := len(sids)
			mu.Unlock()
			if n > 0 {
				break
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if len(sids) != 1 || sids[0] != sid {
			t.Errorf("back-channel logouts for sessions %v, want one for %s", sids, sid)
		}
		if code, _ := refresh(t, rt, alice.refresh); code != http.StatusBadRequest {
			t.Errorf("alice's refresh after the sign out: %d, want 400 (the session has ended)", code)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		rt := newEnv(t).start(Options{}, nil, "--admin-token="+consoleAdminToken, "--admin-console-enabled=false")
		if code := status(t, http.DefaultClient, base(rt)+"/admin/console/"); code != http.StatusUnauthorized {
			t.Errorf("/admin/console/ with the console disabled: %d, want the admin API's 401", code)
		}
	})
}
