package realm

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// Problem is one hard error in a realm's settings. It wraps spi.ErrInvalid.
type Problem struct {
	Realm   string
	Client  string // clientId, "" for a realm-level problem
	Field   string // the realm-file field name
	Message string
}

func (p *Problem) Error() string {
	where := fmt.Sprintf("realm %q", p.Realm)
	if p.Client != "" {
		where += fmt.Sprintf(" client %q", p.Client)
	}
	return fmt.Sprintf("%s: %s: %s", where, p.Field, p.Message)
}

func (p *Problem) Unwrap() error { return spi.ErrInvalid }

// Warning codes: one per safety rule of the seeds. Settings that break them still work, the
// way Keycloak accepts them, but rarely do what the operator meant.
const (
	// Seed 002: "ensure the Access Token Lifespan is equal to or shorter than the SSO
	// Session Idle timeout".
	WarnAccessTokenAboveSSOIdle = "access-token-lifespan-above-sso-session-idle"
	// Seeds 000/004, Client Session Idle: "should specify a shorter idle timeout than the
	// SSO Session Idle".
	WarnClientIdleAboveSSOIdle = "client-session-idle-above-sso-session-idle"
	// Seeds 000/004, Client Session Max: "should specify a shorter value than the SSO
	// Session Max"; a longer one is cut at the user session's max anyway.
	WarnClientMaxAboveSSOMax = "client-session-max-above-sso-session-max"
	// Seed 000, offline access: client offline timeouts exist "to have a shorter offline
	// timeouts for a specific application".
	WarnClientOfflineIdleAboveOfflineIdle = "client-offline-session-idle-above-offline-session-idle"
	WarnClientOfflineMaxAboveOfflineMax   = "client-offline-session-max-above-offline-session-max"
	// Seed 000: "Client Offline Session Max is only evaluated in the client if Offline
	// Session Max Limited is Enabled at the realm level."
	WarnClientOfflineMaxIgnored = "client-offline-session-max-ignored-offline-max-not-limited"
	// Seed 002: "set Refresh Token Max Reuse to 0 (combined with Revoke Refresh Token)";
	// reuse counting happens only when refresh tokens are revoked.
	WarnMaxReuseWithoutRevoke = "refresh-token-max-reuse-without-revoke-refresh-token"
	// sessiond: the rotation grace window and ending the client session on reuse act only
	// on rotated tokens, so they need Revoke Refresh Token as well.
	WarnRotationSettingWithoutRevoke = "rotation-setting-without-revoke-refresh-token"
	// RFC 9700 §2.1: redirect URIs are compared exactly; a wildcard lets an open redirect
	// on the client's host receive codes.
	WarnWildcardRedirect = "wildcard-redirect-uri"
)

// Warning is a setting that is accepted but breaks one of the seeds' safety rules.
type Warning struct {
	Realm   string `json:"realm"`
	Client  string `json:"client,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (w Warning) String() string {
	if w.Client != "" {
		return fmt.Sprintf("realm %q client %q: %s (%s)", w.Realm, w.Client, w.Message, w.Code)
	}
	return fmt.Sprintf("realm %q: %s (%s)", w.Realm, w.Message, w.Code)
}

// maskedSecret is what Keycloak's partial export writes instead of a real client secret.
const maskedSecret = "**********"

// Validate checks the realm. The error joins every hard problem (each a *Problem); the
// warnings list the seeds' safety rules the settings break, for the caller to log.
func (r *Realm) Validate() ([]Warning, error) {
	v := validation{realm: r.Name}
	if r.Name == "" {
		v.fail("", "realm", "must not be empty")
	}
	if r.RefreshTokenMaxReuse < 0 {
		v.fail("", "refreshTokenMaxReuse", fmt.Sprintf("must not be negative, got %d", r.RefreshTokenMaxReuse))
	}
	if r.RefreshTokenGraceWindow < 0 {
		v.fail("", "refreshTokenRotationGraceWindow", fmt.Sprintf("must not be negative, got %s", r.RefreshTokenGraceWindow))
	}
	for _, action := range slices.Sorted(maps.Keys(r.ActionLifespans)) {
		field := "attributes." + AttrActionLifespanPrefix + action
		if err := CheckActionName(action); err != nil {
			v.fail("", field, err.Error())
		} else if d := r.ActionLifespans[action]; d < time.Second || d%time.Second != 0 {
			v.fail("", field, fmt.Sprintf("must be a positive whole number of seconds, got %s", d))
		}
	}
	v.absoluteURL("", "loginFrontendUrl", r.LoginFrontendURL)
	byClientID := map[string]bool{}
	byID := map[string]bool{}
	for _, c := range r.Clients {
		v.client(c, byClientID, byID)
	}
	v.realmRules(r)
	return append(slices.Clone(r.fileWarnings), v.warnings...), errors.Join(v.problems...)
}

type validation struct {
	realm    string
	problems []error
	warnings []Warning
}

func (v *validation) fail(client, field, msg string) {
	v.problems = append(v.problems, &Problem{Realm: v.realm, Client: client, Field: field, Message: msg})
}

func (v *validation) warn(client, code, format string, args ...any) {
	v.warnings = append(v.warnings, Warning{Realm: v.realm, Client: client, Code: code, Message: fmt.Sprintf(format, args...)})
}

// above warns when a set value exceeds the limit it should stay under.
func (v *validation) above(client, code, name string, value time.Duration, limitName string, limit time.Duration, consequence string) {
	if value > 0 && value > limit {
		v.warn(client, code, "%s (%s) is longer than %s (%s)%s", name, value, limitName, limit, consequence)
	}
}

func (v *validation) client(c *Client, byClientID, byID map[string]bool) {
	id := c.ClientID
	switch {
	case id == "":
		v.fail("", "clients[].clientId", "must not be empty")
	case byClientID[id]:
		v.fail(id, "clientId", "duplicate clientId")
	}
	byClientID[id] = true
	if c.ID != "" && c.ID != c.ClientID {
		if byID[c.ID] {
			v.fail(id, "id", fmt.Sprintf("duplicate client id %q", c.ID))
		}
		byID[c.ID] = true
	}
	if c.Secret.Reveal() == maskedSecret {
		v.fail(id, "secret", "is the mask of a partial export, not a secret; export with secrets or set it")
	} else if !c.PublicClient && c.Enabled && c.Secret == "" {
		v.fail(id, "secret", "a confidential client needs a secret (or set publicClient)")
	}
	v.absoluteURL(id, "adminUrl", c.AdminURL)
	v.absoluteURL(id, "attributes."+AttrBackchannelLogoutURL, c.BackchannelLogoutURL)
	v.absoluteURL(id, "attributes."+AttrFrontchannelLogoutURL, c.FrontchannelLogoutURL)
	if c.ServiceAccountsEnabled && c.PublicClient {
		v.fail(id, "serviceAccountsEnabled", "a public client cannot have a service account: it cannot authenticate for client_credentials")
	}
	if c.PKCEMethod != "" && c.PKCEMethod != PKCES256 {
		v.fail(id, "attributes."+AttrPKCEMethod, fmt.Sprintf("%q is not supported; sessiond accepts only %s (or leave it empty)", c.PKCEMethod, PKCES256))
	}
	for _, u := range append(slices.Clone(c.RedirectURIs), c.PostLogoutRedirectURIs...) {
		if strings.HasSuffix(u, "*") {
			if u == "*" || u == "/*" {
				v.fail(id, "redirectUris", fmt.Sprintf("%q would let the client send a browser anywhere; list its URIs", u))
				continue
			}
			v.warn(id, WarnWildcardRedirect, "redirect URI %q ends in a wildcard: any URI with that prefix is accepted; list exact URIs", u)
			u = strings.TrimSuffix(u, "*")
		}
		if strings.Contains(u, "#") {
			v.fail(id, "redirectUris", fmt.Sprintf("%q has a fragment, which a redirect URI must not have (RFC 6749 §3.1.2)", u))
			continue
		}
		v.absoluteURL(id, "redirectUris", u)
	}
}

// absoluteURL checks a URL sessiond will POST to; Keycloak's relative forms (resolved
// against rootUrl) are not supported.
func (v *validation) absoluteURL(client, field, u string) {
	if u == "" {
		return
	}
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		v.fail(client, field, fmt.Sprintf("%q is not an absolute http(s) URL", u))
	}
}

func (v *validation) realmRules(r *Realm) {
	t := r.Timeouts.Effective()
	v.above("", WarnAccessTokenAboveSSOIdle, "accessTokenLifespan", t.AccessTokenLifespan, "ssoSessionIdleTimeout", t.SSOSessionIdle, "")
	v.above("", WarnAccessTokenAboveSSOIdle, "accessTokenLifespanForImplicitFlow", t.AccessTokenLifespanImplicit, "ssoSessionIdleTimeout", t.SSOSessionIdle, "")
	v.above("", WarnClientIdleAboveSSOIdle, "clientSessionIdleTimeout", t.ClientSessionIdle, "ssoSessionIdleTimeout", t.SSOSessionIdle, "")
	v.above("", WarnClientMaxAboveSSOMax, "clientSessionMaxLifespan", t.ClientSessionMax, "ssoSessionMaxLifespan", t.SSOSessionMax, "; client sessions end with their user session anyway")
	v.above("", WarnClientOfflineIdleAboveOfflineIdle, "clientOfflineSessionIdleTimeout", t.ClientOfflineSessionIdle, "offlineSessionIdleTimeout", t.OfflineSessionIdle, "")
	v.offlineMax("", "clientOfflineSessionMaxLifespan", t.ClientOfflineSessionMax, t)
	for _, c := range r.Clients {
		id := c.ClientID
		v.above(id, WarnAccessTokenAboveSSOIdle, "attribute "+AttrAccessTokenLifespan, c.AccessTokenLifespan, "ssoSessionIdleTimeout", t.SSOSessionIdle, "")
		v.above(id, WarnClientIdleAboveSSOIdle, "attribute "+AttrSessionIdle, c.SessionIdle, "ssoSessionIdleTimeout", t.SSOSessionIdle, "")
		v.above(id, WarnClientMaxAboveSSOMax, "attribute "+AttrSessionMax, c.SessionMax, "ssoSessionMaxLifespan", t.SSOSessionMax, "; client sessions end with their user session anyway")
		v.above(id, WarnClientOfflineIdleAboveOfflineIdle, "attribute "+AttrOfflineSessionIdle, c.OfflineSessionIdle, "offlineSessionIdleTimeout", t.OfflineSessionIdle, "")
		v.offlineMax(id, "attribute "+AttrOfflineSessionMax, c.OfflineSessionMax, t)
	}
	if r.RefreshTokenMaxReuse > 0 && !r.RevokeRefreshToken {
		v.warn("", WarnMaxReuseWithoutRevoke, "refreshTokenMaxReuse is %d but revokeRefreshToken is off, so it has no effect", r.RefreshTokenMaxReuse)
	}
	if r.RefreshTokenGraceWindow > 0 && !r.RevokeRefreshToken {
		v.warn("", WarnRotationSettingWithoutRevoke, "refreshTokenRotationGraceWindow is set but revokeRefreshToken is off, so tokens are not rotated and it has no effect")
	}
	if r.EndClientSessionOnRefreshTokenReuse && !r.RevokeRefreshToken {
		v.warn("", WarnRotationSettingWithoutRevoke, "endClientSessionOnRefreshTokenReuse is on but revokeRefreshToken is off, so reuse is never detected")
	}
}

func (v *validation) offlineMax(client, name string, value time.Duration, t Timeouts) {
	if value <= 0 {
		return
	}
	if !t.OfflineSessionMaxLimited {
		v.warn(client, WarnClientOfflineMaxIgnored, "%s (%s) is ignored because offlineSessionMaxLifespanEnabled is off", name, value)
		return
	}
	v.above(client, WarnClientOfflineMaxAboveOfflineMax, name, value, "offlineSessionMaxLifespan", t.OfflineSessionMax, "; offline client sessions end with their offline session anyway")
}
