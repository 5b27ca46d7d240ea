package realm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// realmFile is the part of Keycloak's RealmRepresentation that sessiond reads, with its field
// names, so an operator can feed a trimmed export. Decoding is strict: a field that is neither
// read nor listed below as ignored is an error, so a misspelt timeout never passes silently.
type realmFile struct {
	Realm                               string       `json:"realm"`
	Enabled                             *bool        `json:"enabled"` // absent: enabled
	NotBefore                           int64        `json:"notBefore"`
	SSOSessionIdleTimeout               int64        `json:"ssoSessionIdleTimeout"`
	SSOSessionMaxLifespan               int64        `json:"ssoSessionMaxLifespan"`
	SSOSessionIdleTimeoutRememberMe     int64        `json:"ssoSessionIdleTimeoutRememberMe"`
	SSOSessionMaxLifespanRememberMe     int64        `json:"ssoSessionMaxLifespanRememberMe"`
	ClientSessionIdleTimeout            int64        `json:"clientSessionIdleTimeout"`
	ClientSessionMaxLifespan            int64        `json:"clientSessionMaxLifespan"`
	OfflineSessionIdleTimeout           int64        `json:"offlineSessionIdleTimeout"`
	OfflineSessionMaxLifespanEnabled    bool         `json:"offlineSessionMaxLifespanEnabled"`
	OfflineSessionMaxLifespan           int64        `json:"offlineSessionMaxLifespan"`
	ClientOfflineSessionIdleTimeout     int64        `json:"clientOfflineSessionIdleTimeout"`
	ClientOfflineSessionMaxLifespan     int64        `json:"clientOfflineSessionMaxLifespan"`
	AccessTokenLifespan                 int64        `json:"accessTokenLifespan"`
	AccessTokenLifespanForImplicitFlow  int64        `json:"accessTokenLifespanForImplicitFlow"`
	AccessCodeLifespan                  int64        `json:"accessCodeLifespan"`
	AccessCodeLifespanLogin             int64        `json:"accessCodeLifespanLogin"`
	AccessCodeLifespanUserAction        int64        `json:"accessCodeLifespanUserAction"`
	ActionTokenGeneratedByUserLifespan  int64        `json:"actionTokenGeneratedByUserLifespan"`
	ActionTokenGeneratedByAdminLifespan int64        `json:"actionTokenGeneratedByAdminLifespan"`
	RevokeRefreshToken                  bool         `json:"revokeRefreshToken"`
	RefreshTokenMaxReuse                int          `json:"refreshTokenMaxReuse"`
	Clients                             []clientFile `json:"clients"`

	// sessiond's own settings, beyond Keycloak's representation.
	RefreshTokenRotationGraceWindow     int64  `json:"refreshTokenRotationGraceWindow"`
	EndClientSessionOnRefreshTokenReuse bool   `json:"endClientSessionOnRefreshTokenReuse"`
	LoginFrontendURL                    string `json:"loginFrontendUrl"`

	// Accepted and ignored: identity and display fields every export carries.
	ID          json.RawMessage `json:"id"`
	DisplayName json.RawMessage `json:"displayName"`
}

// clientFile is the part of Keycloak's ClientRepresentation that sessiond reads.
type clientFile struct {
	ID                   string            `json:"id"`
	ClientID             string            `json:"clientId"`
	Secret               string            `json:"secret"`
	PublicClient         bool              `json:"publicClient"`
	ServiceAccounts      bool              `json:"serviceAccountsEnabled"`
	ImplicitFlow         bool              `json:"implicitFlowEnabled"`
	FrontchannelLogout   bool              `json:"frontchannelLogout"`
	Enabled              *bool             `json:"enabled"` // absent: enabled
	AdminURL             string            `json:"adminUrl"`
	RedirectURIs         []string          `json:"redirectUris"`
	NotBefore            int64             `json:"notBefore"`
	DefaultClientScopes  []string          `json:"defaultClientScopes"`
	OptionalClientScopes []string          `json:"optionalClientScopes"`
	Attributes           map[string]string `json:"attributes"`

	// Accepted and ignored.
	Name        json.RawMessage `json:"name"`
	Description json.RawMessage `json:"description"`
	Protocol    json.RawMessage `json:"protocol"`
}

// Load reads one realm file: a realm representation, or an array of them (a multi-realm
// export). source names the file in errors.
func Load(r io.Reader, source string) ([]*Realm, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("realm file %s: %w", source, err)
	}
	var files []realmFile
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
		err = decodeStrict(data, &files)
	} else {
		var one realmFile
		err = decodeStrict(data, &one)
		files = []realmFile{one}
	}
	if err != nil {
		return nil, fmt.Errorf("realm file %s: %w", source, err)
	}
	realms := make([]*Realm, 0, len(files))
	for i, f := range files {
		r, err := f.realm(source)
		if err != nil {
			if len(files) > 1 {
				return nil, fmt.Errorf("realm file %s: realm [%d]: %w", source, i, err)
			}
			return nil, fmt.Errorf("realm file %s: %w", source, err)
		}
		realms = append(realms, r)
	}
	return realms, nil
}

// LoadFiles reads realm files in order and returns all their realms. It does not validate
// them (NewRealms and Realms.Replace do); it fails on what cannot be decoded.
func LoadFiles(paths ...string) ([]*Realm, error) {
	var all []*Realm
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("realm file: %w", err)
		}
		realms, err := Load(f, p)
		_ = f.Close() // read-only; a close error cannot lose data
		if err != nil {
			return nil, err
		}
		all = append(all, realms...)
	}
	return all, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("unknown field %s (sessiond reads only session and token settings; remove it from the file)", msg)
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the realm representation")
	}
	return nil
}

func seconds(s int64) time.Duration {
	if s <= 0 {
		return 0 // not set: Timeouts.Effective supplies the default, as Keycloak does
	}
	return time.Duration(s) * time.Second
}

func epoch(s int64) time.Time {
	if s <= 0 {
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

func (f realmFile) realm(source string) (*Realm, error) {
	r := &Realm{
		Name:      f.Realm,
		Enabled:   f.Enabled == nil || *f.Enabled,
		NotBefore: epoch(f.NotBefore),
		Timeouts: Timeouts{
			SSOSessionIdle:              seconds(f.SSOSessionIdleTimeout),
			SSOSessionMax:               seconds(f.SSOSessionMaxLifespan),
			SSOSessionIdleRememberMe:    seconds(f.SSOSessionIdleTimeoutRememberMe),
			SSOSessionMaxRememberMe:     seconds(f.SSOSessionMaxLifespanRememberMe),
			ClientSessionIdle:           seconds(f.ClientSessionIdleTimeout),
			ClientSessionMax:            seconds(f.ClientSessionMaxLifespan),
			OfflineSessionIdle:          seconds(f.OfflineSessionIdleTimeout),
			OfflineSessionMaxLimited:    f.OfflineSessionMaxLifespanEnabled,
			OfflineSessionMax:           seconds(f.OfflineSessionMaxLifespan),
			ClientOfflineSessionIdle:    seconds(f.ClientOfflineSessionIdleTimeout),
			ClientOfflineSessionMax:     seconds(f.ClientOfflineSessionMaxLifespan),
			AccessTokenLifespan:         seconds(f.AccessTokenLifespan),
			AccessTokenLifespanImplicit: seconds(f.AccessTokenLifespanForImplicitFlow),
			ClientLoginTimeout:          seconds(f.AccessCodeLifespan),
			LoginTimeout:                seconds(f.AccessCodeLifespanLogin),
			LoginActionTimeout:          seconds(f.AccessCodeLifespanUserAction),
			UserActionLifespan:          seconds(f.ActionTokenGeneratedByUserLifespan),
			AdminActionLifespan:         seconds(f.ActionTokenGeneratedByAdminLifespan),
		},
		RevokeRefreshToken:   f.RevokeRefreshToken,
		RefreshTokenMaxReuse: f.RefreshTokenMaxReuse,
		// Negative values are kept so that Validate reports them rather than hiding them.
		RefreshTokenGraceWindow:             time.Duration(f.RefreshTokenRotationGraceWindow) * time.Second,
		EndClientSessionOnRefreshTokenReuse: f.EndClientSessionOnRefreshTokenReuse,
		LoginFrontendURL:                    f.LoginFrontendURL,
		Source:                              source,
	}
	for i, cf := range f.Clients {
		c, err := cf.client()
		if err != nil {
			return nil, fmt.Errorf("realm %q: clients[%d] %q: %w", f.Realm, i, cf.ClientID, err)
		}
		r.Clients = append(r.Clients, c)
	}
	return r, nil
}

func (f clientFile) client() (*Client, error) {
	c := &Client{
		ID:                     f.ID,
		ClientID:               f.ClientID,
		Secret:                 Secret(f.Secret),
		PublicClient:           f.PublicClient,
		Enabled:                f.Enabled == nil || *f.Enabled,
		AdminURL:               f.AdminURL,
		RedirectURIs:           f.RedirectURIs,
		NotBefore:              epoch(f.NotBefore),
		OfflineAccess:          slices.Contains(f.DefaultClientScopes, OfflineAccessScope) || slices.Contains(f.OptionalClientScopes, OfflineAccessScope),
		BackchannelLogoutURL:   f.Attributes[AttrBackchannelLogoutURL],
		PKCEMethod:             strings.TrimSpace(f.Attributes[AttrPKCEMethod]),
		ServiceAccountsEnabled: f.ServiceAccounts,
		ImplicitFlowEnabled:    f.ImplicitFlow,
	}
	if f.FrontchannelLogout {
		c.FrontchannelLogoutURL = strings.TrimSpace(f.Attributes[AttrFrontchannelLogoutURL])
	}
	for _, u := range strings.Split(f.Attributes[AttrPostLogoutRedirectURIs], "##") {
		if u = strings.TrimSpace(u); u != "" && u != "+" {
			c.PostLogoutRedirectURIs = append(c.PostLogoutRedirectURIs, u)
		}
	}
	if c.ID == "" {
		c.ID = c.ClientID
	}
	timeouts := map[string]*time.Duration{
		AttrSessionIdle:         &c.SessionIdle,
		AttrSessionMax:          &c.SessionMax,
		AttrOfflineSessionIdle:  &c.OfflineSessionIdle,
		AttrOfflineSessionMax:   &c.OfflineSessionMax,
		AttrAccessTokenLifespan: &c.AccessTokenLifespan,
	}
	// Sorted, so that the first error reported is the same on every run.
	for _, name := range slices.Sorted(maps.Keys(f.Attributes)) {
		value := strings.TrimSpace(f.Attributes[name])
		if name == AttrBackchannelLogoutURL || name == AttrPKCEMethod || name == AttrPostLogoutRedirectURIs || name == AttrFrontchannelLogoutURL {
			continue
		}
		dst, ok := timeouts[name]
		if !ok {
			// Attributes are as strict as fields: a misspelt override must not be ignored.
			return nil, fmt.Errorf("unknown attribute %q (sessiond reads %s)", name, strings.Join(knownAttributes(), ", "))
		}
		if value == "" {
			continue
		}
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: %q is not a whole number of seconds", name, value)
		}
		*dst = seconds(n) // ≤ 0: not set, the realm value applies (Keycloak reads only > 0)
	}
	return c, nil
}

func knownAttributes() []string {
	return []string{AttrSessionIdle, AttrSessionMax, AttrOfflineSessionIdle, AttrOfflineSessionMax, AttrAccessTokenLifespan, AttrBackchannelLogoutURL, AttrPKCEMethod, AttrPostLogoutRedirectURIs, AttrFrontchannelLogoutURL}
}
