// Package actiontoken mints and redeems action tokens: permits for one user to do one action
// (verify an email address, reset credentials, execute required actions, or a custom one)
// that the login front-end redeems once, on any node sharing the store.
//
// The token is a JWT of its own kind (core/token: realm secret, header action+jwt), so it
// carries its claims to whoever presents it and no other verifier accepts it. Single use is
// the store's: redeeming records the token's id with PutRecord at version 0 (must not
// exist), which exactly one node and one request can do; the record lives until the token
// has expired (and a margin for clock skew between nodes), then Sweep removes it.
//
// Lifespans follow Keycloak: a token the user asked for (the front-end mints it) lives the
// realm's override for its action, else User-Initiated Action Lifespan; one an administrator
// asked for (the admin API) lives the lifespan given in the request, else Default
// Admin-Initiated Action Lifespan. Keycloak's admin endpoints (execute-actions-email,
// send-verify-email) do not read the per-action overrides, which the admin console calls
// "Override User-Initiated Action Lifespan"; sessiond does the same.
package actiontoken

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// RecordKind is the record kind of a redeemed action token, keyed by realm and token id.
const RecordKind = "action-token-used"

// Bounds of a request.
const (
	// MaxLifespan bounds the lifespan an administrator may ask for: thirty days.
	MaxLifespan = 30 * 24 * time.Hour
	// SkewMargin is how long a used token's record outlives the token, so that a node whose
	// clock is behind the sweeping node's cannot take an expired token for a fresh one.
	SkewMargin = 5 * time.Minute
	maxID      = 255  // user id, client id, authentication session id, IdP alias and username
	maxEmail   = 254  // RFC 5321's longest path
	maxURI     = 2048 // redirect URI
	maxActions = 32   // required actions of execute-actions
)

// Tokens signs and checks action tokens; *token.Service implements it.
type Tokens interface {
	IssueAction(ctx context.Context, realm string, c token.ActionClaims) (*token.ActionToken, error)
	VerifyAction(ctx context.Context, realm, raw string) (*token.ActionToken, error)
}

// Store keeps the records of used tokens; a usersessions.Provider is one.
type Store interface {
	GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error)
	PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error)
	ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error)
	DeleteRecord(ctx context.Context, kind, key string) error
}

// Realms looks realms up; *realm.Realms implements it.
type Realms interface {
	Realm(name string) (*realm.Realm, bool)
}

// NotBefore answers the not-before policies in force; *revocation.Policies implements it.
type NotBefore interface {
	Realm(realmName string) time.Time
	Client(realmName, clientID string) time.Time
}

// Deps are a Service's dependencies.
type Deps struct {
	Tokens Tokens
	Store  Store
	Realms Realms
	// NotBefore revokes tokens issued before the realm's or their client's policy; nil
	// reads the realm settings' own.
	NotBefore NotBefore
	Now       func() time.Time // nil: time.Now
	Log       hclog.Logger     // nil: discard
}

// Service mints and redeems action tokens. It is safe for concurrent use.
type Service struct {
	tokens    Tokens
	store     Store
	realms    Realms
	notBefore NotBefore
	now       func() time.Time
	log       hclog.Logger
}

// New returns a Service.
func New(d Deps) *Service {
	s := &Service{tokens: d.Tokens, store: d.Store, realms: d.Realms, notBefore: d.NotBefore, now: d.Now, log: d.Log}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	return s
}

// Request asks for an action token. The optional fields are those Keycloak's action tokens
// carry; sessiond signs them into the token and gives them back when it is redeemed.
type Request struct {
	Realm    string
	UserID   string // required
	Action   string // required: one of realm.KeycloakActions() or a custom name (realm.CheckActionName)
	ClientID string // a client of the realm; required with RedirectURI
	// RedirectURI is where the user goes once done; it must match one of the client's
	// registered redirect URIs.
	RedirectURI     string
	Email           string
	RequiredActions []string // e.g. UPDATE_PASSWORD, for execute-actions
	AuthSessionID   string
	// IdentityProviderAlias and IdentityProviderUsername name the brokered account to link
	// (idp-verify-account-via-email).
	IdentityProviderAlias    string
	IdentityProviderUsername string
	// Lifespan, when > 0, is the token's lifespan: admin-initiated tokens only, at most
	// MaxLifespan.
	Lifespan time.Duration
}

// Where a minted token's lifespan came from.
const (
	FromRequest      = "request"                // the admin's request
	FromOverride     = "action-override"        // actionTokenGeneratedByUserLifespan.<action>
	FromUserDefault  = "user-initiated-default" // User-Initiated Action Lifespan
	FromAdminDefault = "admin-initiated-default"
)

// Minted is an issued action token.
type Minted struct {
	Token          string
	ID             string
	Action         string
	UserID         string
	AdminInitiated bool
	IssuedAt       time.Time
	Expiry         time.Time
	Lifespan       time.Duration
	LifespanSource string // one of the From* values
}

// MintForUser issues a user-initiated action token (the login front-end's): its lifespan is
// the realm's override for the action, else User-Initiated Action Lifespan. A request with
// its own Lifespan is refused: only administrators choose one.
func (s *Service) MintForUser(ctx context.Context, req Request) (*Minted, error) {
	if req.Lifespan != 0 {
		return nil, invalid("lifespan is chosen by administrators only (the admin API); a user-initiated token lives the realm's lifespan for its action")
	}
	return s.mint(ctx, req, false)
}

// MintForAdmin issues an admin-initiated action token: its lifespan is the request's, else
// Default Admin-Initiated Action Lifespan.
func (s *Service) MintForAdmin(ctx context.Context, req Request) (*Minted, error) {
	return s.mint(ctx, req, true)
}

func (s *Service) mint(ctx context.Context, req Request, byAdmin bool) (*Minted, error) {
	r, ok := s.realms.Realm(req.Realm)
	if !ok || !r.Enabled {
		return nil, fmt.Errorf("realm %q: %w", req.Realm, spi.ErrNotFound)
	}
	if err := check(r, req); err != nil {
		return nil, err
	}
	lifespan, source := lifespanOf(r, req, byAdmin)
	now := s.now().UTC()
	t, err := s.tokens.IssueAction(ctx, r.Name, token.ActionClaims{
		Action: req.Action, Subject: req.UserID, ClientID: req.ClientID, AdminInitiated: byAdmin,
		Email: req.Email, RedirectURI: req.RedirectURI, Required: req.RequiredActions, AuthSessionID: req.AuthSessionID,
		IdentityProviderAlias: req.IdentityProviderAlias, IdentityProviderUsername: req.IdentityProviderUsername,
		IssuedAt: now, Expiry: now.Add(lifespan),
	})
	if err != nil {
		return nil, err
	}
	return &Minted{
		Token: t.Raw, ID: t.ID, Action: t.Action, UserID: t.Subject, AdminInitiated: byAdmin,
		IssuedAt: t.IssuedAt, Expiry: t.Expiry, Lifespan: lifespan, LifespanSource: source,
	}, nil
}

// lifespanOf decides a token's lifespan and says where it came from.
func lifespanOf(r *realm.Realm, req Request, byAdmin bool) (time.Duration, string) {
	switch {
	case byAdmin && req.Lifespan > 0:
		return req.Lifespan, FromRequest
	case byAdmin:
		return r.Timeouts.Effective().AdminActionLifespan, FromAdminDefault
	}
	if d, ok := r.ActionLifespans[req.Action]; ok {
		return d, FromOverride
	}
	return r.UserActionLifespanFor(req.Action), FromUserDefault
}

// check refuses a request the token must not carry, saying which field and why.
func check(r *realm.Realm, req Request) error {
	if err := realm.CheckActionName(req.Action); err != nil {
		return invalid("action: " + err.Error())
	}
	for _, f := range []struct {
		name, value string
		limit       int
		required    bool
	}{
		{"user_id", req.UserID, maxID, true},
		{"client_id", req.ClientID, maxID, false},
		{"email", req.Email, maxEmail, false},
		{"redirect_uri", req.RedirectURI, maxURI, false},
		{"auth_session_id", req.AuthSessionID, maxID, false},
		{"identity_provider_alias", req.IdentityProviderAlias, maxID, false},
		{"identity_provider_username", req.IdentityProviderUsername, maxID, false},
	} {
		switch {
		case f.required && f.value == "":
			return invalid(f.name + " is required")
		case len(f.value) > f.limit:
			return invalid(fmt.Sprintf("%s is %d bytes, more than the %d allowed", f.name, len(f.value), f.limit))
		}
	}
	if req.Email != "" && !strings.Contains(req.Email, "@") {
		return invalid("email is not an email address")
	}
	if len(req.RequiredActions) > maxActions {
		return invalid(fmt.Sprintf("required_actions has %d entries, more than the %d allowed", len(req.RequiredActions), maxActions))
	}
	for _, a := range req.RequiredActions {
		if err := realm.CheckActionName(a); err != nil {
			return invalid("required_actions: " + err.Error())
		}
	}
	if req.Lifespan < 0 || req.Lifespan > MaxLifespan || req.Lifespan%time.Second != 0 {
		return invalid(fmt.Sprintf("lifespan must be a whole number of seconds from 1 to %d", int(MaxLifespan/time.Second)))
	}
	if req.ClientID != "" {
		c, ok := r.Client(req.ClientID)
		switch {
		case !ok:
			return invalid(fmt.Sprintf("client_id %q is not a client of realm %q", req.ClientID, r.Name))
		case !c.Enabled:
			return invalid(fmt.Sprintf("client %q is disabled", req.ClientID))
		case req.RedirectURI != "" && !redirectAllowed(c.RedirectURIs, req.RedirectURI):
			return invalid(fmt.Sprintf("redirect_uri is not among the redirect URIs registered for client %q", req.ClientID))
		}
	} else if req.RedirectURI != "" {
		return invalid("redirect_uri needs the client_id whose registered redirect URIs it matches")
	}
	return nil
}

// redirectAllowed matches uri against a client's registered redirect URIs as Keycloak does
// for its simple forms: equal, or a prefix of it when the registered one ends in '*'. The URI
// must be absolute http(s) without a fragment.
func redirectAllowed(registered []string, uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
		return false
	}
	for _, p := range registered {
		if prefix, wild := strings.CutSuffix(p, "*"); wild && strings.HasPrefix(uri, prefix) || p == uri {
			return true
		}
	}
	return false
}

// usedRecord is the value of a used token's record.
type usedRecord struct {
	Expiry int64  `json:"exp"`  // the token's, Unix seconds
	Used   int64  `json:"used"` // when it was redeemed, Unix seconds
	Action string `json:"action"`
	UserID string `json:"sub"`
}

func recordKey(realmName, id string) string { return realmName + "/" + id }

// Consume redeems an action token presented to realm and returns its claims: it verifies it
// (core/token VerifyAction) and records its id as used, which succeeds once across every
// node sharing the store. A refused token is an *Error saying why; a store failure is
// returned as it is, and leaves the token unused.
func (s *Service) Consume(ctx context.Context, realmName, raw string) (*token.ActionToken, error) {
	r, ok := s.realms.Realm(realmName)
	if !ok || !r.Enabled {
		return nil, fmt.Errorf("realm %q: %w", realmName, spi.ErrNotFound)
	}
	if raw == "" {
		return nil, invalid("token is required")
	}
	t, err := s.tokens.VerifyAction(ctx, realmName, raw)
	var te *token.Error
	switch {
	case errors.As(err, &te) && errors.Is(err, token.ErrExpired):
		return nil, &Error{Code: Expired, Description: te.Description}
	case errors.As(err, &te):
		return nil, &Error{Code: Invalid, Description: te.Description}
	case err != nil:
		return nil, err
	}
	if err := s.stillGood(r, t); err != nil {
		return nil, err
	}
	value, err := json.Marshal(usedRecord{Expiry: t.Expiry.Unix(), Used: s.now().Unix(), Action: t.Action, UserID: t.Subject})
	if err != nil {
		return nil, err
	}
	key := recordKey(realmName, t.ID)
	_, err = s.store.PutRecord(ctx, &usersessions.Record{Kind: RecordKind, Key: key, Value: value})
	switch {
	case errors.Is(err, spi.ErrConflict), errors.Is(err, spi.ErrExists):
		return nil, &Error{Code: Used, Description: s.usedDescription(ctx, key)}
	case err != nil:
		return nil, fmt.Errorf("record action token as used: %w", err)
	}
	return t, nil
}

// stillGood refuses a genuine token that the realm has since revoked: issued before the
// realm's or its client's not-before policy (compared in whole seconds, as for refresh
// tokens), or for a client that is gone or disabled.
func (s *Service) stillGood(r *realm.Realm, t *token.ActionToken) error {
	realmNB := r.NotBefore
	if s.notBefore != nil {
		realmNB = s.notBefore.Realm(r.Name)
	}
	iat := t.IssuedAt.Unix()
	if !realmNB.IsZero() && iat < realmNB.Unix() {
		return &Error{Code: Revoked, Description: fmt.Sprintf("action token was issued before the realm's not-before policy (%s)", realmNB.UTC().Format(time.RFC3339))}
	}
	if t.ClientID == "" {
		return nil
	}
	c, ok := r.Client(t.ClientID)
	if !ok || !c.Enabled {
		return &Error{Code: Revoked, Description: fmt.Sprintf("action token is for client %q, which is gone or disabled", t.ClientID)}
	}
	clientNB := c.NotBefore
	if s.notBefore != nil {
		clientNB = s.notBefore.Client(r.Name, c.ClientID)
	}
	if !clientNB.IsZero() && iat < clientNB.Unix() {
		return &Error{Code: Revoked, Description: fmt.Sprintf("action token was issued before client %q's not-before policy (%s)", c.ClientID, clientNB.UTC().Format(time.RFC3339))}
	}
	return nil
}

// usedDescription says when a token was used, if its record can be read.
func (s *Service) usedDescription(ctx context.Context, key string) string {
	const base = "action token was already used; it is valid once"
	recs, err := s.store.GetRecords(ctx, RecordKind, []string{key})
	if err != nil || len(recs) != 1 || recs[0] == nil {
		return base
	}
	var u usedRecord
	if json.Unmarshal(recs[0].Value, &u) != nil || u.Used == 0 {
		return base
	}
	return fmt.Sprintf("%s (used at %s)", base, time.Unix(u.Used, 0).UTC().Format(time.RFC3339))
}

// Sweep removes the records of used tokens that expired more than SkewMargin ago, and any
// record it cannot read, and returns how many went. Several nodes may sweep at once.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	recs, err := s.store.ListRecords(ctx, RecordKind)
	if err != nil {
		return 0, fmt.Errorf("list used action tokens: %w", err)
	}
	cutoff := s.now().Add(-SkewMargin).Unix()
	removed := 0
	for _, rec := range recs {
		var u usedRecord
		if err := json.Unmarshal(rec.Value, &u); err == nil && u.Expiry > cutoff {
			continue
		}
		if err := s.store.DeleteRecord(ctx, RecordKind, rec.Key); err != nil {
			return removed, fmt.Errorf("remove used action token record: %w", err)
		}
		removed++
	}
	return removed, nil
}

// Run sweeps at once and then every interval until ctx ends; the caller owns the goroutine.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("cannot remove the records of expired action tokens; retrying at the next interval", "error", err, "removed", n)
		case n > 0:
			s.log.Info("records of expired action tokens removed", "removed", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
