// Package login runs the browser login flows of OpenID Connect over sessiond's sessions:
// the authorization request, the authentication session it opens while the login
// front-end authenticates the person, the codes the token endpoint redeems, UserInfo and
// RP-initiated logout. It holds the flow rules and no HTTP; core/httpapi serves it.
//
// State lives in the user-sessions store's records (GetRecords/PutRecord with versions), so
// a login started on one node is accepted on another and survives a restart; every write
// that consumes something (a step of the login, a code) is a versioned write, so it happens
// once across nodes. Challenges, verifiers and codes are stored only as SHA-256 hashes.
package login

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Record kinds of the store.
const (
	// RequestKind is an authentication session: one authorization request while the
	// front-end authenticates, keyed by the hash of its challenge.
	RequestKind = "login-request"
	// CodeKind is an authorization code, keyed by its hash.
	CodeKind = "login-code"
)

// User-session notes the accept step writes, read back for SSO logins and UserInfo.
const (
	NoteClaims = "sessiond.claims" // the front-end's claims, JSON
	NoteACR    = "sessiond.acr"
	NoteAMR    = "sessiond.amr" // space separated
)

// Records is the record part of the user-sessions store.
type Records interface {
	GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error)
	PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error)
	ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error)
	DeleteRecord(ctx context.Context, kind, key string) error
}

// Sessions opens sessions and issues their tokens; *session.Service implements it.
type Sessions interface {
	Open(ctx context.Context, req session.OpenRequest) (*session.Grant, error)
	Attach(ctx context.Context, req session.AttachRequest) (*session.Grant, error)
}

// UserSessions reads user sessions (the session cache).
type UserSessions interface {
	Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error)
}

// Tokens signs ID tokens and SSO cookies and verifies tokens; *token.Service implements it.
type Tokens interface {
	IDToken(ctx context.Context, realm string, c token.IDClaims) (string, error)
	SSOCookie(ctx context.Context, realm, userID, sessionID string, authTime, expiry time.Time) (string, error)
	VerifyAccept(ctx context.Context, realm, raw string, a token.Accept) (*token.Token, error)
	Issuer(realm string) string
}

// EndSession ends a user session (online or offline) and tells its clients by back-channel
// logout: the admin API's path (admin.Service.LogoutSession), with cause in the logout event
// and to Shared Signals receivers. An unknown session is no error.
type EndSession func(ctx context.Context, realm, sessionID string, offline bool, cause session.Cause) error

// What ends a session in the login flows: the person at the end-session endpoint; the rule
// that a code used twice revokes what it gave (RFC 6749 §4.1.2); sessiond itself, for a
// session opened by an accept that lost a race with another accept of the same login.
var (
	causeEndSession    = session.Cause{Initiator: session.InitiatorUser, Reason: "end-session"}
	causeCodeReuse     = session.Cause{Initiator: session.InitiatorPolicy, Reason: "authorization code reuse"}
	causeAcceptedTwice = session.Cause{Initiator: session.InitiatorSystem, Reason: "login accepted twice"}
)

// Deps are the Service's dependencies.
type Deps struct {
	Records      Records
	Sessions     Sessions
	UserSessions UserSessions
	Tokens       Tokens
	Realms       *realm.Realms
	End          EndSession
	// PersistentSessions is the persistent-user-sessions feature, for the expiry rules.
	PersistentSessions bool
	// DevFrontend, when set (start-dev only), is the login front-end URL of a realm without
	// loginFrontendUrl: the development front-end (core/login/devlogin).
	DevFrontend func(realm string) string
	Now         func() time.Time
	Log         hclog.Logger
}

// Service runs the login flows. It keeps no state of its own, so nodes sharing a store
// share logins.
type Service struct {
	records    Records
	sessions   Sessions
	users      UserSessions
	tokens     Tokens
	realms     *realm.Realms
	end        EndSession
	dev        func(string) string
	persistent bool
	now        func() time.Time
	log        hclog.Logger
}

// New returns a Service.
func New(d Deps) *Service {
	s := &Service{records: d.Records, sessions: d.Sessions, users: d.UserSessions, tokens: d.Tokens, realms: d.Realms,
		end: d.End, dev: d.DevFrontend, persistent: d.PersistentSessions, now: d.Now, log: d.Log}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.end == nil {
		// Ending a session must tell its clients; without the path that does, refuse
		// rather than end it quietly.
		s.end = func(context.Context, string, string, bool, session.Cause) error {
			return errors.New("login: no session-ending path wired (Deps.End)")
		}
	}
	return s
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// Issuer is the realm's issuer, the iss of redirects (RFC 9207).
func (s *Service) Issuer(realmName string) string { return s.tokens.Issuer(realmName) }

// ErrNotFound is an unknown, finished or expired challenge; it wraps spi.ErrNotFound.
var ErrNotFound = fmt.Errorf("login request not found: %w", spi.ErrNotFound)

// ErrExpired is a login request past the Login timeout or the Login action timeout.
var ErrExpired = errors.New("login request expired")

// secret returns a new random secret (challenge, verifier, code): 130 bits, base32.
func secret() string { return strings.ToLower(rand.Text()) }

// hashKey is the record key of a secret: its SHA-256, so that reading the store gives no
// usable challenge or code.
func hashKey(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

// get reads one record and decodes it into v; nil record when missing.
func (s *Service) get(ctx context.Context, kind, key string, v any) (*usersessions.Record, error) {
	got, err := s.records.GetRecords(ctx, kind, []string{key})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", kind, err)
	}
	if len(got) != 1 || got[0] == nil {
		return nil, nil
	}
	if err := json.Unmarshal(got[0].Value, v); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", kind, key, err)
	}
	return got[0], nil
}

// put writes v as the record after prev (nil: a new record); a concurrent change is
// spi.ErrConflict.
func (s *Service) put(ctx context.Context, kind, key string, prev *usersessions.Record, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	r := &usersessions.Record{Kind: kind, Key: key, Value: b}
	if prev != nil {
		r.Version = prev.Version
	}
	if _, err := s.records.PutRecord(ctx, r); err != nil {
		return fmt.Errorf("write %s: %w", kind, err)
	}
	return nil
}

// liveSession returns the online user session sid if it is live now, nil otherwise.
func (s *Service) liveSession(ctx context.Context, r *realm.Realm, sid string, now time.Time) (*usersessions.UserSession, error) {
	return s.live(ctx, r, usersessions.Key{RealmID: r.Name, ID: sid}, now)
}

// anySession returns the live online session sid, else the live offline one, else nil.
func (s *Service) anySession(ctx context.Context, r *realm.Realm, sid string) (*usersessions.UserSession, error) {
	now := s.clock()
	us, err := s.liveSession(ctx, r, sid, now)
	if us != nil || err != nil {
		return us, err
	}
	return s.live(ctx, r, usersessions.Key{RealmID: r.Name, ID: sid, Offline: true}, now)
}

// live returns the session k if it is live now, nil otherwise.
func (s *Service) live(ctx context.Context, r *realm.Realm, k usersessions.Key, now time.Time) (*usersessions.UserSession, error) {
	if k.ID == "" {
		return nil, nil
	}
	sid := k.ID
	got, err := s.users.Get(ctx, []usersessions.Key{k})
	if err != nil {
		return nil, fmt.Errorf("read user session %s: %w", sid, err)
	}
	if len(got) != 1 || got[0] == nil {
		return nil, nil
	}
	us := got[0]
	rules := expiry.Rules{Realm: r, PersistentSessions: s.persistent}
	if us.State != usersessions.LoggedIn || !rules.UserSessionValid(expiry.SessionOf(us), now) {
		return nil, nil
	}
	if !r.NotBefore.IsZero() && us.Started.Before(r.NotBefore) {
		return nil, nil
	}
	return us, nil
}

// Cleanup removes the authentication sessions and codes that have expired, and returns how
// many. The runtime calls it periodically; a record another node removed first is skipped.
func (s *Service) Cleanup(ctx context.Context) (int, error) {
	now := s.clock()
	removed := 0
	for _, kind := range []string{RequestKind, CodeKind} {
		recs, err := s.records.ListRecords(ctx, kind)
		if err != nil {
			return removed, fmt.Errorf("list %s records: %w", kind, err)
		}
		for _, rec := range recs {
			var e struct {
				Ends time.Time `json:"ends"`
			}
			// A record that does not decode is no use to anyone: it goes too.
			if json.Unmarshal(rec.Value, &e) == nil && now.Before(e.Ends) {
				continue
			}
			if err := s.records.DeleteRecord(ctx, kind, rec.Key); err != nil && !errors.Is(err, spi.ErrNotFound) {
				return removed, fmt.Errorf("delete %s record: %w", kind, err)
			}
			removed++
		}
	}
	return removed, nil
}
