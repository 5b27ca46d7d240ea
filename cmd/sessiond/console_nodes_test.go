package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestConsoleSessionHoldsAcrossTwoNodesSharingPostgreSQL is a load balancer's view of the
// admin console: two sessiond processes on one PostgreSQL schema, an operator's requests
// going to either. Signed in on node A, the operator is signed in on node B with the same
// CSRF token; signed out on node B, the old cookie opens nothing on node A either.
func TestConsoleSessionHoldsAcrossTwoNodesSharingPostgreSQL(t *testing.T) {
	t.Parallel()
	a, b, _ := startTwoNodes(t)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, base, path string, form url.Values) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(form.Encode()))
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "same-origin") // as a browser posts the console's own forms
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	csrfOf := regexp.MustCompile(`name="csrf" value="([^"]+)"`)

	if code, body := do(http.MethodPost, a.base, "/admin/console/signin", url.Values{"credential": {persistAdmin}}); code != http.StatusSeeOther {
		t.Fatalf("sign in on node A: %d\n%s", code, body)
	}
	_, pageA := do(http.MethodGet, a.base, "/admin/console/realms/", nil)
	code, pageB := do(http.MethodGet, b.base, "/admin/console/realms/", nil)
	ma, mb := csrfOf.FindStringSubmatch(pageA), csrfOf.FindStringSubmatch(pageB)
	if code != http.StatusOK || ma == nil || mb == nil || ma[1] != mb[1] {
		t.Fatalf("node B after signing in on node A: %d, CSRF tokens %v and %v; want signed in with the same one\n%s", code, ma, mb, pageB)
	}
	u, _ := url.Parse(a.base + "/admin/console/")
	old := jar.Cookies(u)
	if code, body := do(http.MethodPost, b.base, "/admin/console/signout", url.Values{"csrf": {ma[1]}}); code != http.StatusSeeOther {
		t.Fatalf("sign out on node B: %d\n%s", code, body)
	}
	jar.SetCookies(u, old)
	if code, _ := do(http.MethodGet, a.base, "/admin/console/realms/", nil); code != http.StatusSeeOther {
		t.Errorf("node A, the old cookie after signing out on node B: %d, want the sign-in page (303)", code)
	}
}
