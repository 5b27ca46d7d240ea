// Package realm holds the realm and client settings sessiond enforces: every session and token
// timeout of Keycloak's Sessions and Tokens tabs, the clients, and the live set of realms.
//
// Realms are loaded from trimmed Keycloak realm exports (see Load) or built in code (Demo).
// Timeouts are kept as configured; a value ≤ 0 means "use Keycloak's default", which
// Timeouts.Effective applies. The expiry maths that reads them lives in core/expiry.
package realm

import (
	"crypto/subtle"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Timeouts are a realm's session and token timeouts as configured (Keycloak's Sessions and
// Tokens tabs, seeds 000 and 004). A duration ≤ 0 means "not set": the ones with a Keycloak
// default take it (see Defaults); the remember-me, client session and client offline pairs
// have none, and 0 there means "use the SSO or offline value".
type Timeouts struct {
	SSOSessionIdle           time.Duration // ssoSessionIdleTimeout
	SSOSessionMax            time.Duration // ssoSessionMaxLifespan
	SSOSessionIdleRememberMe time.Duration // ssoSessionIdleTimeoutRememberMe; used only when > 0
	SSOSessionMaxRememberMe  time.Duration // ssoSessionMaxLifespanRememberMe; used only when > 0
	ClientSessionIdle        time.Duration // clientSessionIdleTimeout; 0 = SSO Session Idle
	ClientSessionMax         time.Duration // clientSessionMaxLifespan; 0 = SSO Session Max
	OfflineSessionIdle       time.Duration // offlineSessionIdleTimeout
	// OfflineSessionMaxLimited ("Offline Session Max Limited"): when false, offline sessions
	// expire only by idle and both offline max settings are ignored (seed 000).
	OfflineSessionMaxLimited    bool          // offlineSessionMaxLifespanEnabled
	OfflineSessionMax           time.Duration // offlineSessionMaxLifespan
	ClientOfflineSessionIdle    time.Duration // clientOfflineSessionIdleTimeout; 0 = Offline Session Idle
	ClientOfflineSessionMax     time.Duration // clientOfflineSessionMaxLifespan; 0 = Offline Session Max
	AccessTokenLifespan         time.Duration // accessTokenLifespan
	AccessTokenLifespanImplicit time.Duration // accessTokenLifespanForImplicitFlow
	ClientLoginTimeout          time.Duration // accessCodeLifespan: finish the authorization code flow
	LoginTimeout                time.Duration // accessCodeLifespanLogin: the whole login
	LoginActionTimeout          time.Duration // accessCodeLifespanUserAction: one login page
	// UserActionLifespan is actionTokenGeneratedByUserLifespan; not set, it is Login action
	// timeout when that is set, as Keycloak's getActionTokenGeneratedByUserLifespan() reads
	// it, else 5 minutes.
	UserActionLifespan  time.Duration
	AdminActionLifespan time.Duration // actionTokenGeneratedByAdminLifespan
}

// Defaults returns Keycloak's defaults (REFERENCE.md "Keycloak's expiry maths"; the two
// action token lifespans are Keycloak's 5 minutes and 12 hours). A function, not a variable,
// so nobody can change them for everyone.
func Defaults() Timeouts {
	return Timeouts{
		SSOSessionIdle:              30 * time.Minute,
		SSOSessionMax:               10 * time.Hour,
		OfflineSessionIdle:          30 * 24 * time.Hour,
		OfflineSessionMax:           60 * 24 * time.Hour,
		AccessTokenLifespan:         5 * time.Minute,
		AccessTokenLifespanImplicit: 15 * time.Minute,
		ClientLoginTimeout:          time.Minute,
		LoginTimeout:                30 * time.Minute,
		LoginActionTimeout:          5 * time.Minute,
		UserActionLifespan:          5 * time.Minute,
		AdminActionLifespan:         12 * time.Hour,
	}
}

// Effective returns the timeouts as they apply: values ≤ 0 replaced by their default, and
// "not set" values of the optional pairs normalised to 0.
func (t Timeouts) Effective() Timeouts {
	or := func(v, def time.Duration) time.Duration {
		if v <= 0 {
			return def
		}
		return v
	}
	d := Defaults()
	return Timeouts{
		SSOSessionIdle:              or(t.SSOSessionIdle, d.SSOSessionIdle),
		SSOSessionMax:               or(t.SSOSessionMax, d.SSOSessionMax),
		SSOSessionIdleRememberMe:    or(t.SSOSessionIdleRememberMe, 0),
		SSOSessionMaxRememberMe:     or(t.SSOSessionMaxRememberMe, 0),
		ClientSessionIdle:           or(t.ClientSessionIdle, 0),
		ClientSessionMax:            or(t.ClientSessionMax, 0),
		OfflineSessionIdle:          or(t.OfflineSessionIdle, d.OfflineSessionIdle),
		OfflineSessionMaxLimited:    t.OfflineSessionMaxLimited,
		OfflineSessionMax:           or(t.OfflineSessionMax, d.OfflineSessionMax),
		ClientOfflineSessionIdle:    or(t.ClientOfflineSessionIdle, 0),
		ClientOfflineSessionMax:     or(t.ClientOfflineSessionMax, 0),
		AccessTokenLifespan:         or(t.AccessTokenLifespan, d.AccessTokenLifespan),
		AccessTokenLifespanImplicit: or(t.AccessTokenLifespanImplicit, d.AccessTokenLifespanImplicit),
		ClientLoginTimeout:          or(t.ClientLoginTimeout, d.ClientLoginTimeout),
		LoginTimeout:                or(t.LoginTimeout, d.LoginTimeout),
		LoginActionTimeout:          or(t.LoginActionTimeout, d.LoginActionTimeout),
		UserActionLifespan:          or(t.UserActionLifespan, or(t.LoginActionTimeout, d.UserActionLifespan)),
		AdminActionLifespan:         or(t.AdminActionLifespan, d.AdminActionLifespan),
	}
}

// Realm is one realm's settings. A Realm held by a Realms set is shared by concurrent readers
// and must not be modified: Clone it, change the clone and Put it back.
type Realm struct {
	Name    string // "realm" in the export; sessions are stored under it (RealmID)
	Enabled bool
	// NotBefore revokes every session and token issued before it; zero means none.
	NotBefore time.Time
	Timeouts
	// RevokeRefreshToken makes refresh tokens single use (up to RefreshTokenMaxReuse reuses).
	RevokeRefreshToken   bool
	RefreshTokenMaxReuse int
	// RefreshTokenGraceWindow (sessiond, beyond Keycloak): for this long after a rotation the
	// token rotated out is still accepted, as SuperTokens and Hydra do. 0 turns it off.
	RefreshTokenGraceWindow time.Duration
	// EndClientSessionOnRefreshTokenReuse (sessiond, beyond Keycloak): a refresh token reused
	// beyond what is allowed ends its client session instead of only failing the request.
	EndClientSessionOnRefreshTokenReuse bool
	// LoginFrontendURL (sessiond, beyond Keycloak): where the authorization endpoint sends
	// the browser, with a login_challenge, to be authenticated (docs/login-flows.md). Empty:
	// the realm serves no browser logins.
	LoginFrontendURL string
	Clients          []*Client
	// ActionLifespans are the per-action overrides of User-Initiated Action Lifespan, by
	// action name (realm attributes actionTokenGeneratedByUserLifespan.<action>); each > 0.
	ActionLifespans map[string]time.Duration
	// SessionLimits cap concurrent sessions (realm attributes sessionLimits.*).
	SessionLimits SessionLimits
	// DPoPNonce: DPoP proofs of every client must carry a server nonce (realm attribute
	// dpop.nonce.required, sessiond's; docs/dpop.md).
	DPoPNonce bool
	// Source names where the realm came from (a file path, "built-in"), for messages.
	Source string
	// fileWarnings are what loading the file found worth saying (a timeout of 0 that reads
	// as its default); Validate reports them with its own.
	fileWarnings []Warning
}

// Client returns the client with that clientId.
func (r *Realm) Client(clientID string) (*Client, bool) {
	for _, c := range r.Clients {
		if c.ClientID == clientID {
			return c, true
		}
	}
	return nil, false
}

// Clone returns a deep copy that can be changed without affecting readers of r.
func (r *Realm) Clone() *Realm {
	c := *r
	c.ActionLifespans = maps.Clone(r.ActionLifespans)
	c.fileWarnings = nil // said once, when the file was loaded
	c.Clients = make([]*Client, len(r.Clients))
	for i, cl := range r.Clients {
		c.Clients[i] = cl.Clone()
	}
	return &c
}

func (r *Realm) describe() string {
	if r.Source == "" {
		return fmt.Sprintf("realm %q", r.Name)
	}
	return fmt.Sprintf("realm %q (%s)", r.Name, r.Source)
}

// The client attributes sessiond reads, with Keycloak's names (OIDCConfigAttributes).
const (
	AttrSessionIdle          = "client.session.idle.timeout"
	AttrSessionMax           = "client.session.max.lifespan"
	AttrOfflineSessionIdle   = "client.offline.session.idle.timeout"
	AttrOfflineSessionMax    = "client.offline.session.max.lifespan"
	AttrAccessTokenLifespan  = "access.token.lifespan"
	AttrBackchannelLogoutURL = "backchannel.logout.url"
	// AttrPKCEMethod is the PKCE method a confidential client must use ("S256"); public
	// clients must use S256 whatever it says.
	AttrPKCEMethod = "pkce.code.challenge.method"
	// AttrPostLogoutRedirectURIs are where RP-initiated logout may send the browser back,
	// separated by "##" as Keycloak stores them.
	AttrPostLogoutRedirectURIs = "post.logout.redirect.uris"
	// AttrFrontchannelLogoutURL is the front-channel logout URL, read when the client has
	// frontchannelLogout.
	AttrFrontchannelLogoutURL = "frontchannel.logout.url"
	// AttrDPoPBound ("true"/"false") makes the client's token requests carry a DPoP proof,
	// as Keycloak's "Require DPoP bound tokens" (docs/dpop.md).
	AttrDPoPBound = "dpop.bound.access.tokens"
	// AttrDPoPNonce ("true"/"false", sessiond's) makes the client's DPoP proofs carry a
	// server-provided nonce (RFC 9449 §8). The realm attribute of the same name asks it of
	// every client of the realm.
	AttrDPoPNonce = "dpop.nonce.required"
)

// PKCES256 is the one PKCE method sessiond accepts (RFC 7636 §4.2; "plain" protects nothing
// a TLS-stripping observer could not read).
const PKCES256 = "S256"

// OfflineAccessScope is the client scope that lets a client request offline tokens.
const OfflineAccessScope = "offline_access"

// Client is one relying party of a realm.
type Client struct {
	// ID is the client's internal id (Keycloak's client UUID, used in admin API paths);
	// it defaults to ClientID.
	ID           string
	ClientID     string
	Secret       Secret
	PublicClient bool
	Enabled      bool
	// AdminURL is the management URL that receives adapter actions (k_push_not_before, k_logout).
	AdminURL             string
	BackchannelLogoutURL string
	// RedirectURIs are matched exactly; one ending in "*" matches by the prefix before it,
	// as Keycloak's wildcard does (RedirectAllowed).
	RedirectURIs []string
	// PKCEMethod is "S256" when the client must send a PKCE challenge; "" leaves PKCE
	// optional for a confidential client (public clients always need it).
	PKCEMethod             string
	PostLogoutRedirectURIs []string
	// FrontchannelLogoutURL is where the browser is sent (in an iframe) when the client's
	// user session ends by RP-initiated logout (OpenID Connect Front-Channel Logout 1.0),
	// with iss and sid; only with Keycloak's frontchannelLogout on.
	FrontchannelLogoutURL string
	// ImplicitFlowEnabled: the client may ask the authorization endpoint for tokens
	// (response types token and id_token, alone or with code).
	ImplicitFlowEnabled bool
	// ServiceAccountsEnabled: the confidential client may use the client_credentials grant.
	ServiceAccountsEnabled bool
	// OfflineAccess: the client may request offline tokens (offline_access among its client scopes).
	OfflineAccess bool
	NotBefore     time.Time
	// Per-client overrides of the realm's timeouts (Keycloak client attributes); 0 = not set.
	SessionIdle         time.Duration // client.session.idle.timeout
	SessionMax          time.Duration // client.session.max.lifespan
	OfflineSessionIdle  time.Duration // client.offline.session.idle.timeout
	OfflineSessionMax   time.Duration // client.offline.session.max.lifespan
	AccessTokenLifespan time.Duration // access.token.lifespan
	// DPoPBound: every token request of the client must carry a DPoP proof (AttrDPoPBound).
	DPoPBound bool
	// DPoPNonce: the client's DPoP proofs must carry a server nonce (AttrDPoPNonce).
	DPoPNonce bool
}

// DPoPNonceRequired says whether c's DPoP proofs in r must carry a server nonce.
func (r *Realm) DPoPNonceRequired(c *Client) bool { return r.DPoPNonce || (c != nil && c.DPoPNonce) }

// Clone returns a deep copy.
func (c *Client) Clone() *Client {
	cc := *c
	cc.RedirectURIs = slices.Clone(c.RedirectURIs)
	cc.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
	return &cc
}

// RedirectAllowed reports whether uri is one of the client's redirect URIs.
func (c *Client) RedirectAllowed(uri string) bool { return matchURI(c.RedirectURIs, uri) }

// PostLogoutRedirectAllowed reports whether uri is one of the client's post-logout
// redirect URIs.
func (c *Client) PostLogoutRedirectAllowed(uri string) bool {
	return matchURI(c.PostLogoutRedirectURIs, uri)
}

func matchURI(registered []string, uri string) bool {
	if uri == "" {
		return false
	}
	for _, r := range registered {
		if prefix, wild := strings.CutSuffix(r, "*"); wild {
			if prefix != "" && strings.HasPrefix(uri, prefix) && !strings.Contains(uri[len(prefix):], "..") {
				return true
			}
		} else if r == uri {
			return true
		}
	}
	return false
}

// Secret is a client secret. It prints, logs and encodes as "[redacted]" so that it cannot
// leak through a log line or a JSON response; Reveal returns the value.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// Matches compares a presented secret in constant time.
func (s Secret) Matches(presented string) bool {
	return s != "" && subtle.ConstantTimeCompare([]byte(s), []byte(presented)) == 1
}

func (s Secret) String() string   { return s.mask() }
func (s Secret) GoString() string { return s.mask() }

// Format covers every verb (%x included), not only the ones that use String.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.mask())) }

// MarshalText is used by encoding/json and friends.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }

func (s Secret) mask() string {
	if s == "" {
		return ""
	}
	return redacted
}
