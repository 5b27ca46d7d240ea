package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// clientKeyIn is the condition "the client session of alias c is one of the batch's keys";
// it takes the arguments of a clientKey relation.
func (s *Store) clientKeyIn() string {
	return fmt.Sprintf(`(c.realm_id, c.user_session_id, c.offline, c.client_id) IN (
		SELECT k_realm_id, k_user_session_id, k_offline, k_client_id FROM %s)`, s.d.relation(clientKey))
}

func (s *Store) clientKeyArgs(keys []usersessions.ClientKey) ([]any, error) {
	rows := make([][]any, len(keys))
	for i, k := range keys {
		rows[i] = clientKeyValues(k)
	}
	return s.d.args(clientKey, rows)
}

// clientReplaceSet is the SET list of a client-session replace: every field but the key,
// and the version moved on.
var clientReplaceSet = func() string {
	var set string
	for _, c := range clientBatch.without("realm_id", "user_session_id", "offline", "client_id", "version") {
		set += c.name + " = k_" + c.name + ", "
	}
	return set + "version = c.version + 1"
}()

// stored is what PutClientSessions finds before it writes: whether the user session is
// there, and the client session's version (0: absent).
type storedClient struct {
	clientKeyRow
	Parent  int64 `db:"parent"`
	Version int64 `db:"version"`
}

func (s *Store) storedClients(ctx context.Context, w *writer, keys []usersessions.ClientKey) (map[usersessions.ClientKey]storedClient, error) {
	args, err := s.clientKeyArgs(keys)
	if err != nil {
		return nil, err
	}
	var rows []storedClient
	err = w.query(ctx, &rows, fmt.Sprintf(`SELECT k_realm_id AS realm_id, k_user_session_id AS user_session_id, k_offline AS offline, k_client_id AS client_id,
		COALESCE((SELECT 1 FROM user_session s WHERE s.realm_id = k_realm_id AND s.id = k_user_session_id AND s.offline = k_offline), 0) AS parent,
		COALESCE((SELECT c.version FROM client_session c WHERE c.realm_id = k_realm_id AND c.user_session_id = k_user_session_id
			AND c.offline = k_offline AND c.client_id = k_client_id), 0) AS version
		FROM %s`, s.d.relation(clientKey)), args...)
	out := make(map[usersessions.ClientKey]storedClient, len(rows))
	for _, r := range rows {
		out[r.key()] = r
	}
	return out, err
}

// PutClientSessions implements usersessions.Provider. Per round of distinct keys: one UPDATE
// of the replaced client sessions, which applies only where the stored version still
// matches; then, for what it did not write and the new ones, one read of what is stored
// and one INSERT of the new client sessions. Two nodes rotating
// the same refresh token therefore cannot both win: the second UPDATE waits for the first
// one's row lock, then finds the version moved on.
func (s *Store) PutClientSessions(ctx context.Context, clients []*usersessions.ClientSession) ([]error, error) {
	errs, runs := checkClients(clients)
	if len(runs) == 0 {
		return errs, s.usable(ctx)
	}
	err := s.writeItems(ctx, "put client sessions", errs, func(w *writer) error {
		for _, run := range runs {
			if err := s.putClients(ctx, w, clients, run, errs); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// Rotate implements usersessions.Rotator: the client sessions as PutClientSessions writes
// them, then one UPDATE of the user sessions of those written, as Touch moves them, so
// that a refresh with rotation waits for one commit. On PostgreSQL a batch of replaces
// of distinct client sessions, a refresh's, is one statement (rotateOne); anything else,
// and SQLite, is one transaction (rotateTx).
func (s *Store) Rotate(ctx context.Context, rotations []usersessions.Rotation) ([]error, error) {
	clients := make([]*usersessions.ClientSession, len(rotations))
	for i, r := range rotations {
		clients[i] = r.Client
	}
	errs, runs := checkClients(clients)
	if len(runs) == 0 {
		return errs, s.usable(ctx)
	}
	if s.oneStatement && len(runs) == 1 && !slices.ContainsFunc(runs[0], func(i int) bool { return clients[i].Version == 0 }) {
		return s.rotateOne(ctx, rotations, errs, runs[0])
	}
	return s.rotateTx(ctx, rotations, clients, errs, runs)
}

// rotateTx is Rotate in one transaction; errs holds the items' validation and runs the
// rounds of distinct keys of the valid ones.
func (s *Store) rotateTx(ctx context.Context, rotations []usersessions.Rotation, clients []*usersessions.ClientSession, errs []error, runs [][]int) ([]error, error) {
	err := s.writeItems(ctx, "rotate client sessions", errs, func(w *writer) error {
		for _, run := range runs {
			if err := s.putClients(ctx, w, clients, run, errs); err != nil {
				return err
			}
		}
		sessions := map[usersessions.Key]clock{}
		for i, r := range rotations {
			if errs[i] == nil {
				latest(sessions, r.Client.Key().Session, clock{r.LastRefresh, r.ExpiresAt})
			}
		}
		touched, err := s.touchSessions(ctx, w, sessions)
		if err != nil {
			return err
		}
		for i, r := range rotations {
			if errs[i] == nil && !touched[r.Client.Key().Session] {
				// Not reached: the client session just written has its user session.
				return fmt.Errorf("rotation of %s: user session %w", clientKeyString(r.Client.Key()), spi.ErrNotFound)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// checkClients validates client sessions to put: one error per client, and the rounds of
// distinct keys of the valid ones.
func checkClients(clients []*usersessions.ClientSession) ([]error, [][]int) {
	errs := make([]error, len(clients))
	for i, c := range clients {
		switch {
		case c == nil:
			errs[i] = fmt.Errorf("nil client session: %w", spi.ErrInvalid)
		case c.ClientID == "":
			errs[i] = fmt.Errorf("client session of %s without a client id: %w", keyString(c.Key().Session), spi.ErrInvalid)
		case c.Version < 0:
			errs[i] = fmt.Errorf("%s: negative version %d: %w", clientKeyString(c.Key()), c.Version, spi.ErrInvalid)
		default:
			errs[i] = cmp.Or(validKey(c.Key().Session), c.CheckText())
		}
	}
	runs := rounds(len(clients), func(i int) (usersessions.ClientKey, bool) {
		if errs[i] != nil {
			return usersessions.ClientKey{}, false
		}
		return clients[i].Key(), true
	})
	return errs, runs
}

// putClients writes the clients at indexes run, whose keys are distinct. A refresh's
// rotation is a replace whose version is the stored one: the UPDATE alone writes it, and
// only what that UPDATE did not write (and the new client sessions) is read to tell why,
// or to check the parent before the INSERT.
func (s *Store) putClients(ctx context.Context, w *writer, clients []*usersessions.ClientSession, run []int, errs []error) error {
	done := map[usersessions.ClientKey]bool{}
	var replaces [][]any
	for _, i := range run {
		if c := clients[i]; c.Version > 0 {
			k := c.Key()
			replaces = append(replaces, clientValues(k.Session, k.ClientID, c, c.Version))
		}
	}
	if err := s.putStep(ctx, w, replaces, fmt.Sprintf(`UPDATE client_session AS c SET %s FROM %s WHERE c.realm_id = k_realm_id AND c.user_session_id = k_user_session_id
			AND c.offline = k_offline AND c.client_id = k_client_id AND c.version = k_version RETURNING realm_id, user_session_id, offline, client_id`,
		clientReplaceSet, s.d.relation(clientBatch)), done); err != nil {
		return err
	}
	var unread []usersessions.ClientKey
	for _, i := range run {
		if k := clients[i].Key(); !done[k] {
			unread = append(unread, k)
		}
	}
	if len(unread) == 0 {
		for _, i := range run {
			k := clients[i].Key()
			w.emit(usersessions.Change{Kind: usersessions.Upserted, Session: k.Session, ClientID: k.ClientID})
		}
		return nil
	}
	stored, err := s.storedClients(ctx, w, unread)
	if err != nil {
		return err
	}
	var creates [][]any
	for _, i := range run {
		c, k := clients[i], clients[i].Key()
		if done[k] {
			continue
		}
		st := stored[k]
		switch {
		case st.Parent == 0:
			errs[i] = fmt.Errorf("%s: user session %w", clientKeyString(k), spi.ErrNotFound)
		case c.Version == 0 && st.Version != 0:
			errs[i] = fmt.Errorf("%s: %w", clientKeyString(k), spi.ErrExists)
		case c.Version == 0:
			creates = append(creates, clientValues(k.Session, k.ClientID, c, 1))
		case st.Version == 0:
			errs[i] = fmt.Errorf("%s: %w", clientKeyString(k), spi.ErrNotFound)
		default:
			errs[i] = fmt.Errorf("%s: version %d is not the stored one: %w", clientKeyString(k), c.Version, spi.ErrConflict)
		}
	}
	if err := s.putStep(ctx, w, creates, fmt.Sprintf("INSERT INTO client_session (%s) SELECT %s FROM %s WHERE true ON CONFLICT DO NOTHING RETURNING realm_id, user_session_id, offline, client_id",
		clientBatch.names(""), clientBatch.names("k_"), s.d.relation(clientBatch)), done); err != nil {
		return err
	}
	for _, i := range run {
		k := clients[i].Key()
		switch {
		case errs[i] != nil:
		case done[k]:
			w.emit(usersessions.Change{Kind: usersessions.Upserted, Session: k.Session, ClientID: k.ClientID})
		default: // a create another writer made since the read
			errs[i] = fmt.Errorf("%s: %w", clientKeyString(k), spi.ErrExists)
		}
	}
	return nil
}

// putStep runs query over rows, if any, and marks the keys it returns in done.
func (s *Store) putStep(ctx context.Context, w *writer, rows [][]any, query string, done map[usersessions.ClientKey]bool) error {
	if len(rows) == 0 {
		return nil
	}
	args, err := s.d.args(clientBatch, rows)
	if err != nil {
		return err
	}
	var written []clientKeyRow
	if err := w.query(ctx, &written, query, args...); err != nil {
		return err
	}
	for _, r := range written {
		done[r.key()] = true
	}
	return nil
}

// DeleteClientSessions implements usersessions.Provider in one statement.
func (s *Store) DeleteClientSessions(ctx context.Context, keys []usersessions.ClientKey) error {
	// A key that cannot be stored names nothing (usersessions.CheckText).
	keys = slices.DeleteFunc(slices.Clone(keys), func(k usersessions.ClientKey) bool { return !k.Storable() })
	if len(keys) == 0 {
		return s.usable(ctx)
	}
	return s.write(ctx, "delete client sessions", func(w *writer) error {
		args, err := s.clientKeyArgs(keys)
		if err != nil {
			return err
		}
		var gone []clientKeyRow
		if err := w.query(ctx, &gone, "DELETE FROM client_session AS c WHERE "+s.clientKeyIn()+" RETURNING realm_id, user_session_id, offline, client_id", args...); err != nil {
			return err
		}
		for _, r := range gone {
			k := r.key()
			w.emit(usersessions.Change{Kind: usersessions.Removed, Session: k.Session, ClientID: k.ClientID})
		}
		return nil
	})
}
