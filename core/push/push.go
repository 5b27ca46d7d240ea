// Package push carries revocation to registered clients through a durable outbox: every
// notice is stored before it is sent, retried with backoff while its client is down.
package push

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/internal/redact"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Store is the outbox part of the user-sessions store.
type Store interface {
	Enqueue(ctx context.Context, deliveries []*usersessions.Delivery) error
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*usersessions.Delivery, error)
	Finish(ctx context.Context, outcomes []usersessions.DeliveryOutcome) error
	ListDeliveries(ctx context.Context, f usersessions.DeliveryFilter) ([]*usersessions.Delivery, error)
}

// Signer signs an adapter action with the realm's active key; *token.KeyManager is one.
type Signer interface {
	Sign(ctx context.Context, realm string, payload []byte) (string, error)
}

// LogoutTokens signs back-channel logout tokens; *token.Service is one.
type LogoutTokens interface {
	LogoutToken(ctx context.Context, realm string, c token.LogoutClaims) (string, error)
}

// NotBefore answers the not-before policies in force; a zero time means none.
type NotBefore interface {
	Realm(realm string) time.Time
	Client(realm, clientID string) time.Time
}

// Deps are what an Outbox needs; all are required except SETs, Now and Log.
type Deps struct {
	Store     Store
	Provider  revocationpush.Provider
	Realms    *realm.Realms
	Keys      Signer
	Tokens    LogoutTokens
	NotBefore NotBefore
	// SETs builds the notices of Shared Signals deliveries; nil fails them (not retried).
	SETs SETs
	Now  func() time.Time // nil: time.Now
	Log  hclog.Logger
}

// Options tune delivery. Zero values take the defaults.
type Options struct {
	// MaxAttempts is how many attempts a delivery gets, the first included, before it is
	// marked failed (default 10).
	MaxAttempts int
	// BackoffInitial is the wait after the first failed attempt; it doubles with each
	// further one up to BackoffMax, and each wait is jittered down by up to half (defaults
	// 5s and 10m).
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// Lease is how long a node holds the deliveries it is attempting before another node
	// may take them (default 1m). An attempt (signing, the provider's requests) is cut off
	// when AttemptBudget of the lease has passed, and its outcomes are recorded in the
	// rest, so that no other node sends a notice while this one still may. A lease shorter
	// than the provider's own request timeout cuts slow clients off early: conf refuses one
	// shorter than twice the built-in HTTP providers' timeout.
	Lease time.Duration
	// BatchSize is how many due deliveries one claim takes (default 100).
	BatchSize int
	// PollInterval is how often Run looks for due deliveries (default BackoffInitial).
	PollInterval time.Duration
}

// Defaults of Options.
const (
	DefaultMaxAttempts    = 10
	DefaultBackoffInitial = 5 * time.Second
	DefaultBackoffMax     = 10 * time.Minute
	DefaultLease          = time.Minute
	DefaultBatchSize      = 100
)

// Keycloak's adapter actions expire 30 seconds after they are signed; a back-channel logout
// token gets a little more, for a slow client.
const (
	actionLifespan      = 30 * time.Second
	logoutTokenLifespan = 2 * time.Minute
)

// finishTimeout bounds recording outcomes once the caller's context has ended: the
// attempt was made, and forgetting it would send it again.
const finishTimeout = 10 * time.Second

// AttemptBudget is how much of a lease an attempt may use: three quarters. The last quarter
// is left to record the outcomes (Finish must land while the lease is held, or another node
// claims the delivery and sends it again) and to absorb clock skew between nodes, whose
// claims compare the lease's end with their own clocks.
func AttemptBudget(lease time.Duration) time.Duration {
	return lease - lease/4
}

// leased returns ctx bounded by the attempt budget of a lease starting now: the context of
// an attempt made under that lease.
func (o *Outbox) leased(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, AttemptBudget(o.opts.Lease))
}

// Report says which client URLs were reached on the first attempt and which were not, as
// Keycloak's GlobalRequestResult (successRequests, failedRequests). A failed URL that is
// worth retrying stays in the outbox.
type Report struct {
	Succeeded, Failed []string
}

// Outcome names of Counts.
const (
	OutcomeDelivered = "delivered" // an attempt reached its client
	OutcomeRetried   = "retried"   // an attempt failed and the delivery waits for another
	OutcomeFailed    = "failed"    // a delivery was given up: refused, or out of attempts
)

// Outbox sends revocation notices durably. It is safe for concurrent use, and several nodes
// may share one Store.
type Outbox struct {
	store    Store
	provider revocationpush.Provider
	realms   *realm.Realms
	keys     Signer
	tokens   LogoutTokens
	policies NotBefore
	sets     SETs
	wake     chan struct{} // Wake's signal to Run
	now      func() time.Time
	log      hclog.Logger
	opts     Options

	delivered, retried, failed atomic.Int64
}

// New returns an Outbox; it fails when a dependency is missing or an option is negative.
func New(d Deps, opts Options) (*Outbox, error) {
	if d.Store == nil || d.Provider == nil || d.Realms == nil || d.Keys == nil || d.Tokens == nil || d.NotBefore == nil {
		return nil, fmt.Errorf("push: store, provider, realms, keys, tokens and not-before policies are required: %w", spi.ErrInvalid)
	}
	if opts.MaxAttempts < 0 || opts.BackoffInitial < 0 || opts.BackoffMax < 0 || opts.Lease < 0 || opts.BatchSize < 0 || opts.PollInterval < 0 {
		return nil, fmt.Errorf("push: options must not be negative: %+v: %w", opts, spi.ErrInvalid)
	}
	opts.MaxAttempts = or(opts.MaxAttempts, DefaultMaxAttempts)
	opts.BackoffInitial = or(opts.BackoffInitial, DefaultBackoffInitial)
	opts.BackoffMax = max(or(opts.BackoffMax, DefaultBackoffMax), opts.BackoffInitial)
	opts.Lease = or(opts.Lease, DefaultLease)
	opts.BatchSize = or(opts.BatchSize, DefaultBatchSize)
	opts.PollInterval = or(opts.PollInterval, opts.BackoffInitial)
	o := &Outbox{
		store: d.Store, provider: d.Provider, realms: d.Realms, keys: d.Keys, tokens: d.Tokens,
		policies: d.NotBefore, sets: d.SETs, wake: make(chan struct{}, 1), now: d.Now, log: d.Log, opts: opts,
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.log == nil {
		o.log = hclog.NewNullLogger()
	}
	return o, nil
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// PushNotBefore sends the not-before policy in force, the later of the realm's and the
// client's own, to the client with that clientId, or with clientID "" to every client of
// the realm (Keycloak's POST clients/{id}/push-revocation and POST push-revocation).
// Clients without an admin URL are skipped. An unknown realm or client is spi.ErrNotFound.
// The report names each endpoint as the provider reached it, without user information.
func (o *Outbox) PushNotBefore(ctx context.Context, realmName, clientID string) (Report, error) {
	r, err := o.realm(realmName)
	if err != nil {
		return Report{}, err
	}
	clients := r.Clients
	if clientID != "" {
		c, ok := r.Client(clientID)
		if !ok {
			return Report{}, fmt.Errorf("push: client %q of realm %q: %w", clientID, realmName, spi.ErrNotFound)
		}
		clients = []*realm.Client{c}
	}
	var ds []*usersessions.Delivery
	for _, c := range clients {
		if c.AdminURL == "" {
			continue
		}
		nb := o.notBefore(r.Name, c.ClientID)
		d, err := o.delivery(r.Name, c.ClientID, c.AdminURL, payload{Action: revocationpush.PushNotBefore, AdminURL: c.AdminURL, NotBefore: unix(nb)})
		if err != nil {
			return Report{}, err
		}
		ds = append(ds, d)
	}
	return o.send(ctx, ds)
}

// LogoutAll tells every client of the realm with an admin URL that its sessions before
// notBefore ended: the adapter LOGOUT action without session ids, Keycloak's notice of a
// realm-wide logout. An unknown realm is spi.ErrNotFound.
func (o *Outbox) LogoutAll(ctx context.Context, realmName string, notBefore time.Time) (Report, error) {
	r, err := o.realm(realmName)
	if err != nil {
		return Report{}, err
	}
	var ds []*usersessions.Delivery
	for _, c := range r.Clients {
		if c.AdminURL == "" {
			continue
		}
		d, err := o.delivery(r.Name, c.ClientID, c.AdminURL, payload{Action: revocationpush.Logout, AdminURL: c.AdminURL, NotBefore: unix(notBefore)})
		if err != nil {
			return Report{}, err
		}
		ds = append(ds, d)
	}
	return o.send(ctx, ds)
}

// Logout sends an OpenID Connect back-channel logout token for every client session of the
// given sessions whose client registered a back-channel logout URL. Callers that end many
// sessions call it once per page of them, or QueueLogout. An unknown realm is
// spi.ErrNotFound.
func (o *Outbox) Logout(ctx context.Context, realmName string, sessions []*usersessions.UserSession) (Report, error) {
	ds, err := o.logouts(realmName, sessions)
	if err != nil {
		return Report{}, err
	}
	return o.send(ctx, ds)
}

// QueueLogout stores the back-channel logouts Logout would send, due at once, without
// attempting them: Run (on whichever node claims them first) makes every attempt. It is for
// callers that end more sessions than a request should wait on, such as a realm's sign out
// all. It returns how many notices it stored. An unknown realm is spi.ErrNotFound.
func (o *Outbox) QueueLogout(ctx context.Context, realmName string, sessions []*usersessions.UserSession) (int, error) {
	ds, err := o.logouts(realmName, sessions)
	if err != nil || len(ds) == 0 {
		return 0, err
	}
	now := o.now()
	for _, d := range ds {
		// Not leased and not attempted: due now, with no attempt started yet.
		d.Attempts, d.NextAttempt = 0, now
	}
	if err := o.store.Enqueue(ctx, ds); err != nil {
		return 0, fmt.Errorf("push: queue %d back-channel logouts: %w", len(ds), err)
	}
	o.log.Info("back-channel logouts queued", "realm", ds[0].RealmID, "notices", len(ds))
	return len(ds), nil
}

// logouts makes the back-channel logout deliveries of the sessions' client sessions, one per
// session and client with a back-channel logout URL, in the realm's client order.
func (o *Outbox) logouts(realmName string, sessions []*usersessions.UserSession) ([]*usersessions.Delivery, error) {
	r, err := o.realm(realmName)
	if err != nil {
		return nil, err
	}
	type pair struct{ session, client string }
	seen := map[pair]bool{}
	var ds []*usersessions.Delivery
	for _, us := range sessions {
		if us == nil {
			continue
		}
		// In the realm's client order, so that reports come out the same every time.
		for _, c := range r.Clients {
			if _, ok := us.Clients[c.ClientID]; !ok || c.BackchannelLogoutURL == "" || seen[pair{us.ID, c.ClientID}] {
				continue
			}
			seen[pair{us.ID, c.ClientID}] = true
			d, err := o.delivery(r.Name, c.ClientID, c.BackchannelLogoutURL, payload{
				Action: revocationpush.BackchannelLogout, AdminURL: c.AdminURL, LogoutURL: c.BackchannelLogoutURL,
				SessionIDs: []string{us.ID}, UserID: us.UserID,
			})
			if err != nil {
				return nil, err
			}
			ds = append(ds, d)
		}
	}
	return ds, nil
}

// Deliveries lists the outbox, for the admin API.
func (o *Outbox) Deliveries(ctx context.Context, f usersessions.DeliveryFilter) ([]*usersessions.Delivery, error) {
	ds, err := o.store.ListDeliveries(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("push: list deliveries: %w", err)
	}
	return ds, nil
}

// Counts returns how many attempts ended each way since this Outbox was made, by outcome
// (OutcomeDelivered, OutcomeRetried, OutcomeFailed).
func (o *Outbox) Counts() map[string]int64 {
	return map[string]int64{
		OutcomeDelivered: o.delivered.Load(),
		OutcomeRetried:   o.retried.Load(),
		OutcomeFailed:    o.failed.Load(),
	}
}

func (o *Outbox) realm(name string) (*realm.Realm, error) {
	r, ok := o.realms.Realm(name)
	if !ok {
		return nil, fmt.Errorf("push: realm %q: %w", name, spi.ErrNotFound)
	}
	return r, nil
}

// notBefore is the policy in force for a client: Keycloak pushes the later of the realm's
// and the client's.
func (o *Outbox) notBefore(realmName, clientID string) time.Time {
	rt, ct := o.policies.Realm(realmName), o.policies.Client(realmName, clientID)
	if ct.After(rt) {
		return ct
	}
	return rt
}

// delivery makes an outbox entry, leased to this node for the first attempt it is about to
// make, which it counts: were the node to die before recording it, another takes it over
// when the lease ends.
func (o *Outbox) delivery(realmName, clientID, target string, p payload) (*usersessions.Delivery, error) {
	b, err := p.encode()
	if err != nil {
		return nil, err
	}
	now := o.now()
	return &usersessions.Delivery{
		ID: newID(now), RealmID: realmName, ClientID: clientID, Kind: p.Action, Target: target, Payload: b,
		Attempts: 1, NextAttempt: now.Add(o.opts.Lease),
	}, nil
}

// newID is a delivery id that sorts by creation time, so that listings page in the order
// deliveries were made.
func newID(now time.Time) string {
	return now.UTC().Format("20060102T150405.000000Z") + "-" + strings.ToLower(rand.Text()[:12])
}

// send stores the deliveries, then makes their first attempt, within the lease they were
// made with, and reports it.
func (o *Outbox) send(ctx context.Context, ds []*usersessions.Delivery) (Report, error) {
	rep := Report{Succeeded: []string{}, Failed: []string{}}
	if len(ds) == 0 {
		return rep, nil
	}
	actx, cancel := o.leased(ctx)
	defer cancel()
	if err := o.store.Enqueue(actx, ds); err != nil {
		return rep, fmt.Errorf("push: store %d deliveries: %w", len(ds), err)
	}
	results := o.attempt(actx, ds, make([]int, len(ds)))
	for i, d := range ds {
		if results[i].OK {
			rep.Succeeded = append(rep.Succeeded, reported(d, results[i]))
		} else {
			rep.Failed = append(rep.Failed, reported(d, results[i]))
		}
	}
	o.log.Info("revocation pushed", "realm", ds[0].RealmID, "action", ds[0].Kind,
		"delivered", len(rep.Succeeded), "failed", len(rep.Failed))
	return rep, nil
}

// reported is how reports and logs name where a notice went: the endpoint the provider
// says it reached, else the one the delivery was addressed to, never with user information.
func reported(d *usersessions.Delivery, r revocationpush.Result) string {
	if r.Target != "" {
		return redact.URL(r.Target)
	}
	return redact.URL(d.Target)
}

// errNoResult stands for a notice the provider returned no result for.
var errNoResult = errors.New("the revocation-push provider returned no result for this notice")
