package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/realm"
)

func actionTokensPath(realmName string) string { return "/realms/" + realmName + "/action-tokens" }
func consumePath(realmName string) string      { return actionTokensPath(realmName) + "/consume" }

// minted is the answer to a mint.
type minted struct {
	Token          string `json:"token"`
	TokenID        string `json:"token_id"`
	Action         string `json:"action"`
	UserID         string `json:"user_id"`
	AdminInitiated bool   `json:"admin_initiated"`
	IssuedAt       int64  `json:"issued_at"`
	ExpiresAt      int64  `json:"expires_at"`
	ExpiresIn      int64  `json:"expires_in"`
	LifespanSource string `json:"lifespan_source"`
	EmailSent      bool   `json:"email_sent"`
}

// consumed is the answer to a redemption.
type consumed struct {
	TokenID         string   `json:"token_id"`
	Action          string   `json:"action"`
	UserID          string   `json:"user_id"`
	AdminInitiated  bool     `json:"admin_initiated"`
	ClientID        string   `json:"client_id"`
	RedirectURI     string   `json:"redirect_uri"`
	Email           string   `json:"email"`
	RequiredActions []string `json:"required_actions"`
	ExpiresAt       int64    `json:"expires_at"`
}

func withActionSettings(r *realm.Realm) {
	r.UserActionLifespan = 4 * time.Minute
	r.AdminActionLifespan = 6 * time.Hour
	r.ActionLifespans = map[string]time.Duration{realm.ActionVerifyEmail: 30 * time.Minute}
	for _, c := range r.Clients {
		if c.ClientID == spa {
			c.RedirectURIs = []string{"https://spa.test/*"}
		}
	}
}

func (s *stack) mintAction(tb testing.TB, body map[string]any) minted {
	tb.Helper()
	var m minted
	s.do(tb, jsonCall(actionTokensPath(realmName), frontendToken, body)).decode(tb, http.StatusCreated, &m)
	return m
}

func (s *stack) consume(raw string) call {
	return jsonCall(consumePath(realmName), frontendToken, map[string]string{"token": raw})
}

// The front-end mints a user-initiated token (the realm's override for its action, else
// User-Initiated Action Lifespan) and redeems it once; the second redemption is a 409 that
// says why; an expired one a 400 that says when it expired.
func TestActionTokens_frontEndMintsAndRedeemsOnce(t *testing.T) {
	t.Parallel()
	s := newStack(t, withRealm(withActionSettings))
	now := s.clock.Now()
	m := s.mintAction(t, map[string]any{
		"user_id": user, "action": "verify-email", "email": "alice@example.test",
		"client_id": spa, "redirect_uri": "https://spa.test/verified",
	})
	if m.ExpiresIn != 1800 || m.ExpiresAt != now.Add(30*time.Minute).Unix() || m.LifespanSource != "action-override" || m.AdminInitiated || m.EmailSent {
		t.Errorf("minted %+v, want the verify-email override of 30 minutes, user-initiated", m)
	}
	reset := s.mintAction(t, map[string]any{"user_id": user, "action": "reset-credentials"})
	if reset.ExpiresIn != 240 || reset.LifespanSource != "user-initiated-default" {
		t.Errorf("reset-credentials minted %+v, want User-Initiated Action Lifespan (240 s)", reset)
	}

	var c consumed
	s.do(t, s.consume(m.Token)).decode(t, http.StatusOK, &c)
	if c.TokenID != m.TokenID || c.Action != "verify-email" || c.UserID != user || c.Email != "alice@example.test" ||
		c.ClientID != spa || c.RedirectURI != "https://spa.test/verified" || c.ExpiresAt != m.ExpiresAt || c.AdminInitiated {
		t.Errorf("consumed %+v, want the minted claims", c)
	}
	s.do(t, s.consume(m.Token)).refused(t, http.StatusConflict, "used_action_token", "already used; it is valid once")

	s.clock.Advance(4 * time.Minute)
	s.do(t, s.consume(reset.Token)).refused(t, http.StatusBadRequest, "expired_action_token", "action token expired at")
}

// The admin API mints admin-initiated tokens (the request's lifespan, else Default
// Admin-Initiated Action Lifespan, never the user-initiated override); the viewer may not;
// every call is audited.
func TestActionTokens_adminMintsAuditedViewerRefused(t *testing.T) {
	t.Parallel()
	s := newStack(t, withRealm(withActionSettings))
	var m minted
	s.do(t, adminCall(http.MethodPost, realmName, "/users/"+user+"/action-tokens", adminToken, `{"action":"verify-email"}`)).decode(t, http.StatusCreated, &m)
	if m.ExpiresIn != 6*3600 || m.LifespanSource != "admin-initiated-default" || !m.AdminInitiated || m.UserID != user {
		t.Errorf("admin minted %+v, want Default Admin-Initiated Action Lifespan (6 h)", m)
	}
	if ev := s.adm.audit.last(t); ev.Action != "mint-action-token" || ev.Target != "user/"+user || ev.Outcome != admin.OutcomeSuccess || ev.Actor != admin.ActorAdmin {
		t.Errorf("audit event %+v", ev)
	}
	if strings.Contains(s.adm.audit.last(t).Detail, m.Token) {
		t.Error("the audit event holds the token")
	}
	s.do(t, adminCall(http.MethodPost, realmName, "/users/"+user+"/action-tokens", adminToken, `{"action":"execute-actions","lifespan":259200,"required_actions":["UPDATE_PASSWORD"]}`)).decode(t, http.StatusCreated, &m)
	if m.ExpiresIn != 259200 || m.LifespanSource != "request" {
		t.Errorf("admin minted %+v, want the request's 3 days", m)
	}
	var c consumed
	s.do(t, s.consume(m.Token)).decode(t, http.StatusOK, &c)
	if !c.AdminInitiated || strings.Join(c.RequiredActions, ",") != "UPDATE_PASSWORD" {
		t.Errorf("consumed %+v", c)
	}

	s.do(t, adminCall(http.MethodPost, realmName, "/users/"+user+"/action-tokens", viewerToken, `{"action":"verify-email"}`)).refused(t, http.StatusForbidden, "forbidden", "view-only credential may not mint-action-token")
	s.do(t, adminCall(http.MethodPost, realmName, "/users/"+user+"/action-tokens", adminToken, `{"action":"verify-email","lifespan":2592001}`)).refused(t, http.StatusBadRequest, "invalid_request", "from 1 to 2592000")
	if ev := s.adm.audit.last(t); ev.Outcome != admin.OutcomeFailed || ev.Status != http.StatusBadRequest {
		t.Errorf("the refused mint was audited as %+v", ev)
	}
	s.do(t, adminCall(http.MethodPost, realmName, "/users/"+user+"/action-tokens", adminToken, `{"action":"verify-email","user_id":"someone-else"}`)).refused(t, http.StatusBadRequest, "invalid_request", `unknown field "user_id"`)
}

// Keycloak's PUT /users/{id}/execute-actions-email: the same query parameters and body;
// sessiond sends no email and gives the caller the token instead.
func TestActionTokens_executeActionsEmailShape(t *testing.T) {
	t.Parallel()
	s := newStack(t, withRealm(withActionSettings))
	var m minted
	c := adminCall(http.MethodPut, realmName, "/users/"+user+"/execute-actions-email?lifespan=600&client_id="+spa+"&redirect_uri=https%3A%2F%2Fspa.test%2Fback", adminToken, `["UPDATE_PASSWORD","VERIFY_EMAIL"]`)
	s.do(t, c).decode(t, http.StatusOK, &m)
	if m.Action != "execute-actions" || m.ExpiresIn != 600 || m.EmailSent || !m.AdminInitiated {
		t.Errorf("execute-actions-email answered %+v", m)
	}
	var got consumed
	s.do(t, s.consume(m.Token)).decode(t, http.StatusOK, &got)
	if strings.Join(got.RequiredActions, ",") != "UPDATE_PASSWORD,VERIFY_EMAIL" || got.RedirectURI != "https://spa.test/back" || got.ClientID != spa {
		t.Errorf("consumed %+v", got)
	}
	s.do(t, adminCall(http.MethodPut, realmName, "/users/"+user+"/execute-actions-email?lifespan=soon", adminToken, `[]`)).refused(t, http.StatusBadRequest, "invalid_request", "lifespan must be")
	s.do(t, adminCall(http.MethodPut, realmName, "/users/"+user+"/execute-actions-email?client_id="+spa+"&redirect_uri=https%3A%2F%2Fevil.test%2F", adminToken, `[]`)).refused(t, http.StatusBadRequest, "invalid_request", "not among the redirect URIs")
}

// Bad requests and bad tokens get their reason and a 4xx, never a 500, and need the
// front-end's credential.
func TestActionTokens_refusals(t *testing.T) {
	t.Parallel()
	s := newStack(t, withRealm(withActionSettings))
	g := s.open(t, login{})
	other := s.mintIn(t, otherRealm)
	for _, tc := range []struct {
		name   string
		c      call
		status int
		code   string
		desc   string
	}{
		{"no credential", jsonCall(actionTokensPath(realmName), "", map[string]any{"user_id": user, "action": "verify-email"}), http.StatusUnauthorized, "unauthorized", ""},
		{"admin credential at the front-end route", jsonCall(actionTokensPath(realmName), adminToken, map[string]any{"user_id": user, "action": "verify-email"}), http.StatusUnauthorized, "unauthorized", ""},
		{"unknown realm", jsonCall(actionTokensPath(unknownRealm), frontendToken, map[string]any{"user_id": user, "action": "verify-email"}), http.StatusNotFound, "", ""},
		{"no user", jsonCall(actionTokensPath(realmName), frontendToken, map[string]any{"action": "verify-email"}), http.StatusBadRequest, "invalid_request", "user_id is required"},
		{"unsafe action", jsonCall(actionTokensPath(realmName), frontendToken, map[string]any{"user_id": user, "action": "a b"}), http.StatusBadRequest, "invalid_request", "not a valid action name"},
		{"front-end asks for a lifespan", rawJSON(actionTokensPath(realmName), frontendToken, `{"user_id":"u","action":"verify-email","lifespan":60}`), http.StatusBadRequest, "invalid_request", `unknown field "lifespan"`},
		{"no token", jsonCall(consumePath(realmName), frontendToken, map[string]any{}), http.StatusBadRequest, "invalid_request", "token is required"},
		{"access token", s.consume(g.AccessToken), http.StatusBadRequest, "invalid_action_token", `header type "at+jwt"`},
		{"refresh token", s.consume(g.RefreshToken), http.StatusBadRequest, "invalid_action_token", "not an action token"},
		{"another realm's action token", s.consume(other), http.StatusBadRequest, "invalid_action_token", `realm "acme" does not have`},
		{"forged", s.consume(other[:len(other)-4] + "AAAA"), http.StatusBadRequest, "invalid_action_token", ""},
		{"not JSON", rawJSON(consumePath(realmName), frontendToken, `token=abc`), http.StatusBadRequest, "invalid_request", "malformed JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, tc.c)
			if tc.code == "" {
				if r.status != tc.status {
					t.Errorf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				return
			}
			r.refused(t, tc.status, tc.code, tc.desc)
		})
	}
}

// mintIn mints a verify-email token in realmName.
func (s *stack) mintIn(tb testing.TB, realmName string) string {
	tb.Helper()
	var m minted
	s.do(tb, jsonCall(actionTokensPath(realmName), frontendToken, map[string]any{"user_id": user, "action": "verify-email"})).decode(tb, http.StatusCreated, &m)
	return m.Token
}

// Issue 15's kinds, with action tokens: an action token is no access or refresh token at
// introspection, refresh, logout or revocation, and changes nothing there.
func TestTokenEndpoints_refuseActionTokens(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	g := s.open(t, login{})
	raw := s.mintIn(t, realmName)
	before := s.snapshot(t)
	s.do(t, refreshCall(realmName, confidentialAuth, raw)).refused(t, http.StatusBadRequest, "invalid_grant", `header type "action+jwt"`)
	s.do(t, form(logoutPath(realmName), confidentialAuth, "refresh_token", raw)).refused(t, http.StatusBadRequest, "invalid_grant", `header type "action+jwt"`)
	for _, hint := range []string{"", "access_token", "refresh_token"} {
		var in introspection
		s.do(t, form(introspectPath(realmName), confidentialAuth, "token", raw, "token_type_hint", hint)).decode(t, http.StatusOK, &in)
		if in.Active {
			t.Errorf("introspection with hint %q: active %+v", hint, in)
		}
	}
	if r := s.do(t, form(revokePath(realmName), confidentialAuth, "token", raw)); r.status != http.StatusOK {
		t.Errorf("revoke: %d %s", r.status, r.body)
	}
	s.unchanged(t, before)
	// The session's own tokens still work, and the action token is still unused.
	s.refresh(t, confidentialAuth, g.RefreshToken)
	var c consumed
	s.do(t, s.consume(raw)).decode(t, http.StatusOK, &c)
}

// FuzzActionTokenRoutes: whatever body the front-end posts to mint or redeem, the answer is
// a 201 or 200 of the documented shape or a 4xx with its reason, never a 5xx.
func FuzzActionTokenRoutes(f *testing.F) {
	s := newStack(f, withRealm(withActionSettings))
	genuine := s.mintIn(f, realmName)
	for _, seed := range []struct {
		consume bool
		body    string
	}{
		{false, `{"user_id":"u","action":"verify-email","email":"a@b.c","client_id":"spa","redirect_uri":"https://spa.test/x"}`},
		{false, `{"user_id":"u","action":"execute-actions","required_actions":["UPDATE_PASSWORD"]}`},
		{false, `{"user_id":"","action":"\u0000"}`},
		{true, `{"token":"` + genuine + `"}`},
		{true, `{"token":"a.b.c"}`},
		{true, `[]`},
	} {
		f.Add(seed.consume, seed.body)
	}
	f.Fuzz(func(t *testing.T, consume bool, body string) {
		path, ok := actionTokensPath(realmName), http.StatusCreated
		if consume {
			path, ok = consumePath(realmName), http.StatusOK
		}
		r := s.do(t, rawJSON(path, frontendToken, body))
		switch {
		case r.status == ok:
			var v struct {
				Action string `json:"action"`
				UserID string `json:"user_id"`
			}
			if err := json.Unmarshal(r.body, &v); err != nil || v.Action == "" || v.UserID == "" {
				t.Fatalf("%d answer %s to %q", r.status, r.body, body)
			}
		case r.status >= 500 || r.status < 400:
			t.Fatalf("answered %d %s to %q", r.status, r.body, body)
		default:
			var e oauthError
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error == "" || e.Description == "" {
				t.Fatalf("refusal %d %s to %q has no reason", r.status, r.body, body)
			}
		}
	})
}
