package runtime

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/conf"
)

const devLoginRealm = `{"realm": "offline", "clients": [
  {"clientId": "web", "secret": "web-secret", "redirectUris": ["http://app.test/cb"]}
]}`

// TestStartDevServesADevelopmentLoginFrontEnd: under start-dev a realm without
// loginFrontendUrl sends the browser to sessiond's own development page, where a username
// completes a real code-flow login; start never serves that page.
func TestStartDevServesADevelopmentLoginFrontEnd(t *testing.T) {
	env := func(t *testing.T) *env {
		e := newEnv(t)
		if err := os.WriteFile(e.realmFile, []byte(devLoginRealm), 0o600); err != nil {
			t.Fatal(err)
		}
		return e
	}
	auth := "/realms/offline/protocol/openid-connect/auth?" + url.Values{"response_type": {"code"}, "client_id": {"web"},
		"redirect_uri": {"http://app.test/cb"}, "scope": {"openid"}, "state": {"s"}}.Encode()
	var stopped *url.URL
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "app.test" {
			stopped = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}

	t.Run("start-dev", func(t *testing.T) {
		e := env(t)
		rt := e.run(Options{Profile: conf.ProfileDev}, nil,
			without(e.args(), "--http-enabled", "--http-management-port", "--hostname"))
		resp, err := browser.Get(base(rt) + auth)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "NOT FOR PRODUCTION") || !strings.HasSuffix(resp.Request.URL.Path, "/dev-login") {
			t.Fatalf("the authorization request led to %s (%d):\n%s", resp.Request.URL, resp.StatusCode, page)
		}
		resp, err = browser.PostForm(resp.Request.URL.String(), url.Values{"login_challenge": {resp.Request.URL.Query().Get("login_challenge")}, "username": {"alice"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if stopped == nil || stopped.Query().Get("code") == "" {
			t.Fatalf("no code after the development login: %v (status %d)", stopped, resp.StatusCode)
		}
		req, _ := http.NewRequest(http.MethodPost, base(rt)+"/realms/offline/protocol/openid-connect/token", strings.NewReader(url.Values{
			"grant_type": {"authorization_code"}, "code": {stopped.Query().Get("code")}, "redirect_uri": {"http://app.test/cb"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("web", "web-secret")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var tok struct {
			IDToken string `json:"id_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || tok.IDToken == "" {
			t.Fatalf("code grant: %d, id_token %q", resp.StatusCode, tok.IDToken)
		}
	})
	t.Run("start", func(t *testing.T) {
		stopped = nil
		rt := env(t).start(Options{}, nil)
		if code := status(t, http.DefaultClient, base(rt)+"/realms/offline/dev-login"); code != http.StatusNotFound {
			t.Errorf("start serves the development login page: %d", code)
		}
		resp, err := browser.Get(base(rt) + auth)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if stopped == nil || stopped.Query().Get("error") != "temporarily_unavailable" {
			t.Errorf("start without loginFrontendUrl: %v, want temporarily_unavailable", stopped)
		}
	})
}
