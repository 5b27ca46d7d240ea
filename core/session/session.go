// Package session is sessiond's session service: it opens user and client sessions, issues,
// refreshes, rotates, introspects and revokes the tokens tied to them, and logs them out.
//
// It holds the rules of issue 4 and the seeds (check order, rotation and reuse, offline and
// transient sessions) with no HTTP: the HTTP layer calls it and maps its errors in one place.
// Timeouts come from core/expiry, settings from core/realm, tokens from core/token, storage
// from the user-sessions SPI.
package session

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/sessionlimit"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Store is the part of the user-sessions store the Service uses. The runtime hands it the
// session cache in front of the provider; tests may hand it a provider directly.
type Store interface {
	Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error)
	Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error)
	Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error)
	PutClientSessions(ctx context.Context, clients []*usersessions.ClientSession) ([]error, error)
	DeleteClientSessions(ctx context.Context, keys []usersessions.ClientKey) error
	Delete(ctx context.Context, keys []usersessions.Key) (int, error)
}

// NotBefore answers the not-before policies in force: the later of a realm's (or client's)
// own setting and the one an operator set at run time. *revocation.Policies implements it.
type NotBefore interface {
	Realm(realmName string) time.Time
	Client(realmName, clientID string) time.Time
}

// Deps are the Service's dependencies.
type Deps struct {
	Store  Store
	Realms *realm.Realms
	Tokens Tokens
	// NotBefore is the source of not-before policies; nil means the realm settings' own.
	NotBefore NotBefore
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PersistentSessions is the persistent-user-sessions feature: when off, idle timeouts get
	// Keycloak's two-minute window (seed 004).
	PersistentSessions bool
	// TransientSessions is the transient-sessions feature: when off, Open refuses them.
	TransientSessions bool
	Log               hclog.Logger
	// Events receives the structured event log; nil drops events.
	Events Events
	// Ends hears of every session (or client session) this service ends: logout, /revoke,
	// refresh-token reuse; nil tells no one.
	Ends Ends
	// Limits enforces the realms' session limits on Open; nil enforces none (a realm's
	// sessionLimits.* attributes then must not be set: the runtime always wires it).
	Limits Limiter
	// Records holds the realms' session-id keys, which idempotent opens need
	// (OpenRequest.IdempotencyKey); nil refuses those opens.
	Records Records
}

// Limiter admits a new session under its realm's session limits; *sessionlimit.Enforcer
// implements it.
type Limiter interface {
	Admit(ctx context.Context, a sessionlimit.Admission) (sessionlimit.Release, error)
}

// Service applies the session rules. It is safe for concurrent use; it keeps no state of
// its own beyond its dependencies, so several Services (or nodes) may share one store.
type Service struct {
	store      Store
	realms     *realm.Realms
	tokens     Tokens
	notBefore  NotBefore
	now        func() time.Time
	persistent bool
	transient  bool
	log        hclog.Logger
	events     Events
	ends       Ends
	limits     Limiter
	idKeys     *idKeys // nil without Deps.Records
}

// New returns a Service over its dependencies.
func New(d Deps) *Service {
	s := &Service{
		store:      d.Store,
		realms:     d.Realms,
		tokens:     d.Tokens,
		notBefore:  d.NotBefore,
		now:        d.Now,
		persistent: d.PersistentSessions,
		transient:  d.TransientSessions,
		log:        d.Log,
		events:     d.Events,
		ends:       d.Ends,
		limits:     d.Limits,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if d.Records != nil {
		s.idKeys = &idKeys{records: d.Records, keys: map[string][]byte{}}
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.events == nil {
		s.events = discard{}
	}
	if s.ends == nil {
		s.ends = noEnds{}
	}
	return s
}

// ErrUnknownRealm is returned (wrapped) for a realm sessiond does not serve; it wraps
// spi.ErrNotFound, so the HTTP layer answers 404 as Keycloak does ("Realm does not exist").
var ErrUnknownRealm = fmt.Errorf("realm does not exist: %w", spi.ErrNotFound)

// rules are the expiry rules of one realm under this Service's features.
func (s *Service) rules(r *realm.Realm) expiry.Rules {
	return expiry.Rules{Realm: r, PersistentSessions: s.persistent}
}

// policies returns the realm's and the client's not-before in force.
func (s *Service) policies(r *realm.Realm, c *realm.Client) (realmNB, clientNB time.Time) {
	if s.notBefore == nil {
		return r.NotBefore, c.NotBefore
	}
	return s.notBefore.Realm(r.Name), s.notBefore.Client(r.Name, c.ClientID)
}

// realmNotBefore returns the realm's not-before in force.
func (s *Service) realmNotBefore(r *realm.Realm) time.Time {
	if s.notBefore == nil {
		return r.NotBefore
	}
	return s.notBefore.Realm(r.Name)
}

// clock returns the current time at the precision the store keeps (microseconds, UTC), so
// what the service computes from it equals what it reads back.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// realm returns an enabled realm.
func (s *Service) realm(name string) (*realm.Realm, error) {
	r, ok := s.realms.Realm(name)
	if !ok {
		return nil, fmt.Errorf("realm %q: %w", name, ErrUnknownRealm)
	}
	if !r.Enabled {
		return nil, errorf(InvalidRequest, "Realm %q is disabled", name)
	}
	return r, nil
}

// client returns an enabled realm and an enabled client of it, from one snapshot.
func (s *Service) client(realmName, clientID string) (*realm.Realm, *realm.Client, error) {
	r, c, ok := s.realms.Client(realmName, clientID)
	switch {
	case r == nil:
		if _, err := s.realm(realmName); err != nil {
			return nil, nil, err
		}
		fallthrough // the realm appeared between the two lookups: treat the client as unknown
	case !ok:
		return nil, nil, errorf(InvalidClient, "Client %q not found in realm %q", clientID, realmName)
	case !r.Enabled:
		return nil, nil, errorf(InvalidRequest, "Realm %q is disabled", realmName)
	case !c.Enabled:
		return nil, nil, errorf(UnauthorizedClient, "Client %q is disabled", clientID)
	}
	return r, c, nil
}

// getSession reads one user session; nil when it does not exist.
func (s *Service) getSession(ctx context.Context, k usersessions.Key) (*usersessions.UserSession, error) {
	return readOne(ctx, k, s.store.Get)
}

// reloader is a Store with a cache in front of the provider.
type reloader interface {
	Reload(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error)
}

// reload reads a user session from the provider itself when the Store caches; ok is false
// when it does not (what getSession returned was already the provider's answer).
func (s *Service) reload(ctx context.Context, k usersessions.Key) (us *usersessions.UserSession, ok bool, err error) {
	r, cached := s.store.(reloader)
	if !cached {
		return nil, false, nil
	}
	us, err = readOne(ctx, k, r.Reload)
	return us, err == nil, err
}

// readOne reads the session k with get, a batch read.
func readOne(ctx context.Context, k usersessions.Key, get func(context.Context, []usersessions.Key) ([]*usersessions.UserSession, error)) (*usersessions.UserSession, error) {
	got, err := get(ctx, []usersessions.Key{k})
	if err != nil {
		return nil, fmt.Errorf("read user session %s: %w", k.ID, err)
	}
	if len(got) != 1 {
		return nil, fmt.Errorf("read user session %s: the store answered %d sessions for 1 key: %w", k.ID, len(got), spi.ErrInvalid)
	}
	return got[0], nil
}

// newID returns a random identifier for a session or a token (130 bits, base32).
func newID() string { return strings.ToLower(rand.Text()) }

// firstErr returns the per-item error of a one-item batch call, or the call's own error.
func firstErr(errs []error, err error) error {
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// hasScope reports whether a space-separated scope holds one value.
func hasScope(scope, value string) bool {
	for v := range strings.FieldsSeq(scope) {
		if v == value {
			return true
		}
	}
	return false
}
