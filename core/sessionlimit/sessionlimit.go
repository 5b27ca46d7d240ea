// Package sessionlimit enforces a realm's caps on concurrent sessions (realm.SessionLimits)
// when a session is opened, so that they hold across every node sharing one store.
//
// Why a lock record: counting the sessions and creating the new one are two store calls;
// two logins of one user on two nodes would both count one below the limit and both
// create. So each login that a limit applies to first takes a lease on a small record of
// the store (usersessions.Record, written with PutRecord's version check: a compare-and-set
// that one node wins) for the scope of that limit: the user, the client, the realm. It then
// counts, refuses or ends the least recently used sessions, creates its own, and gives the
// lease back. A node that dies holding a lease blocks that scope only until the lease ends
// (Lease); after that the next login takes it over with the same compare-and-set.
//
// A realm without limits pays nothing: Admit returns before any store call; so does a
// login that no limit of its realm counts.
package sessionlimit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// LockKind is the record kind of the leases.
const LockKind = "session-limit-lock"

// Defaults of Deps.
const (
	// DefaultLease is how long a lease holds if its holder never gives it back (it died).
	// It must outlast the work done under it: a few store calls and, for Terminate oldest
	// session, ending sessions (their back-channel logouts are queued, not waited for).
	DefaultLease = 10 * time.Second
	// DefaultWait is how long a login waits for a lease another login holds before it is
	// answered "temporarily unavailable".
	DefaultWait = 5 * time.Second
	// DefaultPageSize is the page in which sessions are read to find the oldest.
	DefaultPageSize = 500
)

// Names of the limits, as ExceededError.Limit, events and the admin API say them: the
// attribute names of realm.SessionLimits.
const (
	UserRealm  = "userRealmLimit"
	UserClient = "userClientLimit"
	Client     = "clientLimit"
	Realm      = "realmLimit"
)

// Store is what the Enforcer reads and writes: counts and listings of sessions from the
// provider itself (not a node's cache: every node must see every node's sessions) and its
// records.
type Store interface {
	Count(ctx context.Context, f usersessions.Filter) (int64, error)
	List(ctx context.Context, f usersessions.Filter, p usersessions.Page) ([]*usersessions.UserSession, error)
	GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error)
	PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error)
}

// EndSession ends a session to make room under limit: removed through the normal logout
// path (event, back-channel logout). A session already gone is no error.
type EndSession func(ctx context.Context, realm, sessionID string, offline bool, limit string) error

// Deps are the Enforcer's dependencies.
type Deps struct {
	Store Store
	End   EndSession
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Lease, Wait, PageSize: 0 means the defaults above.
	Lease    time.Duration
	Wait     time.Duration
	PageSize int
	Log      hclog.Logger
}

// Enforcer applies session limits. It keeps no state: nodes share the store's leases.
type Enforcer struct {
	store Store
	end   EndSession
	now   func() time.Time
	lease time.Duration
	wait  time.Duration
	page  int
	log   hclog.Logger
}

// New returns an Enforcer.
func New(d Deps) *Enforcer {
	e := &Enforcer{store: d.Store, end: d.End, now: d.Now, lease: d.Lease, wait: d.Wait, page: d.PageSize, log: d.Log}
	if e.now == nil {
		e.now = time.Now
	}
	if e.lease <= 0 {
		e.lease = DefaultLease
	}
	if e.wait <= 0 {
		e.wait = DefaultWait
	}
	if e.page <= 0 {
		e.page = DefaultPageSize
	}
	if e.log == nil {
		e.log = hclog.NewNullLogger()
	}
	return e
}

// ExceededError refuses a new session that a limit with Deny new session does not admit.
// Message is the realm's errorMessage, for the login front-end to show.
type ExceededError struct {
	Limit   string // one of UserRealm, UserClient, Client, Realm
	Max     int
	Offline bool // the offline sessions were over it
	Message string
}

func (e *ExceededError) Error() string {
	kind := "online"
	if e.Offline {
		kind = "offline"
	}
	return fmt.Sprintf("%s (%s %d of %s sessions reached)", e.Message, e.Limit, e.Max, kind)
}

// ErrBusy is a login that waited Wait for a lease and did not get it; it wraps
// spi.ErrUnavailable (HTTP 503, retry shortly).
var ErrBusy = fmt.Errorf("session limit: another login of the same user, client or realm holds the lock: %w", spi.ErrUnavailable)

// Admission is the session about to be opened.
type Admission struct {
	Realm    *realm.Realm
	ClientID string
	UserID   string
	// Offline: an offline session is opened too; it is counted when the realm counts
	// offline sessions.
	Offline bool
	// Joining: no online user session is opened; the client joins one that exists (single
	// sign-on into another client), so only the limits of a client (UserClient, Client)
	// count it.
	Joining bool
}

// check is one limit on one kind of session.
type check struct {
	name    string
	limit   realm.Limit
	filter  usersessions.Filter
	offline bool
}

// checks are the limits that apply to a, narrowest first: ending the oldest sessions of
// a narrow scope also makes room in the wider ones.
func checks(a Admission, now time.Time) []check {
	l := a.Realm.SessionLimits
	kinds := []bool{false}
	if a.Offline && l.CountOffline {
		kinds = append(kinds, true)
	}
	var out []check
	for _, offline := range kinds {
		sel := usersessions.OnlineOnly
		if offline {
			sel = usersessions.OfflineOnly
		}
		f := usersessions.Filter{RealmID: a.Realm.Name, Offline: sel, LiveAt: now}
		joining := a.Joining && !offline
		for _, c := range []check{
			{UserClient, l.UserClient, withUser(withClient(f, a.ClientID), a.UserID), offline},
			{UserRealm, l.UserRealm, withUser(f, a.UserID), offline},
			{Client, l.Client, withClient(f, a.ClientID), offline},
			{Realm, l.Realm, f, offline},
		} {
			if c.limit.On() && !(joining && (c.name == UserRealm || c.name == Realm)) {
				out = append(out, c)
			}
		}
	}
	return out
}

func withUser(f usersessions.Filter, u string) usersessions.Filter   { f.UserID = u; return f }
func withClient(f usersessions.Filter, c string) usersessions.Filter { f.ClientID = c; return f }

// Release gives back the leases Admit took; the caller calls it once the new session is
// stored (or has failed to be). It is never nil.
type Release func()

// Admit makes room for the session a describes under its realm's limits, or refuses it
// with an *ExceededError. On success the caller holds the scopes' leases until it calls the
// Release, and must create the session before that: the count it was admitted on holds
// only while no other login of the same scopes runs.
func (e *Enforcer) Admit(ctx context.Context, a Admission) (Release, error) {
	keys := lockKeys(a)
	if len(keys) == 0 {
		return func() {}, nil
	}
	held, err := e.acquire(ctx, keys)
	release := func() { e.release(context.WithoutCancel(ctx), held) }
	if err != nil {
		release()
		return func() {}, err
	}
	if err := e.makeRoom(ctx, a); err != nil {
		release()
		return func() {}, err
	}
	return release, nil
}

// makeRoom counts every limit: a Deny limit already reached refuses before anything is
// ended; then the Terminate limits end the least recently used sessions over them.
func (e *Enforcer) makeRoom(ctx context.Context, a Admission) error {
	cs := checks(a, e.now().UTC())
	counts := make([]int64, len(cs))
	for i, c := range cs {
		n, err := e.store.Count(ctx, c.filter)
		if err != nil {
			return fmt.Errorf("session limit %s: count sessions: %w", c.name, err)
		}
		counts[i] = n
		if !c.limit.Terminate && n >= int64(c.limit.Max) {
			return &ExceededError{Limit: c.name, Max: c.limit.Max, Offline: c.offline, Message: a.Realm.SessionLimits.Message()}
		}
	}
	ended := false
	for i, c := range cs {
		if !c.limit.Terminate {
			continue
		}
		n := counts[i]
		if ended { // earlier ends may have made room here too
			var err error
			if n, err = e.store.Count(ctx, c.filter); err != nil {
				return fmt.Errorf("session limit %s: count sessions: %w", c.name, err)
			}
		}
		if over := n - int64(c.limit.Max) + 1; over > 0 {
			if err := e.endOldest(ctx, a.Realm.Name, c, int(over)); err != nil {
				return err
			}
			ended = true
		}
	}
	return nil
}

// endOldest ends the n least recently used sessions c selects. Finding them reads every
// session c selects, a page at a time (the store keeps no order by last use); for a user's
// limit that is a handful, for a client's or the realm's, every session of it.
func (e *Enforcer) endOldest(ctx context.Context, realmName string, c check, n int) error {
	oldest, err := e.oldest(ctx, c.filter, n)
	if err != nil {
		return fmt.Errorf("session limit %s: find the oldest sessions: %w", c.name, err)
	}
	for _, us := range oldest {
		if err := e.end(ctx, realmName, us.ID, us.Offline, c.name); err != nil {
			return fmt.Errorf("session limit %s: end session %s: %w", c.name, us.ID, err)
		}
		e.log.Info("session ended to make room under a session limit", "realm", realmName, "limit", c.name,
			"session", us.ID, "user", us.UserID, "offline", us.Offline)
	}
	return nil
}

// oldest returns the n sessions f selects with the earliest LastRefresh (ties: earliest
// start, then id), holding no more than n plus one page.
func (e *Enforcer) oldest(ctx context.Context, f usersessions.Filter, n int) ([]*usersessions.UserSession, error) {
	var keep []*usersessions.UserSession
	less := func(a, b *usersessions.UserSession) int {
		if c := a.LastRefresh.Compare(b.LastRefresh); c != 0 {
			return c
		}
		if c := a.Started.Compare(b.Started); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	}
	p := usersessions.Page{Limit: e.page}
	for {
		page, err := e.store.List(ctx, f, p)
		if err != nil {
			return nil, err
		}
		keep = append(keep, page...)
		slices.SortFunc(keep, less)
		keep = keep[:min(n, len(keep))]
		if len(page) < p.Limit {
			return keep, nil
		}
		p.After = page[len(page)-1].ID
	}
}

// lockKeys are the leases the checks of a need, widest first: every login takes them in the
// same order, so two logins never wait on each other in a circle.
func lockKeys(a Admission) []string {
	need := map[string]bool{}
	for _, c := range checks(a, time.Time{}) {
		need[c.name] = true
	}
	var keys []string
	if need[Realm] {
		keys = append(keys, a.Realm.Name+"/realm")
	}
	if need[Client] {
		keys = append(keys, a.Realm.Name+"/client/"+digest(a.ClientID))
	}
	if need[UserRealm] || need[UserClient] {
		keys = append(keys, a.Realm.Name+"/user/"+digest(a.UserID))
	}
	return keys
}

// digest keeps a user or client id of any length and alphabet out of a record key.
func digest(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// lease is a lock record's value. A record whose Until has passed (or is zero: given back)
// is free.
type lease struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// acquire takes the leases in order and returns those it holds, also on error.
func (e *Enforcer) acquire(ctx context.Context, keys []string) ([]*usersessions.Record, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, e.wait, ErrBusy)
	defer cancel()
	holder := strings.ToLower(rand.Text())
	var held []*usersessions.Record
	for _, k := range keys {
		rec, err := e.take(ctx, k, holder)
		if err != nil {
			return held, err
		}
		held = append(held, rec)
	}
	return held, nil
}

// take takes one lease: a compare-and-set on its record's version, retried with a short
// random pause while someone else holds a live lease.
func (e *Enforcer) take(ctx context.Context, key, holder string) (*usersessions.Record, error) {
	for attempt := 0; ; attempt++ {
		got, err := e.store.GetRecords(ctx, LockKind, []string{key})
		if err != nil {
			return nil, e.busy(ctx, fmt.Errorf("session limit: read lock %s: %w", key, err))
		}
		now := e.now().UTC()
		var version int64
		free := true
		if len(got) == 1 && got[0] != nil {
			var l lease
			version = got[0].Version
			// A value that does not decode is nobody's lease.
			if json.Unmarshal(got[0].Value, &l) == nil && now.Before(l.Until) {
				free = false
			}
		}
		if free {
			v, _ := json.Marshal(lease{Holder: holder, Until: now.Add(e.lease)})
			rec, err := e.store.PutRecord(ctx, &usersessions.Record{Kind: LockKind, Key: key, Value: v, Version: version})
			if err == nil {
				return rec, nil
			}
			if !errors.Is(err, spi.ErrConflict) {
				return nil, e.busy(ctx, fmt.Errorf("session limit: take lock %s: %w", key, err))
			}
		}
		if err := pause(ctx, attempt); err != nil {
			return nil, e.busy(ctx, err)
		}
	}
}

// busy turns the end of Wait into ErrBusy; the caller's own cancellation or deadline stays
// itself.
func (e *Enforcer) busy(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrBusy) {
		return ErrBusy
	}
	return err
}

// pause waits a random 1–2^attempt ms, at most 50 ms, or until ctx ends.
func pause(ctx context.Context, attempt int) error {
	ceiling := int64(1) << min(attempt, 6)
	n, _ := rand.Int(rand.Reader, big.NewInt(min(ceiling, 50)))
	t := time.NewTimer(time.Duration(n.Int64()+1) * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// release gives the leases back, last first, with a versioned write: a lease that ran out
// and was taken over meanwhile is not touched (and said: the limit may have been passed).
func (e *Enforcer) release(ctx context.Context, held []*usersessions.Record) {
	for i := len(held) - 1; i >= 0; i-- {
		rec := held[i]
		v, _ := json.Marshal(lease{})
		_, err := e.store.PutRecord(ctx, &usersessions.Record{Kind: LockKind, Key: rec.Key, Value: v, Version: rec.Version})
		switch {
		case errors.Is(err, spi.ErrConflict):
			e.log.Warn("a session-limit lease ran out before the login was done and another login took it; the limit may have been passed by one",
				"lock", rec.Key, "lease", e.lease)
		case err != nil:
			e.log.Warn("a session-limit lease could not be given back; it frees itself when it runs out", "lock", rec.Key, "lease", e.lease, "error", err)
		}
	}
}
