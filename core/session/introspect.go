package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Introspection is the RFC 7662 answer. An inactive token carries only Active=false, so a
// caller learns nothing about why (RFC 7662 §2.2).
type Introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Username  string   `json:"username,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Jti       string   `json:"jti,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Aud       []string `json:"aud,omitempty"`
	// Keycloak's extra members.
	Typ string `json:"typ,omitempty"`
	Azp string `json:"azp,omitempty"`
	Sid string `json:"sid,omitempty"`
	// Cnf is the DPoP key a bound token is bound to (RFC 9449 §6.2).
	Cnf *token.Cnf `json:"cnf,omitempty"`
}

// Introspect answers whether a token is active: well signed, of this realm, not expired,
// not revoked by a not-before policy, and its session (and client session) still live. A
// token that fails any of that is Active=false, not an error. Tokens of transient sessions
// are never active: their session was never stored. Outstanding access tokens are not
// revoked by logout, but once their session has ended they are inactive here.
func (s *Service) Introspect(ctx context.Context, realmName, raw string) (*Introspection, error) {
	return s.IntrospectHint(ctx, realmName, raw, "")
}

// IntrospectHint is Introspect with RFC 7662's token_type_hint. Tokens issued before at+jwt
// and realm secrets: an access token is active until it expires whatever the hint; a refresh
// or offline token only with the hint refresh_token, so that one is never taken for an
// access token by a resource server that introspects whatever it is given.
func (s *Service) IntrospectHint(ctx context.Context, realmName, raw, hint string) (*Introspection, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return nil, err
	}
	a := token.Accept{Types: []token.Type{token.Bearer, token.Refresh, token.Offline}, Legacy: []token.Type{token.Bearer}}
	if hint == "refresh_token" {
		a.Legacy = append(a.Legacy, token.Refresh, token.Offline)
	}
	t, c, us, err := s.live(ctx, r, raw, a)
	if err != nil || t == nil {
		return &Introspection{}, err
	}
	username := t.Username
	if username == "" {
		username = us.LoginUsername // refresh and offline tokens do not carry it
	}
	var cnf *token.Cnf
	if t.JKT != "" {
		cnf = &token.Cnf{JKT: t.JKT}
	}
	return &Introspection{
		Cnf:       cnf,
		Active:    true,
		Scope:     t.Scope,
		ClientID:  c.ClientID,
		Username:  username,
		TokenType: string(t.Type),
		Exp:       unix(t.Expiry),
		Iat:       unix(t.IssuedAt),
		Sub:       t.Subject,
		Jti:       t.ID,
		Iss:       t.Issuer,
		Aud:       t.Audience,
		Typ:       string(t.Type),
		Azp:       t.ClientID,
		Sid:       t.SessionID,
	}, nil
}

// live returns a token that is active, with its client and session; a nil token when it
// is not. Only an unavailable store or key source is an error.
func (s *Service) live(ctx context.Context, r *realm.Realm, raw string, a token.Accept) (*token.Token, *realm.Client, *usersessions.UserSession, error) {
	t, err := s.tokens.VerifyAccept(ctx, r.Name, raw, a)
	if err != nil {
		if bad := (*token.Error)(nil); !errors.As(err, &bad) {
			return nil, nil, nil, fmt.Errorf("verify the token: %w", err)
		}
		return nil, nil, nil, nil
	}
	c, ok := r.Client(t.ClientID)
	if !ok || !c.Enabled || t.SessionID == "" || s.checkNotBefore(r, c, t) != nil {
		return nil, nil, nil, nil
	}
	key := usersessions.Key{RealmID: r.Name, ID: t.SessionID, Offline: sessionIsOffline(t)}
	us, err := s.getSession(ctx, key)
	if err != nil {
		return nil, nil, nil, err
	}
	rules, now := s.rules(r), s.clock()
	if checkUserSession(rules, us, key.Offline, now) != nil || us.UserID != t.Subject ||
		t.IssuedAt.Unix() < us.Started.Unix() || checkClientSession(rules, c, us, now) != nil {
		return nil, nil, nil, nil
	}
	if t.Type != token.Bearer { // a refresh token that rotation no longer accepts is not active
		if _, _, e := classify(r, us.Clients[c.ClientID], t, now); e != nil {
			return nil, nil, nil, nil
		}
	}
	return t, c, us, nil
}

// sessionIsOffline says which of the two sessions with the token's session id a token
// belongs to: the offline one for offline tokens and for access tokens granted with
// offline_access (those come from an offline token, or from an offline login).
func sessionIsOffline(t *token.Token) bool {
	return t.Type == token.Offline || (t.Type == token.Bearer && hasScope(t.Scope, realm.OfflineAccessScope))
}

// unix is a NumericDate; 0 (omitted) for no time.
func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// Revoke is RFC 7009 token revocation by client. A refresh token ends its client session,
// an offline token its offline client session (and the offline session with it when no
// other client is left in it, as Keycloak does). A token that is invalid, expired or already
// revoked is not an error (RFC 7009 §2.2). A token issued to another client is refused.
// Access tokens are not revocable (unsupported_token_type): they expire on their own, and a
// not-before policy revokes them early.
func (s *Service) Revoke(ctx context.Context, realmName, clientID, raw string) error {
	r, c, err := s.client(realmName, clientID)
	if err != nil {
		return err
	}
	// A refresh or offline token issued before realm secrets is revocable as the refresh
	// grant accepts it; an access token of that time is not revocable anyway.
	t, err := s.tokens.VerifyAccept(ctx, r.Name, raw, token.Accept{
		Types: []token.Type{token.Bearer, token.Refresh, token.Offline}, Legacy: asRefreshToken.Legacy,
	})
	if err != nil {
		if bad := (*token.Error)(nil); !errors.As(err, &bad) {
			return fmt.Errorf("verify the token: %w", err)
		}
		return nil
	}
	switch {
	case t.ClientID != c.ClientID:
		return errorf(UnauthorizedClient, "The token was issued to another client")
	case t.Type == token.Bearer:
		return errorf(UnsupportedTokenType, "Access tokens cannot be revoked; they expire, and a not-before policy ends them early")
	}
	key := usersessions.Key{RealmID: r.Name, ID: t.SessionID, Offline: t.Type == token.Offline}
	// Whether there is a client session to end: revoking a token twice ends it once, and
	// tells Shared Signals receivers once.
	before, err := s.getSession(ctx, key)
	if err != nil {
		return fmt.Errorf("revoke: read the session: %w", err)
	}
	live := before != nil && before.Clients[c.ClientID] != nil
	if err := s.store.DeleteClientSessions(ctx, []usersessions.ClientKey{{Session: key, ClientID: c.ClientID}}); err != nil {
		return fmt.Errorf("revoke: end the client session: %w", err)
	}
	if key.Offline {
		if err := s.dropEmptyOffline(ctx, key); err != nil {
			return err
		}
	}
	s.emit(Event{Type: EventRevoke, Realm: r.Name, ClientID: c.ClientID, SessionID: t.SessionID, UserID: t.Subject, Offline: key.Offline})
	if !live {
		return nil
	}
	s.ended(ctx, Ended{Realm: r.Name, SessionID: t.SessionID, UserID: t.Subject, ClientID: c.ClientID, Offline: key.Offline,
		Initiator: InitiatorUser, Reason: "token revocation"})
	return nil
}

// dropEmptyOffline removes an offline session that no client session is left in.
func (s *Service) dropEmptyOffline(ctx context.Context, key usersessions.Key) error {
	us, err := s.getSession(ctx, key)
	if err != nil || us == nil || len(us.Clients) > 0 {
		return err
	}
	if _, err := s.store.Delete(ctx, []usersessions.Key{key}); err != nil {
		return fmt.Errorf("revoke: remove the empty offline session: %w", err)
	}
	return nil
}
