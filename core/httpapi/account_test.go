package httpapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/core/account"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi/usersessions"
)

const (
	firefoxUA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	chromeUA  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)

// accountCall is a call of the account API of acme with the bearer token raw ("" for none).
func accountCall(method, path, raw string) call {
	c := call{method: method, path: "/realms/" + realmName + "/account/" + path, header: http.Header{}}
	if raw != "" {
		c.header.Set("Authorization", "Bearer "+raw)
	}
	return c
}

// loginFrom opens a session of userID on client from ip with user agent ua.
func (s *stack) loginFrom(tb testing.TB, userID, client, ip, ua string, offline bool) tokens {
	tb.Helper()
	body := map[string]any{"client_id": client, "user_id": userID, "username": userID, "ip_address": ip, "user_agent": ua, "scope": "openid"}
	if offline {
		body["scope"], body["offline_access"] = "openid offline_access", true
	}
	var t tokens
	s.do(tb, jsonCall(sessionsPath(realmName), frontendToken, body)).decode(tb, http.StatusCreated, &t)
	return t
}

type accountSession struct {
	ID         string `json:"id"`
	IPAddress  string `json:"ipAddress"`
	Started    int64  `json:"started"`
	LastAccess int64  `json:"lastAccess"`
	Expires    int64  `json:"expires"`
	Browser    string `json:"browser"`
	Current    bool   `json:"current"`
	Clients    []struct {
		ClientID string `json:"clientId"`
	} `json:"clients"`
}

type accountDevice struct {
	OS         string           `json:"os"`
	OSVersion  string           `json:"osVersion"`
	Browser    string           `json:"browser"`
	LastAccess int64            `json:"lastAccess"`
	Current    bool             `json:"current"`
	Mobile     bool             `json:"mobile"`
	Sessions   []accountSession `json:"sessions"`
}

type accountApp struct {
	ClientID      string `json:"clientId"`
	InUse         bool   `json:"inUse"`
	OfflineAccess bool   `json:"offlineAccess"`
	Consent       *struct {
		Scopes []struct {
			Name string `json:"name"`
		} `json:"grantedScopes"`
		CreatedDate     int64 `json:"createdDate"`
		LastUpdatedDate int64 `json:"lastUpdatedDate"`
	} `json:"consent"`
}

// people is two users' sessions: alice on Linux (current) and on macOS with an offline
// token of confidential; bob with a session and an offline token of his own.
type people struct {
	alice, aliceMac, aliceOffline, bob, bobOffline tokens
}

func (s *stack) people(tb testing.TB) people {
	tb.Helper()
	return people{
		alice:        s.loginFrom(tb, "alice", confidential, "192.0.2.1", firefoxUA, false),
		aliceMac:     s.loginFrom(tb, "alice", spa, "192.0.2.2", chromeUA, false),
		aliceOffline: s.loginFrom(tb, "alice", confidential, "192.0.2.1", firefoxUA, true),
		bob:          s.loginFrom(tb, "bob", confidential, "198.51.100.1", firefoxUA, false),
		bobOffline:   s.loginFrom(tb, "bob", confidential, "198.51.100.1", firefoxUA, true),
	}
}

func (s *stack) devices(tb testing.TB, raw string) []accountDevice {
	tb.Helper()
	var out []accountDevice
	s.do(tb, accountCall(http.MethodGet, "sessions/devices", raw)).decode(tb, http.StatusOK, &out)
	return out
}

func (s *stack) accountSessions(tb testing.TB, raw string) []accountSession {
	tb.Helper()
	var out []accountSession
	s.do(tb, accountCall(http.MethodGet, "sessions", raw)).decode(tb, http.StatusOK, &out)
	return out
}

func ids(ss []accountSession) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID)
	}
	slices.Sort(out)
	return out
}

// TestAccountAPIRefusesWhatIsNotTheCallersOwn: each request below is refused with its
// status and changes nothing: no token, a token of another kind (refresh, offline, the
// front-end's credential, a tampered one, another realm's), another user's session, text no
// store holds in an id, an unknown client, a malformed current flag.
func TestAccountAPIRefusesWhatIsNotTheCallersOwn(t *testing.T) {
	s := newStack(t)
	p := s.people(t)
	otherRealmToken := s.openIn(t, otherRealm, login{ClientID: confidential})
	at := p.alice.AccessToken
	for _, tc := range []struct {
		name string
		c    call
		want int
		code string
	}{
		{"no token", accountCall(http.MethodGet, "sessions/devices", ""), http.StatusUnauthorized, "invalid_token"},
		{"refresh token", accountCall(http.MethodGet, "sessions", p.alice.RefreshToken), http.StatusUnauthorized, "invalid_token"},
		{"offline token", accountCall(http.MethodDelete, "sessions", p.aliceOffline.RefreshToken), http.StatusUnauthorized, "invalid_token"},
		{"front-end credential", accountCall(http.MethodDelete, "sessions/"+p.bob.SessionID, frontendToken), http.StatusUnauthorized, "invalid_token"},
		{"tampered access token", accountCall(http.MethodDelete, "sessions", at[:len(at)-4]+"AAAA"), http.StatusUnauthorized, "invalid_token"},
		{"another realm's token", accountCall(http.MethodDelete, "sessions", otherRealmToken.AccessToken), http.StatusUnauthorized, "invalid_token"},
		{"another user's session", accountCall(http.MethodDelete, "sessions/"+p.bob.SessionID, at), http.StatusNotFound, "not_found"},
		{"another user's offline session id", accountCall(http.MethodDelete, "sessions/"+p.bobOffline.SessionID, at), http.StatusNotFound, "not_found"},
		{"unknown session", accountCall(http.MethodDelete, "sessions/no-such-session", at), http.StatusNotFound, "not_found"},
		{"NUL in a session id", accountCall(http.MethodDelete, "sessions/a%00b", at), http.StatusBadRequest, "invalid_request"},
		{"invalid UTF-8 in a session id", accountCall(http.MethodDelete, "sessions/a%ffb", at), http.StatusBadRequest, "invalid_request"},
		{"NUL in a client id", accountCall(http.MethodDelete, "applications/a%00b/consent", at), http.StatusBadRequest, "invalid_request"},
		{"invalid UTF-8 in a client id", accountCall(http.MethodDelete, "applications/%c3%28/consent", at), http.StatusBadRequest, "invalid_request"},
		{"unknown client", accountCall(http.MethodDelete, "applications/no-such-client/consent", at), http.StatusNotFound, "not_found"},
		{"a client alice holds no offline token of", accountCall(http.MethodDelete, "applications/"+spa+"/consent", at), http.StatusNotFound, "not_found"},
		{"current is not a boolean", accountCall(http.MethodDelete, "sessions?current=maybe", at), http.StatusBadRequest, "invalid_request"},
		{"unknown realm", call{method: http.MethodGet, path: "/realms/" + unknownRealm + "/account/sessions", header: http.Header{"Authorization": {"Bearer " + at}}}, http.StatusNotFound, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.snapshot(t)
			r := s.do(t, tc.c)
			var body struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal(r.body, &body)
			if r.status != tc.want || body.Error != tc.code {
				t.Errorf("%s %s = %d %s, want %d %s", tc.c.method, tc.c.path, r.status, r.body, tc.want, tc.code)
			}
			if tc.want == http.StatusUnauthorized && !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q, want Bearer with error=invalid_token", r.header.Get("WWW-Authenticate"))
			}
			s.unchanged(t, before)
		})
	}
	if got := s.adm.push.loggedOut(); len(got) != 0 {
		t.Errorf("back-channel logouts sent by refused requests: %q", got)
	}
}

// TestAccountResumeHoldsWhileTheSessionIsLive: the account console's sign-in, which keeps
// no token, is authorized by its user session: live, the person's, holding the client
// session it signed in with. Another user, another client, an unknown session are each
// refused as a token would be; so is the session once ended.
func TestAccountResumeHoldsWhileTheSessionIsLive(t *testing.T) {
	s := newStack(t)
	p := s.people(t)
	for _, tc := range []struct {
		name, user, sid, client string
		ok                      bool
	}{
		{"alice's session", "alice", p.alice.SessionID, confidential, true},
		{"another user's session", "bob", p.alice.SessionID, confidential, false},
		{"a client the session does not hold", "alice", p.alice.SessionID, spa, false},
		{"an unknown session", "alice", "no-such-session", confidential, false},
		{"no session", "alice", "", confidential, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := s.account.Resume(s.ctx, realmName, tc.user, tc.sid, tc.client)
			var refused *account.TokenError
			switch {
			case tc.ok && (err != nil || c.UserID != "alice" || c.Username != "alice" || c.SessionID != p.alice.SessionID):
				t.Errorf("Resume = %+v, %v; want alice on her session", c, err)
			case !tc.ok && !errors.As(err, &refused):
				t.Errorf("Resume = %+v, %v; want a *TokenError", c, err)
			}
		})
	}
	if _, err := s.account.Resume(s.ctx, unknownRealm, "alice", p.alice.SessionID, confidential); !errors.Is(err, session.ErrUnknownRealm) {
		t.Errorf("an unknown realm: %v, want ErrUnknownRealm", err)
	}
	if r := s.do(t, accountCall(http.MethodDelete, "sessions/"+p.alice.SessionID, p.aliceMac.AccessToken)); r.status != http.StatusNoContent {
		t.Fatalf("sign alice's session out from her Mac: %d %s", r.status, r.body)
	}
	var refused *account.TokenError
	if c, err := s.account.Resume(s.ctx, realmName, "alice", p.alice.SessionID, confidential); !errors.As(err, &refused) {
		t.Errorf("after alice's session was signed out elsewhere: %+v, %v; want a *TokenError", c, err)
	}
}

// TestAccountAPIShowsAndEndsTheCallersOwnSessions walks the API as the account console
// does: devices with the current one marked and where each was last used from (a refresh
// from elsewhere moves it), applications with offline tokens, ending another session
// (back-channel logout), all others, revoking an application's offline tokens, and at last
// current=true, after which the token is refused. Bob's sessions never change.
func TestAccountAPIShowsAndEndsTheCallersOwnSessions(t *testing.T) {
	s := newStack(t)
	p := s.people(t)
	at := p.alice.AccessToken
	bobBefore := s.storedIDs(t, usersessions.Filter{RealmID: realmName, UserID: "bob", Offline: usersessions.Both})

	devices := s.devices(t, at)
	if len(devices) != 2 {
		t.Fatalf("devices %+v, want Linux and macOS", devices)
	}
	byOS := map[string]accountDevice{}
	for _, d := range devices {
		byOS[d.OS] = d
	}
	linux, mac := byOS["Linux"], byOS["macOS"]
	// The offline login opened an online session too (as Keycloak's does): two on Linux,
	// the current one first.
	if !linux.Current || mac.Current || len(linux.Sessions) != 2 || linux.Sessions[0].ID != p.alice.SessionID ||
		!linux.Sessions[0].Current || linux.Sessions[1].Current || linux.Sessions[0].Browser != "Firefox 128" || linux.Sessions[0].IPAddress != "192.0.2.1" {
		t.Errorf("Linux device %+v, want alice's current Firefox session from 192.0.2.1 first", linux)
	}
	if len(mac.Sessions) != 1 || mac.Sessions[0].ID != p.aliceMac.SessionID || mac.Sessions[0].Browser != "Chrome 126" ||
		mac.Sessions[0].Clients[0].ClientID != spa || mac.Sessions[0].Expires <= mac.Sessions[0].Started {
		t.Errorf("macOS device %+v, want alice's Chrome session on spa", mac)
	}

	// A refresh from elsewhere is where the session was last used from.
	refresh := refreshCall(realmName, confidentialAuth, p.alice.RefreshToken)
	refresh.header.Set(testAddrHeader, "203.0.113.5")
	refresh.header.Set("User-Agent", chromeUA)
	var next tokens
	s.do(t, refresh).decode(t, http.StatusOK, &next)
	for _, sr := range s.accountSessions(t, at) {
		if sr.ID == p.alice.SessionID && (sr.IPAddress != "203.0.113.5" || sr.Browser != "Chrome 126") {
			t.Errorf("after a refresh from 203.0.113.5 with Chrome, the session shows %s, %s", sr.IPAddress, sr.Browser)
		}
	}

	var apps []accountApp
	s.do(t, accountCall(http.MethodGet, "applications", at)).decode(t, http.StatusOK, &apps)
	var conf *accountApp
	for i := range apps {
		if apps[i].ClientID == confidential {
			conf = &apps[i]
		}
	}
	if conf == nil || !conf.OfflineAccess || !conf.InUse || conf.Consent == nil || conf.Consent.CreatedDate == 0 ||
		len(conf.Consent.Scopes) != 2 || conf.Consent.Scopes[0].Name != "offline_access" || conf.Consent.Scopes[1].Name != "openid" {
		t.Errorf("applications %+v, want confidential with its offline token's scopes and dates", apps)
	}

	// Sign out the Mac: its clients hear of it.
	if r := s.do(t, accountCall(http.MethodDelete, "sessions/"+p.aliceMac.SessionID, at)); r.status != http.StatusNoContent {
		t.Fatalf("DELETE own session = %d %s", r.status, r.body)
	}
	if got := ids(s.accountSessions(t, at)); slices.Contains(got, p.aliceMac.SessionID) || !slices.Contains(got, p.alice.SessionID) {
		t.Errorf("after signing out the Mac, sessions %q", got)
	}
	if !slices.Contains(s.adm.push.loggedOut(), p.aliceMac.SessionID) {
		t.Error("no back-channel logout for the session signed out")
	}
	// Shared Signals receivers hear that the person ended it, not an administrator.
	if ends := s.adm.ends.of(p.aliceMac.SessionID); len(ends) != 1 || ends[0].Initiator != session.InitiatorUser || ends[0].Reason != account.ReasonLogoutSession {
		t.Errorf("the session's end was told as %+v, want once, by the user, for %q", ends, account.ReasonLogoutSession)
	}

	// All others: the current one stays.
	again := s.loginFrom(t, "alice", spa, "192.0.2.3", chromeUA, false)
	if r := s.do(t, accountCall(http.MethodDelete, "sessions", at)); r.status != http.StatusNoContent {
		t.Fatalf("DELETE sessions = %d %s", r.status, r.body)
	}
	if got := ids(s.accountSessions(t, at)); !slices.Equal(got, []string{p.alice.SessionID}) || !slices.Contains(s.adm.push.loggedOut(), again.SessionID) {
		t.Errorf("after signing out all others, sessions %q (want the current one only, and %s told)", got, again.SessionID)
	}

	// Revoke the application's offline tokens.
	if r := s.do(t, accountCall(http.MethodDelete, "applications/"+confidential+"/consent", at)); r.status != http.StatusNoContent {
		t.Fatalf("DELETE consent = %d %s", r.status, r.body)
	}
	if got := s.storedIDs(t, usersessions.Filter{RealmID: realmName, UserID: "alice", Offline: usersessions.OfflineOnly}); len(got) != 0 {
		t.Errorf("alice's offline sessions after the revocation: %q", got)
	}
	apps = nil
	s.do(t, accountCall(http.MethodGet, "applications", at)).decode(t, http.StatusOK, &apps)
	for _, a := range apps {
		if a.OfflineAccess {
			t.Errorf("after the revocation, %s still holds offline tokens", a.ClientID)
		}
	}

	// current=true ends the current session too; its token is refused from then on.
	if r := s.do(t, accountCall(http.MethodDelete, "sessions?current=true", at)); r.status != http.StatusNoContent {
		t.Fatalf("DELETE sessions?current=true = %d %s", r.status, r.body)
	}
	if r := s.do(t, accountCall(http.MethodGet, "sessions", at)); r.status != http.StatusUnauthorized {
		t.Errorf("the token of an ended session: %d %s, want 401", r.status, r.body)
	}
	if got := s.storedIDs(t, usersessions.Filter{RealmID: realmName, UserID: "bob", Offline: usersessions.Both}); !slices.Equal(got, bobBefore) {
		t.Errorf("bob's sessions changed: %q, were %q", got, bobBefore)
	}
}
