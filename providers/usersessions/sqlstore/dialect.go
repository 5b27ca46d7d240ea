package sqlstore

import (
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Dialect is the SQL database a Store talks to. Everything the two dialects do
// differently is a method here; the statements themselves are shared.
type Dialect int

const (
	// Postgres is PostgreSQL through github.com/lib/pq.
	Postgres Dialect = iota + 1
	// SQLite is SQLite through modernc.org/sqlite; times are stored as Unix microseconds.
	SQLite
)

func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case SQLite:
		return "sqlite"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// bindType is the placeholder style, for sqlx.Rebind: statements are written with '?'.
func (d Dialect) bindType() int {
	if d == Postgres {
		return sqlx.DOLLAR
	}
	return sqlx.QUESTION
}

// skipLocked ends the sub-select that picks rows to expire or claim. On PostgreSQL it makes
// nodes cleaning up at once take disjoint rows instead of queueing behind each other's
// locks; SQLite has one writer and no row locks.
func (d Dialect) skipLocked() string {
	if d == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// readTx is how a multi-statement read sees one snapshot. SQLite's deferred transaction
// already reads one snapshot of a WAL database.
func (d Dialect) readTx() *sql.TxOptions {
	if d == Postgres {
		return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	return nil
}

// bindTime is how a time travels as a statement argument.
func (d Dialect) bindTime(t time.Time) any {
	t = micro(t)
	if d == SQLite {
		return t.UnixMicro()
	}
	return t
}

// colType is the type of one column of a batch.
type colType int

const (
	text colType = iota
	boolean
	integer
	timestamp
	jsonText // JSON document, stored as jsonb on PostgreSQL and TEXT on SQLite
	bytes
)

func (t colType) postgres() string {
	return [...]string{text: "text", boolean: "boolean", integer: "bigint", timestamp: "timestamptz", jsonText: "jsonb", bytes: "bytea"}[t]
}

// column is one column of a batch, named like the table column it feeds. In a statement
// the batch's column is called "k_" + name, so that it never clashes with the table's
// (SQLite's RETURNING cannot name a table through its alias).
type column struct {
	name string
	typ  colType
}

// batch is many rows sent as the arguments of one statement and read there as a relation
// named k: how Get, Create, Update, Touch and Delete handle a batch in one round trip.
type batch []column

// relation is the SQL of the batch as a FROM item. On PostgreSQL it is unnest over one
// array argument per column; on SQLite, json_each over one JSON argument holding the rows.
func (d Dialect) relation(b batch) string {
	names := make([]string, len(b))
	for i, c := range b {
		names[i] = "k_" + c.name
	}
	if d == Postgres {
		args := make([]string, len(b))
		for i, c := range b {
			args[i] = "?::" + c.typ.postgres() + "[]"
		}
		return fmt.Sprintf("unnest(%s) AS k(%s)", strings.Join(args, ", "), strings.Join(names, ", "))
	}
	cols := make([]string, len(b))
	for i, n := range names {
		cols[i] = fmt.Sprintf("value->>%d AS %s", i, n)
		if b[i].typ == bytes { // JSON has no bytes: they travel as hex
			cols[i] = fmt.Sprintf("unhex(value->>%d) AS %s", i, n)
		}
	}
	return fmt.Sprintf("(SELECT %s FROM json_each(?)) AS k", strings.Join(cols, ", "))
}

// args returns the statement arguments that carry rows (each row in b's column order;
// strings, bools, int64s, times, and JSON documents as strings) for b's relation.
func (d Dialect) args(b batch, rows [][]any) ([]any, error) {
	if d == SQLite {
		for _, r := range rows {
			for i, v := range r {
				switch x := v.(type) {
				case time.Time:
					r[i] = micro(x).UnixMicro()
				case []byte:
					r[i] = hex.EncodeToString(x)
				}
			}
		}
		doc, err := json.Marshal(rows)
		if err != nil {
			return nil, err
		}
		// As TEXT: SQLite reads a BLOB argument to json_each as its binary JSONB.
		return []any{string(doc)}, nil
	}
	out := make([]any, len(b))
	for i, c := range b {
		switch c.typ {
		case boolean:
			col := make([]bool, len(rows))
			for j, r := range rows {
				col[j] = r[i].(bool)
			}
			out[i] = pq.Array(col)
		case integer:
			col := make([]int64, len(rows))
			for j, r := range rows {
				col[j] = r[i].(int64)
			}
			out[i] = pq.Array(col)
		case bytes:
			col := make([][]byte, len(rows))
			for j, r := range rows {
				col[j] = r[i].([]byte)
			}
			out[i] = pq.Array(col)
		default:
			col := make([]string, len(rows))
			for j, r := range rows {
				if t, ok := r[i].(time.Time); ok {
					col[j] = micro(t).Format(time.RFC3339Nano)
				} else {
					col[j] = r[i].(string)
				}
			}
			out[i] = pq.Array(col)
		}
	}
	return out, nil
}
