package console

import (
	"net/http"
	"strconv"
	"time"

	"github.com/sessiond/sessiond/core/realm"
)

// setting is one timeout of the realm settings page.
type setting struct {
	Name      string // as Keycloak's Sessions and Tokens tabs name it
	Key       string // the realm file's
	Effective string
	Source    string
}

type settingsView struct {
	layout
	Sessions, Tokens []setting
	Overrides        []override
	Warnings         []string
}

// override is a client's own timeout.
type override struct {
	ClientID, Attribute, Value string
}

// timeoutRow says a timeout's effective value and where it comes from: the realm file, or
// a default (Keycloak's, or "the same as" the setting a client or remember-me one falls
// back to).
func timeoutRow(name, key string, configured, effective time.Duration, fallback string) setting {
	s := setting{Name: name, Key: key, Effective: effective.String(), Source: "realm " + key}
	if configured > 0 {
		return s
	}
	if fallback != "" {
		s.Effective, s.Source = "not set", "uses "+fallback
		return s
	}
	s.Source = "default"
	return s
}

// settingsPage is the realm's settings, read-only: every session and token timeout with its
// effective value and source, the clients' overrides, and the start-up warnings.
func (c *Console) settingsPage(w http.ResponseWriter, r *http.Request, s *signedIn) error {
	rl, err := c.realm(r)
	if err != nil {
		return err
	}
	t, e := rl.Timeouts, rl.Timeouts.Effective()
	v := settingsView{layout: c.layoutFor(r, s, "Realm settings")}
	v.Sessions = []setting{
		timeoutRow("SSO Session Idle", "ssoSessionIdleTimeout", t.SSOSessionIdle, e.SSOSessionIdle, ""),
		timeoutRow("SSO Session Max", "ssoSessionMaxLifespan", t.SSOSessionMax, e.SSOSessionMax, ""),
		timeoutRow("SSO Session Idle Remember Me", "ssoSessionIdleTimeoutRememberMe", t.SSOSessionIdleRememberMe, e.SSOSessionIdleRememberMe, "SSO Session Idle"),
		timeoutRow("SSO Session Max Remember Me", "ssoSessionMaxLifespanRememberMe", t.SSOSessionMaxRememberMe, e.SSOSessionMaxRememberMe, "SSO Session Max"),
		timeoutRow("Client Session Idle", "clientSessionIdleTimeout", t.ClientSessionIdle, e.ClientSessionIdle, "SSO Session Idle"),
		timeoutRow("Client Session Max", "clientSessionMaxLifespan", t.ClientSessionMax, e.ClientSessionMax, "SSO Session Max"),
		timeoutRow("Offline Session Idle", "offlineSessionIdleTimeout", t.OfflineSessionIdle, e.OfflineSessionIdle, ""),
		{Name: "Offline Session Max Limited", Key: "offlineSessionMaxLifespanEnabled", Effective: onOff(e.OfflineSessionMaxLimited), Source: "realm offlineSessionMaxLifespanEnabled"},
		timeoutRow("Offline Session Max", "offlineSessionMaxLifespan", t.OfflineSessionMax, e.OfflineSessionMax, ""),
		timeoutRow("Client Offline Session Idle", "clientOfflineSessionIdleTimeout", t.ClientOfflineSessionIdle, e.ClientOfflineSessionIdle, "Offline Session Idle"),
		timeoutRow("Client Offline Session Max", "clientOfflineSessionMaxLifespan", t.ClientOfflineSessionMax, e.ClientOfflineSessionMax, "Offline Session Max"),
		timeoutRow("Login timeout", "accessCodeLifespanLogin", t.LoginTimeout, e.LoginTimeout, ""),
		timeoutRow("Login action timeout", "accessCodeLifespanUserAction", t.LoginActionTimeout, e.LoginActionTimeout, ""),
	}
	if !e.OfflineSessionMaxLimited {
		v.Sessions[8].Source += " (ignored: Offline Session Max Limited is off)"
		v.Sessions[10].Source += " (ignored: Offline Session Max Limited is off)"
	}
	userAction := timeoutRow("User-Initiated Action Lifespan", "actionTokenGeneratedByUserLifespan", t.UserActionLifespan, e.UserActionLifespan, "")
	if t.UserActionLifespan <= 0 && t.LoginActionTimeout > 0 {
		userAction.Source = "Login action timeout"
	}
	v.Tokens = []setting{
		timeoutRow("Access Token Lifespan", "accessTokenLifespan", t.AccessTokenLifespan, e.AccessTokenLifespan, ""),
		timeoutRow("Access Token Lifespan For Implicit Flow", "accessTokenLifespanForImplicitFlow", t.AccessTokenLifespanImplicit, e.AccessTokenLifespanImplicit, ""),
		timeoutRow("Client login timeout", "accessCodeLifespan", t.ClientLoginTimeout, e.ClientLoginTimeout, ""),
		userAction,
		timeoutRow("Administrator-Initiated Action Lifespan", "actionTokenGeneratedByAdminLifespan", t.AdminActionLifespan, e.AdminActionLifespan, ""),
		{Name: "Revoke Refresh Token", Key: "revokeRefreshToken", Effective: onOff(rl.RevokeRefreshToken), Source: "realm revokeRefreshToken"},
		{Name: "Refresh Token Max Reuse", Key: "refreshTokenMaxReuse", Effective: itoa(rl.RefreshTokenMaxReuse), Source: "realm refreshTokenMaxReuse"},
	}
	for _, cl := range rl.Clients {
		for _, o := range []struct {
			attr string
			d    time.Duration
		}{
			{realm.AttrSessionIdle, cl.SessionIdle}, {realm.AttrSessionMax, cl.SessionMax},
			{realm.AttrOfflineSessionIdle, cl.OfflineSessionIdle}, {realm.AttrOfflineSessionMax, cl.OfflineSessionMax},
			{realm.AttrAccessTokenLifespan, cl.AccessTokenLifespan},
		} {
			if o.d > 0 {
				v.Overrides = append(v.Overrides, override{ClientID: cl.ClientID, Attribute: o.attr, Value: o.d.String()})
			}
		}
	}
	// The realm's warnings are Validate's, as start-up logged them; the configuration's
	// are the ones start-up logged about its keys.
	warnings, _ := rl.Validate()
	for _, w := range warnings {
		v.Warnings = append(v.Warnings, w.String())
	}
	v.Warnings = append(v.Warnings, c.warnings...)
	c.render(w, http.StatusOK, "settings", v)
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func itoa(n int) string { return strconv.Itoa(n) }
