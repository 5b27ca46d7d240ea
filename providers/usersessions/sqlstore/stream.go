package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unsafe"

	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/internal/prefault"
	"github.com/sessiond/sessiond/plugins/wire"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Stream implements usersessions.Provider. On PostgreSQL the selection is read with one
// scan of each table on one snapshot, in the tables' own order (streamScans); on SQLite, one
// keyset-paged read per page, in id order (streamKeyset).
func (s *Store) Stream(ctx context.Context, req usersessions.StreamRequest, fn func(page []*usersessions.UserSession) error) error {
	req, err := s.streamable(ctx, req)
	if err != nil {
		return err
	}
	if s.d == Postgres {
		return s.streamScans(ctx, req, &sessionPages{pages: pages[[]*usersessions.UserSession]{fn: fn}, size: req.PageSize})
	}
	return s.streamKeyset(ctx, req, fn)
}

// StreamLent implements usersessions.PageLender: on PostgreSQL, Stream with each page
// built into the sessions of a page delivered before. On SQLite it is Stream.
func (s *Store) StreamLent(ctx context.Context, req usersessions.StreamRequest, fn func(page []*usersessions.UserSession) error) error {
	if s.d != Postgres {
		return s.Stream(ctx, req, fn)
	}
	req, err := s.streamable(ctx, req)
	if err != nil {
		return err
	}
	return s.streamScans(ctx, req, lendingPages(fn, req.PageSize))
}

// StreamPages implements wire.PageStreamer, for the store served as a plugin: on
// PostgreSQL, Stream's selection with each session written into its wire form straight
// from its row, without building it. On SQLite it is not supported.
func (s *Store) StreamPages(ctx context.Context, req usersessions.StreamRequest, fn func(*wire.Page) error) error {
	if s.d != Postgres {
		return errors.ErrUnsupported
	}
	req, err := s.streamable(ctx, req)
	if err != nil {
		return err
	}
	out := &wirePages{size: req.PageSize}
	out.pages = pages[*wire.Page]{fn: fn, reuse: func(p *wire.Page) {
		p.Reset()
		out.spare = append(out.spare, p)
	}}
	return s.streamScans(ctx, req, out)
}

// streamable checks a stream's request and the store, and sets the default page size.
func (s *Store) streamable(ctx context.Context, req usersessions.StreamRequest) (usersessions.StreamRequest, error) {
	if err := validFilter(req.Filter); err != nil {
		return req, err
	}
	part := req.Partition
	if part.Count < 0 || (part.Count > 0 && (part.Index < 0 || part.Index >= part.Count)) || (part.Count == 0 && part.Index != 0) {
		return req, fmt.Errorf("stream: partition %d of %d: %w", part.Index, part.Count, spi.ErrInvalid)
	}
	if err := s.usable(ctx); err != nil {
		return req, fmt.Errorf("stream user sessions: %w", err)
	}
	if req.PageSize <= 0 {
		req.PageSize = defaultPageSize
	}
	return req, nil
}

// streamKeyset reads one page per statement, after the last (id, offline) of the page
// before, so a page costs the same at any depth. Partition i of n holds the sessions
// whose stored id hash is in the i-th n-th of its range.
func (s *Store) streamKeyset(ctx context.Context, req usersessions.StreamRequest, fn func(page []*usersessions.UserSession) error) error {
	where, args := s.filter(req.Filter, req.Partition)
	var last *usersessions.UserSession
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// "After (id, offline)" is written as a plain bound on id, which a database starts
		// the scan of the primary key's index at, and a filter for the one row with that
		// id: as a row comparison it is checked row by row from the start of the realm.
		cond, condArgs := where, args
		if last != nil {
			cond += " AND s.id >= ? AND (s.id > ? OR s.offline > ?)"
			condArgs = append(slices.Clip(args), last.ID, last.ID, last.Offline)
		}
		var page []*usersessions.UserSession
		err := s.read(ctx, "stream user sessions", func(q sqlx.QueryerContext) error {
			var err error
			page, err = s.load(ctx, q, cond, "ORDER BY s.id, s.offline LIMIT ?", append(condArgs, req.PageSize)...)
			return err
		})
		if err != nil || len(page) == 0 {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(page) < req.PageSize {
			return nil
		}
		last = page[len(page)-1]
	}
}

// streamSettings are set in a PostgreSQL stream's transaction only. Its statements read
// whole tables:
//   - nested loops are off because the planner cannot estimate the share of the hash
//     condition (it guesses 0.5%), and with a guess that small it looks up the rows of
//     the other table one by one, each a random heap page: a million sessions then cost
//     minutes instead of seconds;
//   - parallel workers are off: every row goes out through the one backend anyway, and
//     the workers' scans of the same pages cost more CPU than they save (measured at 1M:
//     a fifth more time with them);
//   - statement_timeout is off: a stream is one statement per table, read as its caller
//     takes the pages, so it lasts as long as the caller does; the caller's context
//     bounds it (a preload's timeout), and cancels the statement when it ends.
const streamSettings = "SET LOCAL enable_nestloop = off; SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL statement_timeout = 0"

// maxHeld bounds the client sessions a PostgreSQL stream holds at once (about 800 MB of
// rows like the benchmark's): a selection with more is read in parts, as many as the
// planner's estimate says (streamParts), each part split in two until its client sessions
// fit. Each part costs a read of both tables: at 10M sessions, 1M held took 11 parts
// and 22 reads of 1.4 GB tables; 2M takes 6.
const maxHeld = 1 << 21

// streamScans reads the selection on one snapshot (one read-only repeatable-read
// transaction) with two statements, each a sequential scan whose rows are read as they
// come: first the client sessions of the selection, held by user session, then the user
// sessions, each handed on with its client sessions as it is read. PostgreSQL reads each
// table once in its own order, with no join, sort or index. (One statement joining the
// two would need a sort to keep the rows of a user session together, as PostgreSQL
// promises no order of a hash join's rows, and the sort cost as much as the rest; keyset
// pages in id order made each row a random heap page.) The rows of a statement are read
// as PostgreSQL sends them, not through a cursor: a FETCH puts its rows in a tuplestore
// before it sends them, which cost PostgreSQL a third more CPU (at 1M: 6.5 s against 4.7 s).
//
// Partition i of n holds the sessions whose id's PostgreSQL hash (hashtext, its sign bit
// cleared) is i modulo n: unlike the stored id_hash, it is computed from a client
// session's row as from its user session's, so neither statement needs the other table.
// Both statements see one snapshot, so the partitions are exactly disjoint and complete.
func (s *Store) streamScans(ctx context.Context, req usersessions.StreamRequest, out pageOut) error {
	const op = "stream user sessions"
	tx, err := s.db.BeginTx(ctx, s.d.readTx())
	if err != nil {
		return s.fail(ctx, op, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	if _, err := tx.ExecContext(ctx, streamSettings); err != nil {
		return s.fail(ctx, op, err)
	}
	part := hashPart{index: 0, count: 1}
	if req.Partition.Count > 1 {
		part = hashPart{index: int64(req.Partition.Index), count: int64(req.Partition.Count)}
	}
	st := &scanStream{s: s, tx: tx, req: req, d: newStreamDecoder(req.Filter.RealmID, out)}
	st.estimateClients(ctx)
	if err := st.streamParts(ctx, part); err != nil {
		if fnErr := out.fnErr(); fnErr != nil {
			return fnErr
		}
		return s.fail(ctx, op, err)
	}
	out.close()
	if err := out.deliver(ctx); err != nil {
		if fnErr := out.fnErr(); fnErr != nil {
			return fnErr
		}
		return s.fail(ctx, op, err)
	}
	return s.fail(ctx, op, tx.Commit())
}

// hashPart is the sessions whose id's hashtext is index modulo count.
type hashPart struct{ index, count int64 }

// maxCount stops the splitting of a part: its sessions share one hash, or nearly.
const maxCount = 1 << 24

// cond is the part's condition on the id in column col, and its arguments.
func (p hashPart) cond(col string) (string, []any) {
	if p.count <= 1 {
		return "", nil
	}
	return fmt.Sprintf("(hashtext(%s) & 2147483647) %% ? = ?", col), []any{p.count, p.index}
}

// scanStream is one PostgreSQL stream under way.
type scanStream struct {
	s       *Store
	tx      *sql.Tx
	req     usersessions.StreamRequest
	d       *streamDecoder
	clients float64 // the planner's estimate of the client sessions of the realm and kind
}

// streamParts streams the sessions of part, in as many parts as the planner's estimate of
// its client sessions says they need to fit in maxHeld (with a tenth to spare): found too
// many by reading instead, each try costs a read of maxHeld rows and more, and at 10M
// sessions a part is halved four times over before it fits.
func (st *scanStream) streamParts(ctx context.Context, part hashPart) error {
	n := int64(1)
	if held := st.s.maxHeld; held > 0 {
		n = max(1, int64(math.Ceil(st.clients/float64(part.count)*1.1/float64(held))))
		n = min(n, max(1, maxCount/part.count))
	}
	for i := range n {
		if err := st.stream(ctx, hashPart{part.index + i*part.count, n * part.count}); err != nil {
			return err
		}
	}
	return nil
}

// stream streams the sessions of part: their client sessions first, then the user
// sessions; when the client sessions do not fit in maxHeld, each half of part in turn.
func (st *scanStream) stream(ctx context.Context, part hashPart) error {
	limit := st.s.maxHeld
	if part.count >= maxCount {
		limit = 0
	}
	complete, err := st.readClients(ctx, part, limit)
	if err != nil {
		return err
	}
	if !complete {
		if err := st.stream(ctx, hashPart{part.index, 2 * part.count}); err != nil {
			return err
		}
		return st.stream(ctx, hashPart{part.index + part.count, 2 * part.count})
	}
	where, args := st.s.filter(st.req.Filter, usersessions.Partition{})
	if cond, condArgs := part.cond("s.id"); cond != "" {
		where += " AND " + cond
		args = append(args, condArgs...)
	}
	err = st.query(ctx, fmt.Sprintf("SELECT ROW(%s) FROM user_session s WHERE %s", streamSessionFields.names("s."), where), args,
		func(row []byte) (bool, error) { return true, st.d.session(row) })
	if err == nil {
		st.d.release()
	}
	return err
}

// readClients reads the client sessions of part's user sessions into the decoder; with
// limit > 0 it stops past limit of them, and reports part incomplete.
func (st *scanStream) readClients(ctx context.Context, part hashPart, limit int) (complete bool, err error) {
	f := st.req.Filter
	where, args := st.kindOfClients()
	if cond, condArgs := part.cond("c.user_session_id"); cond != "" {
		where += " AND " + cond
		args = append(args, condArgs...)
	}
	if f.UserID != "" || f.ClientID != "" || !f.ActiveSince.IsZero() || !f.LiveAt.IsZero() {
		// The rest of the filter is a condition on the user session.
		sWhere, sArgs := st.s.filter(f, usersessions.Partition{})
		where += " AND EXISTS (SELECT 1 FROM user_session s WHERE s.realm_id = c.realm_id AND s.id = c.user_session_id AND s.offline = c.offline AND " + sWhere + ")"
		args = append(args, sArgs...)
	}
	expect := int(st.clients / float64(part.count))
	st.d.holdAbout(expect, st.s.maxHeld, f.Offline)
	query := fmt.Sprintf("SELECT ROW(c.user_session_id, c.offline, %s) FROM client_session c WHERE %s", streamClientFields.names("c."), where)
	limited := func(query string, args []any) (string, []any) {
		if limit > 0 {
			return query + " LIMIT ?", append(args, limit+1) // one more says there are more
		}
		return query, args
	}
	read := func(ctx context.Context, tx *sql.Tx, h *holder, query string, args []any) (complete bool, err error) {
		complete = true
		err = st.scan(ctx, tx, query, args, func(row []byte) (bool, error) {
			if limit > 0 && h.held >= limit {
				complete = false
				return false, nil
			}
			return true, h.hold(row)
		})
		return complete, err
	}
	var other *holder
	if expect >= st.s.splitClients && st.req.Partition.Count <= 1 {
		other, complete, err = st.readClientsInTwo(ctx, query, args, expect, limited, read)
	}
	if other == nil && err == nil { // read on this connection alone
		q, a := limited(query, args)
		complete, err = read(ctx, st.tx, &st.d.holder, q, a)
	}
	if other != nil {
		st.d.merge(other)
	}
	if limit > 0 && st.d.held > limit {
		complete = false
	}
	if !complete {
		st.d.release()
	}
	return complete, err
}

// splitClients is the least number of client sessions (as the planner estimates them) of a
// stream of a whole selection that are read on two connections at once: reading them is
// PostgreSQL's work on one CPU while nothing else can start (each user session needs all
// of its own), and the first third of a preload through a plugin. A partition's caller
// reads its partitions in parallel already.
const splitClients = 1 << 16

// readClientsInTwo reads the client sessions of query on two connections at once, each
// a half of the table's pages (ctid ranges), the second in a transaction that shares this
// one's snapshot (pg_export_snapshot), so that the two halves are the rows this
// transaction sees, each once. It returns the rows the second connection read, to merge;
// with no second connection to be had at once (a pool of one, say), it returns nil and no
// error, and the caller reads alone.
func (st *scanStream) readClientsInTwo(ctx context.Context, query string, args []any, expect int,
	limited func(string, []any) (string, []any), read func(context.Context, *sql.Tx, *holder, string, []any) (bool, error)) (*holder, bool, error) {
	var snapshot string
	var pages int64
	if err := st.tx.QueryRowContext(ctx, "SELECT pg_export_snapshot(), pg_relation_size('client_session') / current_setting('block_size')::bigint").Scan(&snapshot, &pages); err != nil {
		return nil, false, err
	}
	if pages < 2 {
		return nil, false, nil
	}
	// A connection that is free now, or none: waiting for one could wait for this stream.
	free, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	conn, err := st.s.db.Conn(free)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		return nil, false, nil
	}
	defer conn.Close()
	theirCtx, stop := context.WithCancel(ctx)
	defer stop()
	tx, err := conn.BeginTx(theirCtx, st.s.d.readTx())
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	if _, err := tx.ExecContext(ctx, "SET TRANSACTION SNAPSHOT '"+snapshot+"'; "+streamSettings); err != nil {
		return nil, false, err
	}
	other := &holder{}
	other.holdAbout(expect/2, st.s.maxHeld, st.req.Filter.Offline)
	mid := fmt.Sprintf("(%d,0)", pages/2)
	type result struct {
		complete bool
		err      error
	}
	done := make(chan result, 1)
	go func() { // owned by this call, which waits for it
		q, a := limited(query+" AND c.ctid >= ?::tid", append(slices.Clip(args), mid))
		complete, err := read(theirCtx, tx, other, q, a)
		done <- result{complete, err}
	}()
	q, a := limited(query+" AND c.ctid < ?::tid", append(slices.Clip(args), mid))
	complete, err := read(ctx, st.tx, &st.d.holder, q, a)
	if err != nil || !complete {
		stop() // what the other half reads is of no use
	}
	theirs := <-done
	switch {
	case err != nil:
		return other, false, err
	case !complete:
		return other, false, nil
	}
	return other, theirs.complete, theirs.err
}

// kindOfClients is the condition on alias c of the client sessions of the filter's realm
// and kind, and its arguments.
func (st *scanStream) kindOfClients() (string, []any) {
	f := st.req.Filter
	where, args := "c.realm_id = ?", []any{f.RealmID}
	switch f.Offline {
	case usersessions.OnlineOnly:
		where, args = where+" AND c.offline = ?", append(args, false)
	case usersessions.OfflineOnly:
		where, args = where+" AND c.offline = ?", append(args, true)
	}
	return where, args
}

// estimateClients sets st.clients to the planner's estimate of the client sessions of
// the filter's realm and kind (0 if it has none), to size the maps that hold them: grown
// step by step instead, they cost a twentieth of a preload.
func (st *scanStream) estimateClients(ctx context.Context) {
	where, args := st.kindOfClients()
	var plan []byte
	if err := st.tx.QueryRowContext(ctx, st.s.rebind("EXPLAIN (FORMAT JSON) SELECT 1 FROM client_session c WHERE "+where), args...).Scan(&plan); err != nil {
		return
	}
	var out []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		}
	}
	if json.Unmarshal(plan, &out) == nil && len(out) == 1 {
		st.clients = out[0].Plan.Rows
	}
}

// query scans query in the stream's transaction, handing each row to row until it returns
// false, and delivers each page the decoder fills as soon as it is ready.
func (st *scanStream) query(ctx context.Context, query string, args []any, row func([]byte) (bool, error)) error {
	err := st.scan(ctx, st.tx, query, args, func(b []byte) (bool, error) {
		more, err := row(b)
		if err != nil {
			return false, err
		}
		if st.d.out.hasReady() {
			if err := st.d.out.deliver(ctx); err != nil {
				return false, err
			}
		}
		return more, nil
	})
	if err != nil {
		return err
	}
	return st.d.out.deliver(ctx)
}

// scan runs query in tx and hands each row (one row value) to row until it returns false.
// A caller that may stop early limits the query: the rows PostgreSQL sent are read to the
// end all the same.
func (st *scanStream) scan(ctx context.Context, tx *sql.Tx, query string, args []any, row func([]byte) (bool, error)) error {
	rows, err := tx.QueryContext(ctx, st.s.rebind(query), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var raw sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&raw); err != nil {
			return err
		}
		more, err := row(raw)
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	return rows.Err()
}

// pageOut is where the sessions of a PostgreSQL stream go, page by page: built as
// sessions for Stream (sessionPages), or written in their wire form for StreamPages
// (wirePages).
type pageOut interface {
	// add reads the rest of a user session's row from d.f (its id and kind are read) and
	// adds the session, with the client sessions h holds for it, to the page.
	add(d *streamDecoder, id []byte, offline bool, h heldClients) error
	// close makes the page ready, if it holds anything.
	close()
	// hasReady reports whether a page is ready.
	hasReady() bool
	// deliver hands on the ready pages.
	deliver(ctx context.Context) error
	// fnErr is the error the caller's fn returned, if it did: returned as it is.
	fnErr() error
}

// pages are the ready pages of a pageOut, and the caller's fn they go to; reuse, if set,
// takes each page back once it is delivered (or will not be).
type pages[P any] struct {
	fn    func(P) error
	reuse func(P)
	ready []P
	err   error
}

func (p *pages[P]) deliver(ctx context.Context) error {
	defer func() {
		if p.reuse != nil {
			for _, page := range p.ready {
				p.reuse(page)
			}
		}
		clear(p.ready)
		p.ready = p.ready[:0]
	}()
	for _, page := range p.ready {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.fn(page); err != nil {
			p.err = err
			return err
		}
	}
	return nil
}

func (p *pages[P]) fnErr() error { return p.err }

func (p *pages[P]) hasReady() bool { return len(p.ready) > 0 }

// The fields of a PostgreSQL stream's row values, in the order streamDecoder reads them.
// The realm is the filter's; a client session's key is its user session's.
var (
	streamSessionFields = sessionBatch.without("realm_id", "id_hash")
	streamClientFields  = clientBatch.without("realm_id", "user_session_id", "offline")
)

// streamDecoder turns the rows of a PostgreSQL stream into pages. Each row is one row
// value (recordReader), read field by field into the session: no reflection, and no
// allocation but the session's own. The rows of the client sessions come first and are
// held as they are, by user session; each user session read then takes its own.
type streamDecoder struct {
	realm  string
	out    pageOut
	holder        // the client sessions read
	f, cf  fields // of user sessions, of client sessions
}

// holder holds the rows of the client sessions read, by user session id, online ([0]) and
// offline ([1]) apart; held counts them, rows keeps their bytes, and more the rows of user
// sessions with more than one. key reads the id and kind of each row it takes.
type holder struct {
	clients [2]map[string]heldClients
	held    int
	rows    arena
	more    [][]rowRef
	key     fields
}

// heldClients are the rows of the client sessions of one user session: its first, and
// the others (1 + their index in streamDecoder.more; 0: none). Held as bytes until the
// user session is read, a client session costs two thirds of what it does built, and the
// garbage collector does not go through the bytes. A million of them are held at once in
// a preload, so they are small: the id they are held by is the one in the first row's
// bytes (no copy), and a map slot is 32 bytes.
type heldClients struct {
	first rowRef
	more  int32
}

// eachRow calls fn with each row h holds.
func (d *streamDecoder) eachRow(h heldClients, fn func(row []byte) error) error {
	if h.first.n == 0 {
		return nil
	}
	if err := fn(d.rows.row(h.first)); err != nil {
		return err
	}
	if h.more == 0 {
		return nil
	}
	for _, ref := range d.more[h.more-1] {
		if err := fn(d.rows.row(ref)); err != nil {
			return err
		}
	}
	return nil
}

// count is how many rows h holds.
func (d *streamDecoder) count(h heldClients) int {
	switch {
	case h.first.n == 0:
		return 0
	case h.more == 0:
		return 1
	}
	return 1 + len(d.more[h.more-1])
}

// arena holds rows in large blocks of bytes; rowRef is where one is (n == 0: none).
type arena struct{ blocks [][]byte }

type rowRef struct{ block, off, n int32 }

const arenaBlock = 1 << 20

func (a *arena) add(row []byte) rowRef {
	last := len(a.blocks) - 1
	if last < 0 || len(a.blocks[last])+len(row) > cap(a.blocks[last]) {
		// A block is filled at once: its pages are mapped in in one call rather than
		// faulted in one by one (a preload's plugin holds some 300 MB of rows).
		block := make([]byte, max(arenaBlock, len(row)))
		prefault.Populate(block)
		a.blocks = append(a.blocks, block[:0])
		last++
	}
	b := a.blocks[last]
	a.blocks[last] = append(b, row...)
	return rowRef{block: int32(last), off: int32(len(b)), n: int32(len(row))}
}

func (a *arena) row(r rowRef) []byte { return a.blocks[r.block][r.off : r.off+r.n] }

// key returns id, the first field of the row at r, as a string that shares the row's
// bytes when the field is there as it is (a row value's unquoted first field starts at
// its second byte): the arena never changes a byte it holds. It is a copy otherwise.
func (a *arena) key(r rowRef, id []byte) string {
	row := a.row(r)
	if len(id) == 0 || len(row) < 1+len(id) || string(row[1:1+len(id)]) != string(id) {
		return string(id)
	}
	return unsafe.String(&row[1], len(id))
}

func newStreamDecoder(realm string, out pageOut) *streamDecoder {
	shared, known := map[string]string{}, map[string]string{}
	return &streamDecoder{realm: realm, out: out,
		f:  fields{shared: shared, notes: noteReader{known: known}},
		cf: fields{shared: shared, notes: noteReader{known: known}}}
}

// holdAbout starts holding client sessions, with room for about n of them (at most
// most; they are online or offline as the filter selects).
func (d *holder) holdAbout(n, most int, f usersessions.OfflineSelector) {
	n = min(max(n, 0), most)
	d.clients, d.held, d.rows, d.more = [2]map[string]heldClients{{}, {}}, 0, arena{}, nil
	switch f {
	case usersessions.OnlineOnly:
		d.clients[0] = make(map[string]heldClients, n)
	case usersessions.OfflineOnly:
		d.clients[1] = make(map[string]heldClients, n)
	}
}

// release forgets the client sessions held.
func (d *holder) release() {
	d.clients, d.held, d.rows, d.more = [2]map[string]heldClients{}, 0, arena{}, nil
}

// merge moves the rows o holds into d; o is released.
func (d *holder) merge(o *holder) {
	blocks, lists := int32(len(d.rows.blocks)), int32(len(d.more))
	d.rows.blocks = append(d.rows.blocks, o.rows.blocks...)
	for _, refs := range o.more {
		for i := range refs {
			refs[i].block += blocks
		}
		d.more = append(d.more, refs)
	}
	for k, held := range o.clients {
		if d.clients[k] == nil {
			d.clients[k] = map[string]heldClients{}
		}
		for id, h := range held { // id is in one of o's blocks, now d's
			h.first.block += blocks
			if h.more != 0 {
				h.more += lists
			}
			mine, ok := d.clients[k][id]
			switch {
			case !ok:
				d.clients[k][id] = h
				continue
			case mine.more == 0:
				d.more = append(d.more, nil)
				mine.more = int32(len(d.more))
				d.clients[k][id] = mine
			}
			// The user session's client sessions were read by both: rare, at the
			// boundary between the two reads.
			refs := append(d.more[mine.more-1], h.first)
			if h.more != 0 {
				refs = append(refs, d.more[h.more-1]...)
			}
			d.more[mine.more-1] = refs
		}
	}
	d.held += o.held
	o.release()
}

func kind(offline bool) int {
	if offline {
		return 1
	}
	return 0
}

// hold takes a row of (user_session_id, offline, streamClientFields…) and holds it for
// its user session.
func (d *holder) hold(row []byte) error {
	f := &d.key
	if err := f.reset(row); err != nil {
		return err
	}
	id := f.raw()
	offline := f.boolean()
	if f.err != nil {
		return fmt.Errorf("a streamed client session: %w", f.err)
	}
	held := d.clients[kind(offline)]
	h, ok := held[string(id)]
	ref := d.rows.add(row)
	switch {
	case !ok:
		h.first = ref
		held[d.rows.key(ref, id)] = h
	case h.more == 0:
		d.more = append(d.more, []rowRef{ref})
		h.more = int32(len(d.more))
		held[string(id)] = h
	default:
		d.more[h.more-1] = append(d.more[h.more-1], ref)
	}
	d.held++
	return nil
}

// clientsOf builds the client sessions held for h, of the user session id, in clients.
func (p *sessionPages) clientsOf(d *streamDecoder, id string, h heldClients, clients map[string]*usersessions.ClientSession) error {
	return d.eachRow(h, func(row []byte) error {
		cs, err := p.client(d, id, row)
		if err != nil {
			return err
		}
		clients[cs.ClientID] = cs
		return nil
	})
}

// client reads a held row of the user session id.
func (p *sessionPages) client(d *streamDecoder, id string, row []byte) (*usersessions.ClientSession, error) {
	f := &d.cf
	if err := f.reset(row); err != nil {
		return nil, err
	}
	f.raw() // the id
	offline := f.boolean()
	cs, notes := &usersessions.ClientSession{}, map[string]string(nil)
	if p.lending {
		cs, notes = p.lend.Client(), p.lend.ClientNotes()
	}
	*cs = usersessions.ClientSession{UserSessionID: id, RealmID: d.realm, Offline: offline,
		ClientID: f.common(), Started: f.time(), LastRefresh: f.time(), ExpiresAt: f.time(),
		AuthMethod: f.common(), RedirectURI: f.common(), Action: f.common(), Scope: f.common(),
		Notes: f.notesOf(notes), CurrentRefreshToken: f.str(), CurrentRefreshTokenUseCount: int(f.integer()),
		PreviousRefreshToken: f.str(), RotatedAt: f.time(), Version: f.integer()}
	if err := f.end(); err != nil {
		return nil, fmt.Errorf("a streamed client session of user session %s: %w", id, err)
	}
	return cs, nil
}

// session reads a row of streamSessionFields and adds the user session, with the client
// sessions held for it, to the page.
func (d *streamDecoder) session(row []byte) error {
	f := &d.f
	if err := f.reset(row); err != nil {
		return err
	}
	f.keep, d.cf.keep = f.keep[:0], d.cf.keep[:0] // the session before is in its page
	id := f.bytes()
	offline := f.boolean()
	if f.err != nil {
		return fmt.Errorf("a streamed user session: %w", f.err)
	}
	return d.out.add(d, id, offline, d.clients[kind(offline)][string(id)])
}

// sessionPages builds the sessions of a stream, for Stream; with lending, for StreamLent,
// into those of pages delivered before. A page is delivered once it is full, but nothing
// here counts on that: each page has its own Lender until it is delivered.
type sessionPages struct {
	pages[[]*usersessions.UserSession]
	size    int
	page    []*usersessions.UserSession
	lending bool
	lend    *usersessions.Lender   // of the page being filled
	held    []*usersessions.Lender // of the ready pages, in their order
	spare   []*usersessions.Lender // of pages delivered
}

// lendingPages returns a sessionPages for StreamLent.
func lendingPages(fn func([]*usersessions.UserSession) error, size int) *sessionPages {
	p := &sessionPages{size: size, lending: true}
	p.pages = pages[[]*usersessions.UserSession]{fn: fn, reuse: func([]*usersessions.UserSession) {
		p.spare, p.held = append(p.spare, p.held[0]), p.held[1:]
	}}
	return p
}

func (p *sessionPages) add(d *streamDecoder, rawID []byte, offline bool, h heldClients) error {
	id := string(rawID) // one copy serves the session and its client sessions
	us, notes := &usersessions.UserSession{}, map[string]string(nil)
	clients := make(map[string]*usersessions.ClientSession, d.count(h))
	if p.lending {
		if p.lend == nil {
			if n := len(p.spare); n > 0 {
				p.lend, p.spare = p.spare[n-1], p.spare[:n-1]
			} else {
				p.lend = &usersessions.Lender{}
			}
			p.page = p.lend.Page()
		}
		us, notes, clients = p.lend.Session(), p.lend.SessionNotes(), p.lend.SessionClients()
	}
	if err := p.clientsOf(d, id, h, clients); err != nil {
		return err
	}
	f := &d.f
	*us = usersessions.UserSession{ID: id, RealmID: d.realm, Offline: offline,
		UserID: f.str(), LoginUsername: f.str(), IPAddress: f.str(), UserAgent: f.common(), AuthMethod: f.common(),
		BrokerSessionID: f.str(), BrokerUserID: f.str(), RememberMe: f.boolean(), State: usersessions.State(f.common()),
		Started: f.time(), LastRefresh: f.time(), ExpiresAt: f.time(), Notes: f.notesOf(notes), Version: f.integer(),
		Clients: clients}
	if err := f.end(); err != nil {
		return fmt.Errorf("a streamed user session %s: %w", id, err)
	}
	if p.page == nil {
		p.page = make([]*usersessions.UserSession, 0, p.size)
	}
	p.page = append(p.page, us)
	if len(p.page) == p.size {
		p.close()
	}
	return nil
}

func (p *sessionPages) close() {
	if len(p.page) > 0 {
		p.ready = append(p.ready, p.page)
		if p.lending {
			p.lend.Keep(p.page)
			p.held, p.lend = append(p.held, p.lend), nil
		}
		p.page = nil
	}
}

// wirePages writes the sessions of a stream in their wire form, for StreamPages: each
// field goes from the row to the page as bytes, and nothing is allocated for a session.
type wirePages struct {
	pages[*wire.Page]
	size    int
	page    *wire.Page
	spare   []*wire.Page // delivered, to fill again
	realm   []byte
	s       wire.RawSession
	clients []wire.RawClient
	notes   wire.RawNotes // of the session and of its client sessions, one after the other
}

func (p *wirePages) add(d *streamDecoder, id []byte, offline bool, h heldClients) error {
	p.notes = p.notes[:0]
	clients := p.clients[:0]
	err := d.eachRow(h, func(row []byte) error {
		c, err := p.client(d, row)
		if err != nil {
			return fmt.Errorf("a streamed client session of user session %s: %w", id, err)
		}
		clients = append(clients, c)
		return nil
	})
	p.clients = clients
	if err != nil {
		return err
	}
	f := &d.f
	s := &p.s
	if p.realm == nil {
		p.realm = []byte(d.realm)
	}
	*s = wire.RawSession{ID: id, RealmID: p.realm, Offline: offline,
		UserID: f.bytes(), LoginUsername: f.bytes(), IPAddress: f.bytes(), UserAgent: f.bytes(), AuthMethod: f.bytes(),
		BrokerSessionID: f.bytes(), BrokerUserID: f.bytes(), RememberMe: f.boolean(), State: f.bytes(),
		Started: f.time(), LastRefresh: f.time(), ExpiresAt: f.time(), Notes: p.notesOf(f), Version: f.integer(),
		Clients: clients}
	if err := f.end(); err != nil {
		return fmt.Errorf("a streamed user session %s: %w", id, err)
	}
	if p.page == nil {
		if n := len(p.spare); n > 0 {
			p.page, p.spare = p.spare[n-1], p.spare[:n-1]
		} else {
			p.page = &wire.Page{}
		}
	}
	p.page.Add(s)
	if p.page.Len() == p.size {
		p.close()
	}
	return nil
}

// client reads a held row of a client session.
func (p *wirePages) client(d *streamDecoder, row []byte) (wire.RawClient, error) {
	f := &d.cf
	if err := f.reset(row); err != nil {
		return wire.RawClient{}, err
	}
	f.raw() // the user session's id
	f.boolean()
	c := wire.RawClient{ClientID: f.bytes(), Started: f.time(), LastRefresh: f.time(), ExpiresAt: f.time(),
		AuthMethod: f.bytes(), RedirectURI: f.bytes(), Action: f.bytes(), Scope: f.bytes(),
		Notes: p.notesOf(f), CurrentRefreshToken: f.bytes(), CurrentRefreshTokenUseCount: int(f.integer()),
		PreviousRefreshToken: f.bytes(), RotatedAt: f.time(), Version: f.integer()}
	return c, f.end()
}

// notesOf reads a field of notes onto the end of p.notes, and returns them.
func (p *wirePages) notesOf(f *fields) wire.RawNotes {
	from := len(p.notes)
	var err error
	p.notes, err = f.notes.pairs(f.bytes(), p.notes)
	if err != nil && f.err == nil {
		f.fail(err)
	}
	return p.notes[from:len(p.notes):len(p.notes)]
}

func (p *wirePages) close() {
	if p.page != nil && p.page.Len() > 0 {
		p.ready = append(p.ready, p.page)
		p.page = nil
	}
}

// fields reads the fields of one row value in turn; the first error sticks, and the
// reads after it return zero values.
type fields struct {
	rec    recordReader
	err    error
	n      int               // fields read
	shared map[string]string // one copy of the values many sessions repeat
	last   [32]string        // by field number: the last value common read there
	notes  noteReader
	keep   []byte // copies of the fields bytes read that held escapes
}

// maxShared bounds the values fields.shared holds, and maxSharedLen their length.
const (
	maxShared    = 4096
	maxSharedLen = 512
)

func (f *fields) reset(b []byte) error {
	f.err, f.n = nil, 0
	return f.rec.reset(b)
}

func (f *fields) raw() []byte {
	if f.err != nil {
		return nil
	}
	b, null, err := f.rec.next()
	f.n++
	switch {
	case err != nil:
		f.err = err
	case null:
		f.err = fmt.Errorf("field %d is NULL", f.n)
	}
	return b
}

func (f *fields) fail(err error) {
	if f.err == nil {
		f.err = fmt.Errorf("field %d: %w", f.n, err)
	}
}

func (f *fields) str() string { return string(f.raw()) }

// bytes reads a field as bytes that stay as they are until keep is emptied: a field that
// held escapes comes unescaped in a buffer the next such field reuses, so it is copied.
func (f *fields) bytes() []byte {
	b := f.raw()
	if !f.rec.unescaped || len(b) == 0 {
		return b
	}
	if len(f.keep)+len(b) > cap(f.keep) {
		f.keep = make([]byte, 0, max(keepBlock, 2*len(b))) // what was kept before stays where it is
	}
	f.keep = append(f.keep, b...)
	return f.keep[len(f.keep)-len(b):]
}

// keepBlock is the least a fields allocates to keep unescaped fields in.
const keepBlock = 16 << 10

// common reads a value that many sessions share (a user agent, a client id, a scope):
// one copy serves them all.
func (f *fields) common() string {
	b := f.raw()
	last := &f.last[f.n%len(f.last)]
	if *last == string(b) { // most often the row before had the same: no hash needed
		return *last
	}
	s, ok := f.shared[string(b)]
	if !ok {
		s = string(b)
		if len(f.shared) < maxShared && len(s) <= maxSharedLen {
			f.shared[s] = s
		}
	}
	*last = s
	return s
}

func (f *fields) boolean() bool {
	v, err := parseBool(f.raw())
	if err != nil && f.err == nil {
		f.fail(err)
	}
	return v
}

func (f *fields) integer() int64 {
	v, err := parseInt(f.raw())
	if err != nil && f.err == nil {
		f.fail(err)
	}
	return v
}

func (f *fields) time() time.Time {
	v, err := parseTimestamp(f.raw())
	if err != nil && f.err == nil {
		f.fail(err)
	}
	return v
}

// notesOf reads a field of notes, into into if it is not nil (an empty map); it returns
// nil for no notes.
func (f *fields) notesOf(into map[string]string) map[string]string {
	v, err := f.notes.read(f.raw(), into)
	if err != nil && f.err == nil {
		f.fail(err)
	}
	return v
}

func (f *fields) end() error {
	if f.err != nil {
		return f.err
	}
	return f.rec.end()
}
