package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// report is the durability check of one variant.
type report struct {
	acked, found, missing, extra int   // acknowledged creates; rows found; acknowledged but absent; present but never acknowledged
	refreshes                    int64 // acknowledged refreshes
	checked, refreshesChecked    int   // sessions whose last refresh was compared; acknowledged refreshes they carry
	badToken, badTouch           int   // stored token/version not the last acknowledged; idle clock behind the last acknowledged touch
	examples                     []string
}

func (r report) ok() bool { return r.missing == 0 && r.badToken == 0 && r.badTouch == 0 }

func (r report) String() string {
	verdict := "OK"
	if !r.ok() {
		verdict = "FAILED"
	}
	s := fmt.Sprintf("%s: %d/%d acknowledged creates present (%d unacknowledged rows); last acknowledged refresh token+version and idle clock of %d sessions checked (%d of %d acknowledged refreshes): %d token/version mismatches, %d idle clocks behind",
		verdict, r.acked-r.missing, r.acked, r.extra, r.checked, r.refreshesChecked, r.refreshes, r.badToken, r.badTouch)
	if len(r.examples) > 0 {
		s += "\n      " + strings.Join(r.examples, "\n      ")
	}
	return s
}

type storedRow struct {
	ID          string         `db:"id"`
	LastRefresh time.Time      `db:"last_refresh"`
	Token       sql.NullString `db:"current_refresh_token"`
	Version     sql.NullInt64  `db:"version"`
}

// verify reads every session of the ledger's realm back and compares it with what was
// acknowledged: every acknowledged create is there, and for sample sessions (0: all) the
// client session carries the last acknowledged rotation (token and version, which counts
// the rotations) and the user session's idle clock is at least the last acknowledged touch.
func verify(ctx context.Context, db *sqlx.DB, schema string, led *ledger, sample int) (report, error) {
	var rows []storedRow
	err := db.SelectContext(ctx, &rows, fmt.Sprintf(`SELECT s.id, s.last_refresh, c.current_refresh_token, c.version
		FROM %[1]s.user_session s LEFT JOIN %[1]s.client_session c
		ON c.realm_id = s.realm_id AND c.user_session_id = s.id AND c.offline = s.offline AND c.client_id = $2
		WHERE s.realm_id = $1`, pq.QuoteIdentifier(schema)), led.realm, clientID)
	if err != nil {
		return report{}, err
	}
	stored := make(map[string]storedRow, len(rows))
	for _, r := range rows {
		stored[r.ID] = r
	}
	var all []*sess
	for _, mine := range led.byCaller {
		all = append(all, mine...)
	}
	rep := report{acked: len(all), found: len(rows)}
	step := 1
	if sample > 0 && len(all) > sample {
		step = len(all) / sample
	}
	bad := func(format string, a ...any) {
		if len(rep.examples) < 5 {
			rep.examples = append(rep.examples, fmt.Sprintf(format, a...))
		}
	}
	seen := 0
	for i, s := range all {
		rep.refreshes += int64(s.refreshes)
		r, ok := stored[s.key.ID]
		if !ok {
			rep.missing++
			bad("session %s: acknowledged create is missing", s.key.ID)
			continue
		}
		seen++
		if i%step != 0 {
			continue
		}
		rep.checked++
		rep.refreshesChecked += s.refreshes
		if !r.Token.Valid || r.Token.String != s.client.CurrentRefreshToken || r.Version.Int64 != s.client.Version {
			rep.badToken++
			bad("session %s: stored token %q version %d, last acknowledged %q version %d",
				s.key.ID, r.Token.String, r.Version.Int64, s.client.CurrentRefreshToken, s.client.Version)
		}
		if r.LastRefresh.Before(s.lastTouch) {
			rep.badTouch++
			bad("session %s: stored last_refresh %s, last acknowledged touch %s", s.key.ID, r.LastRefresh, s.lastTouch)
		}
	}
	rep.extra = len(rows) - seen
	return rep, nil
}
