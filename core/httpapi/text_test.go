package httpapi_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/providers/usersessions/embedded"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// embeddedStore is the embedded (SQLite) provider on a new file, configured as the runtime
// configures it.
func embeddedStore(tb testing.TB) usersessions.Provider {
	tb.Helper()
	p := embedded.New(hclog.NewNullLogger())
	cfg := spi.Config{embedded.OptPath: filepath.Join(tb.TempDir(), "sessions.db"), spi.HostNodeID: testNode}
	if err := p.Configure(context.Background(), cfg); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// everyStore builds a stack on each of the built-in stores.
var everyStore = []struct {
	name  string
	store func(testing.TB) usersessions.Provider
}{
	{"memory", func(tb testing.TB) usersessions.Provider { return memoryStore(tb) }},
	{"postgres", func(tb testing.TB) usersessions.Provider { return pgStore(tb) }},
	{"embedded", embeddedStore},
}

// TestNULAndInvalidUTF8Refused: issue 15, "a NUL or invalid UTF-8 in an id or JSON gives
// 500 on PostgreSQL and on the embedded store". Every place a caller puts text (path,
// query, form, JSON field, note) is answered 400 invalid_request on every store, and the
// store is left as it was.
func TestNULAndInvalidUTF8Refused(t *testing.T) {
	t.Parallel()
	bads := []struct{ name, json, raw, esc string }{
		{"NUL", `\u0000`, "\x00", "%00"},
		{"invalid UTF-8", "\xff", "\xff", "%FF"},
	}
	for _, st := range everyStore {
		t.Run(st.name, func(t *testing.T) {
			s := newStack(t, withStore(st.store(t)), withRealm(withUUIDs))
			good := s.open(t, login{})
			before := s.snapshot(t)
			for _, b := range bads {
				open := func(field string) call {
					return rawJSON(sessionsPath(realmName), frontendToken,
						`{"client_id":"confidential","user_id":"u-1","scope":"openid",`+field+`}`)
				}
				calls := map[string]call{
					"login user_id":         rawJSON(sessionsPath(realmName), frontendToken, `{"client_id":"confidential","user_id":"u`+b.json+`"}`),
					"login client_id":       rawJSON(sessionsPath(realmName), frontendToken, `{"client_id":"conf`+b.json+`","user_id":"u-1"}`),
					"login username":        open(`"username":"a` + b.json + `"`),
					"login ip_address":      open(`"ip_address":"` + b.json + `"`),
					"login user_agent":      open(`"user_agent":"` + b.json + `"`),
					"login broker_session":  open(`"broker_session_id":"` + b.json + `"`),
					"login note key":        open(`"notes":{"k` + b.json + `":"v"}`),
					"login note value":      open(`"notes":{"k":"v` + b.json + `"}`),
					"attach session id":     jsonCall(sessionsPath(realmName)+"/x"+b.esc+"/clients", frontendToken, map[string]string{"client_id": spa}),
					"attach client_id":      rawJSON(sessionsPath(realmName)+"/"+good.SessionID+"/clients", frontendToken, `{"client_id":"s`+b.json+`"}`),
					"explain session id":    {method: http.MethodGet, path: sessionsPath(realmName) + "/x" + b.esc + "/explain", header: http.Header{"Authorization": {"Bearer " + adminToken}}},
					"realm name":            form(tokenPath("ac"+b.esc+"me"), confidentialAuth, "grant_type", "refresh_token", "refresh_token", good.RefreshToken),
					"refresh client_id":     form(tokenPath(realmName), post("conf"+b.raw, confidentialSecret), "grant_type", "refresh_token", "refresh_token", good.RefreshToken),
					"refresh token":         form(tokenPath(realmName), confidentialAuth, "grant_type", "refresh_token", "refresh_token", b.raw),
					"refresh scope":         form(tokenPath(realmName), confidentialAuth, "grant_type", "refresh_token", "refresh_token", good.RefreshToken, "scope", "openid"+b.raw),
					"introspect token":      form(introspectPath(realmName), confidentialAuth, "token", good.AccessToken+b.raw),
					"revoke token":          form(revokePath(realmName), confidentialAuth, "token", b.raw),
					"logout token":          form(logoutPath(realmName), confidentialAuth, "refresh_token", b.raw),
					"admin user id":         adminCall(http.MethodGet, realmName, "/users/u"+b.esc+"/sessions", adminToken, ""),
					"admin offline client":  adminCall(http.MethodGet, realmName, "/users/u-1/offline-sessions/c"+b.esc, adminToken, ""),
					"admin client id":       adminCall(http.MethodGet, realmName, "/clients/c"+b.esc+"/session-count", adminToken, ""),
					"admin clientId query":  adminCall(http.MethodGet, realmName, "/clients?clientId=c"+b.esc, adminToken, ""),
					"admin page cursor":     adminCall(http.MethodGet, realmName, "/sessions?after="+b.esc, adminToken, ""),
					"admin delete session":  adminCall(http.MethodDelete, realmName, "/sessions/x"+b.esc, adminToken, ""),
					"admin logout user":     adminCall(http.MethodPost, realmName, "/users/x"+b.esc+"/logout", adminToken, ""),
					"admin revoke consent":  adminCall(http.MethodDelete, realmName, "/users/u-1/consents/c"+b.esc, adminToken, ""),
					"admin not-before body": adminCall(http.MethodPut, realmName, "/not-before", adminToken, `{"action":"now`+b.json+`"}`),
					"admin push deliveries": adminCall(http.MethodGet, realmName, "/push-deliveries?state=p"+b.esc, adminToken, ""),
					"admin realm name":      adminCall(http.MethodGet, "ac"+b.esc+"me", "/sessions", adminToken, ""),
				}
				for name, c := range calls {
					t.Run(b.name+"/"+name, func(t *testing.T) {
						got := s.do(t, c)
						if got.status >= 500 {
							t.Fatalf("answered %d: %s", got.status, got.body)
						}
						got.refused(t, http.StatusBadRequest, "invalid_request", "cannot be stored")
					})
				}
			}
			s.unchanged(t, before)
			s.refresh(t, confidentialAuth, good.RefreshToken) // the good session still works
		})
	}
}
