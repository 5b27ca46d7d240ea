// Package admin is the service behind sessiond's admin API: it shows a realm's sessions the
// way Keycloak's admin REST API does, ends them, sets and pushes not-before policies, and
// lists and rotates a realm's keys.
package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Lister reads sessions by query. The runtime hands it the sessions' store as the core sees
// it (the provider, or its wrapper when online sessions stay in memory): the session cache
// answers reads by key only.
type Lister interface {
	List(ctx context.Context, f usersessions.Filter, p usersessions.Page) ([]*usersessions.UserSession, error)
	Count(ctx context.Context, f usersessions.Filter) (int64, error)
	CountByClient(ctx context.Context, realmID string, offline bool, liveAt time.Time) (map[string]int64, error)
}

// Sessions reads sessions by key and removes them. The runtime hands it the session cache,
// so that what is removed is also forgotten by this node's cache (and, through the store's
// change feed, by the other nodes').
type Sessions interface {
	Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error)
	Delete(ctx context.Context, keys []usersessions.Key) (int, error)
	DeleteClientSessions(ctx context.Context, keys []usersessions.ClientKey) error
}

// Policies are the not-before policies of realms and clients; a zero time means none, and
// setting it clears the policy.
type Policies interface {
	Realm(realmName string) time.Time
	Client(realmName, clientID string) time.Time
	SetRealm(ctx context.Context, realmName string, t time.Time) error
	SetClient(ctx context.Context, realmName, clientID string, t time.Time) error
}

// Report says which client URLs a push reached and which it did not, as Keycloak's
// GlobalRequestResult does.
type Report struct {
	Succeeded, Failed []string
}

// Push delivers revocation notices to registered clients through the durable outbox.
type Push interface {
	// PushNotBefore sends a realm's not-before policy to one client ("" for every client).
	PushNotBefore(ctx context.Context, realmName, clientID string) (Report, error)
	// LogoutAll tells every client that every session of the realm ended before notBefore.
	LogoutAll(ctx context.Context, realmName string, notBefore time.Time) (Report, error)
	// Logout sends back-channel logouts for the sessions' clients.
	Logout(ctx context.Context, realmName string, sessions []*usersessions.UserSession) (Report, error)
	// QueueLogout only stores them in the outbox, for its worker to attempt (a whole
	// realm's sign out ends more sessions than a request should wait on).
	QueueLogout(ctx context.Context, realmName string, sessions []*usersessions.UserSession) (int, error)
	Deliveries(ctx context.Context, f usersessions.DeliveryFilter) ([]*usersessions.Delivery, error)
}

// Deps are the Service's dependencies. Policies and Push may be nil while no provider of
// them is wired: the operations that need them then fail with ErrNotConfigured.
type Deps struct {
	Store    Lister
	Sessions Sessions
	Realms   *realm.Realms
	Policies Policies
	Push     Push
	// Keys are the realms' signing keys; nil: the keys routes fail with ErrNotConfigured.
	Keys Keys
	// Audit receives an event for every admin action; nil drops them.
	Audit Auditor
	// Events receives a logout event for every session an admin action ends (one per
	// session, as a logout through the front-end writes), so that a SIEM sees which
	// sessions a sign-out of a user or of the realm ended; nil drops them.
	Events session.Events
	// Ends hears of every session an admin action ends, for Shared Signals receivers
	// (core/ssf); nil tells no one.
	Ends session.Ends
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PageSize is how many sessions one store call reads when the service walks a set
	// (sign out all, a user's sessions, skipping to "first"); 0 means DefaultPageSize.
	PageSize int
	// LogoutAllTimeout bounds a sign out all (LogoutAll) as a whole: the walk that ends the
	// sessions, queueing their back-channel logouts, and the notice to the clients' admin
	// URLs; 0 means DefaultLogoutAllTimeout.
	LogoutAllTimeout time.Duration
	// Log receives what an action cannot report to its caller; nil discards it.
	Log hclog.Logger
}

// DefaultLogoutAllTimeout is how long a sign out all may take before it stops where it is
// and fails (HTTP 503). What it ended stays ended, and their notices queued; running it
// again ends the rest. Ending a page of sessions and queueing its notices is two store
// writes, so five minutes covers realms of hundreds of thousands of online sessions.
const DefaultLogoutAllTimeout = 5 * time.Minute

// DefaultPageSize is the store page the service walks sets with.
const DefaultPageSize = 500

// MaxResults is the largest page a caller may ask for: a page is held in memory whole,
// then written out.
const MaxResults = 1000

// DefaultResults is the page size when a caller names none (Keycloak's
// Constants.DEFAULT_MAX_RESULTS).
const DefaultResults = 100

// Errors. The not-found ones are spi.ErrNotFound and the bad-input ones spi.ErrInvalid to
// errors.Is, which the HTTP layer answers with 404 and 400; their text is their own.
var (
	ErrUnknownRealm   error = notFound("realm not found")
	ErrUnknownClient  error = notFound("client not found")
	ErrUnknownSession error = notFound("session not found")
	// ErrNoSessions: the user has no session sessiond knows of. sessiond keeps no user
	// directory, so a user with no session and an unknown user are the same thing.
	ErrNoSessions error = notFound("user has no sessions")
	// ErrNoOfflineToken: the user holds no offline token of that client (Keycloak:
	// "Consent nor offline token not found").
	ErrNoOfflineToken error = notFound("consent nor offline token not found")
	// ErrInvalid is every refusal of bad input (invalidf).
	ErrInvalid = errors.New("invalid request")
	// ErrNotConfigured: the operation needs a service (not-before policies, revocation
	// push) this runtime was started without.
	ErrNotConfigured = errors.New("not configured in this sessiond")
)

// notFound is an unknown target; it is spi.ErrNotFound to errors.Is.
type notFound string

func (e notFound) Error() string        { return string(e) }
func (e notFound) Is(target error) bool { return target == spi.ErrNotFound }

// invalid is bad input: ErrInvalid and spi.ErrInvalid to errors.Is, and says what is wrong.
type invalid struct{ msg string }

func (e *invalid) Error() string { return e.msg }
func (e *invalid) Is(target error) bool {
	return target == ErrInvalid || target == spi.ErrInvalid
}

func invalidf(format string, args ...any) error {
	return &invalid{msg: fmt.Sprintf(format, args...)}
}

// Service carries out admin actions. It is safe for concurrent use and keeps no state of its
// own beyond its dependencies.
type Service struct {
	store    Lister
	sessions Sessions
	realms   *realm.Realms
	policies Policies
	push     Push
	keys     Keys
	audit    Auditor
	events   session.Events
	ends     session.Ends
	now      func() time.Time
	pageSize int

	logoutAllTimeout time.Duration
	log              hclog.Logger
}

// New returns a Service over its dependencies.
func New(d Deps) *Service {
	s := &Service{
		store: d.Store, sessions: d.Sessions, realms: d.Realms, policies: d.Policies, push: d.Push, keys: d.Keys,
		audit: d.Audit, events: d.Events, ends: d.Ends, now: d.Now, pageSize: d.PageSize, logoutAllTimeout: d.LogoutAllTimeout, log: d.Log,
	}
	if s.log == nil {
		s.log = hclog.NewNullLogger()
	}
	if s.logoutAllTimeout <= 0 {
		s.logoutAllTimeout = DefaultLogoutAllTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.audit == nil {
		s.audit = discard{}
	}
	if s.events == nil {
		s.events = noEvents{}
	}
	if s.pageSize <= 0 {
		s.pageSize = DefaultPageSize
	}
	return s
}

// realm returns a realm by name. Disabled realms are administered too, as in Keycloak.
func (s *Service) realm(name string) (*realm.Realm, error) {
	r, ok := s.realms.Realm(name)
	if !ok {
		return nil, fmt.Errorf("realm %q: %w", name, ErrUnknownRealm)
	}
	return r, nil
}

// clientByID returns a realm's client by its internal id (Keycloak's client UUID, which
// admin paths carry).
func (s *Service) clientByID(realmName, id string) (*realm.Client, error) {
	snap := s.realms.Snapshot()
	if _, ok := snap.Realm(realmName); !ok {
		return nil, fmt.Errorf("realm %q: %w", realmName, ErrUnknownRealm)
	}
	_, c, ok := snap.ClientByID(realmName, id)
	if !ok {
		return nil, fmt.Errorf("client %q of realm %q: %w", id, realmName, ErrUnknownClient)
	}
	return c, nil
}

// clientByClientID returns a realm's client by its clientId.
func (s *Service) clientByClientID(realmName, clientID string) (*realm.Client, error) {
	r, c, ok := s.realms.Client(realmName, clientID)
	switch {
	case r == nil:
		return nil, fmt.Errorf("realm %q: %w", realmName, ErrUnknownRealm)
	case !ok:
		return nil, fmt.Errorf("client %q of realm %q: %w", clientID, realmName, ErrUnknownClient)
	}
	return c, nil
}

// clock is the current time at the store's precision.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func (s *Service) needPolicies() error {
	if s.policies == nil {
		return fmt.Errorf("not-before policies: %w", ErrNotConfigured)
	}
	return nil
}

func (s *Service) needPush() error {
	if s.push == nil {
		return fmt.Errorf("revocation push: %w", ErrNotConfigured)
	}
	return nil
}
