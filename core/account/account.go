// Package account is the service behind the account REST API (/realms/{realm}/account/…)
// and the account console: a person sees and ends their own sessions and revokes their own
// offline tokens, authorized by their own access token, with Keycloak's paths and shapes.
package account

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/core/useragent"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Tokens verifies access tokens; *token.Service implements it.
type Tokens interface {
	VerifyAccept(ctx context.Context, realm, raw string, a token.Accept) (*token.Token, error)
}

// Sessions reads sessions by key; the runtime hands it the session cache.
type Sessions interface {
	Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error)
}

// Lister lists a user's sessions; the runtime hands it the sessions' store (the cache
// answers reads by key only).
type Lister interface {
	List(ctx context.Context, f usersessions.Filter, p usersessions.Page) ([]*usersessions.UserSession, error)
}

// Ender ends sessions and revokes offline tokens the way the admin API does (back-channel
// logout to the clients, logout events); *admin.Service implements it.
type Ender interface {
	LogoutSessionBecause(ctx context.Context, realm, id string, offline bool, cause session.Cause) (admin.Result, error)
	RevokeOfflineToken(ctx context.Context, realm, userID, clientID string) (admin.Result, error)
}

// NotBefore is the realms' not-before policies in force; *revocation.Policies implements it.
type NotBefore interface {
	Realm(realmName string) time.Time
}

// Deps are the Service's dependencies.
type Deps struct {
	Tokens   Tokens
	Sessions Sessions
	Lister   Lister
	End      Ender
	Realms   *realm.Realms
	// NotBefore is the source of not-before policies; nil means the realm settings' own.
	NotBefore NotBefore
	// PersistentSessions is the feature of that name (the idle window, core/expiry).
	PersistentSessions bool
	// Events receives a revoke event for each revocation of offline tokens; nil drops them.
	Events session.Events
	Now    func() time.Time
	Log    hclog.Logger
}

// MaxSessions bounds what one listing reads of a user's sessions: a person has a handful;
// past it the listing stops (sessionLimits keep a realm's users under it).
const MaxSessions = 1000

// pageSize is the store page a listing reads.
const pageSize = 200

// The reasons the logout events of the account API give.
const (
	ReasonLogoutSession = "account logout-session"
	ReasonLogoutOthers  = "account logout-sessions"
	ReasonRevoke        = "account revoke-offline-token"
)

// Errors. ErrUnknownSession and ErrUnknownClient are spi.ErrNotFound (404) to errors.Is; a
// session of another user is unknown too, so that nobody learns another's session ids.
var (
	ErrUnknownSession error = notFound("session not found")
	ErrUnknownClient  error = notFound("client not found")
)

type notFound string

func (e notFound) Error() string        { return string(e) }
func (e notFound) Is(target error) bool { return target == spi.ErrNotFound }

// TokenError refuses the access token a call was authorized with (RFC 6750 §3.1): its
// Code is invalid_token (401). Any other kind of token, an expired one, one whose session
// has ended: each is invalid_token.
type TokenError struct {
	Description string
}

func (e *TokenError) Error() string { return "invalid_token: " + e.Description }

// Caller is a person authorized by their access token.
type Caller struct {
	Realm    string
	UserID   string
	Username string
	// SessionID is the token's sid: the current session, which the listings mark and
	// "sign out all others" keeps.
	SessionID string
	// ClientID is the client the token was issued to (azp).
	ClientID string
}

// Service serves the account API. It keeps no state beyond its dependencies.
type Service struct {
	tokens     Tokens
	sessions   Sessions
	lister     Lister
	end        Ender
	realms     *realm.Realms
	notBefore  NotBefore
	persistent bool
	events     session.Events
	now        func() time.Time
	log        hclog.Logger
}

// New returns a Service over its dependencies.
func New(d Deps) *Service {
	s := &Service{tokens: d.Tokens, sessions: d.Sessions, lister: d.Lister, end: d.End, realms: d.Realms,
		notBefore: d.NotBefore, persistent: d.PersistentSessions, events: d.Events, now: d.Now, log: d.Log}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	return s
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func (s *Service) realm(name string) (*realm.Realm, error) {
	r, ok := s.realms.Realm(name)
	if !ok || !r.Enabled {
		return nil, session.ErrUnknownRealm
	}
	return r, nil
}

// Authenticate checks an access token presented to realm: an access token (no refresh,
// offline, ID or other token passes for one), signed by the realm, not expired, issued
// after the realm's not-before, whose session (its sid) is live and is the token's
// subject's. A refusal is a *TokenError; any other error is a failure to check.
func (s *Service) Authenticate(ctx context.Context, realmName, raw string) (*Caller, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return nil, err
	}
	if raw == "" {
		return nil, &TokenError{Description: "an access token is required (Authorization: Bearer)"}
	}
	t, err := s.tokens.VerifyAccept(ctx, r.Name, raw, token.Accept{Types: []token.Type{token.Bearer}})
	if err != nil {
		var bad *token.Error
		if errors.As(err, &bad) {
			return nil, &TokenError{Description: bad.Description}
		}
		return nil, err
	}
	if t.Subject == "" || t.SessionID == "" {
		return nil, &TokenError{Description: "the access token names no user session"}
	}
	if nb := s.realmNotBefore(r); !nb.IsZero() && t.IssuedAt.Unix() < nb.Unix() {
		return nil, &TokenError{Description: "the access token was issued before the realm's not-before policy"}
	}
	us, err := s.liveSession(ctx, r, t.SessionID)
	if err != nil {
		return nil, err
	}
	if us == nil || us.UserID != t.Subject {
		return nil, &TokenError{Description: "the access token's session has ended"}
	}
	return &Caller{Realm: r.Name, UserID: t.Subject, Username: t.Username, SessionID: t.SessionID, ClientID: t.ClientID}, nil
}

// Resume authorizes a request of the account console, which keeps no token: the person
// signed in to it on user session sid of realm, and the console's sign-in holds while that
// session is live, is still userID's and still holds the client session clientID signed
// in with (the same rule as Authenticate's, without the token). A refusal is a *TokenError;
// any other error is a failure to check.
func (s *Service) Resume(ctx context.Context, realmName, userID, sid, clientID string) (*Caller, error) {
	r, err := s.realm(realmName)
	if err != nil {
		return nil, err
	}
	if userID == "" || sid == "" {
		return nil, &TokenError{Description: "the sign-in names no user session"}
	}
	us, err := s.liveSession(ctx, r, sid)
	if err != nil {
		return nil, err
	}
	if us == nil || us.UserID != userID || us.Clients[clientID] == nil {
		return nil, &TokenError{Description: "the sign-in's session has ended"}
	}
	return &Caller{Realm: r.Name, UserID: us.UserID, Username: us.LoginUsername, SessionID: us.ID, ClientID: clientID}, nil
}

func (s *Service) realmNotBefore(r *realm.Realm) time.Time {
	if s.notBefore == nil {
		return r.NotBefore
	}
	return s.notBefore.Realm(r.Name)
}

// liveSession is the live online session sid, else the live offline one (a token refreshed
// from an offline token names its offline session), else nil.
func (s *Service) liveSession(ctx context.Context, r *realm.Realm, sid string) (*usersessions.UserSession, error) {
	keys := []usersessions.Key{{RealmID: r.Name, ID: sid}, {RealmID: r.Name, ID: sid, Offline: true}}
	got, err := s.sessions.Get(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("read user session %s: %w", sid, err)
	}
	now := s.clock()
	for _, us := range got {
		if us != nil && s.live(r, us, now) {
			return us, nil
		}
	}
	return nil, nil
}

func (s *Service) live(r *realm.Realm, us *usersessions.UserSession, now time.Time) bool {
	rules := expiry.Rules{Realm: r, PersistentSessions: s.persistent}
	if us.State != usersessions.LoggedIn || !rules.UserSessionValid(expiry.SessionOf(us), now) {
		return false
	}
	nb := s.realmNotBefore(r)
	return nb.IsZero() || !us.Started.Before(nb)
}

// ClientRep is a client as the account API shows it (Keycloak's account
// ClientRepresentation).
type ClientRep struct {
	ClientID            string      `json:"clientId"`
	ClientName          string      `json:"clientName"`
	UserConsentRequired bool        `json:"userConsentRequired"`
	InUse               bool        `json:"inUse"`
	OfflineAccess       bool        `json:"offlineAccess"`
	RootURL             string      `json:"rootUrl,omitempty"`
	BaseURL             string      `json:"baseUrl,omitempty"`
	EffectiveURL        string      `json:"effectiveUrl,omitempty"`
	Consent             *ConsentRep `json:"consent,omitempty"`
}

// ConsentRep is what a client was granted (Keycloak's ConsentRepresentation): for sessiond,
// the scopes of the user's offline tokens of the client, when the first was issued and when
// one was last used. Dates are milliseconds since the epoch, as Keycloak's.
type ConsentRep struct {
	Scopes          []ScopeRep `json:"grantedScopes"`
	CreatedDate     int64      `json:"createdDate"`
	LastUpdatedDate int64      `json:"lastUpdatedDate"`
}

// ScopeRep is one granted scope (Keycloak's ConsentScopeRepresentation).
type ScopeRep struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	DisplayText string `json:"displayText"`
}

// SessionRep is one session (Keycloak's account SessionRepresentation). Times are seconds
// since the epoch, as Keycloak's; IPAddress and Browser are where it was last used from
// (session.LastSeen).
type SessionRep struct {
	ID         string      `json:"id"`
	IPAddress  string      `json:"ipAddress"`
	Started    int64       `json:"started"`
	LastAccess int64       `json:"lastAccess"`
	Expires    int64       `json:"expires"`
	Clients    []ClientRep `json:"clients"`
	Browser    string      `json:"browser"`
	Current    bool        `json:"current,omitempty"`
	// OS is the session's operating system, for the console; Keycloak has it on the device.
	OS string `json:"-"`
	// RememberMe: the session was opened with Remember me.
	RememberMe bool `json:"-"`
}

// DeviceRep is the sessions of one device (Keycloak's DeviceRepresentation): sessions are
// grouped by operating system, as Keycloak groups them.
type DeviceRep struct {
	ID         string       `json:"id"`
	IPAddress  string       `json:"ipAddress"`
	OS         string       `json:"os"`
	OSVersion  string       `json:"osVersion"`
	Browser    string       `json:"browser"`
	Device     string       `json:"device"`
	LastAccess int64        `json:"lastAccess"`
	Current    bool         `json:"current,omitempty"`
	Sessions   []SessionRep `json:"sessions"`
	Mobile     bool         `json:"mobile"`
}

// unknown is what Keycloak shows for what the user agent does not say.
const (
	unknown = "Unknown"
	other   = "Other"
)

// Sessions lists the caller's live online sessions, the current one marked, most recently
// used first (GET account/sessions).
func (s *Service) Sessions(ctx context.Context, c *Caller) ([]SessionRep, error) {
	r, err := s.realm(c.Realm)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	out := []SessionRep{}
	err = s.walk(ctx, usersessions.Filter{RealmID: r.Name, UserID: c.UserID, Offline: usersessions.OnlineOnly, LiveAt: now},
		func(us *usersessions.UserSession) {
			if s.live(r, us, now) {
				out = append(out, s.rep(r, c, us, now))
			}
		})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Current != out[j].Current {
			return out[i].Current
		}
		return out[i].LastAccess > out[j].LastAccess
	})
	return out, nil
}

// Devices groups the caller's sessions by device (GET account/sessions/devices).
func (s *Service) Devices(ctx context.Context, c *Caller) ([]DeviceRep, error) {
	sessions, err := s.Sessions(ctx, c)
	if err != nil {
		return nil, err
	}
	out := []DeviceRep{}
	at := map[string]int{}
	for _, sr := range sessions {
		os := sr.OS
		if os == "" {
			os = other
		}
		i, ok := at[os]
		if !ok {
			d := useragent.Device{OS: sr.OS}
			i = len(out)
			at[os] = i
			out = append(out, DeviceRep{ID: sr.ID, IPAddress: sr.IPAddress, OS: os, OSVersion: unknown, Browser: sr.Browser,
				Device: other, Mobile: d.Mobile(), Sessions: []SessionRep{}})
		}
		d := &out[i]
		d.Sessions = append(d.Sessions, sr)
		d.Current = d.Current || sr.Current
		if sr.LastAccess > d.LastAccess {
			d.LastAccess = sr.LastAccess
		}
	}
	return out, nil
}

func (s *Service) rep(r *realm.Realm, c *Caller, us *usersessions.UserSession, now time.Time) SessionRep {
	ip, ua := session.LastSeen(us)
	d := useragent.Parse(ua)
	browser := d.Browser
	if browser == "" {
		browser = other
	}
	rep := SessionRep{
		ID: us.ID, IPAddress: ip, Started: us.Started.Unix(), LastAccess: us.LastRefresh.Unix(), Expires: us.ExpiresAt.Unix(),
		Browser: browser, OS: d.OS, Current: us.ID == c.SessionID, RememberMe: us.RememberMe, Clients: []ClientRep{},
	}
	ids := make([]string, 0, len(us.Clients))
	for id, cs := range us.Clients {
		if cs != nil && usersessions.Live(cs.ExpiresAt, now) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		rep.Clients = append(rep.Clients, clientRep(r, id))
	}
	return rep
}

func clientRep(r *realm.Realm, clientID string) ClientRep {
	rep := ClientRep{ClientID: clientID, ClientName: clientID}
	if _, ok := r.Client(clientID); !ok {
		rep.ClientName = clientID + " (no longer configured)"
	}
	return rep
}

// walk hands fn each session f selects, at most MaxSessions.
func (s *Service) walk(ctx context.Context, f usersessions.Filter, fn func(*usersessions.UserSession)) error {
	after, seen := "", 0
	for seen < MaxSessions {
		page, err := s.lister.List(ctx, f, usersessions.Page{After: after, Limit: min(pageSize, MaxSessions-seen)})
		if err != nil {
			return fmt.Errorf("list the sessions of user %q: %w", f.UserID, err)
		}
		for _, us := range page {
			fn(us)
		}
		seen += len(page)
		if len(page) < pageSize {
			return nil
		}
		after = page[len(page)-1].ID
	}
	s.log.Warn("a user's sessions were listed up to the bound", "realm", f.RealmID, "user", f.UserID, "bound", MaxSessions)
	return nil
}

// Logout ends one of the caller's online sessions (DELETE account/sessions/{id}), through
// the admin service's logout path: back-channel logout to its clients, a logout event. A
// session that does not exist or is another user's is ErrUnknownSession, and nothing
// changes.
func (s *Service) Logout(ctx context.Context, c *Caller, id string) error {
	r, err := s.realm(c.Realm)
	if err != nil {
		return err
	}
	if err := usersessions.CheckText("the session id", id); err != nil {
		return err
	}
	if id == "" {
		return fmt.Errorf("a session id is required: %w", spi.ErrInvalid)
	}
	got, err := s.sessions.Get(ctx, []usersessions.Key{{RealmID: r.Name, ID: id}})
	if err != nil {
		return fmt.Errorf("read session %s: %w", id, err)
	}
	if len(got) != 1 || got[0] == nil || got[0].UserID != c.UserID {
		return fmt.Errorf("session %s: %w", id, ErrUnknownSession)
	}
	if _, err := s.end.LogoutSessionBecause(ctx, r.Name, id, false, session.Cause{Initiator: session.InitiatorUser, Reason: ReasonLogoutSession}); err != nil {
		if errors.Is(err, admin.ErrUnknownSession) {
			return fmt.Errorf("session %s: %w", id, ErrUnknownSession)
		}
		return err
	}
	return nil
}

// LogoutAll ends the caller's online sessions but the current one, or every one with
// current (DELETE account/sessions, Keycloak's current=true), and returns how many ended.
// Offline sessions stay: their tokens are revoked per application (Revoke).
func (s *Service) LogoutAll(ctx context.Context, c *Caller, current bool) (int, error) {
	r, err := s.realm(c.Realm)
	if err != nil {
		return 0, err
	}
	var ids []string
	err = s.walk(ctx, usersessions.Filter{RealmID: r.Name, UserID: c.UserID, Offline: usersessions.OnlineOnly},
		func(us *usersessions.UserSession) {
			if us.UserID == c.UserID && (current || us.ID != c.SessionID) {
				ids = append(ids, us.ID)
			}
		})
	if err != nil {
		return 0, err
	}
	ended := 0
	for _, id := range ids {
		if _, err := s.end.LogoutSessionBecause(ctx, r.Name, id, false, session.Cause{Initiator: session.InitiatorUser, Reason: ReasonLogoutOthers}); err != nil {
			if errors.Is(err, admin.ErrUnknownSession) {
				continue // ended meanwhile
			}
			return ended, err
		}
		ended++
	}
	return ended, nil
}

// Applications lists the clients the caller uses (GET account/applications): those with an
// online session in use, and those holding offline tokens, with the scopes of those tokens,
// when the first was issued and when one was last used. Sorted by clientId.
func (s *Service) Applications(ctx context.Context, c *Caller) ([]ClientRep, error) {
	r, err := s.realm(c.Realm)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	byID := map[string]*ClientRep{}
	scopes := map[string][]string{}
	get := func(id string) *ClientRep {
		if rep, ok := byID[id]; ok {
			return rep
		}
		rep := clientRep(r, id)
		byID[id] = &rep
		return &rep
	}
	for _, offline := range []bool{false, true} {
		kind := usersessions.OnlineOnly
		if offline {
			kind = usersessions.OfflineOnly
		}
		err := s.walk(ctx, usersessions.Filter{RealmID: r.Name, UserID: c.UserID, Offline: kind, LiveAt: now},
			func(us *usersessions.UserSession) {
				if !s.live(r, us, now) {
					return
				}
				for id, cs := range us.Clients {
					if cs == nil || !usersessions.Live(cs.ExpiresAt, now) {
						continue
					}
					rep := get(id)
					rep.InUse = true
					if !offline {
						continue
					}
					rep.OfflineAccess = true
					if rep.Consent == nil {
						rep.Consent = &ConsentRep{CreatedDate: cs.Started.UnixMilli(), LastUpdatedDate: cs.LastRefresh.UnixMilli()}
					}
					rep.Consent.CreatedDate = min(rep.Consent.CreatedDate, cs.Started.UnixMilli())
					rep.Consent.LastUpdatedDate = max(rep.Consent.LastUpdatedDate, cs.LastRefresh.UnixMilli())
					for _, sc := range strings.Fields(cs.Scope) {
						if !slices.Contains(scopes[id], sc) {
							scopes[id] = append(scopes[id], sc)
						}
					}
				}
			})
		if err != nil {
			return nil, err
		}
	}
	out := make([]ClientRep, 0, len(byID))
	for id, rep := range byID {
		if rep.Consent != nil {
			names := scopes[id]
			slices.Sort(names)
			rep.Consent.Scopes = make([]ScopeRep, 0, len(names))
			for _, n := range names {
				rep.Consent.Scopes = append(rep.Consent.Scopes, ScopeRep{ID: n, Name: n, DisplayText: n})
			}
		}
		out = append(out, *rep)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ClientID < out[j].ClientID })
	return out, nil
}

// Revoke revokes the caller's offline tokens of a client (DELETE
// account/applications/{clientId}/consent): that client's offline client sessions end, and
// offline sessions left with no client go, as the admin API's revocation does. An unknown
// client is ErrUnknownClient; a client the caller holds no offline token of is the admin
// service's ErrNoOfflineToken (404). It returns how many offline tokens were revoked.
func (s *Service) Revoke(ctx context.Context, c *Caller, clientID string) (int, error) {
	r, err := s.realm(c.Realm)
	if err != nil {
		return 0, err
	}
	if err := usersessions.CheckText("the client id", clientID); err != nil {
		return 0, err
	}
	if _, ok := r.Client(clientID); !ok {
		return 0, fmt.Errorf("client %q: %w", clientID, ErrUnknownClient)
	}
	res, err := s.end.RevokeOfflineToken(ctx, r.Name, c.UserID, clientID)
	if err != nil {
		return 0, err
	}
	if s.events != nil {
		s.events.Emit(session.Event{Time: s.clock(), Type: session.EventRevoke, Realm: r.Name, ClientID: clientID,
			UserID: c.UserID, Offline: true, Reason: ReasonRevoke})
	}
	return res.Removed, nil
}
