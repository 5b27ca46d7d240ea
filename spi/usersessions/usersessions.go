// Package usersessions is the storage contract of sessiond: user sessions and their client
// sessions, online and offline, plus the small records and the delivery outbox the runtime keeps.
//
// A provider stores what the core hands it; it never computes expiry itself. Every row carries
// ExpiresAt as the core computed it, so cleanup is a range scan on one column.
package usersessions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// State of a user session, as in Keycloak.
type State string

const (
	LoggedIn   State = "LOGGED_IN"
	LoggingOut State = "LOGGING_OUT"
	LoggedOut  State = "LOGGED_OUT"
)

// Key addresses one user session. Online and offline sessions with the same ID are
// distinct rows (an offline session is created from an online one and keeps its id).
type Key struct {
	RealmID string
	ID      string
	Offline bool
}

// ClientKey addresses one client session.
type ClientKey struct {
	Session  Key
	ClientID string
}

// UserSession is one person's login in one realm. Timestamps have microsecond precision
// (providers may truncate to it); all are UTC.
type UserSession struct {
	ID              string
	RealmID         string
	UserID          string
	LoginUsername   string
	IPAddress       string
	UserAgent       string
	AuthMethod      string // e.g. "openid-connect"
	BrokerSessionID string // identity-brokering session id, "" when none
	BrokerUserID    string
	RememberMe      bool
	Offline         bool
	State           State
	Started         time.Time
	LastRefresh     time.Time
	// ExpiresAt is when this session ends by its own rules (idle, max, remember-me,
	// offline), as computed by the core. Cleanup deletes rows whose ExpiresAt has passed.
	ExpiresAt time.Time
	Notes     map[string]string
	// Version is the optimistic-locking counter: a provider sets it to 1 on create,
	// increments it on every write, and refuses an Update whose Version differs from the
	// stored one with spi.ErrConflict.
	Version int64
	// Clients holds the client sessions, keyed by client id. Get and List fill it;
	// Create stores the ones given.
	Clients map[string]*ClientSession
}

// Key returns the session's key.
func (s *UserSession) Key() Key { return Key{RealmID: s.RealmID, ID: s.ID, Offline: s.Offline} }

// ClientSession is one client's part of a user session; it carries the refresh-token
// rotation state of that client.
type ClientSession struct {
	UserSessionID string
	RealmID       string
	ClientID      string
	Offline       bool
	Started       time.Time
	LastRefresh   time.Time
	ExpiresAt     time.Time
	AuthMethod    string
	RedirectURI   string
	Action        string // e.g. "AUTHENTICATE", "LOGGED_OUT"
	Scope         string // granted scope, space separated
	Notes         map[string]string
	// CurrentRefreshToken is the id (jti) of the refresh token last issued to this
	// client session; CurrentRefreshTokenUseCount counts its uses (Revoke Refresh Token).
	CurrentRefreshToken         string
	CurrentRefreshTokenUseCount int
	// PreviousRefreshToken and RotatedAt let the core honour a rotation grace window:
	// the token rotated out at RotatedAt may still be presented shortly after.
	PreviousRefreshToken string
	RotatedAt            time.Time
	Version              int64
}

// Key returns the client session's key.
func (c *ClientSession) Key() ClientKey {
	return ClientKey{Session: Key{RealmID: c.RealmID, ID: c.UserSessionID, Offline: c.Offline}, ClientID: c.ClientID}
}

// Touch moves the idle clock of a user session and, when ClientID is set, of one of its
// client sessions. Touches are the write a refresh makes; they come in batches.
type Touch struct {
	Session         Key
	LastRefresh     time.Time
	ExpiresAt       time.Time
	ClientID        string // "" touches the user session only
	ClientExpiresAt time.Time
}

// Filter selects sessions for List, Count and Delete. Empty fields match everything;
// RealmID is required.
type Filter struct {
	RealmID  string
	UserID   string
	ClientID string          // sessions that have a client session for this client
	Offline  OfflineSelector //
	// ActiveSince, when set, keeps sessions whose LastRefresh is at or after it.
	ActiveSince time.Time
	// LiveAt, when set, keeps only what has not ended by then: sessions whose ExpiresAt is
	// after it and, with ClientID, whose client session of that client has an ExpiresAt
	// after it too. Listings and counts pass the current time, so that a session that has
	// ended by its own rules never shows, even before cleanup has removed it.
	LiveAt time.Time
}

// Live reports whether something that ends at expiresAt has not ended by at; a zero at
// means no time was given and everything is live.
func Live(expiresAt, at time.Time) bool { return at.IsZero() || expiresAt.After(at) }

// OfflineSelector picks online, offline or both kinds of session.
type OfflineSelector int

const (
	OnlineOnly OfflineSelector = iota
	OfflineOnly
	Both
)

// Matches reports whether the selector accepts a session with that offline flag.
func (o OfflineSelector) Matches(offline bool) bool {
	switch o {
	case OnlineOnly:
		return !offline
	case OfflineOnly:
		return offline
	default:
		return true
	}
}

// Page asks for one page of a listing in key order (session id ascending, online before
// offline for the same id). After is the last id of the previous page ("" for the first):
// keyset paging, so a listing of millions never needs an offset scan or holds more than one
// page. With OfflineSelector Both, the online and offline session of one id always share a
// page, so a page may hold Limit+1 sessions. A Limit ≤ 0 means 100.
type Page struct {
	After string
	Limit int
}

// Partition splits a stream into disjoint parts that parallel workers read at once.
// Index runs from 0 to Count-1; a zero Partition means the whole set.
type Partition struct {
	Index int
	Count int
}

// StreamRequest asks for sessions in pages, for preloading.
type StreamRequest struct {
	Filter    Filter
	PageSize  int
	Partition Partition
}

// ChangeKind says what happened to a session.
type ChangeKind int

const (
	Upserted ChangeKind = iota + 1 // created or updated (including touches)
	Removed                        // deleted, logged out, expired
	Flushed                        // many sessions at once (delete by realm, user or client): drop everything matching
	// Subscribed is the first change of every Watch, sent once the subscription is in
	// place: every change committed after it was delivered is reported. A caller that
	// caches sessions starts trusting its cache from here.
	Subscribed
	// RecordChanged says a Record was put or deleted; Change.Record names it. It carries no
	// value: a watcher that keeps records (a node's not-before policies) re-reads it, and
	// watchers of sessions ignore it.
	RecordChanged
)

// RecordKey addresses one Record.
type RecordKey struct {
	Kind string
	Key  string
}

// Change is one entry of the change feed. Nodes sharing a store use it to invalidate their
// caches; Origin lets a node ignore its own writes.
type Change struct {
	Kind     ChangeKind
	Session  Key       // for Upserted and Removed
	ClientID string    // set when only a client session changed
	Filter   Filter    // for Flushed
	Record   RecordKey // for RecordChanged
	Origin   string    // node id given to Configure under spi.HostNodeID, "" if unknown
}

// Record is a small versioned value the runtime persists beside sessions: realm signing
// keys, not-before policies, realm settings changed through the admin API.
type Record struct {
	Kind    string // e.g. "realm-keys", "not-before"
	Key     string
	Value   []byte
	Version int64 // optimistic locking as for sessions; 0 on Put means "must not exist"
	Updated time.Time
}

// DeliveryState is where a revocation-push delivery is in its life.
type DeliveryState string

const (
	Pending   DeliveryState = "pending"
	Delivered DeliveryState = "delivered"
	Failed    DeliveryState = "failed" // gave up after the last attempt
)

// Delivery is one entry of the durable revocation-push outbox: one notice to one client.
type Delivery struct {
	ID          string
	RealmID     string
	ClientID    string
	Kind        string // notice action, e.g. "PUSH_NOT_BEFORE", "LOGOUT", "BACKCHANNEL_LOGOUT"
	Target      string // URL or topic
	Payload     []byte // the notice, as the revocation-push SPI encodes it
	State       DeliveryState
	Attempts    int       // attempts started: Enqueue's own, then one per Claim
	NextAttempt time.Time // when Pending: due then; while leased, the end of the lease
	LastError   string
	Created     time.Time
	Updated     time.Time
}

// DeliveryOutcome records the result of one attempt.
type DeliveryOutcome struct {
	ID          string
	State       DeliveryState // Pending (retry at NextAttempt), Delivered or Failed
	NextAttempt time.Time
	Error       string
	// Target, when not empty, is where the attempt went as the revocation-push provider
	// reported it (a webhook URL rather than the client's admin URL); it replaces the
	// delivery's Target, so that a listing names what the push answer named.
	Target string
}

// DeliveryFilter selects deliveries for listing.
type DeliveryFilter struct {
	RealmID string
	State   DeliveryState // "" means all
	Page    Page
}

// Provider stores user sessions. Every method that takes a batch applies it item by item:
// an error for one item (returned in the per-item result) does not undo the others, except
// where the doc says the batch is atomic. Batches exist because a call across the plugin
// boundary costs about 100 µs; callers group work to pay it once.
type Provider interface {
	spi.Provider

	// Create stores new user sessions together with the client sessions in their Clients
	// map. It returns one error per session (nil on success, spi.ErrExists for a
	// duplicate key). Versions are set to 1.
	Create(ctx context.Context, sessions []*UserSession) ([]error, error)

	// Get returns the sessions with those keys, with their client sessions, in the order
	// asked; a missing session is a nil entry.
	Get(ctx context.Context, keys []Key) ([]*UserSession, error)

	// Update replaces the stored user session's fields (not its client sessions) when its
	// stored Version equals the given one, and increments it. Per-item errors:
	// spi.ErrNotFound, spi.ErrConflict.
	Update(ctx context.Context, sessions []*UserSession) ([]error, error)

	// Touch applies idle-clock moves. A touch never moves LastRefresh backwards and does not
	// change Version (touches of one session from two nodes commute). A missing session, or
	// a missing client session named by ClientID, is reported per item with spi.ErrNotFound
	// and nothing of that item is applied.
	Touch(ctx context.Context, touches []Touch) ([]error, error)

	// PutClientSessions creates or replaces client sessions. A Version of 0 creates (and
	// fails with spi.ErrExists if present); otherwise it must equal the stored Version
	// (spi.ErrConflict; spi.ErrNotFound when nothing is stored), which is how refresh-token
	// rotation is made safe between nodes. The parent user session must exist
	// (spi.ErrNotFound).
	PutClientSessions(ctx context.Context, clients []*ClientSession) ([]error, error)

	// DeleteClientSessions removes client sessions; missing ones are not an error.
	DeleteClientSessions(ctx context.Context, keys []ClientKey) error

	// Delete removes user sessions and their client sessions; missing ones are not an
	// error. It returns how many user sessions were removed.
	Delete(ctx context.Context, keys []Key) (int, error)

	// DeleteMatching removes every session the filter selects (logout of a user, sign out
	// all, removal of a client's sessions) and returns how many user sessions went. With a
	// ClientID, only that client's client sessions are removed, not the user sessions, and
	// the count is of client sessions. An empty RealmID is spi.ErrInvalid (as for List,
	// Count and Stream). Watchers see one Flushed change carrying the filter.
	DeleteMatching(ctx context.Context, f Filter) (int, error)

	// DeleteExpired removes at most limit user sessions whose ExpiresAt is before the given
	// time, with their client sessions, then client sessions that expired on their own or
	// whose user session is gone. It returns the number of user and client sessions removed;
	// callers repeat until both are below limit.
	DeleteExpired(ctx context.Context, before time.Time, limit int) (users, clients int, err error)

	// List returns one page of the sessions the filter selects, with their client sessions,
	// ordered by id.
	List(ctx context.Context, f Filter, p Page) ([]*UserSession, error)

	// Count returns how many sessions the filter selects.
	Count(ctx context.Context, f Filter) (int64, error)

	// CountByClient returns, for a realm, the number of sessions per client id. When liveAt
	// is not zero, it counts only client sessions live at it (usersessions.Live) of user
	// sessions live at it, as Filter.LiveAt does.
	CountByClient(ctx context.Context, realmID string, offline bool, liveAt time.Time) (map[string]int64, error)

	// Stream calls fn with successive pages of the sessions the request selects, each
	// session once, in an order of the provider's choosing (a bulk read goes fastest in
	// the store's own order), until the set is exhausted, fn returns an error, or ctx ends.
	Stream(ctx context.Context, req StreamRequest, fn func(page []*UserSession) error) error

	// Watch calls fn with every change made through any node sharing this store, from the
	// moment it has subscribed until ctx ends; its first call of fn is a Subscribed change
	// that says so. Providers without a shared backend report only
	// their own changes. It returns when ctx ends (nil) or the feed breaks (an error; the
	// caller treats its cache as stale and calls again). The Interest ctx carries, if any,
	// says which changes the caller acts on: a provider may leave out the others.
	Watch(ctx context.Context, fn func(Change) error) error

	// Records. Watchers see every PutRecord and every DeleteRecord of a record that
	// existed as a RecordChanged change (a delete of a missing one may be reported too).
	GetRecords(ctx context.Context, kind string, keys []string) ([]*Record, error) // nil entries for missing
	// PutRecord writes a record if its Version matches the stored one (0: must not exist)
	// and returns the stored record with its new Version. Any mismatch, including a
	// Version > 0 for a record that does not exist, is spi.ErrConflict.
	PutRecord(ctx context.Context, r *Record) (*Record, error)
	ListRecords(ctx context.Context, kind string) ([]*Record, error)
	DeleteRecord(ctx context.Context, kind, key string) error

	// Outbox of revocation-push deliveries.
	//
	// Enqueue stores new deliveries as Pending, due at their NextAttempt (now when zero),
	// with the Attempts given: a caller that makes the first attempt at once, holding the
	// delivery until the NextAttempt it set, enqueues it with Attempts 1, as a Claim would
	// have counted it. Attempts < 0 is spi.ErrInvalid.
	Enqueue(ctx context.Context, deliveries []*Delivery) error
	// Claim returns up to limit pending deliveries due at now and leases them until
	// now+lease, so that another node does not attempt them at the same time. Claiming
	// counts as an attempt (Attempts is incremented). A caller must record its outcomes
	// before the lease ends; after that another node may claim the delivery again.
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*Delivery, error)
	// Finish records outcomes of deliveries that are still Pending. Outcomes for unknown
	// ids, and for deliveries already Delivered or Failed, are ignored: a node whose lease
	// ran out must not revive or overwrite the outcome the node that took over recorded.
	Finish(ctx context.Context, outcomes []DeliveryOutcome) error
	// ListDeliveries pages deliveries by id; an empty RealmID lists every realm.
	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]*Delivery, error)
}

// WriteProber is what a store may implement besides Provider to say whether it can commit
// a write now. A database can answer reads while it cannot write: a hot standby, a primary
// an operator has made read-only to fence it, a primary whose commits wait for a
// synchronous standby that is gone. The host's readiness asks at most about once a second;
// a store that does not implement it is judged by a read alone. Checked with a type
// assertion, so that providers built before it still satisfy Provider; it is not carried
// over the plugin protocol.
type WriteProber interface {
	// ProbeWrite commits a write that touches no session, within ctx. It returns nil when
	// a write commits now, or an error wrapping spi.ErrUnavailable that says why not.
	ProbeWrite(ctx context.Context) error
}

// WriteBounder is what a store may implement besides Provider to say how long one write
// may take, its commit included (a database's statement timeout): callers that bound
// writes themselves, such as the host's group commit, then end them no later than the
// store does. Asked once, after Configure.
type WriteBounder interface {
	// WriteTimeout is the bound; zero when the store sets none.
	WriteTimeout(ctx context.Context) (time.Duration, error)
}

// Rotation is the write of one refresh that moves a client session's refresh-token lineage:
// the client session replaced as PutClientSessions replaces it (its Version checked), and
// the idle clock of its user session moved as a Touch without ClientID moves it.
type Rotation struct {
	Client *ClientSession
	// LastRefresh and ExpiresAt are the user session's, as in Touch.
	LastRefresh, ExpiresAt time.Time
}

// Rotator is what a store may implement besides Provider to write a refresh's rotation and
// its touch in one call, and so in one transaction, rather than two. Checked with a type
// assertion; callers go through Rotate, which falls back to the two calls for a store
// without it. Over the plugin protocol it is the optional call Rotate, which a plugin
// built before it answers Unimplemented: the host then makes the two calls.
type Rotator interface {
	// Rotate writes each rotation's client session as PutClientSessions does and moves
	// its user session's idle clock as Touch does, both in the same transaction. It
	// returns one error per rotation: the client session's (spi.ErrConflict,
	// spi.ErrNotFound, ...), whose write is then not applied. The touch of an item that
	// failed may be applied or not: touches commute and never move a clock backwards (the
	// refresh that won moved the same clock), and the fallback makes the two calls at once.
	Rotate(ctx context.Context, rotations []Rotation) ([]error, error)
}

// ErrNotTouched is the per-item error of a rotation whose client session was written
// but whose user session's idle clock did not move: what Rotate's fallback, two calls,
// reports when the second failed. The rotation itself is committed.
var ErrNotTouched = errors.New("the client session was written, the user session's idle clock was not moved")

// Rotate writes rotations through s: in one call when s is a Rotator, else with
// RotateApart.
func Rotate(ctx context.Context, s interface {
	PutClientSessions(ctx context.Context, clients []*ClientSession) ([]error, error)
	Touch(ctx context.Context, touches []Touch) ([]error, error)
}, rotations []Rotation) ([]error, error) {
	if r, ok := s.(Rotator); ok {
		return r.Rotate(ctx, rotations)
	}
	return RotateApart(ctx, s, rotations)
}

// RotateApart writes rotations with the two calls of a store that is no Rotator, made at
// once: PutClientSessions of the client sessions and Touch of their user sessions. A touch
// commutes and needs no check, so it goes without waiting for the client session's
// outcome: it may be applied for an item that fails (the refresh that won moved the same
// clock). An item whose client session was written and whose touch failed is reported
// with an error wrapping ErrNotTouched and the touch's error.
func RotateApart(ctx context.Context, s interface {
	PutClientSessions(ctx context.Context, clients []*ClientSession) ([]error, error)
	Touch(ctx context.Context, touches []Touch) ([]error, error)
}, rotations []Rotation) ([]error, error) {
	clients := make([]*ClientSession, len(rotations))
	touches := make([]Touch, len(rotations))
	for i, r := range rotations {
		clients[i] = r.Client
		if r.Client != nil {
			touches[i] = Touch{Session: r.Client.Key().Session, LastRefresh: r.LastRefresh, ExpiresAt: r.ExpiresAt}
		}
	}
	type result struct {
		errs []error
		err  error
	}
	touched := make(chan result, 1)
	go func() { // owned by this call, which waits for it below
		errs, err := s.Touch(ctx, touches)
		touched <- result{errs, err}
	}()
	errs, err := s.PutClientSessions(ctx, clients)
	t := <-touched
	if err != nil {
		return nil, err
	}
	if len(errs) != len(rotations) {
		return nil, fmt.Errorf("put client sessions: the store answered %d results for %d items: %w", len(errs), len(rotations), spi.ErrInvalid)
	}
	for i := range errs {
		if errs[i] != nil {
			continue
		}
		switch {
		case t.err != nil:
			errs[i] = fmt.Errorf("%w: %w", ErrNotTouched, t.err)
		case len(t.errs) != len(rotations):
			errs[i] = fmt.Errorf("%w: the store answered %d touch results for %d items", ErrNotTouched, len(t.errs), len(rotations))
		case t.errs[i] != nil:
			errs[i] = fmt.Errorf("%w: %w", ErrNotTouched, t.errs[i])
		}
	}
	return errs, nil
}

// ErrOutcomeUnknown marks a write whose commit was sent and whose answer never came: the
// connection broke, or the write's time ran out while the database waited (for a
// synchronous standby, say). The write may or may not have been applied. It wraps
// spi.ErrUnavailable, so callers that only know "retry later" do so; a retry must be safe
// either way (a rotated refresh token within its grace window, a session id that exists).
var ErrOutcomeUnknown = fmt.Errorf("outcome unknown: the commit was sent and no answer came, so the write may have been applied: %w", spi.ErrUnavailable)
