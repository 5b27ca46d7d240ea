package runtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/conf"
)

// TestConsoleSignsInThroughOpenIDConnectWithTheRoleClaim: with admin-console-oidc-realm, the
// console's sign-in page offers the realm; the operator goes through the realm's login (a
// front-end that accepts with a "roles" claim), comes back to the console, and is signed in
// with the role the claim gives: an administrator, a viewer, or refused without either.
func TestConsoleSignsInThroughOpenIDConnectWithTheRoleClaim(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	sessiond := "http://127.0.0.1:" + strconv.Itoa(port)

	// The login front-end: it accepts whoever comes with the user and roles the test set.
	var mu sync.Mutex
	var user string
	var roles []string
	fe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		body, _ := json.Marshal(map[string]any{"user_id": user, "username": user, "claims": map[string]any{"roles": roles}})
		mu.Unlock()
		req, _ := http.NewRequest(http.MethodPut, sessiond+"/realms/ops/login-requests/"+r.URL.Query().Get("login_challenge")+"/accept", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testFrontend)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		var out struct {
			RedirectTo string `json:"redirect_to"`
		}
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || out.RedirectTo == "" {
			http.Error(w, fmt.Sprintf("accept: %d %v", res.StatusCode, err), http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, out.RedirectTo, http.StatusFound)
	}))
	t.Cleanup(fe.Close)

	e := newEnv(t)
	realmJSON := fmt.Sprintf(`[{"realm": %q, "clients": [{"clientId": %q, "secret": %q}]},
		{"realm": "ops", "loginFrontendUrl": %q, "clients": [{"clientId": "console", "secret": "console-secret-0123456789",
			"redirectUris": [%q]}]}]`, testRealm, testClient, testSecret, fe.URL+"/login", sessiond+"/admin/console/oidc/callback")
	if err := os.WriteFile(e.realmFile, []byte(realmJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	rt := e.run(Options{Profile: conf.ProfileDev}, nil, append(without(e.args(), "--http-enabled", "--http-management-port", "--hostname", "--http-port"),
		"--http-port="+strconv.Itoa(port), "--admin-token="+consoleAdminToken,
		"--admin-console-oidc-realm=ops", "--admin-console-oidc-client=console",
		"--admin-console-oidc-role=sessiond-admin", "--admin-console-oidc-viewer-role=sessiond-viewer"))
	waitReady(t, rt, nil)

	get := func(c *http.Client, path string) (int, string) {
		t.Helper()
		res, err := c.Get(base(rt) + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if _, page := get(http.DefaultClient, "/admin/console/"); !strings.Contains(page, `href="/admin/console/oidc/start"`) || !strings.Contains(page, "Sign in with realm ops") {
		t.Fatalf("the sign-in page does not offer realm ops:\n%s", page)
	}
	for _, tc := range []struct {
		name, user string
		roles      []string
		status     int
		want       string // on the page after the sign-in, then on the realm picker
		picker     string
	}{
		{"administrator", "alice", []string{"staff", "sessiond-admin"}, http.StatusOK, "Signed in", "signed in as <strong id=\"actor\">oidc:alice</strong></span>"},
		{"viewer", "victor", []string{"sessiond-viewer"}, http.StatusOK, "Signed in", "oidc:victor</strong> (view only)"},
		{"no console role", "mallory", []string{"staff"}, http.StatusForbidden, "holds no console role", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			user, roles = tc.user, tc.roles
			mu.Unlock()
			jar, _ := cookiejar.New(nil)
			browser := &http.Client{Jar: jar}
			code, page := get(browser, "/admin/console/oidc/start")
			if code != tc.status || !strings.Contains(page, tc.want) {
				t.Fatalf("sign in through realm ops: %d, want %d with %q:\n%s", code, tc.status, tc.want, page)
			}
			code, page = get(browser, "/admin/console/realms/")
			switch {
			case tc.picker == "" && strings.Contains(page, `id="actor"`):
				t.Errorf("refused, yet signed in:\n%s", page)
			case tc.picker != "" && (code != http.StatusOK || !strings.Contains(page, tc.picker)):
				t.Errorf("realm picker: %d, want %q:\n%s", code, tc.picker, page)
			}
		})
	}
	t.Run("a callback this browser did not start", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		code, page := get(&http.Client{Jar: jar}, "/admin/console/oidc/callback?code=x&state=y")
		if code != http.StatusBadRequest || !strings.Contains(page, "not started here") {
			t.Errorf("%d:\n%s", code, page)
		}
	})
}
