package login

import (
	"context"
	"errors"
	"maps"
	"net/url"
	"slices"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
)

// Logout is an RP-initiated logout request (OpenID Connect RP-Initiated Logout 1.0 §2).
type Logout struct {
	IDTokenHint           string
	ClientID              string
	PostLogoutRedirectURI string
	State                 string
	// Confirmed: the person confirmed on sessiond's own page (a POST from it), for a
	// request without id_token_hint.
	Confirmed bool
}

// LogoutOutcome says what the end-session endpoint does.
type LogoutOutcome struct {
	// Confirm: show the confirmation page (no id_token_hint, not yet confirmed); nothing
	// has ended.
	Confirm bool
	// Ended: the browser's SSO session ended and its cookie is to be cleared.
	Ended bool
	// Redirect is the client's post-logout redirect; "" shows the logged-out page. With
	// Confirm, it is where the confirmed logout will go.
	Redirect string
	// FrontChannel are the front-channel logout URLs (with iss and sid) of the ended
	// session's clients that registered one: the page loads each in an iframe before it
	// goes on.
	FrontChannel []string
}

// EndSession ends the browser's SSO session: the one its cookie names, or the id_token_hint's
// when the browser has no cookie. A post_logout_redirect_uri must be registered for the
// client the hint (or client_id) names. Without a hint the person must confirm, so that
// another site cannot log them out by a link. The session ends through the admin API's path,
// which sends back-channel logout to its clients.
func (s *Service) EndSession(ctx context.Context, realmName string, l Logout, sso *SSO) (*LogoutOutcome, error) {
	r, err := s.realmOf(realmName)
	if err != nil {
		return nil, err
	}
	clientID, sid := l.ClientID, ""
	if l.IDTokenHint != "" {
		t, err := s.tokens.VerifyAccept(ctx, r.Name, l.IDTokenHint, token.Accept{Types: []token.Type{token.ID}, IgnoreExpiry: true})
		if err != nil {
			var bad *token.Error
			if errors.As(err, &bad) {
				return nil, &PageError{Description: "the id_token_hint is not an ID token of this realm: " + bad.Description}
			}
			return nil, err
		}
		if clientID != "" && clientID != t.ClientID {
			return nil, &PageError{Description: "client_id is not the id_token_hint's audience"}
		}
		clientID, sid = t.ClientID, t.SessionID
	}
	redirect := ""
	if l.PostLogoutRedirectURI != "" {
		c, ok := r.Client(clientID)
		if clientID == "" || !ok || !c.PostLogoutRedirectAllowed(l.PostLogoutRedirectURI) {
			return nil, &PageError{Description: "post_logout_redirect_uri is not registered for the client (id_token_hint or client_id names it)"}
		}
		redirect = l.PostLogoutRedirectURI
		if l.State != "" {
			u, _ := url.Parse(redirect)
			q := u.Query()
			q.Set("state", l.State)
			u.RawQuery = q.Encode()
			redirect = u.String()
		}
	}
	if l.IDTokenHint == "" && !l.Confirmed {
		return &LogoutOutcome{Confirm: true, Redirect: redirect}, nil
	}
	if sso != nil {
		// The browser's own session, which its cookie proves, even when the hint names
		// another one.
		sid = sso.SessionID
	}
	// The cookie is cleared only when the request carried it: a cross-site POST (which a
	// SameSite=Lax cookie does not accompany) can then neither end nor clear anything.
	out := &LogoutOutcome{Ended: sso != nil, Redirect: redirect}
	if sid != "" {
		if us, err := s.liveSession(ctx, r, sid, s.clock()); err != nil {
			return nil, err
		} else if us != nil {
			out.FrontChannel = frontChannel(r, us.ID, s.Issuer(r.Name), slices.Sorted(maps.Keys(us.Clients)))
		}
		if err := s.end(ctx, r.Name, sid, false, causeEndSession); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// frontChannel returns the front-channel logout URLs of the session's clients that have one,
// with iss and sid (OpenID Connect Front-Channel Logout 1.0 §2).
func frontChannel(r *realm.Realm, sid, iss string, clients []string) []string {
	var out []string
	for _, id := range clients {
		c, ok := r.Client(id)
		if !ok || c.FrontchannelLogoutURL == "" {
			continue
		}
		u, err := url.Parse(c.FrontchannelLogoutURL)
		if err != nil {
			continue
		}
		q := u.Query()
		q.Set("iss", iss)
		q.Set("sid", sid)
		u.RawQuery = q.Encode()
		out = append(out, u.String())
	}
	return out
}
