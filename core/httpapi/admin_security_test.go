package httpapi_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/httpapi"
)

// flipOne changes one character of a credential, in the middle where a prefix check would
// not see it.
func flipOne(s string) string {
	b := []byte(s)
	i := len(b) / 2
	b[i] ^= 0x01
	return string(b)
}

// credential is one way of presenting (or not) a credential to the admin API.
type credential struct {
	name    string
	header  string // the Authorization header, "" for none
	actor   string // the audit event's actor
	missing bool   // no bearer credential at all
}

var (
	noCredential    = credential{"no credential", "", admin.ActorAnonymous, true}
	wrongCredential = credential{"wrong credential", "Bearer not-a-credential", admin.ActorAnonymous, false}
	badCredentials  = []credential{
		noCredential,
		wrongCredential,
		{"tampered admin credential", "Bearer " + flipOne(adminToken), admin.ActorAnonymous, false},
		{"tampered viewer credential", "Bearer " + flipOne(viewerToken), admin.ActorAnonymous, false},
		{"admin credential with a character more", "Bearer " + adminToken + "x", admin.ActorAnonymous, false},
		{"admin credential cut short", "Bearer " + adminToken[:len(adminToken)-1], admin.ActorAnonymous, false},
		{"admin credential as Basic", "Basic " + base64.StdEncoding.EncodeToString([]byte(adminToken)), admin.ActorAnonymous, true},
		{"empty bearer", "Bearer ", admin.ActorAnonymous, true},
	}
	frontendCredential = credential{"front-end credential", "Bearer " + frontendToken, admin.ActorFrontend, false}
	viewerCredential   = credential{"viewer credential", "Bearer " + viewerToken, admin.ActorViewer, false}
	adminCredential    = credential{"admin credential", "Bearer " + adminToken, admin.ActorAdmin, false}
)

// routeFixture holds the sessions the routes' placeholders name.
type routeFixture struct {
	online, offline tokens
	stream          string // an SSF stream's id
}

// concrete fills a route's placeholders with the fixture's values, and gives the body a
// PUT needs.
func (f routeFixture) concrete(rt httpapi.AdminRoute) call {
	path := strings.Replace(rt.Path, "{realm}", realmName, 1)
	switch {
	case strings.Contains(path, "/sessions/{id}"):
		path = strings.Replace(path, "{id}", f.online.SessionID, 1)
	case strings.Contains(path, "/users/{id}"):
		path = strings.Replace(path, "{id}", user, 1)
	case strings.Contains(path, "/clients/{id}"):
		path = strings.Replace(path, "{id}", confidentialUUID, 1)
	}
	if strings.Contains(path, "/consents/{client}") {
		path = strings.Replace(path, "{client}", confidential, 1) // Keycloak names the client by clientId here
	}
	path = strings.Replace(path, "{client}", confidentialUUID, 1)
	if strings.HasSuffix(path, "/ssf/status") && rt.Method == http.MethodGet {
		path += "?stream_id=" + f.stream
	}
	c := call{method: rt.Method, path: path, header: http.Header{}}
	if rt.Method == http.MethodPut {
		c.header.Set("Content-Type", "application/json")
		c.body = `{"action":"now"}`
	}
	return c
}

// TestAdminRoutesRefuseWrongCredentials walks every route the server registers (the table
// in admin.go) with every kind of wrong credential: none, wrong or tampered ones → 401 with
// a Bearer challenge; the front-end's → 403; the viewer's → 403 on an acting route and 200
// on a viewing one. A refusal changes nothing and is handed to the failed-authentication
// guard (which audits it) without the credential; it is not an admin action.
func TestAdminRoutesRefuseWrongCredentials(t *testing.T) {
	t.Parallel()
	s := newStack(t, withRealm(withUUIDs))
	f := routeFixture{
		stream:  s.stream(t),
		online:  s.open(t, login{}),
		offline: s.open(t, login{Scope: "openid offline_access", OfflineAccess: true}),
	}
	s.attach(t, f.online.SessionID, spa, "openid")
	routes := httpapi.AdminRoutes()
	if len(routes) < 20 {
		t.Fatalf("the admin route table has %d routes; it lists every route of the admin API", len(routes))
	}
	type want struct {
		cred   credential
		status int
		code   string
		reason string
	}
	for _, rt := range routes {
		cases := []want{}
		for _, c := range badCredentials {
			reason := authfail.ReasonInvalid
			if c.missing {
				reason = authfail.ReasonMissing
			}
			cases = append(cases, want{c, http.StatusUnauthorized, "unauthorized", reason})
		}
		cases = append(cases, want{frontendCredential, http.StatusForbidden, "forbidden", authfail.ReasonForbidden})
		if rt.Acting {
			cases = append(cases, want{viewerCredential, http.StatusForbidden, "forbidden", authfail.ReasonForbidden})
		} else {
			cases = append(cases, want{viewerCredential, http.StatusOK, "", ""}, want{adminCredential, http.StatusOK, "", ""})
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s %s/%s", rt.Method, rt.Path, tc.cred.name), func(t *testing.T) {
				c := f.concrete(rt)
				if tc.cred.header != "" {
					c.header.Set("Authorization", tc.cred.header)
				}
				before := s.snapshot(t)
				events, refusals := len(s.adm.audit.all()), len(s.guard.all())
				r := s.do(t, c)
				if tc.status == http.StatusOK {
					if r.status != http.StatusOK {
						t.Fatalf("%s %s with the %s = %d %s, want 200", c.method, c.path, tc.cred.name, r.status, r.body)
					}
					if got := len(s.adm.audit.all()); got != events {
						t.Errorf("a view was audited (%d events, had %d); only actions and refusals are", got, events)
					}
					return
				}
				r.refused(t, tc.status, tc.code, "")
				s.unchanged(t, before)
				if got := len(s.adm.audit.all()); got != events {
					t.Errorf("a refusal was audited as an admin action (%d events, had %d)", got, events)
				}
				all := s.guard.all()
				if len(all) != refusals+1 {
					t.Fatalf("%d refusals handed to the guard for one refusal, want 1", len(all)-refusals)
				}
				e := all[len(all)-1]
				if e.Kind != authfail.KindAdmin || e.Action != rt.Action || e.Actor != tc.cred.actor || e.Status != tc.status || e.Realm != realmName || e.Reason != tc.reason {
					t.Errorf("refusal %+v, want kind admin, action %s, actor %s, status %d, realm %s, reason %s", e, rt.Action, tc.cred.actor, tc.status, realmName, tc.reason)
				}
				if e.Addr == "" {
					t.Errorf("refusal %+v lacks the caller's address", e)
				}
				for _, secret := range []string{adminToken, viewerToken, frontendToken, flipOne(adminToken)} {
					if strings.Contains(fmt.Sprintf("%+v", e), secret) {
						t.Errorf("audit event %+v carries a credential", e)
					}
				}
			})
		}
	}
	t.Run("unknown path under /admin", func(t *testing.T) {
		// A refused credential is audited here too: probing for routes is what a SIEM
		// wants to see. A known caller's 404 is not an action, and is not.
		for _, tc := range []struct {
			cred   credential
			status int
			code   string
		}{
			{noCredential, http.StatusUnauthorized, "unauthorized"},
			{wrongCredential, http.StatusUnauthorized, "unauthorized"},
			{frontendCredential, http.StatusForbidden, "forbidden"},
		} {
			refusals := len(s.guard.all())
			c := adminCall(http.MethodPost, realmName, "/no-such-route", "", "")
			if tc.cred.header != "" {
				c.header.Set("Authorization", tc.cred.header)
			}
			s.do(t, c).refused(t, tc.status, tc.code, "")
			all := s.guard.all()
			if len(all) != refusals+1 {
				t.Fatalf("%s: %d refusals for one refusal, want 1", tc.cred.name, len(all)-refusals)
			}
			e := all[len(all)-1]
			if e.Action != "unknown-route" || e.Actor != tc.cred.actor || e.Kind != authfail.KindAdmin || e.Status != tc.status ||
				e.Realm != realmName || e.Target != "POST /admin/realms/"+realmName+"/no-such-route" || e.Addr == "" {
				t.Errorf("%s: refusal %+v", tc.cred.name, e)
			}
			if strings.Contains(fmt.Sprintf("%+v", e), frontendToken) {
				t.Errorf("refusal %+v carries a credential", e)
			}
		}
		refusals, events := len(s.guard.all()), len(s.adm.audit.all())
		r := s.do(t, adminCall(http.MethodGet, realmName, "/no-such-route", adminToken, ""))
		r.refused(t, http.StatusNotFound, "not_found", "no such admin route")
		if len(s.guard.all()) != refusals || len(s.adm.audit.all()) != events {
			t.Errorf("a known caller's 404 was audited")
		}
		s.do(t, call{method: http.MethodGet, path: "/admin/" + strings.Repeat("x", 2000), header: http.Header{}}).refused(t, http.StatusUnauthorized, "unauthorized", "")
		if e := s.guard.last(t); len(e.Target) > 300 {
			t.Errorf("target of %d bytes; a caller's path is cut", len(e.Target))
		}
	})
}
