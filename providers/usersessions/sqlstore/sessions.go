package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// keyIn is the condition "the session of alias a is one of the batch's keys"; it takes the
// arguments of a sessionKey relation.
func (s *Store) keyIn(a string) string {
	return fmt.Sprintf("(%[1]s.realm_id, %[1]s.id, %[1]s.offline) IN (SELECT k_realm_id, k_id, k_offline FROM %[2]s)", a, s.d.relation(sessionKey))
}

// keyArgs is the arguments of a sessionKey relation holding keys.
func (s *Store) keyArgs(keys []usersessions.Key) ([]any, error) {
	rows := make([][]any, len(keys))
	for i, k := range keys {
		rows[i] = keyValues(k)
	}
	return s.d.args(sessionKey, rows)
}

// load reads the user sessions selected by where (a condition on alias s, then ORDER BY
// and LIMIT as tail), and their client sessions.
func (s *Store) load(ctx context.Context, q sqlx.QueryerContext, where, tail string, args ...any) ([]*usersessions.UserSession, error) {
	var rows []sessionRow
	query := fmt.Sprintf("SELECT %s FROM user_session s WHERE %s %s", sessionSelect, where, tail)
	if err := sqlx.SelectContext(ctx, q, &rows, s.rebind(query), args...); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, nil
	}
	out := make([]*usersessions.UserSession, len(rows))
	byKey := make(map[usersessions.Key]*usersessions.UserSession, len(rows))
	keys := make([]usersessions.Key, len(rows))
	for i := range rows {
		out[i] = rows[i].session()
		keys[i] = out[i].Key()
		byKey[keys[i]] = out[i]
	}
	keyArgs, err := s.keyArgs(keys)
	if err != nil {
		return nil, err
	}
	var clients []clientRow
	query = fmt.Sprintf("SELECT %s FROM client_session c WHERE %s", clientSelect,
		fmt.Sprintf("(c.realm_id, c.user_session_id, c.offline) IN (SELECT k_realm_id, k_id, k_offline FROM %s)", s.d.relation(sessionKey)))
	if err := sqlx.SelectContext(ctx, q, &clients, s.rebind(query), keyArgs...); err != nil {
		return nil, err
	}
	for i := range clients {
		c := clients[i].client()
		byKey[c.Key().Session].Clients[c.ClientID] = c
	}
	return out, nil
}

func validKey(k usersessions.Key) error {
	if k.RealmID == "" || k.ID == "" {
		return fmt.Errorf("user session key %s: realm id and session id are required: %w", keyString(k), spi.ErrInvalid)
	}
	return nil
}

func validSession(us *usersessions.UserSession) error {
	if us == nil {
		return fmt.Errorf("nil user session: %w", spi.ErrInvalid)
	}
	if err := validKey(us.Key()); err != nil {
		return err
	}
	for cid, c := range us.Clients {
		if cid == "" || c == nil {
			return fmt.Errorf("user session %s: client session without a client id: %w", keyString(us.Key()), spi.ErrInvalid)
		}
	}
	return us.CheckText()
}

// Create implements usersessions.Provider: one transaction of two statements, the user
// sessions (a key already stored is skipped and reported), then the client sessions of
// those that were new.
func (s *Store) Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	errs := make([]error, len(sessions))
	seen := make(map[usersessions.Key]bool, len(sessions))
	var rows [][]any
	var todo []int
	for i, us := range sessions {
		if errs[i] = validSession(us); errs[i] != nil {
			continue
		}
		k := us.Key()
		if seen[k] {
			errs[i] = fmt.Errorf("user session %s given twice: %w", keyString(k), spi.ErrExists)
			continue
		}
		seen[k] = true
		rows = append(rows, sessionValues(us, 1))
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return errs, s.usable(ctx)
	}
	err := s.writeItems(ctx, "create user sessions", errs, func(w *writer) error {
		args, err := s.d.args(sessionBatch, rows)
		if err != nil {
			return err
		}
		var created []keyRow
		if err := w.query(ctx, &created, fmt.Sprintf(
			"INSERT INTO user_session (%s) SELECT %s FROM %s WHERE true ON CONFLICT DO NOTHING RETURNING realm_id, id, offline",
			sessionBatch.names(""), sessionBatch.names("k_"), s.d.relation(sessionBatch)), args...); err != nil {
			return err
		}
		isNew := make(map[usersessions.Key]bool, len(created))
		for _, r := range created {
			isNew[r.key()] = true
		}
		var clients [][]any
		for _, i := range todo {
			k := sessions[i].Key()
			if !isNew[k] {
				errs[i] = fmt.Errorf("user session %s: %w", keyString(k), spi.ErrExists)
				continue
			}
			for cid, c := range sessions[i].Clients {
				clients = append(clients, clientValues(k, cid, c, 1))
			}
			w.emit(usersessions.Change{Kind: usersessions.Upserted, Session: k})
		}
		if len(clients) == 0 {
			return nil
		}
		if args, err = s.d.args(clientBatch, clients); err != nil {
			return err
		}
		_, err = w.exec(ctx, fmt.Sprintf("INSERT INTO client_session (%s) SELECT %s FROM %s",
			clientBatch.names(""), clientBatch.names("k_"), s.d.relation(clientBatch)), args...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// Get implements usersessions.Provider: two statements on one snapshot, whatever the
// number of keys.
func (s *Store) Get(ctx context.Context, keys []usersessions.Key) ([]*usersessions.UserSession, error) {
	out := make([]*usersessions.UserSession, len(keys))
	if len(keys) == 0 {
		return out, s.usable(ctx)
	}
	// A key that cannot be stored names nothing (usersessions.CheckText).
	distinct := slices.Compact(slices.SortedFunc(storableKeys(keys), compareKeys))
	if len(distinct) == 0 {
		return out, s.usable(ctx)
	}
	var found []*usersessions.UserSession
	err := s.read(ctx, "get user sessions", func(q sqlx.QueryerContext) error {
		args, err := s.keyArgs(distinct)
		if err != nil {
			return err
		}
		found, err = s.load(ctx, q, s.keyIn("s"), "", args...)
		return err
	})
	if err != nil {
		return nil, err
	}
	byKey := make(map[usersessions.Key]*usersessions.UserSession, len(found))
	for _, us := range found {
		byKey[us.Key()] = us
	}
	handedOut := make(map[usersessions.Key]bool, len(found))
	for i, k := range keys {
		us := byKey[k]
		if us == nil {
			continue
		}
		if handedOut[k] {
			us = clone(us)
		}
		handedOut[k] = true
		out[i] = us
	}
	return out, nil
}

func compareKeys(a, b usersessions.Key) int {
	return cmp.Or(cmp.Compare(a.RealmID, b.RealmID), cmp.Compare(a.ID, b.ID), compareBool(a.Offline, b.Offline))
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// rounds splits the indexes of n items into runs in which no key repeats, keeping their
// order: a batch that names one key twice applies the second after the first, as the
// contract's item-by-item rule wants, while each run is one statement.
func rounds[K comparable](n int, key func(i int) (K, bool)) [][]int {
	var out [][]int
	seen := map[K]int{} // key → the round it was last in
	for i := range n {
		k, ok := key(i)
		if !ok {
			continue
		}
		r := 0
		if last, dup := seen[k]; dup {
			r = last + 1
		}
		seen[k] = r
		if r == len(out) {
			out = append(out, nil)
		}
		out[r] = append(out[r], i)
	}
	return out
}

// updateSet is the SET list of Update: every field but the key, the partition hash and
// the version.
var updateSet = func() string {
	var set string
	for _, c := range sessionBatch.without("realm_id", "id", "offline", "id_hash", "version") {
		set += c.name + " = k_" + c.name + ", "
	}
	return set + "version = s.version + 1"
}()

// Update implements usersessions.Provider: per round of distinct keys, one UPDATE that
// applies only where the stored version matches.
func (s *Store) Update(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	errs := make([]error, len(sessions))
	for i, us := range sessions {
		if us == nil {
			errs[i] = fmt.Errorf("nil user session: %w", spi.ErrInvalid)
		} else if err := us.CheckText(); err != nil {
			errs[i] = fmt.Errorf("update user session: %w", err)
		}
	}
	runs := rounds(len(sessions), func(i int) (usersessions.Key, bool) {
		if errs[i] != nil {
			return usersessions.Key{}, false
		}
		return sessions[i].Key(), true
	})
	if len(runs) == 0 {
		return errs, s.usable(ctx)
	}
	err := s.writeItems(ctx, "update user sessions", errs, func(w *writer) error {
		for _, run := range runs {
			rows := make([][]any, len(run))
			for j, i := range run {
				rows[j] = sessionValues(sessions[i], sessions[i].Version)
			}
			args, err := s.d.args(sessionBatch, rows)
			if err != nil {
				return err
			}
			var updated []keyRow
			if err := w.query(ctx, &updated, fmt.Sprintf(
				"UPDATE user_session AS s SET %s FROM %s WHERE s.realm_id = k_realm_id AND s.id = k_id AND s.offline = k_offline AND s.version = k_version RETURNING realm_id, id, offline",
				updateSet, s.d.relation(sessionBatch)), args...); err != nil {
				return err
			}
			done := keySet(updated)
			var missed []usersessions.Key
			for _, i := range run {
				if !done[sessions[i].Key()] {
					missed = append(missed, sessions[i].Key())
				}
			}
			stored, err := s.existing(ctx, w, missed)
			if err != nil {
				return err
			}
			for _, i := range run {
				k := sessions[i].Key()
				switch {
				case done[k]:
					w.emit(usersessions.Change{Kind: usersessions.Upserted, Session: k})
				case stored[k]:
					errs[i] = fmt.Errorf("user session %s: version %d is not the stored one: %w", keyString(k), sessions[i].Version, spi.ErrConflict)
				default:
					errs[i] = fmt.Errorf("user session %s: %w", keyString(k), spi.ErrNotFound)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

func keySet(rows []keyRow) map[usersessions.Key]bool {
	out := make(map[usersessions.Key]bool, len(rows))
	for _, r := range rows {
		out[r.key()] = true
	}
	return out
}

// existing says which of keys are stored.
func (s *Store) existing(ctx context.Context, w *writer, keys []usersessions.Key) (map[usersessions.Key]bool, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	args, err := s.keyArgs(keys)
	if err != nil {
		return nil, err
	}
	var rows []keyRow
	err = w.query(ctx, &rows, "SELECT s.realm_id, s.id, s.offline FROM user_session s WHERE "+s.keyIn("s"), args...)
	return keySet(rows), err
}

// advance is the SET list of a touch of alias a: the later LastRefresh wins with its
// expiry; of equal LastRefresh the later expiry wins, so touches commute.
func advance(a string) string {
	return fmt.Sprintf(`last_refresh = CASE WHEN k_last_refresh > %[1]s.last_refresh THEN k_last_refresh ELSE %[1]s.last_refresh END,
		expires_at = CASE WHEN k_last_refresh > %[1]s.last_refresh OR (k_last_refresh = %[1]s.last_refresh AND k_expires_at > %[1]s.expires_at)
			THEN k_expires_at ELSE %[1]s.expires_at END`, a)
}

var (
	touchSessionBatch = append(sessionKey[:len(sessionKey):len(sessionKey)], column{"last_refresh", timestamp}, column{"expires_at", timestamp})
	touchClientBatch  = append(clientKey[:len(clientKey):len(clientKey)], column{"last_refresh", timestamp}, column{"expires_at", timestamp})
)

// clock is where a touch moves an idle clock to.
type clock struct{ last, expires time.Time }

func (c clock) after(o clock) bool {
	return c.last.After(o.last) || (c.last.Equal(o.last) && c.expires.After(o.expires))
}

// latest keeps the latest clock per key.
func latest[K comparable](m map[K]clock, k K, c clock) {
	if old, ok := m[k]; !ok || c.after(old) {
		m[k] = c
	}
}

// Touch implements usersessions.Provider: the client sessions named (those missing fail
// their item), then the user sessions of the items still standing. Touches of one key in a
// batch are folded to the latest first. On PostgreSQL it is one statement (touchOne); on
// SQLite one transaction of two statements (touchTx).
func (s *Store) Touch(ctx context.Context, touches []usersessions.Touch) ([]error, error) {
	errs := make([]error, len(touches))
	clients := map[usersessions.ClientKey]clock{}
	valid := 0
	for i, t := range touches {
		if errs[i] = cmp.Or(validKey(t.Session), t.CheckText()); errs[i] != nil {
			continue
		}
		valid++
		if t.ClientID != "" {
			latest(clients, usersessions.ClientKey{Session: t.Session, ClientID: t.ClientID}, clock{t.LastRefresh, t.ClientExpiresAt})
		}
	}
	if valid == 0 {
		return errs, s.usable(ctx)
	}
	if s.oneStatement {
		return s.touchOne(ctx, touches, errs, clients)
	}
	return s.touchTx(ctx, touches, errs, clients)
}

// touchTx is Touch in one transaction of two statements; errs holds the items' validation.
func (s *Store) touchTx(ctx context.Context, touches []usersessions.Touch, errs []error, clients map[usersessions.ClientKey]clock) ([]error, error) {
	err := s.writeItems(ctx, "touch user sessions", errs, func(w *writer) error {
		touchedClients := map[usersessions.ClientKey]bool{}
		if len(clients) > 0 {
			var rows [][]any
			for k, c := range clients {
				rows = append(rows, append(clientKeyValues(k), c.last, c.expires))
			}
			args, err := s.d.args(touchClientBatch, rows)
			if err != nil {
				return err
			}
			var done []clientKeyRow
			if err := w.query(ctx, &done, fmt.Sprintf(
				"UPDATE client_session AS c SET %s FROM %s WHERE c.realm_id = k_realm_id AND c.user_session_id = k_user_session_id AND c.offline = k_offline AND c.client_id = k_client_id RETURNING realm_id, user_session_id, offline, client_id",
				advance("c"), s.d.relation(touchClientBatch)), args...); err != nil {
				return err
			}
			for _, r := range done {
				touchedClients[r.key()] = true
			}
		}
		sessions := map[usersessions.Key]clock{}
		for i, t := range touches {
			if errs[i] != nil {
				continue
			}
			if ck := (usersessions.ClientKey{Session: t.Session, ClientID: t.ClientID}); t.ClientID != "" && !touchedClients[ck] {
				errs[i] = fmt.Errorf("touch of %s: %w", clientKeyString(ck), spi.ErrNotFound)
				continue
			}
			latest(sessions, t.Session, clock{t.LastRefresh, t.ExpiresAt})
		}
		touched, err := s.touchSessions(ctx, w, sessions)
		if err != nil {
			return err
		}
		for i, t := range touches {
			if errs[i] == nil && !touched[t.Session] {
				errs[i] = fmt.Errorf("touch of user session %s: %w", keyString(t.Session), spi.ErrNotFound)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// touchSessions moves the idle clocks of user sessions in one statement and returns the
// keys of those it found.
func (s *Store) touchSessions(ctx context.Context, w *writer, sessions map[usersessions.Key]clock) (map[usersessions.Key]bool, error) {
	if len(sessions) == 0 {
		return nil, nil
	}
	var rows [][]any
	for k, c := range sessions {
		rows = append(rows, append(keyValues(k), c.last, c.expires))
	}
	args, err := s.d.args(touchSessionBatch, rows)
	if err != nil {
		return nil, err
	}
	var done []keyRow
	if err := w.query(ctx, &done, fmt.Sprintf(
		"UPDATE user_session AS s SET %s FROM %s WHERE s.realm_id = k_realm_id AND s.id = k_id AND s.offline = k_offline RETURNING realm_id, id, offline",
		advance("s"), s.d.relation(touchSessionBatch)), args...); err != nil {
		return nil, err
	}
	touched := keySet(done)
	for k := range touched {
		w.emit(usersessions.Change{Kind: usersessions.Upserted, Session: k})
	}
	return touched, nil
}

// Delete implements usersessions.Provider: one statement; client sessions go with their
// user session (ON DELETE CASCADE).
func (s *Store) Delete(ctx context.Context, keys []usersessions.Key) (int, error) {
	keys = slices.Collect(storableKeys(keys))
	if len(keys) == 0 {
		return 0, s.usable(ctx)
	}
	var gone []keyRow
	err := s.write(ctx, "delete user sessions", func(w *writer) error {
		args, err := s.keyArgs(keys)
		if err != nil {
			return err
		}
		if err := w.query(ctx, &gone, "DELETE FROM user_session AS s WHERE "+s.keyIn("s")+" RETURNING realm_id, id, offline", args...); err != nil {
			return err
		}
		for _, r := range gone {
			w.emit(usersessions.Change{Kind: usersessions.Removed, Session: r.key()})
		}
		return nil
	})
	return len(gone), err
}

// DeleteMatching implements usersessions.Provider with one DELETE of the filter.
func (s *Store) DeleteMatching(ctx context.Context, f usersessions.Filter) (int, error) {
	if err := validFilter(f); err != nil {
		return 0, err
	}
	var n int64
	err := s.write(ctx, "delete matching sessions", func(w *writer) error {
		var err error
		if f.ClientID == "" {
			where, args := s.filter(f, usersessions.Partition{})
			n, err = w.exec(ctx, "DELETE FROM user_session AS s WHERE "+where, args...)
		} else {
			// Only that client's client sessions go, of the user sessions the rest of the
			// filter selects.
			of := f
			of.ClientID = ""
			where, args := s.filter(of, usersessions.Partition{})
			n, err = w.exec(ctx, `DELETE FROM client_session AS c WHERE c.realm_id = ? AND c.client_id = ? AND EXISTS (
				SELECT 1 FROM user_session s WHERE s.realm_id = c.realm_id AND s.id = c.user_session_id AND s.offline = c.offline AND `+where+")",
				append([]any{f.RealmID, f.ClientID}, args...)...)
		}
		if err == nil && n > 0 {
			w.emit(usersessions.Change{Kind: usersessions.Flushed, Filter: f})
		}
		return err
	})
	return int(n), err
}

// DeleteExpired implements usersessions.Provider. Each part is one DELETE of a bounded
// range scan on the expires_hour index (expires_at is not indexed, so that a refresh is a
// heap-only update; migration 00002), oldest hour first (on PostgreSQL skipping rows another
// node is deleting). clients counts the client sessions that expired on their own; those
// that went with their user session are not counted.
func (s *Store) DeleteExpired(ctx context.Context, before time.Time, limit int) (users, clients int, err error) {
	if limit <= 0 {
		return 0, 0, fmt.Errorf("delete expired: limit %d must be positive: %w", limit, spi.ErrInvalid)
	}
	cutoff, hour := s.d.bindTime(before), s.d.bindTime(before.UTC().Truncate(time.Hour))
	err = s.write(ctx, "delete expired sessions", func(w *writer) error {
		var gone []keyRow
		if err := w.query(ctx, &gone, `DELETE FROM user_session WHERE (realm_id, id, offline) IN (
			SELECT realm_id, id, offline FROM user_session WHERE expires_hour <= ? AND expires_at < ? ORDER BY expires_hour LIMIT ?`+s.d.skipLocked()+`)
			RETURNING realm_id, id, offline`, hour, cutoff, limit); err != nil {
			return err
		}
		for _, r := range gone {
			w.emit(usersessions.Change{Kind: usersessions.Removed, Session: r.key()})
		}
		var goneClients []clientKeyRow
		if err := w.query(ctx, &goneClients, `DELETE FROM client_session WHERE (realm_id, user_session_id, offline, client_id) IN (
			SELECT realm_id, user_session_id, offline, client_id FROM client_session WHERE expires_hour <= ? AND expires_at < ? ORDER BY expires_hour LIMIT ?`+s.d.skipLocked()+`)
			RETURNING realm_id, user_session_id, offline, client_id`, hour, cutoff, limit); err != nil {
			return err
		}
		for _, r := range goneClients {
			k := r.key()
			w.emit(usersessions.Change{Kind: usersessions.Removed, Session: k.Session, ClientID: k.ClientID})
		}
		users, clients = len(gone), len(goneClients)
		return nil
	})
	return users, clients, err
}

// List implements usersessions.Provider: keyset paging on the primary key (realm, id,
// offline). With usersessions.Both a page keeps the online and offline sessions of its
// last id together, so it may hold Limit+1 sessions.
func (s *Store) List(ctx context.Context, f usersessions.Filter, p usersessions.Page) ([]*usersessions.UserSession, error) {
	if err := validFilter(f); err != nil {
		return nil, err
	}
	if err := p.CheckText(); err != nil {
		return nil, fmt.Errorf("list user sessions: %w", err)
	}
	limit := p.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	fetch := limit
	if f.Offline == usersessions.Both {
		fetch++
	}
	where, args := s.filter(f, usersessions.Partition{})
	var page []*usersessions.UserSession
	err := s.read(ctx, "list user sessions", func(q sqlx.QueryerContext) error {
		var err error
		page, err = s.load(ctx, q, where+" AND s.id > ?", "ORDER BY s.id, s.offline LIMIT ?", append(args, p.After, fetch)...)
		return err
	})
	if len(page) > limit && page[limit].ID != page[limit-1].ID {
		page = page[:limit]
	}
	return page, err
}

// Count implements usersessions.Provider.
func (s *Store) Count(ctx context.Context, f usersessions.Filter) (int64, error) {
	if err := validFilter(f); err != nil {
		return 0, err
	}
	where, args := s.filter(f, usersessions.Partition{})
	var n []int64
	err := s.query(ctx, "count user sessions", &n, "SELECT count(*) FROM user_session s WHERE "+where, args...)
	if err != nil || len(n) == 0 {
		return 0, err
	}
	return n[0], nil
}

// CountByClient implements usersessions.Provider from the (realm, client, offline) index
// of client_session; with liveAt, each counted row is joined to its user session by primary
// key for the session's own expiry.
func (s *Store) CountByClient(ctx context.Context, realmID string, offline bool, liveAt time.Time) (map[string]int64, error) {
	if realmID == "" {
		return nil, fmt.Errorf("count by client: realm id is required: %w", spi.ErrInvalid)
	}
	if err := usersessions.CheckText("realm id", realmID); err != nil {
		return nil, fmt.Errorf("count by client: %w", err)
	}
	var rows []struct {
		ClientID string `db:"client_id"`
		N        int64  `db:"n"`
	}
	var err error
	if liveAt.IsZero() {
		err = s.query(ctx, "count sessions by client", &rows,
			"SELECT client_id, count(*) AS n FROM client_session WHERE realm_id = ? AND offline = ? GROUP BY client_id", realmID, offline)
	} else {
		at := s.d.bindTime(liveAt)
		err = s.query(ctx, "count sessions by client", &rows,
			`SELECT c.client_id, count(*) AS n FROM client_session c JOIN user_session s
			ON s.realm_id = c.realm_id AND s.id = c.user_session_id AND s.offline = c.offline
			WHERE c.realm_id = ? AND c.offline = ? AND c.expires_at > ? AND s.expires_at > ? GROUP BY c.client_id`, realmID, offline, at, at)
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.ClientID] = r.N
	}
	return out, nil
}

// partitionBounds is the id_hash range [lo, hi) of partition p: idHash is in [0, 2³¹).
func partitionBounds(p usersessions.Partition) (lo, hi int64) {
	const space = int64(1) << 31
	return space * int64(p.Index) / int64(p.Count), space * int64(p.Index+1) / int64(p.Count)
}

func validFilter(f usersessions.Filter) error {
	if f.RealmID == "" {
		return fmt.Errorf("session filter: realm id is required: %w", spi.ErrInvalid)
	}
	if err := f.CheckText(); err != nil {
		return fmt.Errorf("session filter: %w", err)
	}
	return nil
}

// storableKeys are the keys that could name a stored session.
func storableKeys(keys []usersessions.Key) iter.Seq[usersessions.Key] {
	return func(yield func(usersessions.Key) bool) {
		for _, k := range keys {
			if k.Storable() && !yield(k) {
				return
			}
		}
	}
}

// filter is the condition on alias s that selects f's sessions in partition p, and its
// arguments.
func (s *Store) filter(f usersessions.Filter, p usersessions.Partition) (string, []any) {
	where, args := "s.realm_id = ?", []any{f.RealmID}
	and := func(cond string, arg ...any) {
		where += " AND " + cond
		args = append(args, arg...)
	}
	switch f.Offline {
	case usersessions.OnlineOnly:
		and("s.offline = ?", false)
	case usersessions.OfflineOnly:
		and("s.offline = ?", true)
	}
	if f.UserID != "" {
		and("s.user_id = ?", f.UserID)
	}
	if f.ClientID != "" {
		if f.LiveAt.IsZero() {
			and(`EXISTS (SELECT 1 FROM client_session c WHERE c.realm_id = s.realm_id AND c.user_session_id = s.id
			AND c.offline = s.offline AND c.client_id = ?)`, f.ClientID)
		} else {
			and(`EXISTS (SELECT 1 FROM client_session c WHERE c.realm_id = s.realm_id AND c.user_session_id = s.id
			AND c.offline = s.offline AND c.client_id = ? AND c.expires_at > ?)`, f.ClientID, s.d.bindTime(f.LiveAt))
		}
	}
	if !f.LiveAt.IsZero() {
		and("s.expires_at > ?", s.d.bindTime(f.LiveAt))
	}
	if !f.ActiveSince.IsZero() {
		// refresh_day is what the index holds (migration 00002): the day's bucket bounds the
		// scan, last_refresh decides.
		and("s.refresh_day >= ? AND s.last_refresh >= ?", s.d.bindTime(f.ActiveSince.UTC().Truncate(24*time.Hour)), s.d.bindTime(f.ActiveSince))
	}
	if p.Count > 1 {
		// A range of the hash, which the planner estimates from the column's statistics
		// (1/Count of the rows). "id_hash % Count = Index" selects the same share, but the
		// planner guesses it at 0.5% and, below a page's LIMIT, reads the whole table and
		// sorts it for every page.
		lo, hi := partitionBounds(p)
		if p.Index == p.Count-1 {
			and("s.id_hash >= ?", lo) // hi is 2³¹, beyond the column's type
		} else {
			and("s.id_hash >= ? AND s.id_hash < ?", lo, hi)
		}
	}
	return where, args
}
