package realm

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// valid returns a realm with Keycloak's defaults and one confidential and one public client;
// it has neither problems nor warnings.
func valid() *Realm {
	return &Realm{
		Name:    "acme",
		Enabled: true,
		Clients: []*Client{
			{ID: "portal", ClientID: "portal", Secret: "s", Enabled: true},
			{ID: "spa", ClientID: "spa", PublicClient: true, Enabled: true},
		},
	}
}

func TestValidate_hardErrors(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *Realm)
		field  string
	}{
		{"brief: empty realm name", func(r *Realm) { r.Name = "" }, "realm"},
		{"brief: duplicate clientId", func(r *Realm) { r.Clients[1].ClientID = "portal"; r.Clients[1].ID = "x" }, "clientId"},
		{"duplicate internal client id", func(r *Realm) { r.Clients[0].ID = "same"; r.Clients[1].ID = "same" }, "id"},
		{"empty clientId", func(r *Realm) { r.Clients[1].ClientID = "" }, "clients[].clientId"},
		{"brief: negative refreshTokenMaxReuse", func(r *Realm) { r.RevokeRefreshToken = true; r.RefreshTokenMaxReuse = -1 }, "refreshTokenMaxReuse"},
		{"negative rotation grace window", func(r *Realm) { r.RevokeRefreshToken = true; r.RefreshTokenGraceWindow = -time.Second }, "refreshTokenRotationGraceWindow"},
		{"confidential client without secret", func(r *Realm) { r.Clients[0].Secret = "" }, "secret"},
		{"secret masked by a partial export", func(r *Realm) { r.Clients[0].Secret = "**********" }, "secret"},
		{"relative adminUrl cannot receive pushes", func(r *Realm) { r.Clients[0].AdminURL = "/admin" }, "adminUrl"},
		{"non-http backchannel logout URL", func(r *Realm) { r.Clients[0].BackchannelLogoutURL = "ftp://x/y" }, "attributes.backchannel.logout.url"},
		{"relative login front-end URL", func(r *Realm) { r.LoginFrontendURL = "/login" }, "loginFrontendUrl"},
		{"public client with a service account", func(r *Realm) { r.Clients[1].ServiceAccountsEnabled = true }, "serviceAccountsEnabled"},
		{"PKCE method plain", func(r *Realm) { r.Clients[0].PKCEMethod = "plain" }, "attributes.pkce.code.challenge.method"},
		{"redirect URI anywhere", func(r *Realm) { r.Clients[0].RedirectURIs = []string{"*"} }, "redirectUris"},
		{"relative redirect URI", func(r *Realm) { r.Clients[0].RedirectURIs = []string{"/cb"} }, "redirectUris"},
		{"redirect URI with a fragment", func(r *Realm) { r.Clients[0].RedirectURIs = []string{"https://app.example/cb#x"} }, "redirectUris"},
		{"relative post-logout redirect URI", func(r *Realm) { r.Clients[0].PostLogoutRedirectURIs = []string{"bye"} }, "redirectUris"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := valid()
			tc.change(r)
			_, err := r.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, spi.ErrInvalid) {
				t.Errorf("%v does not wrap spi.ErrInvalid", err)
			}
			var p *Problem
			if !errors.As(err, &p) || p.Field != tc.field {
				t.Errorf("got %v, want a problem with field %q", err, tc.field)
			}
		})
	}
}

// Each case breaks exactly one safety rule of the seeds and must raise exactly its warning.
func TestValidate_warningsFromSeedSafetyRules(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *Realm)
		code   string
		client string
	}{
		{"seed002 access token lifespan above SSO Session Idle", func(r *Realm) { r.AccessTokenLifespan = time.Hour }, WarnAccessTokenAboveSSOIdle, ""},
		{"seed002 implicit-flow access token above SSO Session Idle", func(r *Realm) { r.SSOSessionIdle = 10 * time.Minute; r.AccessTokenLifespanImplicit = 11 * time.Minute }, WarnAccessTokenAboveSSOIdle, ""},
		{"seed002 client access.token.lifespan above SSO Session Idle", func(r *Realm) { r.Clients[0].AccessTokenLifespan = time.Hour }, WarnAccessTokenAboveSSOIdle, "portal"},
		{"seed000 realm Client Session Idle above SSO Session Idle", func(r *Realm) { r.ClientSessionIdle = time.Hour }, WarnClientIdleAboveSSOIdle, ""},
		{"seed000 client.session.idle.timeout above SSO Session Idle", func(r *Realm) { r.Clients[1].SessionIdle = time.Hour }, WarnClientIdleAboveSSOIdle, "spa"},
		{"seed000 realm Client Session Max above SSO Session Max", func(r *Realm) { r.ClientSessionMax = 11 * time.Hour }, WarnClientMaxAboveSSOMax, ""},
		{"seed000 client.session.max.lifespan above SSO Session Max", func(r *Realm) { r.Clients[0].SessionMax = 11 * time.Hour }, WarnClientMaxAboveSSOMax, "portal"},
		{"seed000 realm Client Offline Session Idle above Offline Session Idle", func(r *Realm) { r.ClientOfflineSessionIdle = 31 * 24 * time.Hour }, WarnClientOfflineIdleAboveOfflineIdle, ""},
		{"seed000 client.offline.session.idle.timeout above Offline Session Idle", func(r *Realm) { r.Clients[0].OfflineSessionIdle = 31 * 24 * time.Hour }, WarnClientOfflineIdleAboveOfflineIdle, "portal"},
		{"seed000 realm Client Offline Session Max ignored when max not limited", func(r *Realm) { r.ClientOfflineSessionMax = time.Hour }, WarnClientOfflineMaxIgnored, ""},
		{"seed000 client.offline.session.max.lifespan ignored when max not limited", func(r *Realm) { r.Clients[0].OfflineSessionMax = time.Hour }, WarnClientOfflineMaxIgnored, "portal"},
		{"seed000 client.offline.session.max.lifespan above Offline Session Max", func(r *Realm) {
			r.OfflineSessionMaxLimited = true
			r.Clients[0].OfflineSessionMax = 61 * 24 * time.Hour
		}, WarnClientOfflineMaxAboveOfflineMax, "portal"},
		{"seed002 Refresh Token Max Reuse without Revoke Refresh Token", func(r *Realm) { r.RefreshTokenMaxReuse = 1 }, WarnMaxReuseWithoutRevoke, ""},
		{"sessiond rotation grace window without Revoke Refresh Token", func(r *Realm) { r.RefreshTokenGraceWindow = 30 * time.Second }, WarnRotationSettingWithoutRevoke, ""},
		{"sessiond end client session on reuse without Revoke Refresh Token", func(r *Realm) { r.EndClientSessionOnRefreshTokenReuse = true }, WarnRotationSettingWithoutRevoke, ""},
		{"RFC 9700 wildcard redirect URI", func(r *Realm) { r.Clients[0].RedirectURIs = []string{"https://app.example/*"} }, WarnWildcardRedirect, "portal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := valid()
			tc.change(r)
			warnings, err := r.Validate()
			if err != nil {
				t.Fatalf("a warning case must not be a hard error: %v", err)
			}
			if len(warnings) != 1 {
				t.Fatalf("got %d warnings, want 1: %v", len(warnings), warnings)
			}
			w := warnings[0]
			if w.Code != tc.code || w.Client != tc.client || w.Realm != "acme" {
				t.Errorf("got %+v, want code %s client %q", w, tc.code, tc.client)
			}
			if !strings.Contains(w.String(), tc.code) || w.Message == "" {
				t.Errorf("warning does not explain itself: %s", w)
			}
		})
	}
}

func TestValidate_seedRulesKeptMeanNoWarnings(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *Realm)
	}{
		{"Keycloak defaults", func(*Realm) {}},
		{"seed002 access token equal to SSO idle is allowed", func(r *Realm) { r.AccessTokenLifespan = 30 * time.Minute }},
		{"seed000 shorter client timeouts", func(r *Realm) {
			r.ClientSessionIdle, r.ClientSessionMax = 10*time.Minute, time.Hour
			r.Clients[0].SessionIdle, r.Clients[0].SessionMax = 5*time.Minute, 2*time.Hour
		}},
		{"seed000 client offline max with max limited", func(r *Realm) {
			r.OfflineSessionMaxLimited = true
			r.ClientOfflineSessionMax = 24 * time.Hour
		}},
		{"seed002 max reuse with revoke on", func(r *Realm) { r.RevokeRefreshToken, r.RefreshTokenMaxReuse = true, 3 }},
		{"brief Demo realm", func(r *Realm) { *r = *Demo("generated") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := valid()
			tc.change(r)
			warnings, err := r.Validate()
			if err != nil || len(warnings) != 0 {
				t.Errorf("err %v, warnings %v", err, warnings)
			}
		})
	}
}

func TestValidate_reportsEveryProblem(t *testing.T) {
	r := valid()
	r.Name = ""
	r.RefreshTokenMaxReuse = -2
	_, err := r.Validate()
	var n int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var p *Problem
		if errors.As(e, &p) {
			n++
		}
	}
	if n != 2 {
		t.Errorf("got %d problems in %v, want 2", n, err)
	}
}

func TestDemo_brief_confidentialDemoAppWithCallerSecret(t *testing.T) {
	r := Demo("fresh-secret")
	if r.Name != "demo" {
		t.Errorf("name %q", r.Name)
	}
	c, ok := r.Client("demo-app")
	if !ok || c.PublicClient || !c.Enabled || !c.OfflineAccess || !c.Secret.Matches("fresh-secret") || c.Secret.Matches("other") {
		t.Errorf("demo-app: %+v", c)
	}
	if !slices.ContainsFunc(c.RedirectURIs, func(u string) bool { return strings.HasPrefix(u, "http://localhost") }) {
		t.Errorf("redirect URIs %v", c.RedirectURIs)
	}
}
