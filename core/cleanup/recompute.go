package cleanup

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// RecordKind is the kind of the records that hold each realm's expiry-rules fingerprint,
// keyed by realm name.
const RecordKind = "expiry-rules"

// rulesVersion is part of every fingerprint. Bump it when core/expiry's maths changes in a
// way that moves stored expiries, so that every realm is recomputed once.
const rulesVersion = 1

// maxAttempts bounds the re-read-and-retry loop of one session whose rewrite meets a
// version conflict; each conflict is another writer's progress, so this only guards
// against a store that reports conflicts wrongly.
const maxAttempts = 8

// RulesFor returns the expiry rules of each realm under the persistent-user-sessions
// feature, as the session service applies them: what Recompute takes.
func RulesFor(persistentSessions bool, realms ...*realm.Realm) []expiry.Rules {
	out := make([]expiry.Rules, 0, len(realms))
	for _, r := range realms {
		out = append(out, expiry.Rules{Realm: r, PersistentSessions: persistentSessions})
	}
	return out
}

// RealmRecompute is what Recompute did for one realm.
type RealmRecompute struct {
	Realm string
	// Changed: the realm's expiry settings differed from the stored fingerprint, or none
	// was stored (First), so its sessions were read.
	Changed bool
	First   bool
	// Scanned is the number of user sessions read, online and offline.
	Scanned int
	// Sessions and Clients are the user and client sessions whose ExpiresAt was rewritten.
	Sessions, Clients int
	Duration          time.Duration
}

// Recompute brings the stored expiries of each realm's sessions in line with its rules.
// For each realm it compares a fingerprint of the settings the expiry maths reads (the
// realm's session timeouts, the clients' overrides, the idle window) with the one stored
// in the record (RecordKind, realm name); when they differ, or none is stored, it streams
// the realm's sessions, online and offline, in pages of BatchSize and rewrites the ExpiresAt
// of every user and client session that core/expiry now computes differently, then stores
// the new fingerprint. An interrupted recompute is done again next time, since the
// fingerprint is stored last.
//
// Expiries that move later are written with Touch at the row's own LastRefresh, which
// commutes with concurrent refreshes. Touch cannot move an expiry earlier, so those go
// through Update (user sessions) and PutClientSessions (client sessions) with the version
// read; a conflict re-reads the session and tries again. Touch changes no Version, so a
// refresh that touches the same session between the read and such a write (one store round
// trip) is not detected and its idle-clock move is undone: the SPI has no write that sets an
// expiry only where LastRefresh is unchanged. Only shortened timeouts take this path.
//
// A realm whose recompute fails is retried by every later pass, which removes nothing
// until it succeeds. The error joins the realms' errors.
func (c *Cleaner) Recompute(ctx context.Context, rules ...expiry.Rules) ([]RealmRecompute, error) {
	c.work.Lock()
	defer c.work.Unlock()
	return c.recompute(ctx, rules)
}

func (c *Cleaner) recompute(ctx context.Context, rules []expiry.Rules) ([]RealmRecompute, error) {
	var out []RealmRecompute
	var errs []error
	for _, r := range rules {
		if r.Realm == nil || r.Realm.Name == "" {
			errs = append(errs, fmt.Errorf("recompute: rules without a realm: %w", spi.ErrInvalid))
			continue
		}
		name := r.Realm.Name
		started := time.Now()
		res, err := c.recomputeRealm(ctx, r)
		res.Realm, res.Duration = name, time.Since(started)
		out = append(out, res)
		c.mu.Lock()
		c.stats.SessionsRecomputed += int64(res.Sessions)
		c.stats.ClientsRecomputed += int64(res.Clients)
		if err != nil {
			c.pending[name] = r
		} else {
			delete(c.pending, name)
			if res.Changed {
				c.stats.RealmsRecomputed++
			}
		}
		c.mu.Unlock()
		args := []any{"realm", name, "scanned", res.Scanned, "sessions", res.Sessions, "clients", res.Clients, "duration", res.Duration}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("recompute the stored expiries of realm %q: %w", name, err))
			c.log.Error("stored session expiries not recomputed; cleanup waits until they are", append(args, "error", err)...)
		case res.First:
			c.log.Info("stored session expiries recomputed: no expiry rules were recorded for this realm yet", args...)
		case res.Changed:
			c.log.Info("stored session expiries recomputed: the realm's session timeouts changed", args...)
		default:
			c.log.Debug("realm timeouts unchanged", "realm", name)
		}
	}
	return out, errors.Join(errs...)
}

// retryPending recomputes the realms whose last recompute failed.
func (c *Cleaner) retryPending(ctx context.Context) error {
	c.mu.Lock()
	pending := slices.Collect(maps.Values(c.pending))
	c.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	slices.SortFunc(pending, func(a, b expiry.Rules) int { return strings.Compare(a.Realm.Name, b.Realm.Name) })
	if _, err := c.recompute(ctx, pending); err != nil {
		return fmt.Errorf("no session removed while stored expiries are stale: %w", err)
	}
	return nil
}

func (c *Cleaner) recomputeRealm(ctx context.Context, rules expiry.Rules) (RealmRecompute, error) {
	var res RealmRecompute
	name := rules.Realm.Name
	doc := describe(rules)
	fp := doc.fingerprint()
	stored, err := c.readFingerprint(ctx, name)
	if err != nil {
		return res, err
	}
	if stored != nil && fingerprintOf(stored) == fp {
		return res, nil
	}
	res.Changed, res.First = true, stored == nil
	req := usersessions.StreamRequest{
		Filter:   usersessions.Filter{RealmID: name, Offline: usersessions.Both},
		PageSize: c.opts.BatchSize,
	}
	err = c.store.Stream(ctx, req, func(page []*usersessions.UserSession) error {
		res.Scanned += len(page)
		if err := c.restamp(ctx, rules, page, &res, 1); err != nil {
			return err
		}
		return c.yield(ctx)
	})
	if err != nil {
		return res, err
	}
	value, err := json.Marshal(fingerprintRecord{Fingerprint: fp, Rules: doc, Recomputed: c.now().UTC(), Sessions: res.Sessions, Clients: res.Clients})
	if err != nil {
		return res, err
	}
	return res, c.writeFingerprint(ctx, name, fp, stored, value)
}

func (c *Cleaner) readFingerprint(ctx context.Context, name string) (*usersessions.Record, error) {
	recs, err := c.store.GetRecords(ctx, RecordKind, []string{name})
	if err != nil {
		return nil, fmt.Errorf("read the %s record: %w", RecordKind, err)
	}
	if len(recs) != 1 {
		return nil, fmt.Errorf("read the %s record: the store answered %d records for 1 key: %w", RecordKind, len(recs), spi.ErrInvalid)
	}
	return recs[0], nil
}

// writeFingerprint stores the new fingerprint over the one read before the recompute. If
// another node wrote in between, the same fingerprint is fine; another one is overwritten
// (the nodes disagree on the realm's settings, which the log says).
func (c *Cleaner) writeFingerprint(ctx context.Context, name, fp string, stored *usersessions.Record, value []byte) error {
	rec := &usersessions.Record{Kind: RecordKind, Key: name, Value: value}
	if stored != nil {
		rec.Version = stored.Version
	}
	for attempt := 1; ; attempt++ {
		_, err := c.store.PutRecord(ctx, rec)
		if err == nil || !errors.Is(err, spi.ErrConflict) || attempt == maxAttempts {
			if err != nil {
				return fmt.Errorf("store the %s record: %w", RecordKind, err)
			}
			return nil
		}
		cur, err := c.readFingerprint(ctx, name)
		if err != nil {
			return err
		}
		if cur != nil && fingerprintOf(cur) == fp {
			return nil
		}
		c.log.Warn("another node stored other expiry rules for this realm at the same time; do the nodes load the same realm settings?", "realm", name)
		rec.Version = 0
		if cur != nil {
			rec.Version = cur.Version
		}
	}
}

// restamp rewrites the expiries of a page of sessions that the rules compute differently.
// Sessions meeting a version conflict are read again and restamped, up to maxAttempts.
func (c *Cleaner) restamp(ctx context.Context, rules expiry.Rules, page []*usersessions.UserSession, res *RealmRecompute, attempt int) error {
	var updates []*usersessions.UserSession
	var puts []*usersessions.ClientSession
	var touches []usersessions.Touch
	for _, us := range page {
		if us == nil {
			continue
		}
		oldUser := us.ExpiresAt
		oldClients := make(map[string]time.Time, len(us.Clients))
		for id, cs := range us.Clients {
			oldClients[id] = cs.ExpiresAt
		}
		rules.Stamp(us)
		us.ExpiresAt = micro(us.ExpiresAt)
		switch {
		case us.ExpiresAt.After(oldUser):
			touches = append(touches, usersessions.Touch{Session: us.Key(), LastRefresh: us.LastRefresh, ExpiresAt: us.ExpiresAt})
		case us.ExpiresAt.Before(oldUser):
			updates = append(updates, us)
		}
		for _, id := range slices.Sorted(maps.Keys(us.Clients)) {
			cs := us.Clients[id]
			cs.ExpiresAt = micro(cs.ExpiresAt)
			old := oldClients[id]
			switch {
			case cs.ExpiresAt.Equal(old):
			case cs.ExpiresAt.After(old) && !cs.LastRefresh.After(us.LastRefresh):
				// The touch moves the user session too, but only where its LastRefresh
				// equals the client's and then only to a later expiry: to the one just
				// computed for it, so it is right either way.
				touches = append(touches, usersessions.Touch{Session: us.Key(), LastRefresh: cs.LastRefresh, ExpiresAt: us.ExpiresAt,
					ClientID: id, ClientExpiresAt: cs.ExpiresAt})
			default:
				cs.UserSessionID, cs.RealmID, cs.Offline, cs.ClientID = us.ID, us.RealmID, us.Offline, id
				puts = append(puts, cs)
			}
		}
	}

	retry := map[usersessions.Key]bool{}
	if len(updates) > 0 {
		errs, err := c.store.Update(ctx, updates)
		if err := perItem("rewrite user session expiries", len(updates), errs, err); err != nil {
			return err
		}
		for i, e := range errs {
			switch {
			case e == nil:
				res.Sessions++
			case errors.Is(e, spi.ErrConflict):
				retry[updates[i].Key()] = true
			case !errors.Is(e, spi.ErrNotFound): // not found: the session ended meanwhile
				return fmt.Errorf("rewrite the expiry of user session %s: %w", updates[i].ID, e)
			}
		}
	}
	if len(puts) > 0 {
		errs, err := c.store.PutClientSessions(ctx, puts)
		if err := perItem("rewrite client session expiries", len(puts), errs, err); err != nil {
			return err
		}
		for i, e := range errs {
			switch {
			case e == nil:
				res.Clients++
			case errors.Is(e, spi.ErrConflict):
				retry[puts[i].Key().Session] = true
			case !errors.Is(e, spi.ErrNotFound):
				return fmt.Errorf("rewrite the expiry of client session %s/%s: %w", puts[i].UserSessionID, puts[i].ClientID, e)
			}
		}
	}
	if len(touches) > 0 {
		errs, err := c.store.Touch(ctx, touches)
		if err := perItem("move session expiries", len(touches), errs, err); err != nil {
			return err
		}
		for i, e := range errs {
			switch {
			case e == nil && touches[i].ClientID == "":
				res.Sessions++
			case e == nil:
				res.Clients++
			case !errors.Is(e, spi.ErrNotFound):
				return fmt.Errorf("move the expiry of user session %s: %w", touches[i].Session.ID, e)
			}
		}
	}
	if len(retry) == 0 {
		return nil
	}
	if attempt >= maxAttempts {
		return fmt.Errorf("%d sessions changed under every one of %d attempts to rewrite their expiry: %w", len(retry), attempt, spi.ErrConflict)
	}
	keys := slices.SortedFunc(maps.Keys(retry), func(a, b usersessions.Key) int {
		return cmp.Or(strings.Compare(a.RealmID, b.RealmID), strings.Compare(a.ID, b.ID), compareBool(a.Offline, b.Offline))
	})
	fresh, err := c.store.Get(ctx, keys)
	if err != nil {
		return fmt.Errorf("re-read sessions changed during the recompute: %w", err)
	}
	return c.restamp(ctx, rules, fresh, res, attempt+1)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case b:
		return -1
	}
	return 1
}

// perItem checks a batch call's outcome: its own error, and one per-item result per item.
func perItem(what string, n int, errs []error, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(errs) != n {
		return fmt.Errorf("%s: the store answered %d results for %d items: %w", what, len(errs), n, spi.ErrInvalid)
	}
	return nil
}

// micro is the precision stores keep.
func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// rulesDoc is what the expiry of a stored session depends on, as stored in the record (for
// operators to read) and hashed into the fingerprint. Realm values are the effective ones,
// so leaving a setting unset and setting it to its default fingerprint alike.
type rulesDoc struct {
	Version                  int         `json:"version"`
	IdleWindow               string      `json:"idleWindow"`
	SSOSessionIdle           string      `json:"ssoSessionIdleTimeout"`
	SSOSessionMax            string      `json:"ssoSessionMaxLifespan"`
	SSOSessionIdleRememberMe string      `json:"ssoSessionIdleTimeoutRememberMe"`
	SSOSessionMaxRememberMe  string      `json:"ssoSessionMaxLifespanRememberMe"`
	ClientSessionIdle        string      `json:"clientSessionIdleTimeout"`
	ClientSessionMax         string      `json:"clientSessionMaxLifespan"`
	OfflineSessionIdle       string      `json:"offlineSessionIdleTimeout"`
	OfflineSessionMaxLimited bool        `json:"offlineSessionMaxLifespanEnabled"`
	OfflineSessionMax        string      `json:"offlineSessionMaxLifespan"`
	ClientOfflineSessionIdle string      `json:"clientOfflineSessionIdleTimeout"`
	ClientOfflineSessionMax  string      `json:"clientOfflineSessionMaxLifespan"`
	Clients                  []clientDoc `json:"clients,omitempty"`
}

// clientDoc is a client with at least one session timeout override. Clients without any
// do not change an expiry, so adding or removing one does not force a recompute.
type clientDoc struct {
	ClientID           string `json:"clientId"`
	ID                 string `json:"id,omitempty"`
	SessionIdle        string `json:"sessionIdle,omitempty"`
	SessionMax         string `json:"sessionMax,omitempty"`
	OfflineSessionIdle string `json:"offlineSessionIdle,omitempty"`
	OfflineSessionMax  string `json:"offlineSessionMax,omitempty"`
}

func describe(r expiry.Rules) rulesDoc {
	t := r.Realm.Timeouts.Effective()
	window := expiry.IdleWindow
	if r.PersistentSessions {
		window = 0
	}
	d := rulesDoc{
		Version:                  rulesVersion,
		IdleWindow:               window.String(),
		SSOSessionIdle:           t.SSOSessionIdle.String(),
		SSOSessionMax:            t.SSOSessionMax.String(),
		SSOSessionIdleRememberMe: t.SSOSessionIdleRememberMe.String(),
		SSOSessionMaxRememberMe:  t.SSOSessionMaxRememberMe.String(),
		ClientSessionIdle:        t.ClientSessionIdle.String(),
		ClientSessionMax:         t.ClientSessionMax.String(),
		OfflineSessionIdle:       t.OfflineSessionIdle.String(),
		OfflineSessionMaxLimited: t.OfflineSessionMaxLimited,
		OfflineSessionMax:        t.OfflineSessionMax.String(),
		ClientOfflineSessionIdle: t.ClientOfflineSessionIdle.String(),
		ClientOfflineSessionMax:  t.ClientOfflineSessionMax.String(),
	}
	set := func(v time.Duration) string {
		if v <= 0 {
			return ""
		}
		return v.String()
	}
	for _, c := range r.Realm.Clients {
		cd := clientDoc{ClientID: c.ClientID, SessionIdle: set(c.SessionIdle), SessionMax: set(c.SessionMax),
			OfflineSessionIdle: set(c.OfflineSessionIdle), OfflineSessionMax: set(c.OfflineSessionMax)}
		if cd.SessionIdle == "" && cd.SessionMax == "" && cd.OfflineSessionIdle == "" && cd.OfflineSessionMax == "" {
			continue
		}
		if c.ID != c.ClientID {
			cd.ID = c.ID // client sessions may be keyed by either
		}
		d.Clients = append(d.Clients, cd)
	}
	slices.SortFunc(d.Clients, func(a, b clientDoc) int {
		return strings.Compare(a.ClientID+"\x00"+a.ID, b.ClientID+"\x00"+b.ID)
	})
	return d
}

func (d rulesDoc) fingerprint() string {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // strings, ints and bools only
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// fingerprintRecord is the value of an expiry-rules record.
type fingerprintRecord struct {
	Fingerprint string    `json:"fingerprint"`
	Rules       rulesDoc  `json:"rules"`
	Recomputed  time.Time `json:"recomputed"`
	Sessions    int       `json:"sessionsRewritten"`
	Clients     int       `json:"clientSessionsRewritten"`
}

// fingerprintOf reads a stored fingerprint; "" when the value cannot be read, which
// forces a recompute.
func fingerprintOf(r *usersessions.Record) string {
	var v fingerprintRecord
	if json.Unmarshal(r.Value, &v) != nil {
		return ""
	}
	return v.Fingerprint
}
