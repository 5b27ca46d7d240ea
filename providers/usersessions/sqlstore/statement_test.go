package sqlstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// TestRefreshStatementsSettleOnAGenericPlan: after a few calls with a batch of one, the
// common refresh, Touch's and Rotate's prepared statements run PostgreSQL's generic plan
// instead of planning again at every call (see unsizedRelation).
func TestRefreshStatementsSettleOnAGenericPlan(t *testing.T) {
	s := pgStore(t)
	// One connection: the statements are prepared on the one pg_prepared_statements reads.
	s.db.SetMaxOpenConns(1)
	// Tables large enough that a batch's cost grows with its rows, as in production: a
	// plan for the one row PostgreSQL sees in a batch of one then costs less than the
	// generic plan, which knows no length.
	for _, q := range []string{
		`INSERT INTO user_session (realm_id, id, offline, id_hash, user_id, login_username, ip_address, user_agent, auth_method,
			broker_session_id, broker_user_id, remember_me, state, started, last_refresh, expires_at, notes, version)
		SELECT 'r1', 's' || g, false, g, 'u', 'u', '', '', 'pwd', '', '', false, '', now(), now(), now() + interval '1 hour', '{}', 1
		FROM generate_series(1, 20000) AS g`,
		`INSERT INTO client_session (realm_id, user_session_id, offline, client_id, started, last_refresh, expires_at, auth_method,
			redirect_uri, action, scope, notes, current_refresh_token, current_refresh_token_use_count, previous_refresh_token, rotated_at, version)
		SELECT 'r1', 's' || g, false, 'app', now(), now(), now() + interval '1 hour', 'pwd', '', '', '', '{}', '', 0, '', now(), 1
		FROM generate_series(1, 20000) AS g`,
		"ANALYZE user_session", "ANALYZE client_session",
	} {
		if _, err := s.db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	missing := usersessions.Key{RealmID: "r1", ID: "plan-missing"}
	for range 8 {
		errs, err := s.Touch(t.Context(), []usersessions.Touch{{Session: missing, LastRefresh: now, ExpiresAt: now.Add(time.Hour), ClientID: "app", ClientExpiresAt: now.Add(time.Hour)}})
		if err != nil || !errors.Is(errs[0], spi.ErrNotFound) {
			t.Fatalf("Touch of a missing session = %v, %v; want not found", errs, err)
		}
		c := &usersessions.ClientSession{RealmID: missing.RealmID, UserSessionID: missing.ID, ClientID: "app", Version: 1}
		errs, err = s.Rotate(t.Context(), []usersessions.Rotation{{Client: c, LastRefresh: now, ExpiresAt: now.Add(time.Hour)}})
		if err != nil || errs[0] == nil {
			t.Fatalf("Rotate of a missing session = %v, %v; want it refused", errs, err)
		}
	}
	rows, err := s.db.QueryxContext(t.Context(), "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var refresh int
	for rows.Next() {
		var q string
		var generic, custom int64
		if err := rows.Scan(&q, &generic, &custom); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(q, "WITH c AS (UPDATE client_session") {
			continue
		}
		refresh++
		if generic == 0 {
			t.Errorf("after 8 calls, %d custom plans and no generic one for %.80s…", custom, q)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if refresh != 2 {
		t.Errorf("%d refresh statements prepared on the connection, want Touch's and Rotate's", refresh)
	}
}
