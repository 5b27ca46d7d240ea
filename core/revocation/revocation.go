// Package revocation keeps the not-before policies in force: a realm's and a client's, set at
// run time, stored as records and followed on every node through the store's change feed.
package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// RecordKind is the kind of the records that hold the policies. A realm's record is keyed by
// its name, a client's by "<realm>/<clientId>", each part path-escaped so that no realm name
// or client id can make two keys meet.
const RecordKind = "not-before"

// Store is the part of the user-sessions store Policies uses: the records and the change feed.
// The runtime hands it the provider itself: records are not cached. A cleared policy is kept
// as a record holding 0 rather than deleted, so its version only grows.
type Store interface {
	GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error)
	PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error)
	ListRecords(ctx context.Context, kind string) ([]*usersessions.Record, error)
	Watch(ctx context.Context, fn func(usersessions.Change) error) error
}

// Errors of SetRealm and SetClient. Both wrap spi.ErrNotFound, which the HTTP layer answers
// with 404.
var (
	ErrUnknownRealm  = fmt.Errorf("realm does not exist: %w", spi.ErrNotFound)
	ErrUnknownClient = fmt.Errorf("client does not exist: %w", spi.ErrNotFound)
)

// MaxAhead is how far past this node's clock a policy may be set. A not-before in the future
// does not schedule anything: from the moment it is set it refuses every token issued before
// it, new logins' included, until that time comes, which is an outage rather than a policy.
// The slack is for an operator's clock a little ahead of the server's.
const MaxAhead = 10 * time.Second

// maxAttempts bounds the read-modify-write of one Set: each conflict means another node's
// write committed in between, so every retry follows progress elsewhere.
const maxAttempts = 16

// Backoff of the change feed's resubscription: doubling from the first to the last. The
// last is low: a try costs one connection attempt, and after a failover the policies
// should follow the new primary within a second of its being writable, not ten.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = time.Second
)

// Deps are what Policies needs.
type Deps struct {
	Store  Store
	Realms *realm.Realms
	Log    hclog.Logger
	// Now is the clock that bounds a policy's time (MaxAhead); nil means time.Now.
	Now func() time.Time
}

// Policies answers the not-before policies in force on this node from memory, and sets them
// for every node. Run keeps the memory in step with the store. It is safe for concurrent use.
type Policies struct {
	store  Store
	realms *realm.Realms
	log    hclog.Logger
	now    func() time.Time

	// view maps record keys to the stored policies; readers load it without locking, writers
	// replace it whole.
	view   atomic.Pointer[map[string]stored]
	ready  atomic.Bool
	loaded chan struct{} // closed at the first load
	// writeMu serialises the writers of view. It guards memory only: no store call is made
	// while it is held, so a slow store delays no other Set, read or feed apply. What a store
	// call returned is applied under it only when it is newer than what the view holds (see
	// applyLocked and dropLocked), so a read that was overtaken never undoes a later write.
	writeMu sync.Mutex
	// seq counts the view's applies (incremented under writeMu, read without it): an entry
	// applied after a store read began carries a later seq than the one the read started
	// at, so the read's not finding the record does not remove it.
	seq atomic.Uint64
}

// stored is one record's policy, as the view keeps it.
type stored struct {
	at      time.Time // zero: cleared, or a record that could not be read
	version int64     // the record's version: only a later one replaces it
	seq     uint64    // the Policies' seq when it was applied
}

// value is a record's JSON value: Keycloak's notBefore, unix seconds, 0 when cleared.
type value struct {
	NotBefore int64 `json:"notBefore"`
}

// New returns Policies over their dependencies. Until Run has loaded the stored policies, the
// realm settings' own values are in force and Ready is false.
func New(d Deps) *Policies {
	p := &Policies{store: d.Store, realms: d.Realms, log: d.Log, now: d.Now, loaded: make(chan struct{})}
	if p.log == nil {
		p.log = hclog.NewNullLogger()
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.view.Store(&map[string]stored{})
	return p
}

// realmKey and clientKey are the record keys of a realm's and a client's policy.
func realmKey(realmName string) string { return url.PathEscape(realmName) }

func clientKey(realmName, clientID string) string {
	return url.PathEscape(realmName) + "/" + url.PathEscape(clientID)
}

// Realm returns the realm's not-before in force: the later of the realm settings' value and
// the one set at run time; zero when neither is set.
func (p *Policies) Realm(realmName string) time.Time {
	var static time.Time
	if r, ok := p.realms.Realm(realmName); ok {
		static = r.NotBefore
	}
	return later(static, (*p.view.Load())[realmKey(realmName)].at)
}

// Client returns the client's own not-before in force (the realm's is apart): the later of
// the client settings' value and the one set at run time; zero when neither is set.
func (p *Policies) Client(realmName, clientID string) time.Time {
	var static time.Time
	if _, c, ok := p.realms.Client(realmName, clientID); ok {
		static = c.NotBefore
	}
	return later(static, (*p.view.Load())[clientKey(realmName, clientID)].at)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// SetRealm sets the realm's not-before for every node, to t in whole seconds as Keycloak keeps
// it; the zero time clears it (the realm settings' own value stays in force). It returns once
// the store has committed the policy, which from then on is in force on this node; other
// nodes learn it through the change feed. An unknown realm is ErrUnknownRealm; a time before
// 1970 or more than MaxAhead in the future wraps spi.ErrInvalid.
func (p *Policies) SetRealm(ctx context.Context, realmName string, t time.Time) error {
	if _, ok := p.realms.Realm(realmName); !ok {
		return fmt.Errorf("set the not-before of realm %q: %w", realmName, ErrUnknownRealm)
	}
	return p.set(ctx, realmKey(realmName), fmt.Sprintf("realm %q", realmName), t)
}

// SetClient sets a client's own not-before, as SetRealm does a realm's. The client is named by
// its clientId; an unknown realm is ErrUnknownRealm, an unknown client ErrUnknownClient.
func (p *Policies) SetClient(ctx context.Context, realmName, clientID string, t time.Time) error {
	r, _, ok := p.realms.Client(realmName, clientID)
	switch {
	case r == nil:
		return fmt.Errorf("set the not-before of client %q: realm %q: %w", clientID, realmName, ErrUnknownRealm)
	case !ok:
		return fmt.Errorf("set the not-before of client %q of realm %q: %w", clientID, realmName, ErrUnknownClient)
	}
	return p.set(ctx, clientKey(realmName, clientID), fmt.Sprintf("client %q of realm %q", clientID, realmName), t)
}

// set writes one policy with the record's version, re-reading it on a conflict: the last
// writer wins, as with Keycloak's admin API.
func (p *Policies) set(ctx context.Context, key, what string, t time.Time) error {
	var secs int64
	if !t.IsZero() {
		t = t.Truncate(time.Second)
		if secs = t.Unix(); secs <= 0 {
			return fmt.Errorf("not-before of %s: %s is not after 1970-01-01: %w", what, t.UTC().Format(time.RFC3339), spi.ErrInvalid)
		}
		if limit := p.now().Add(MaxAhead); t.After(limit) {
			return fmt.Errorf("not-before of %s: %s is in the future (this node's clock says %s); it would refuse every token issued until then, new ones included: %w",
				what, t.UTC().Format(time.RFC3339), p.now().UTC().Format(time.RFC3339), spi.ErrInvalid)
		}
	}
	raw, err := json.Marshal(value{NotBefore: secs})
	if err != nil {
		return fmt.Errorf("not-before of %s: %w", what, err)
	}
	version := (*p.view.Load())[key].version
	for attempt := 1; ; attempt++ {
		rec, err := p.store.PutRecord(ctx, &usersessions.Record{Kind: RecordKind, Key: key, Value: raw, Version: version})
		if err == nil {
			p.apply(key, rec)
			p.log.Info("not-before policy set", "target", what, "not_before", stampTime(t))
			return nil
		}
		// A Put at version 0 over an existing record may be refused as existing too.
		if (!errors.Is(err, spi.ErrConflict) && !errors.Is(err, spi.ErrExists)) || attempt == maxAttempts {
			return fmt.Errorf("store the not-before of %s: %w", what, err)
		}
		recs, err := p.store.GetRecords(ctx, RecordKind, []string{key})
		if err != nil {
			return fmt.Errorf("read the not-before of %s: %w", what, err)
		}
		version = 0
		if len(recs) == 1 && recs[0] != nil {
			version = recs[0].Version
			p.apply(key, recs[0]) // the write that beat this one is in force until this one lands
		}
	}
}

// Ready reports whether the stored policies have been loaded once. Until then only the realm
// settings' values are known, and a node must not take traffic: it would accept tokens an
// operator has revoked.
func (p *Policies) Ready() bool { return p.ready.Load() }

// Loaded is closed once the stored policies have been loaded (when Ready turns true), for a
// caller that waits for it before serving.
func (p *Policies) Loaded() <-chan struct{} { return p.loaded }

// Run follows the store until ctx ends; its caller owns it. Each time the change feed has
// subscribed it loads every stored policy, so nothing written while it was away is missed;
// then it re-reads each policy record the feed names. When the feed breaks, the policies last
// read stay in force and Run subscribes again after a backoff (doubling from 100ms to 1s),
// and says so when it is back.
func (p *Policies) Run(ctx context.Context) {
	backoff := firstBackoff
	var brokeAt time.Time // when the feed last broke; zero while it has not
	for ctx.Err() == nil {
		subscribed := false
		// Only records: a plugin store then sends no session change to this feed.
		watchCtx := usersessions.WithInterest(ctx, usersessions.Interest{Kinds: []usersessions.ChangeKind{usersessions.RecordChanged}})
		err := p.store.Watch(watchCtx, func(c usersessions.Change) error {
			switch {
			case c.Kind == usersessions.Subscribed:
				if err := p.reload(ctx); err != nil {
					return err
				}
				subscribed = true
				if !brokeAt.IsZero() {
					p.log.Info("not-before policies: change feed is back; policies reloaded", "down_for", time.Since(brokeAt).Round(time.Millisecond))
					brokeAt = time.Time{}
				}
			case c.Kind == usersessions.RecordChanged && c.Record.Kind == RecordKind:
				return p.reread(ctx, c.Record.Key)
			}
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if subscribed {
			backoff = firstBackoff // it had subscribed and loaded: this is a new outage
		}
		if err == nil {
			err = fmt.Errorf("the change feed ended: %w", spi.ErrUnavailable)
		}
		if brokeAt.IsZero() {
			brokeAt = time.Now()
		}
		p.log.Warn("not-before policies: change feed broke; the policies last read stay in force until it is back",
			"error", err, "retry_in", backoff, "loaded", p.Ready())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// reload brings the view up to every stored policy. The store is read without writeMu; the
// result is applied under it record by record, only where it is newer than the view (a Set
// or feed apply that landed while the list was read stays), and a policy the list lacks is
// dropped only if it was in the view before the list was read.
func (p *Policies) reload(ctx context.Context) error {
	start := p.seq.Load()
	recs, err := p.store.ListRecords(ctx, RecordKind)
	if err != nil {
		return fmt.Errorf("load the not-before policies: %w", err)
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	prev := *p.view.Load()
	listed := make(map[string]bool, len(recs))
	for _, r := range recs {
		if r == nil {
			continue
		}
		listed[r.Key] = true
		p.applyLocked(r.Key, r)
	}
	for k := range prev {
		if !listed[k] {
			p.dropLocked(k, start)
		}
	}
	next := *p.view.Load()
	for k, s := range next {
		if old, had := prev[k]; !had || !old.at.Equal(s.at) {
			p.log.Info("not-before policy in force", "key", k, "not_before", stampTime(s.at))
		}
	}
	for k := range prev {
		if _, has := next[k]; !has {
			p.log.Info("not-before policy removed", "key", k)
		}
	}
	if !p.ready.Swap(true) {
		close(p.loaded)
		p.log.Info("not-before policies loaded", "policies", len(next))
	}
	return nil
}

// reread takes one policy record the feed named from the store, read without writeMu and
// applied under it as reload's are.
func (p *Policies) reread(ctx context.Context, key string) error {
	start := p.seq.Load()
	recs, err := p.store.GetRecords(ctx, RecordKind, []string{key})
	if err != nil {
		return fmt.Errorf("read the not-before policy %q: %w", key, err)
	}
	var rec *usersessions.Record
	if len(recs) == 1 {
		rec = recs[0]
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	before := (*p.view.Load())[key]
	if rec != nil {
		p.applyLocked(key, rec)
	} else {
		p.dropLocked(key, start)
	}
	if after := (*p.view.Load())[key]; !after.at.Equal(before.at) {
		p.log.Info("not-before policy in force", "key", key, "not_before", stampTime(after.at))
	}
	return nil
}

// apply is applyLocked for a caller that does not hold writeMu.
func (p *Policies) apply(key string, rec *usersessions.Record) {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	p.applyLocked(key, rec)
}

// applyLocked puts one stored record's policy into the view, unless the view already holds
// that version of the record or a later one: a read or write that was overtaken by another
// never takes the policy back. A record that cannot be read is no policy (a zero time), at
// its version. The caller holds writeMu.
func (p *Policies) applyLocked(key string, rec *usersessions.Record) {
	view := *p.view.Load()
	if cur, ok := view[key]; ok && cur.version >= rec.Version {
		return
	}
	s, _ := p.parse(rec)
	s.version = rec.Version
	s.seq = p.seq.Add(1)
	next := maps.Clone(view)
	next[key] = s
	p.view.Store(&next)
}

// dropLocked removes a policy a store read did not find, if the view held it before that
// read began (its seq is at most start); one applied since came from a later write, which
// the read did not see. The caller holds writeMu.
func (p *Policies) dropLocked(key string, start uint64) {
	view := *p.view.Load()
	if cur, ok := view[key]; !ok || cur.seq > start {
		return
	}
	next := maps.Clone(view)
	delete(next, key)
	p.seq.Add(1)
	p.view.Store(&next)
}

// parse reads a record's policy. A record it cannot read is logged and left out: there is no
// time to enforce in it.
func (p *Policies) parse(r *usersessions.Record) (stored, bool) {
	var v value
	if err := json.Unmarshal(r.Value, &v); err != nil {
		p.log.Error("unreadable not-before policy record ignored", "key", r.Key, "version", r.Version, "error", err)
		return stored{}, false
	}
	s := stored{version: r.Version}
	if v.NotBefore > 0 {
		s.at = time.Unix(v.NotBefore, 0).UTC()
	}
	return s, true
}

func stampTime(t time.Time) string {
	if t.IsZero() {
		return "cleared"
	}
	return t.UTC().Format(time.RFC3339)
}
