package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/lib/pq"
)

// idHash is sqlstore's stream partition of a session id (providers/usersessions/sqlstore,
// rows.go): FNV-1a 32, top bit cleared. The bench writes rows as the provider would.
func idHash(id string) int64 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int64(h.Sum32() & 0x7fffffff)
}

// fill writes n offline sessions of realm "bench", one client session each, as sessiond
// writes an offline login (the offline-access note, a refresh token id), last used within
// the past 20 days (the realm's offline idle is 30), in one transaction.
//
// Only what PostgreSQL cannot make is made here: the session ids, random as sessiond's
// own (core/session newID), so that the key order of the tables is not the order their
// rows were written in, as in production, and their stored hash (FNV-1a, which SQL lacks),
// copied into a temporary table. PostgreSQL makes the rows from them with INSERT … SELECT,
// every other column a function of the row's number. The tables' indexes, primary keys and
// foreign key are dropped for the load and made again after it (from their definitions as
// PostgreSQL prints them): built once from sorted rows, they cost a fraction of what
// inserting ten million random keys into them one by one does. 1M sessions were 1.5 min of
// COPY row by row on a loaded machine; see README.md for this fill's times.
func fill(ctx context.Context, db *sql.DB, n int) error {
	conn, err := db.Conn(ctx) // one session: the temporary table is its own
	if err != nil {
		return err
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "CREATE TEMPORARY TABLE fill_ids (i integer NOT NULL, id text NOT NULL, id_hash integer NOT NULL) ON COMMIT DROP"); err != nil {
		return err
	}
	ids, err := tx.PrepareContext(ctx, pq.CopyIn("fill_ids", "i", "id", "id_hash"))
	if err != nil {
		return err
	}
	for i := range n {
		id := strings.ToLower(rand.Text())
		if _, err := ids.ExecContext(ctx, i, id, idHash(id)); err != nil {
			return err
		}
	}
	if _, err := ids.ExecContext(ctx); err != nil {
		return err
	}
	if err := ids.Close(); err != nil {
		return err
	}

	// The keys, foreign key and indexes of both tables, to drop and make again.
	type def struct{ drop, create string }
	var fks, indexes, pks []def
	rows, err := tx.QueryContext(ctx, `SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
FROM pg_constraint WHERE conrelid IN ('user_session'::regclass, 'client_session'::regclass) AND contype IN ('p', 'f')`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var table, name, typ, definition string
		if err := rows.Scan(&table, &name, &typ, &definition); err != nil {
			return err
		}
		d := def{fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s", table, pq.QuoteIdentifier(name)),
			fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", table, pq.QuoteIdentifier(name), definition)}
		if typ == "p" {
			pks = append(pks, d)
		} else {
			fks = append(fks, d)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = tx.QueryContext(ctx, `SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i WHERE i.indrelid IN ('user_session'::regclass, 'client_session'::regclass)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x'))`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var name, definition string
		if err := rows.Scan(&name, &definition); err != nil {
			return err
		}
		indexes = append(indexes, def{"DROP INDEX " + name, definition})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	exec := func(stmts ...string) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	}
	for _, group := range [][]def{fks, indexes, pks} {
		for _, d := range group {
			if err := exec(d.drop); err != nil {
				return err
			}
		}
	}

	// As sessiond writes them; uuidish(kind, i) is fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x",
	// i, kind, i&0xfff, (i>>12)&0xfff, i*7919) (exact for i < 2³²).
	const uuidish = `lpad(to_hex(i), 8, '0') || '-%04d-4' || lpad(to_hex(i & 4095), 3, '0') || '-8' || lpad(to_hex((i >> 12) & 4095), 3, '0') || '-' || lpad(to_hex(i::bigint * 7919), 12, '0')`
	now := time.Now().UTC().Truncate(time.Microsecond)
	// last: within 20 days, so that none expires during a run.
	const rowsFrom = `FROM (SELECT i, id, id_hash, $1::timestamptz - (i % (20 * 24 * 60)) * interval '1 minute' AS last FROM fill_ids) f`
	if _, err := tx.ExecContext(ctx, `INSERT INTO user_session (realm_id, id, offline, id_hash, user_id, login_username,
  ip_address, user_agent, auth_method, broker_session_id, broker_user_id, remember_me, state, started, last_refresh,
  expires_at, notes, version)
SELECT $2, id, true, id_hash, `+fmt.Sprintf(uuidish, 2)+`, 'user' || i,
  '10.' || ((i >> 16) & 255) || '.' || ((i >> 8) & 255) || '.' || (i & 255), ($3::text[])[i % 4 + 1], 'openid-connect', '', '',
  false, 'LOGGED_IN', last - interval '1 hour', last, last + interval '30 days', '{"sessiond.offline_access": "true"}', 1
`+rowsFrom, now, realm, pq.Array(userAgents)); err != nil {
		return fmt.Errorf("user sessions: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO client_session (realm_id, user_session_id, offline, client_id, started,
  last_refresh, expires_at, auth_method, redirect_uri, action, scope, notes, current_refresh_token,
  current_refresh_token_use_count, previous_refresh_token, rotated_at, version)
SELECT $2, id, true, 'app', last - interval '1 hour', last, last + interval '30 days', 'openid-connect',
  'https://app.example.com/callback', 'AUTHENTICATE', 'openid offline_access', '{}', `+fmt.Sprintf(uuidish, 3)+`, 0, '',
  '0001-01-01 00:00:00+00', 1
`+rowsFrom, now, realm); err != nil {
		return fmt.Errorf("client sessions: %w", err)
	}

	// Sorts for the index builds, and the foreign key's check (one join of the two
	// tables), in memory where they fit.
	if err := exec("SET LOCAL maintenance_work_mem = '1GB'", "SET LOCAL work_mem = '1GB'"); err != nil {
		return err
	}
	for _, group := range [][]def{pks, indexes, fks} {
		for _, d := range group {
			if err := exec(d.create); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

var userAgents = []string{
	"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
	"okhttp/4.12.0",
}
