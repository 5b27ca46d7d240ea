// Package ssf is sessiond's OpenID Shared Signals Framework transmitter: SSF streams
// (receivers and the events each wants), kept as store records so that every node shares
// them and they survive restarts, and the CAEP session-revoked Security Event Tokens
// (RFC 8417) each ended session becomes, queued in the durable revocation-push outbox and
// signed with the realm's key at each attempt.
//
// Streams are read from the store on every session end rather than cached: a stream
// created on one node gets the next logout on any other, and a realm with SSF off (another
// revocation-push provider) never reads them.
package ssf

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Event types and the delivery method of SSF 1.0 and CAEP 1.0.
const (
	EventSessionRevoked = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	EventVerification   = "https://schemas.openid.net/secevent/ssf/event-type/verification"
	// DeliveryPush is RFC 8935 push delivery, the one method sessiond transmits by.
	DeliveryPush = "urn:ietf:rfc:8935"
	// SpecVersion is the SSF version of the transmitter metadata.
	SpecVersion = "1_0"
)

// Supported are the event types a stream may request: sessiond knows no credentials, so
// sessions are all it can speak of.
var supported = []string{EventSessionRevoked}

// Stream statuses (SSF 1.0 §8.1.2).
const (
	StatusEnabled  = "enabled"  // events are delivered
	StatusPaused   = "paused"   // events are held in the outbox (retried) until enabled
	StatusDisabled = "disabled" // events are not queued, and those queued are dropped
)

// ProviderID is the revocation-push provider that delivers SETs (providers/revocation/ssf):
// the transmitter runs when it is the one chosen.
const ProviderID = "ssf"

// RecordKind is the kind of the records that hold streams, keyed "<realm>/<stream id>"
// with the realm path-escaped.
const RecordKind = "ssf-stream"

// MaxStreams bounds the streams of one realm: each session end is one delivery per stream.
const MaxStreams = 64

// Store is what the Transmitter keeps streams in: the user-sessions store's records.
type Store interface {
	GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error)
	PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error)
	ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error)
	DeleteRecord(ctx context.Context, kind, key string) error
}

// Signer signs SETs with the realm's active key; *token.KeyManager is one.
type Signer interface {
	SignSET(ctx context.Context, realm string, payload []byte) (string, error)
}

// Queue stores deliveries in the outbox, due at once; *push.Outbox is one.
type Queue interface {
	Queue(ctx context.Context, ds []*usersessions.Delivery) error
}

// Deps are the Transmitter's dependencies; Now and Log may be nil.
type Deps struct {
	Store  Store
	Keys   Signer
	Realms *realm.Realms
	// Queue is the outbox; a func so that the runtime can hand the outbox that is made
	// with this Transmitter as its SETs.
	Queue func() Queue
	// Issuer is a realm's issuer URL, the iss of its SETs.
	Issuer func(realm string) string
	// JWKS is the URL of a realm's keys, for the transmitter metadata.
	JWKS func(realm string) string
	// Expiry makes sessions that end by expiring (cleanup) signalled too.
	Expiry bool
	Now    func() time.Time
	Log    hclog.Logger
	// NewID makes delivery ids (a SET's jti); nil: the outbox's own scheme is required.
	NewID func(now time.Time) string
}

// Transmitter is the SSF transmitter. It is safe for concurrent use, and several nodes may
// share its store.
type Transmitter struct {
	store  Store
	keys   Signer
	realms *realm.Realms
	queue  func() Queue
	issuer func(string) string
	jwks   func(string) string
	expiry bool
	now    func() time.Time
	log    hclog.Logger
	newID  func(time.Time) string
}

// New returns a Transmitter; it fails when a dependency is missing.
func New(d Deps) (*Transmitter, error) {
	if d.Store == nil || d.Keys == nil || d.Realms == nil || d.Queue == nil || d.Issuer == nil || d.JWKS == nil || d.NewID == nil {
		return nil, fmt.Errorf("ssf: store, keys, realms, queue, issuer, JWKS and ids are required: %w", spi.ErrInvalid)
	}
	t := &Transmitter{store: d.Store, keys: d.Keys, realms: d.Realms, queue: d.Queue, issuer: d.Issuer, jwks: d.JWKS,
		expiry: d.Expiry, now: d.Now, log: d.Log, newID: d.NewID}
	if t.now == nil {
		t.now = time.Now
	}
	if t.log == nil {
		t.log = hclog.NewNullLogger()
	}
	return t, nil
}

// Expiry reports whether sessions that expire are signalled (cleanup asks before it lists
// them).
func (t *Transmitter) Expiry() bool { return t.expiry }

// realm returns a served realm; an unknown one wraps spi.ErrNotFound.
func (t *Transmitter) realm(name string) (*realm.Realm, error) {
	r, ok := t.realms.Realm(name)
	if !ok {
		return nil, fmt.Errorf("ssf: realm %q: %w", name, spi.ErrNotFound)
	}
	return r, nil
}
