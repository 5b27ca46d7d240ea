package realm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond/internal/jsonkeys"
)

// realmFile is the part of Keycloak's RealmRepresentation that sessiond reads, with its field
// names, so an operator can feed a trimmed export. Decoding is strict: a field that is neither
// read nor listed below as ignored is an error, so a misspelt timeout never passes silently.
type realmFile struct {
	Realm                               string       `json:"realm"`
	Enabled                             *bool        `json:"enabled"` // absent: enabled
	NotBefore                           int64        `json:"notBefore"`
	SSOSessionIdleTimeout               *int64       `json:"ssoSessionIdleTimeout"`
	SSOSessionMaxLifespan               *int64       `json:"ssoSessionMaxLifespan"`
	SSOSessionIdleTimeoutRememberMe     *int64       `json:"ssoSessionIdleTimeoutRememberMe"`
	SSOSessionMaxLifespanRememberMe     *int64       `json:"ssoSessionMaxLifespanRememberMe"`
	ClientSessionIdleTimeout            *int64       `json:"clientSessionIdleTimeout"`
	ClientSessionMaxLifespan            *int64       `json:"clientSessionMaxLifespan"`
	OfflineSessionIdleTimeout           *int64       `json:"offlineSessionIdleTimeout"`
	OfflineSessionMaxLifespanEnabled    bool         `json:"offlineSessionMaxLifespanEnabled"`
	OfflineSessionMaxLifespan           *int64       `json:"offlineSessionMaxLifespan"`
	ClientOfflineSessionIdleTimeout     *int64       `json:"clientOfflineSessionIdleTimeout"`
	ClientOfflineSessionMaxLifespan     *int64       `json:"clientOfflineSessionMaxLifespan"`
	AccessTokenLifespan                 *int64       `json:"accessTokenLifespan"`
	AccessTokenLifespanForImplicitFlow  *int64       `json:"accessTokenLifespanForImplicitFlow"`
	AccessCodeLifespan                  *int64       `json:"accessCodeLifespan"`
	AccessCodeLifespanLogin             *int64       `json:"accessCodeLifespanLogin"`
	AccessCodeLifespanUserAction        *int64       `json:"accessCodeLifespanUserAction"`
	ActionTokenGeneratedByUserLifespan  *int64       `json:"actionTokenGeneratedByUserLifespan"`
	ActionTokenGeneratedByAdminLifespan *int64       `json:"actionTokenGeneratedByAdminLifespan"`
	RevokeRefreshToken                  bool         `json:"revokeRefreshToken"`
	RefreshTokenMaxReuse                int          `json:"refreshTokenMaxReuse"`
	Clients                             []clientFile `json:"clients"`
	// Attributes: the per-action overrides of User-Initiated Action Lifespan (actions.go)
	// and the session limits (limits.go).
	Attributes map[string]string `json:"attributes"`

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
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return fmt.Errorf("%s: %s", position(data, syntax.Offset), strings.TrimPrefix(syntax.Error(), "json: "))
		case errors.As(err, &typ):
			field := typ.Field
			if field == "" {
				field = "the realm representation"
			}
			return fmt.Errorf("%s: %s is a JSON %s, but sessiond reads it as %s", position(data, typ.Offset), field, typ.Value, jsonType(typ.Type))
		case errors.Is(err, io.ErrUnexpectedEOF):
			return fmt.Errorf("%s: the file ends before the JSON does", position(data, int64(len(data))))
		}
		if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Errorf("unknown field %s (sessiond reads only session and token settings; remove it from the file)", msg)
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the realm representation")
	}
	// encoding/json keeps the last of a key given twice and reads "RedirectUris" as
	// redirectUris; Keycloak and an operator's diff or review read the file otherwise.
	if err := jsonkeys.Check(data, v); err != nil {
		var ke *jsonkeys.Error
		if errors.As(err, &ke) {
			// position counts the bytes before offset as the column: one past the key's quote
			// is the column of the quote.
			return fmt.Errorf("%s: %w", position(data, ke.Offset+1), err)
		}
		return err
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

// timeoutField is one realm-level timeout of the file: its name there, its value (nil when
// absent), where it goes and where its default is.
type timeoutField struct {
	name  string
	value *int64
	dst   func(*Timeouts) *time.Duration
}

func (f realmFile) timeouts() []timeoutField {
	return []timeoutField{
		{"ssoSessionIdleTimeout", f.SSOSessionIdleTimeout, func(t *Timeouts) *time.Duration { return &t.SSOSessionIdle }},
		{"ssoSessionMaxLifespan", f.SSOSessionMaxLifespan, func(t *Timeouts) *time.Duration { return &t.SSOSessionMax }},
		{"ssoSessionIdleTimeoutRememberMe", f.SSOSessionIdleTimeoutRememberMe, func(t *Timeouts) *time.Duration { return &t.SSOSessionIdleRememberMe }},
		{"ssoSessionMaxLifespanRememberMe", f.SSOSessionMaxLifespanRememberMe, func(t *Timeouts) *time.Duration { return &t.SSOSessionMaxRememberMe }},
		{"clientSessionIdleTimeout", f.ClientSessionIdleTimeout, func(t *Timeouts) *time.Duration { return &t.ClientSessionIdle }},
		{"clientSessionMaxLifespan", f.ClientSessionMaxLifespan, func(t *Timeouts) *time.Duration { return &t.ClientSessionMax }},
		{"offlineSessionIdleTimeout", f.OfflineSessionIdleTimeout, func(t *Timeouts) *time.Duration { return &t.OfflineSessionIdle }},
		{"offlineSessionMaxLifespan", f.OfflineSessionMaxLifespan, func(t *Timeouts) *time.Duration { return &t.OfflineSessionMax }},
		{"clientOfflineSessionIdleTimeout", f.ClientOfflineSessionIdleTimeout, func(t *Timeouts) *time.Duration { return &t.ClientOfflineSessionIdle }},
		{"clientOfflineSessionMaxLifespan", f.ClientOfflineSessionMaxLifespan, func(t *Timeouts) *time.Duration { return &t.ClientOfflineSessionMax }},
		{"accessTokenLifespan", f.AccessTokenLifespan, func(t *Timeouts) *time.Duration { return &t.AccessTokenLifespan }},
		{"accessTokenLifespanForImplicitFlow", f.AccessTokenLifespanForImplicitFlow, func(t *Timeouts) *time.Duration { return &t.AccessTokenLifespanImplicit }},
		{"accessCodeLifespan", f.AccessCodeLifespan, func(t *Timeouts) *time.Duration { return &t.ClientLoginTimeout }},
		{"accessCodeLifespanLogin", f.AccessCodeLifespanLogin, func(t *Timeouts) *time.Duration { return &t.LoginTimeout }},
		{"accessCodeLifespanUserAction", f.AccessCodeLifespanUserAction, func(t *Timeouts) *time.Duration { return &t.LoginActionTimeout }},
		{"actionTokenGeneratedByUserLifespan", f.ActionTokenGeneratedByUserLifespan, func(t *Timeouts) *time.Duration { return &t.UserActionLifespan }},
		{"actionTokenGeneratedByAdminLifespan", f.ActionTokenGeneratedByAdminLifespan, func(t *Timeouts) *time.Duration { return &t.AdminActionLifespan }},
	}
}

// CodeTimeoutDefault is the warning about a realm-level timeout written as 0 or less, which
// Keycloak (and so sessiond) reads as "not set".
const CodeTimeoutDefault = "timeout-not-set"

func (f realmFile) realm(source string) (*Realm, error) {
	r := &Realm{
		Name:      f.Realm,
		Enabled:   f.Enabled == nil || *f.Enabled,
		NotBefore: epoch(f.NotBefore),
		Timeouts: Timeouts{
			OfflineSessionMaxLimited: f.OfflineSessionMaxLifespanEnabled,
		},
		RevokeRefreshToken:   f.RevokeRefreshToken,
		RefreshTokenMaxReuse: f.RefreshTokenMaxReuse,
		// Negative values are kept so that Validate reports them rather than hiding them.
		RefreshTokenGraceWindow:             time.Duration(f.RefreshTokenRotationGraceWindow) * time.Second,
		EndClientSessionOnRefreshTokenReuse: f.EndClientSessionOnRefreshTokenReuse,
		LoginFrontendURL:                    f.LoginFrontendURL,
		Source:                              source,
	}
	overrides, err := realmAttributes(f.Attributes)
	if err != nil {
		return nil, fmt.Errorf("realm %q: %w", f.Realm, err)
	}
	r.ActionLifespans = overrides
	if r.SessionLimits, err = sessionLimits(f.Attributes); err != nil {
		return nil, fmt.Errorf("realm %q: %w", f.Realm, err)
	}
	if r.DPoPNonce, err = parseFlag("attributes: "+AttrDPoPNonce, strings.TrimSpace(f.Attributes[AttrDPoPNonce])); err != nil {
		return nil, fmt.Errorf("realm %q: %w", f.Realm, err)
	}
	// Keycloak reads a realm timeout ≤ 0 as "not set" and uses its default; sessiond does the
	// same, so that an export Keycloak accepts is accepted here, but says so: a 0 written
	// on purpose ("never idle out") would otherwise silently become 30 minutes. A field
	// whose default is itself "not set" (the remember-me, client and client-offline pairs)
	// is warned about only when negative.
	defaults := Timeouts{}.Effective()
	for _, tf := range f.timeouts() {
		if tf.value == nil {
			continue
		}
		n := *tf.value
		*tf.dst(&r.Timeouts) = seconds(n)
		if n > 0 {
			continue
		}
		def := *tf.dst(&defaults)
		switch {
		case def > 0:
			r.fileWarnings = append(r.fileWarnings, Warning{Realm: f.Realm, Code: CodeTimeoutDefault, Message: fmt.Sprintf(
				"%s: %s is %d; Keycloak reads a value of 0 or less as not set, so the default %d s (%s) applies",
				source, tf.name, n, int64(def/time.Second), def)})
		case n < 0:
			r.fileWarnings = append(r.fileWarnings, Warning{Realm: f.Realm, Code: CodeTimeoutDefault, Message: fmt.Sprintf(
				"%s: %s is %d; Keycloak reads a value of 0 or less as not set, so it is not set", source, tf.name, n)})
		}
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
		if flag, ok := map[string]*bool{AttrDPoPBound: &c.DPoPBound, AttrDPoPNonce: &c.DPoPNonce}[name]; ok {
			b, err := parseFlag(name, value)
			if err != nil {
				return nil, err
			}
			*flag = b
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
	return []string{AttrSessionIdle, AttrSessionMax, AttrOfflineSessionIdle, AttrOfflineSessionMax, AttrAccessTokenLifespan, AttrBackchannelLogoutURL, AttrPKCEMethod, AttrPostLogoutRedirectURIs, AttrFrontchannelLogoutURL, AttrDPoPBound, AttrDPoPNonce}
}

// parseFlag reads a true/false attribute ("" is false, as Keycloak reads an unset one).
func parseFlag(name, value string) (bool, error) {
	if value == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(value)
	if err != nil {
		return false, fmt.Errorf("attribute %q: %q is not true or false", name, cutName(value))
	}
	return b, nil
}

// position is the line and column (both from 1) of the byte at offset in data, as an
// editor shows them.
func position(data []byte, offset int64) string {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - (bytes.LastIndexByte(before, '\n') + 1)
	if col == 0 && offset > 0 {
		col = 1
	}
	return fmt.Sprintf("line %d, column %d", line, col)
}

// jsonType names, in JSON's terms, what a Go type of the realm file reads.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return jsonType(t.Elem())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "an object"
	}
}
