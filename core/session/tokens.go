package session

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Tokens issues and verifies a realm's signed tokens; *token.Service implements it.
type Tokens interface {
	Issue(ctx context.Context, realm string, c token.Claims) (*token.Token, error)
	VerifyAccept(ctx context.Context, realm, raw string, a token.Accept) (*token.Token, error)
}

// asRefreshToken is what takes a refresh token: the refresh grant, the logout endpoint.
// Refresh and offline tokens issued before realm secrets are accepted there (unless the
// operator refuses them), so that sessions from before an upgrade go on; a refresh answers
// them with tokens in the current format.
var asRefreshToken = token.Accept{
	Types:  []token.Type{token.Refresh, token.Offline},
	Legacy: []token.Type{token.Refresh, token.Offline},
}

var _ Tokens = (*token.Service)(nil)

// verify checks a token's signature, realm (issuer), type and expiry (core/token does, in
// that order) and answers an unusable token as invalid_grant with core/token's precise
// description. Any other failure means the realm's keys could not be read (an unavailable
// store): it passes through, so the caller answers 503 rather than refusing a good token.
func (s *Service) verify(ctx context.Context, r *realm.Realm, raw, what string, a token.Accept) (*token.Token, error) {
	if raw == "" {
		return nil, errorf(InvalidRequest, "Missing %s", what)
	}
	t, err := s.tokens.VerifyAccept(ctx, r.Name, raw, a)
	if err == nil {
		return t, nil
	}
	var bad *token.Error
	switch {
	case !errors.As(err, &bad):
		return nil, fmt.Errorf("verify the %s: %w", what, err)
	case errors.Is(err, token.ErrExpired):
		return nil, refuse(RefusedTokenExpired, "Token is not active: %s", bad.Description)
	}
	return nil, refuse(RefusedInvalidToken, "Invalid %s: %s", what, bad.Description)
}

// TokenTypeDPoP is a grant's token type when its access token is bound to a DPoP key
// (RFC 9449 §5).
const TokenTypeDPoP = "DPoP"

// issue is one token issuance for a stored (or, for transient sessions, unstored) session.
type issue struct {
	realm   *realm.Realm
	client  *realm.Client
	session *usersessions.UserSession // with the client session of client in Clients
	scope   string                    // the access token's
	// refresh asks for a refresh (or, for an offline session, offline) token.
	refresh bool
	// refreshScope is the refresh token's scope, "" for scope: a refresh keeps the scope of
	// the token presented even when the access token asks for less (RFC 6749 §6).
	refreshScope string
	implicit     bool // the access token takes the implicit-flow lifespan
	// jkt binds the access token, and a public client's refresh token, to a DPoP key
	// (RFC 9449 §5: a confidential client's refresh token is bound by its credentials).
	jkt string
}

// issue signs the access token and, when asked, the refresh token, at the client session's
// LastRefresh. It writes nothing, so a signing failure changes nothing; the caller records
// the refresh token's id (Grant.refreshID) before it writes.
func (s *Service) issue(ctx context.Context, in issue) (*Grant, error) {
	us := in.session
	cs := us.Clients[in.client.ClientID]
	now := cs.LastRefresh
	rules := s.rules(in.realm)
	sf, cf := expiry.SessionOf(us), expiry.ClientSessionOf(cs)
	access := token.Claims{
		// The client is the audience, so a standard OIDC library verifying with the client's
		// id accepts the token without special configuration.
		Type: token.Bearer, Subject: us.UserID, Audience: []string{in.client.ClientID},
		ClientID: in.client.ClientID, SessionID: us.ID, Scope: in.scope, Username: us.LoginUsername, IssuedAt: now,
		Expiry: rules.AccessTokenEnds(in.client, sf, cf, now, in.implicit), JKT: in.jkt,
	}
	g := &Grant{
		SessionID: us.ID, UserID: us.UserID, TokenType: string(token.Bearer), IssuedAt: now,
		Scope: in.scope, Offline: us.Offline, NotBefore: s.realmNotBefore(in.realm),
	}
	at, err := s.tokens.Issue(ctx, in.realm.Name, access)
	if err != nil {
		return nil, fmt.Errorf("issue the access token: %w", err)
	}
	g.AccessToken, g.ExpiresAt = at.Raw, at.Expiry
	if in.jkt != "" {
		g.TokenType = TokenTypeDPoP
	}
	if !in.refresh {
		return g, nil
	}
	refresh := access
	refresh.Type, refresh.Username = token.Refresh, ""
	if !in.client.PublicClient {
		refresh.JKT = ""
	}
	if us.Offline {
		refresh.Type = token.Offline
	}
	refresh.Scope = orDefault(in.refreshScope, in.scope)
	refresh.Expiry = rules.RefreshToken(in.client, sf, cf)
	rt, err := s.tokens.Issue(ctx, in.realm.Name, refresh)
	if err != nil {
		return nil, fmt.Errorf("issue the %s token: %w", strings.ToLower(string(refresh.Type)), err)
	}
	g.RefreshToken, g.RefreshTokenType, g.RefreshExpiresAt, g.refreshID = rt.Raw, rt.Type, rt.Expiry, rt.ID
	return g, nil
}
