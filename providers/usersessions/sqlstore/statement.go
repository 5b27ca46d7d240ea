package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// The writes of a refresh on PostgreSQL: Touch and Rotate are each one statement sent
// without BEGIN and COMMIT, so PostgreSQL runs it in an implicit transaction that commits
// when the statement ends. Data-modifying CTEs update the client sessions (c), then the
// user sessions of the items whose client session was written (s, reading c's RETURNING),
// then notify the change feed of the rows written (n, reading both); the statement returns
// the keys written, from which the items' results follow. One round trip where the
// transaction took five, and a connection that is never idle inside a transaction. The
// statement is prepared once per connection (statements), as parsing and planning it at
// every call cost more than the round trips saved.
//
// The notification's payloads are built in Go (Notes, from the provider's feed) for every
// change the batch could make, each change a part with the payload it goes in; the
// statement joins the parts of the rows it wrote, payload by payload. When every row is
// written, as in the common case, the payloads are those Stage sends; when some are not,
// each payload only loses parts, so it still fits a notification. Formatting the payload
// in SQL per row instead would duplicate the feed's encoding in SQL and send one
// notification per row.
//
// The statement is its own commit: an answer lost after it was sent leaves its outcome
// unknown, as a lost COMMIT answer does (statement).

// statement runs fn, which sends one statement on conn, as a write: in the statement's
// implicit transaction, under the write guard and the write timeout.
//
// The server's ERROR in answer to the statement (a *pq.Error of severity ERROR, the
// query_canceled of the write timeout's cancel included) rolled its implicit transaction
// back: the statement's end would have been its commit. Such a failure is known, and
// one that Config.Retryable says a new attempt may not meet (a deadlock, a serialization
// failure) is sent again, at most writeAttempts times in all, as write does. Any other
// failure after the statement may have reached the database wraps
// usersessions.ErrOutcomeUnknown: a lost connection, a FATAL or PANIC (the server ending
// the session, perhaps after the commit), a time that ran out with no answer, or a commit
// that waited past the time for a synchronous standby (the server's WARNING, after which
// the statement ends as applied locally). stale says it is a connection lib/pq found dead
// (driver.ErrBadConn: most often a pooled connection the server closed, which a
// transaction's BEGIN would have found and replaced unseen), after which the caller writes
// again in a transaction, whose BEGIN is retried on another connection.
func (s *Store) statement(ctx context.Context, op string, fn func(ctx context.Context, conn *sqlx.Conn) error) (stale bool, err error) {
	if err := s.usable(ctx); err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	if s.guard != nil {
		if err := s.guard(ctx); err != nil {
			return false, fmt.Errorf("%s: %w", op, err)
		}
	}
	if s.writeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.writeTimeout)
		defer cancel()
	}
	// A connection of its own, taken before the statement: failing to get one (a refused
	// dial) sends nothing. Through the pool's QueryContext instead, database/sql would
	// send the statement again after driver.ErrBadConn, which lib/pq also reports once the
	// statement has gone out, and a rotation applied twice fails its version check.
	conn, err := s.w.Connx(ctx)
	if err != nil {
		return false, s.fail(ctx, op, err)
	}
	defer conn.Close()
	for attempt := 1; ; attempt++ {
		err := fn(ctx, conn)
		if err == nil {
			break
		}
		// An ERROR leaves the connection ready for the next statement.
		if refused(err) && s.retryable(err) && s.again(ctx, op, attempt, err) {
			continue
		}
		return s.statementFailed(ctx, op, err)
	}
	if err := ctx.Err(); err != nil {
		// As in write: the commit of the implicit transaction waited past the time and was
		// cancelled, local but unconfirmed by synchronous standbys.
		return false, fmt.Errorf("%s: %w: %w while the commit waited (it is applied locally, its replication unconfirmed)", op, usersessions.ErrOutcomeUnknown, err)
	}
	return false, nil
}

// statementFailed is the failure of statement's one statement, err: stale and the
// error to return.
func (s *Store) statementFailed(ctx context.Context, op string, err error) (stale bool, _ error) {
	switch {
	case refused(err) && ctx.Err() != nil:
		// The write timeout's cancel, answered (query_canceled): the error wraps both.
		return false, fmt.Errorf("%s: %w (%w)", op, ctx.Err(), s.errs(err))
	case refused(err):
		return false, s.fail(ctx, op, err)
	case ctx.Err() != nil:
		return false, fmt.Errorf("%s: %w: %w (%w)", op, usersessions.ErrOutcomeUnknown, ctx.Err(), err)
	case errors.Is(err, driver.ErrBadConn):
		return true, fmt.Errorf("%s: %w: %w", op, usersessions.ErrOutcomeUnknown, err)
	case s.unanswered(err):
		return false, fmt.Errorf("%s: %w: %w", op, usersessions.ErrOutcomeUnknown, err)
	}
	return false, s.fail(ctx, op, err)
}

// refused says whether err is the server's ERROR in answer to a statement, which ends
// the statement's transaction without applying it. lib/pq's Severity is the field the
// server localizes (lc_messages): on a server that does not speak English, no error is
// seen as refused, and the outcome stays unknown, which is the safe side.
func refused(err error) bool {
	e := pq.As(err)
	return e != nil && e.Severity == "ERROR"
}

// written is a key the statement wrote: What is "c" for a client session, "s" for a user
// session (ClientID empty), "n" for the count of notifications sent.
type written struct {
	What string `db:"what"`
	clientKeyRow
}

// The batches of the statement beside touchClientBatch and clientBatch: the items whose
// user sessions s moves (ClientID "" for a touch of the user session alone), and the parts
// of the notification, each with the key of the change it tells of.
var (
	itemBatch = append(sessionKey[:len(sessionKey):len(sessionKey)], column{"client_id", text}, column{"last_refresh", timestamp}, column{"expires_at", timestamp})
	noteBatch = batch{{"realm_id", text}, {"id", text}, {"offline", boolean}, {"client_id", text}, {"part", text}, {"chunk", integer}, {"ord", integer}}
)

// refreshStatement is the SQL of Touch's and Rotate's statement. clients is the UPDATE of
// the client sessions (alias c, returning their keys); standing is the condition on an
// item (alias k, of itemBatch) that lets it move its user session, which may read c.
// The statement returns written rows. Its arguments: the client batch's, the items', then
// notifyArgs.
func (s *Store) refreshStatement(clients, standing string) string {
	var q strings.Builder
	fmt.Fprintf(&q, `WITH c AS (%s),
	s AS (UPDATE user_session AS s SET %s FROM (
		SELECT DISTINCT ON (k_realm_id, k_id, k_offline) k_realm_id, k_id, k_offline, k_last_refresh, k_expires_at FROM %s
		WHERE %s ORDER BY k_realm_id, k_id, k_offline, k_last_refresh DESC, k_expires_at DESC) AS k
		WHERE s.realm_id = k_realm_id AND s.id = k_id AND s.offline = k_offline RETURNING realm_id, id, offline)`,
		clients, advance("s"), unsizedRelation(itemBatch), standing)
	if s.inline != nil {
		// A part of a client session's change is sent if c wrote that client session, a
		// user session's if s wrote that user session.
		fmt.Fprintf(&q, `,
	n AS (SELECT pg_notify(?::text, ?::text || string_agg(k_part, ',' ORDER BY k_ord) || ?::text) FROM %s
		WHERE CASE WHEN k_client_id = '' THEN (k_realm_id, k_id, k_offline) IN (SELECT realm_id, id, offline FROM s)
			ELSE (k_realm_id, k_id, k_offline, k_client_id) IN (SELECT realm_id, user_session_id, offline, client_id FROM c) END
		GROUP BY k_chunk)`, unsizedRelation(noteBatch))
	}
	q.WriteString(`
	SELECT 'c' AS what, realm_id, user_session_id, offline, client_id FROM c
	UNION ALL SELECT 's', realm_id, id, offline, '' FROM s`)
	if s.inline != nil {
		// n is a plain SELECT: it runs only as far as it is read.
		q.WriteString(`
	UNION ALL SELECT 'n', '', '', false, count(*)::text FROM n`)
	}
	return q.String()
}

// unsizedRelation is b's relation on PostgreSQL (Dialect.relation) with each array behind
// a scalar sub-select, so that no plan of the prepared statement knows the batch's length.
// Seeing the arrays, PostgreSQL's custom plans estimate the batch's rows, and for a batch
// of one, the common refresh, such a plan costs less than the generic plan (which guesses
// 10 rows per array): the plan cache then never settles on the generic plan and plans the
// statement again at every call (about 0.5 ms, 0.4 to 1, as much as executing it). Unsized,
// custom and generic plans cost the same, and the plan cache counts planning against a
// custom plan, so after its first five calls the statement keeps the generic plan: a probe
// of the primary key per row (nested loop), at a million rows as at a thousand. The
// sub-selects run once each, as init plans.
func unsizedRelation(b batch) string {
	names := make([]string, len(b))
	args := make([]string, len(b))
	for i, c := range b {
		names[i] = "k_" + c.name
		args[i] = "(SELECT ?::" + c.typ.postgres() + "[])"
	}
	return fmt.Sprintf("unnest(%s) AS k(%s)", strings.Join(args, ", "), strings.Join(names, ", "))
}

// notifyArgs are the arguments of the statement's n for changes, of which it makes some.
func (s *Store) notifyArgs(changes []usersessions.Change) ([]any, error) {
	if s.inline == nil {
		return nil, nil
	}
	for i := range changes {
		changes[i].Origin = s.origin
	}
	notes, err := s.inline.Inline(changes)
	if err != nil {
		return nil, err
	}
	if len(notes.Parts) != len(changes) || len(notes.Chunks) != len(changes) {
		return nil, fmt.Errorf("change feed: %d parts in %d chunks for %d changes: %w", len(notes.Parts), len(notes.Chunks), len(changes), spi.ErrInvalid)
	}
	rows := make([][]any, len(changes))
	for i, c := range changes {
		rows[i] = []any{c.Session.RealmID, c.Session.ID, c.Session.Offline, c.ClientID, notes.Parts[i], notes.Chunks[i], int64(i)}
	}
	args, err := s.d.args(noteBatch, rows)
	if err != nil {
		return nil, err
	}
	return append([]any{notes.Channel, notes.Head, notes.Tail}, args...), nil
}

// statements holds the refresh statements prepared on each connection of the pool.
//
// lib/pq sends a statement with arguments unnamed, so that PostgreSQL parses and plans it
// at every call; a refresh's statement, with its CTEs, costs more to parse and plan than the
// four round trips it saves (about 2.0 ms against 0.9 ms for the transaction's five
// commands on a loaded 2-core machine). Prepared once per connection, it is parsed once,
// and planned once PostgreSQL's plan cache settles on a generic plan (which
// unsizedRelation makes it do). database/sql's Stmt would prepare it too, but it executes
// a statement again on another connection after driver.ErrBadConn, which lib/pq also
// reports once the statement has gone out; hence the driver's connection, through
// sql.Conn.Raw, and this cache by connection.
type statements struct {
	mu sync.Mutex
	m  map[any]map[string]driver.Stmt // by driver connection, then text
}

// maxPreparedConns bounds the connections statements remembers: a connection the pool
// closed is never seen again, so past it the memory is cleared (the statements of live
// connections are prepared again, under new names).
const maxPreparedConns = 256

// query runs q, prepared on dc if it was not yet, with args, and returns its rows.
//
// A statement the server no longer has fails with invalid_sql_statement_name (26000)
// without running: an operator's DEALLOCATE ALL or DISCARD ALL, or a pooler's
// server_reset_query, dropped the connection's prepared statements. Then every statement
// remembered for dc is forgotten (the server most likely has none of them), q is prepared
// again and run once more; a second failure is returned (a pooler in transaction mode,
// which may run the statement on another server connection than the one it was prepared
// on, fails again and again; see docs/operator-guide.md).
func (st *statements) query(ctx context.Context, dc any, q string, args []any) ([]written, error) {
	values := make([]driver.NamedValue, len(args))
	for i, a := range args {
		if v, ok := a.(driver.Valuer); ok {
			var err error
			if a, err = v.Value(); err != nil {
				return nil, err
			}
		}
		values[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	stmt, err := st.prepare(ctx, dc, q)
	if err != nil {
		return nil, err
	}
	out, err := run(ctx, stmt, values)
	if pq.As(err, pqerror.InvalidSQLStatementName) == nil {
		return out, err
	}
	st.forget(dc)
	if stmt, err = st.prepare(ctx, dc, q); err != nil {
		return nil, err
	}
	return run(ctx, stmt, values)
}

// prepare returns q prepared on dc, preparing it if it was not yet.
func (st *statements) prepare(ctx context.Context, dc any, q string) (driver.Stmt, error) {
	st.mu.Lock()
	stmt := st.m[dc][q]
	st.mu.Unlock()
	if stmt != nil {
		return stmt, nil
	}
	pc, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("driver connection %T cannot prepare: %w", dc, spi.ErrInvalid)
	}
	stmt, err := pc.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.m == nil || len(st.m) >= maxPreparedConns {
		st.m = map[any]map[string]driver.Stmt{}
	}
	if st.m[dc] == nil {
		st.m[dc] = map[string]driver.Stmt{}
	}
	st.m[dc][q] = stmt
	return stmt, nil
}

// forget drops the statements remembered for dc, which its server no longer has. They are
// not closed: closing a statement the server does not have costs a round trip for nothing
// (and the server's memory of any it still has ends with the connection).
func (st *statements) forget(dc any) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, dc)
}

// run executes the prepared stmt with values and returns its rows.
func run(ctx context.Context, stmt driver.Stmt, values []driver.NamedValue) ([]written, error) {
	sq, ok := stmt.(driver.StmtQueryContext)
	if !ok {
		return nil, fmt.Errorf("driver statement %T cannot query: %w", stmt, spi.ErrInvalid)
	}
	rs, err := sq.QueryContext(ctx, values)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []written
	dest := make([]driver.Value, 5)
	for {
		switch err := rs.Next(dest); {
		case errors.Is(err, io.EOF):
			return out, nil
		case err != nil:
			return nil, err
		}
		offline, _ := dest[3].(bool)
		out = append(out, written{What: asText(dest[0]), clientKeyRow: clientKeyRow{RealmID: asText(dest[1]), UserSessionID: asText(dest[2]), Offline: offline, ClientID: asText(dest[4])}})
	}
}

// asText is a text column as the driver hands it.
func asText(v driver.Value) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

// runRefresh sends the statement q with args and returns the client and user sessions it
// wrote; the changes of those, of the candidates given, are published.
func (s *Store) runRefresh(ctx context.Context, op, q string, args []any, candidates []usersessions.Change) (clients map[usersessions.ClientKey]bool, sessions map[usersessions.Key]bool, stale bool, err error) {
	var rows []written
	stale, err = s.statement(ctx, op, func(ctx context.Context, conn *sqlx.Conn) error {
		return conn.Raw(func(dc any) error {
			var err error
			rows, err = s.prepared.query(ctx, dc, s.rebind(q), args)
			return err
		})
	})
	if err != nil {
		return nil, nil, stale, err
	}
	clients, sessions = map[usersessions.ClientKey]bool{}, map[usersessions.Key]bool{}
	for _, r := range rows {
		switch r.What {
		case "c":
			clients[r.key()] = true
		case "s":
			sessions[r.key().Session] = true
		}
	}
	var made []usersessions.Change
	for _, c := range candidates {
		if (c.ClientID == "" && sessions[c.Session]) || (c.ClientID != "" && clients[usersessions.ClientKey{Session: c.Session, ClientID: c.ClientID}]) {
			c.Origin = s.origin
			made = append(made, c)
		}
	}
	if len(made) > 0 {
		s.feed.Publish(made)
	}
	return clients, sessions, false, nil
}

// touchOne is Touch in one statement (see above). Should the statement meet a dead
// connection, the touch is made again in a transaction, within the same time: touches
// commute, so applying one twice changes nothing.
func (s *Store) touchOne(ctx context.Context, touches []usersessions.Touch, errs []error, clients map[usersessions.ClientKey]clock) ([]error, error) {
	const op = "touch user sessions"
	if s.writeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.writeTimeout)
		defer cancel()
	}
	clientRows := make([][]any, 0, len(clients))
	for k, c := range clients {
		clientRows = append(clientRows, append(clientKeyValues(k), c.last, c.expires))
	}
	// An item stands or falls with its client session, so the items of one user session
	// and client are folded to the latest here, and the statement folds those that stand.
	type itemKey struct {
		session  usersessions.Key
		clientID string
	}
	items := map[itemKey]clock{}
	seen := map[usersessions.Key]bool{}
	var candidates []usersessions.Change
	for i, t := range touches {
		if errs[i] != nil {
			continue
		}
		if !seen[t.Session] {
			seen[t.Session] = true
			candidates = append(candidates, usersessions.Change{Kind: usersessions.Upserted, Session: t.Session})
		}
		latest(items, itemKey{t.Session, t.ClientID}, clock{t.LastRefresh, t.ExpiresAt})
	}
	itemRows := make([][]any, 0, len(items))
	for k, c := range items {
		itemRows = append(itemRows, append(keyValues(k.session), k.clientID, c.last, c.expires))
	}
	args, err := s.refreshArgs(touchClientBatch, clientRows, itemRows, candidates)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	q := s.refreshStatement(fmt.Sprintf(
		"UPDATE client_session AS c SET %s FROM %s WHERE c.realm_id = k_realm_id AND c.user_session_id = k_user_session_id AND c.offline = k_offline AND c.client_id = k_client_id RETURNING realm_id, user_session_id, offline, client_id",
		advance("c"), unsizedRelation(touchClientBatch)),
		"k_client_id = '' OR (k_realm_id, k_id, k_offline, k_client_id) IN (SELECT realm_id, user_session_id, offline, client_id FROM c)")
	touchedClients, touched, stale, err := s.runRefresh(ctx, op, q, args, candidates)
	if stale {
		return s.touchTx(ctx, touches, errs, clients)
	}
	if err != nil {
		return nil, err
	}
	for i, t := range touches {
		if errs[i] != nil {
			continue
		}
		if ck := (usersessions.ClientKey{Session: t.Session, ClientID: t.ClientID}); t.ClientID != "" && !touchedClients[ck] {
			errs[i] = fmt.Errorf("touch of %s: %w", clientKeyString(ck), spi.ErrNotFound)
		} else if !touched[t.Session] {
			errs[i] = fmt.Errorf("touch of user session %s: %w", keyString(t.Session), spi.ErrNotFound)
		}
	}
	return errs, nil
}

// refreshArgs are the arguments of a refresh statement: the client batch's rows (of
// clientBatch b), the items', and the notification's of candidates.
func (s *Store) refreshArgs(b batch, clientRows, itemRows [][]any, candidates []usersessions.Change) ([]any, error) {
	args, err := s.d.args(b, clientRows)
	if err != nil {
		return nil, err
	}
	more, err := s.d.args(itemBatch, itemRows)
	if err != nil {
		return nil, err
	}
	args = append(args, more...)
	if more, err = s.notifyArgs(candidates); err != nil {
		return nil, err
	}
	return append(args, more...), nil
}

// rotateOne is Rotate in one statement, for rotations at indexes run, replaces of
// distinct client sessions (see above). The statement writes the client sessions whose
// version is the stored one and the user sessions of those; the others, which fail or
// meet a race, are written again in a transaction that reads what is stored to tell why
// (rotateTx), within the same time.
//
// Should the statement meet a dead connection, the whole batch is written in that
// transaction instead. A rotation the statement applied after all would fail there with
// a version conflict, as would one that another writer won: either way the outcome is
// reported as unknown.
func (s *Store) rotateOne(ctx context.Context, rotations []usersessions.Rotation, errs []error, run []int) ([]error, error) {
	const op = "rotate client sessions"
	if s.writeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.writeTimeout)
		defer cancel()
	}
	clientRows := make([][]any, len(run))
	itemRows := make([][]any, len(run))
	candidates := make([]usersessions.Change, 0, 2*len(run))
	sessionSeen := map[usersessions.Key]bool{}
	for j, i := range run {
		r := rotations[i]
		k := r.Client.Key()
		clientRows[j] = clientValues(k.Session, k.ClientID, r.Client, r.Client.Version)
		itemRows[j] = append(keyValues(k.Session), k.ClientID, r.LastRefresh, r.ExpiresAt)
		candidates = append(candidates, usersessions.Change{Kind: usersessions.Upserted, Session: k.Session, ClientID: k.ClientID})
	}
	for _, i := range run {
		if k := rotations[i].Client.Key().Session; !sessionSeen[k] {
			sessionSeen[k] = true
			candidates = append(candidates, usersessions.Change{Kind: usersessions.Upserted, Session: k})
		}
	}
	args, err := s.refreshArgs(clientBatch, clientRows, itemRows, candidates)
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	q := s.refreshStatement(fmt.Sprintf(`UPDATE client_session AS c SET %s FROM %s WHERE c.realm_id = k_realm_id AND c.user_session_id = k_user_session_id
			AND c.offline = k_offline AND c.client_id = k_client_id AND c.version = k_version RETURNING realm_id, user_session_id, offline, client_id`,
		clientReplaceSet, unsizedRelation(clientBatch)),
		"(k_realm_id, k_id, k_offline, k_client_id) IN (SELECT realm_id, user_session_id, offline, client_id FROM c)")
	clients := make([]*usersessions.ClientSession, len(rotations))
	for i, r := range rotations {
		clients[i] = r.Client
	}
	written, touched, stale, err := s.runRefresh(ctx, op, q, args, candidates)
	if stale {
		again, err2 := s.rotateTx(ctx, rotations, clients, errs, [][]int{run})
		if err2 != nil {
			return nil, fmt.Errorf("%w; written again in a transaction: %w", err, err2)
		}
		if slices.ContainsFunc(again, func(e error) bool { return errors.Is(e, spi.ErrConflict) }) {
			return nil, fmt.Errorf("%w; written again in a transaction, a version had moved on, perhaps by the statement", err)
		}
		return again, nil
	}
	if err != nil {
		return nil, err
	}
	var rest []int
	for _, i := range run {
		k := rotations[i].Client.Key()
		switch {
		case !written[k]:
			rest = append(rest, i)
		case !touched[k.Session]:
			// Not reached: the client session written has its user session (a foreign key
			// with ON DELETE CASCADE). The statement has committed, so it is no refusal.
			errs[i] = fmt.Errorf("rotation of %s: %w: the client session was written, its user session was not found", clientKeyString(k), usersessions.ErrOutcomeUnknown)
		}
	}
	if len(rest) == 0 {
		return errs, nil
	}
	sub := make([]usersessions.Rotation, len(rest))
	subClients := make([]*usersessions.ClientSession, len(rest))
	subRun := make([]int, len(rest))
	for j, i := range rest {
		sub[j], subClients[j], subRun[j] = rotations[i], clients[i], j
	}
	subErrs, err := s.rotateTx(ctx, sub, subClients, make([]error, len(rest)), [][]int{subRun})
	for j, i := range rest {
		if err != nil {
			// The others are committed: the call succeeded for them.
			errs[i] = fmt.Errorf("rotation of %s: %w", clientKeyString(rotations[i].Client.Key()), err)
		} else {
			errs[i] = subErrs[j]
		}
	}
	return errs, nil
}
