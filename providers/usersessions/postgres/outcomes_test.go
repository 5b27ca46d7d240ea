package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// refreshCall is a write a refresh makes, on the session "id" of the test's schema:
// prepare reads what it needs and returns the call, which returns the items' errors and
// the call's.
type refreshCall struct {
	name    string
	prepare func(t *testing.T, p *postgres.Provider, id string) func() ([]error, error)
}

// do prepares and makes c.
func (c refreshCall) do(t *testing.T, p *postgres.Provider, id string) ([]error, error) {
	return c.prepare(t, p, id)()
}

// touchClient touches the user session id and its client session "app", an hour on.
func touchClient(t *testing.T, p *postgres.Provider, id string) func() ([]error, error) {
	later := time.Now().UTC().Truncate(time.Microsecond).Add(time.Hour)
	return func() ([]error, error) {
		return p.Touch(context.Background(), []usersessions.Touch{{Session: usersessions.Key{RealmID: "r1", ID: id},
			LastRefresh: later, ExpiresAt: later.Add(time.Hour), ClientID: "app", ClientExpiresAt: later.Add(time.Hour)}})
	}
}

// rotation is the rotation of id's client session "app" at its stored version.
func rotation(t *testing.T, p *postgres.Provider, id string) usersessions.Rotation {
	t.Helper()
	got, err := p.Get(t.Context(), []usersessions.Key{{RealmID: "r1", ID: id}})
	if err != nil || got[0] == nil {
		t.Fatalf("Get %s = %v, %v", id, got, err)
	}
	c := *got[0].Clients["app"]
	c.RealmID, c.UserSessionID = "r1", id
	c.CurrentRefreshToken = "rotated-" + fmt.Sprint(c.Version)
	later := time.Now().UTC().Truncate(time.Microsecond).Add(time.Hour)
	return usersessions.Rotation{Client: &c, LastRefresh: later, ExpiresAt: later.Add(time.Hour)}
}

// rotateOne rotates id's client session "app": one statement.
func rotateOne(t *testing.T, p *postgres.Provider, id string) func() ([]error, error) {
	r := rotation(t, p, id)
	return func() ([]error, error) { return p.Rotate(context.Background(), []usersessions.Rotation{r}) }
}

// rotateTx rotates id's client session "app" with the creation of a client session of
// another user session: a transaction (a rotation of version 0 is not the statement's),
// which writes id's client session, then the user sessions.
func rotateTx(t *testing.T, p *postgres.Provider, id string) func() ([]error, error) {
	other := usersessions.ClientSession{RealmID: "r1", UserSessionID: id + "-other", ClientID: "new", Started: time.Now(), LastRefresh: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	later := time.Now().UTC().Truncate(time.Microsecond).Add(time.Hour)
	rs := []usersessions.Rotation{rotation(t, p, id), {Client: &other, LastRefresh: later, ExpiresAt: later.Add(time.Hour)}}
	return func() ([]error, error) { return p.Rotate(context.Background(), rs) }
}

var refreshCalls = []refreshCall{
	{"Touch in one statement", touchClient},
	{"Rotate in one statement", rotateOne},
	{"Rotate in a transaction", rotateTx},
}

// stored is what a refresh moves of the session id: its user session's last refresh and
// its client session's version.
func stored(t *testing.T, db *sqlx.DB, schema, id string) (lastRefresh time.Time, version int64) {
	t.Helper()
	err := db.QueryRow(fmt.Sprintf(`SELECT s.last_refresh, c.version FROM %[1]s.user_session s JOIN %[1]s.client_session c
		ON c.realm_id = s.realm_id AND c.user_session_id = s.id AND c.offline = s.offline AND c.client_id = 'app'
		WHERE s.realm_id = 'r1' AND s.id = $1`, schema), id).Scan(&lastRefresh, &version)
	if err != nil {
		t.Fatal(err)
	}
	return lastRefresh, version
}

// TestRefreshAfterTheServerDroppedItsPreparedStatements: an operator's DEALLOCATE ALL (or
// DISCARD ALL, a pooler's server_reset_query) drops the statements Touch and Rotate
// prepared on a connection; the next Touch and Rotate on it prepare them again and succeed.
func TestRefreshAfterTheServerDroppedItsPreparedStatements(t *testing.T) {
	t.Parallel()
	db := admin(t)
	schema, u := freshSchema(t, db)
	// One connection: the statements dropped are those the calls use.
	p := open(t, spi.Config{postgres.OptURL: u, postgres.OptMaxOpenConns: "1"})
	mustCreate(t, p, testSession("dropped"))
	for _, drop := range []string{"DEALLOCATE ALL", "DISCARD ALL"} {
		t.Run(drop, func(t *testing.T) {
			for _, call := range refreshCalls[:2] {
				// The statement, prepared on the connection.
				if errs, err := call.do(t, p, "dropped"); err != nil || errors.Join(errs...) != nil {
					t.Fatalf("%s = %v, %v", call.name, errs, err)
				}
				var prepared int
				if err := postgres.Pool(p).Get(&prepared, "SELECT count(*) FROM pg_prepared_statements"); err != nil || prepared == 0 {
					t.Fatalf("statements prepared on the connection: %d, %v; want some", prepared, err)
				}
				if _, err := postgres.Pool(p).Exec(drop); err != nil {
					t.Fatal(err)
				}
				last, version := stored(t, db, schema, "dropped")
				errs, err := call.do(t, p, "dropped")
				if err != nil || errors.Join(errs...) != nil {
					t.Fatalf("%s after %s = %v, %v; want success", call.name, drop, errs, err)
				}
				after, afterVersion := stored(t, db, schema, "dropped")
				if !after.After(last) {
					t.Errorf("%s after %s: last refresh %v, was %v; want it moved on", call.name, drop, after, last)
				}
				if call.name == "Rotate in one statement" && afterVersion != version+1 {
					t.Errorf("%s after %s: version %d, was %d; want one more", call.name, drop, afterVersion, version)
				}
			}
		})
	}
}

// lockingConn is a connection of the test's own, as another writer on the database,
// whose deadlock_timeout is long: of a deadlock with the provider, the provider's session
// finds it first, and its transaction is the victim.
func lockingConn(t *testing.T, db *sqlx.DB) *sqlx.Conn {
	t.Helper()
	conn, err := db.Connx(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.ExecContext(t.Context(), "SET deadlock_timeout = '60s'"); err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitBlocked waits for a backend of application app to wait for a lock.
func waitBlocked(t *testing.T, db *sqlx.DB, app string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := db.Get(&n, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", app); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the provider's write did not wait for the lock within 10 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type result struct {
	errs []error
	err  error
}

// TestRefreshDeadlockVictimIsWrittenAgain: a refresh's write that PostgreSQL picks as the
// victim of a deadlock (it locked the client session, then waits for the user session
// another writer holds, which then waits for the client session) was rolled back as a
// whole; the store writes it again, and the refresh succeeds, applied once.
func TestRefreshDeadlockVictimIsWrittenAgain(t *testing.T) {
	t.Parallel()
	db := admin(t)
	schema, u := freshSchema(t, db)
	app := randomName("sessiond_test_")
	// The provider's sessions look for a deadlock after 500 ms of waiting, the other
	// writer's after a minute.
	p := open(t, spi.Config{postgres.OptURL: withParams(t, u, "application_name", app, "deadlock_timeout", "500ms"), postgres.OptStatementTimeout: "10s"})
	for i, call := range refreshCalls {
		t.Run(call.name, func(t *testing.T) {
			id := fmt.Sprintf("deadlock-%d", i)
			mustCreate(t, p, testSession(id), testSession(id+"-other"))
			last, version := stored(t, db, schema, id)
			other := lockingConn(t, db)
			tx, err := other.BeginTxx(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback() //nolint:errcheck // committed below
			// The other writer holds the user session, without changing it.
			if _, err := tx.Exec(fmt.Sprintf("UPDATE %s.user_session SET last_refresh = last_refresh WHERE realm_id = 'r1' AND id = $1", schema), id); err != nil {
				t.Fatal(err)
			}
			do := call.prepare(t, p, id)
			done := make(chan result, 1)
			go func() {
				errs, err := do()
				done <- result{errs, err}
			}()
			// The refresh has locked the client session and waits for the user session.
			waitBlocked(t, db, app)
			// The other writer now waits for the client session: a deadlock, which the
			// provider's session finds, ending its own transaction; then the other writer
			// gets the client session (without changing its version) and commits.
			if _, err := tx.Exec(fmt.Sprintf("UPDATE %s.client_session SET expires_at = expires_at WHERE realm_id = 'r1' AND user_session_id = $1 AND client_id = 'app'", schema), id); err != nil {
				t.Fatalf("the other writer: %v (it should not have been the deadlock's victim)", err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			var r result
			select {
			case r = <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("the refresh did not return within 15 s")
			}
			if r.err != nil || errors.Join(r.errs...) != nil {
				t.Fatalf("%s, the victim of a deadlock = %v, %v; want success, written again", call.name, r.errs, r.err)
			}
			after, afterVersion := stored(t, db, schema, id)
			if !after.After(last) {
				t.Errorf("last refresh %v, was %v; want it moved on", after, last)
			}
			if want := version + 1; call.name != "Touch in one statement" && afterVersion != want {
				t.Errorf("client session at version %d after one rotation from %d; want %d (applied once)", afterVersion, version, want)
			}
		})
	}
}

// TestWriteRolledBackEveryTimeGivesUp: a write that PostgreSQL rolls back as a deadlock's
// victim at every attempt is made three times, then fails as unavailable (retry later),
// of known outcome: nothing was applied.
func TestWriteRolledBackEveryTimeGivesUp(t *testing.T) {
	t.Parallel()
	db := admin(t)
	schema, u := freshSchema(t, db)
	p := open(t, spi.Config{postgres.OptURL: u})
	mustCreate(t, p, testSession("refused"))
	for _, q := range []string{
		"CREATE SEQUENCE %[1]s.attempts",
		`CREATE FUNCTION %[1]s.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
			PERFORM nextval('%[1]s.attempts');
			RAISE EXCEPTION 'a deadlock at every attempt' USING ERRCODE = 'deadlock_detected';
		END $$`,
		"CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON %[1]s.user_session FOR EACH ROW EXECUTE FUNCTION %[1]s.refuse()",
	} {
		if _, err := db.Exec(fmt.Sprintf(q, schema)); err != nil {
			t.Fatal(err)
		}
	}
	for _, call := range []refreshCall{
		{"Create, a transaction", func(*testing.T, *postgres.Provider, string) func() ([]error, error) {
			return func() ([]error, error) {
				return p.Create(context.Background(), []*usersessions.UserSession{testSession("never")})
			}
		}},
		refreshCalls[0], refreshCalls[1],
	} {
		t.Run(call.name, func(t *testing.T) {
			attempts := func() int64 {
				var n int64
				if err := db.Get(&n, fmt.Sprintf("SELECT nextval('%s.attempts')", schema)); err != nil {
					t.Fatal(err)
				}
				return n
			}
			do := call.prepare(t, p, "refused")
			before := attempts()
			_, err := do()
			if !errors.Is(err, spi.ErrUnavailable) || errors.Is(err, usersessions.ErrOutcomeUnknown) {
				t.Fatalf("%s rolled back at every attempt = %v; want spi.ErrUnavailable, not usersessions.ErrOutcomeUnknown", call.name, err)
			}
			if n := attempts() - before - 1; n != 3 {
				t.Errorf("%s was attempted %d times; want 3", call.name, n)
			}
		})
	}
}

// TestRefreshCancelledByTheWriteTimeoutIsRefused: a Touch or Rotate, one statement, that
// waits for a row lock past the write timeout is cancelled, by the server's
// statement_timeout or by lib/pq's cancel request when the write's context ends first;
// PostgreSQL's answer (an ERROR, query_canceled) says its implicit transaction was rolled
// back, so the failure is of known outcome (spi.ErrUnavailable, not
// usersessions.ErrOutcomeUnknown), and nothing of it is applied, whether the writer that
// held the lock then commits or rolls back.
func TestRefreshCancelledByTheWriteTimeoutIsRefused(t *testing.T) {
	t.Parallel()
	db := admin(t)
	schema, u := freshSchema(t, db)
	for _, by := range []struct{ name, url string }{
		{"statement_timeout", u},
		// The session's own statement_timeout, set in the URL, is longer than the write
		// timeout: the driver cancels the statement when the write's context ends.
		{"driver's cancel", withParams(t, u, "statement_timeout", "60000")},
	} {
		p := open(t, spi.Config{postgres.OptURL: by.url, postgres.OptStatementTimeout: "500ms"})
		for i, call := range refreshCalls[:2] {
			for _, end := range []string{"commit", "rollback"} {
				t.Run(by.name+", "+call.name+", "+end, func(t *testing.T) {
					id := fmt.Sprintf("locked-%d-%s-%d", i, end, len(by.url))
					mustCreate(t, p, testSession(id))
					last, version := stored(t, db, schema, id)
					tx, err := db.BeginTxx(t.Context(), nil)
					if err != nil {
						t.Fatal(err)
					}
					defer tx.Rollback() //nolint:errcheck // ended below
					if _, err := tx.Exec(fmt.Sprintf("SELECT 1 FROM %s.client_session WHERE realm_id = 'r1' AND user_session_id = $1 FOR UPDATE", schema), id); err != nil {
						t.Fatal(err)
					}
					started := time.Now()
					_, err = call.do(t, p, id)
					took := time.Since(started)
					t.Logf("%s after %v: %v", call.name, took, err)
					if err == nil || errors.Is(err, usersessions.ErrOutcomeUnknown) || !errors.Is(err, spi.ErrUnavailable) {
						t.Fatalf("%s cancelled while it waited for a lock = %v; want spi.ErrUnavailable, not usersessions.ErrOutcomeUnknown", call.name, err)
					}
					if took > 5*time.Second {
						t.Errorf("%s took %v; want about the write timeout (500ms)", call.name, took)
					}
					if end == "commit" {
						err = tx.Commit()
					} else {
						err = tx.Rollback()
					}
					if err != nil {
						t.Fatal(err)
					}
					after, afterVersion := stored(t, db, schema, id)
					if !after.Equal(last) || afterVersion != version {
						t.Errorf("after the refused %s: last refresh %v, version %d; want %v, %d (unchanged)", call.name, after, afterVersion, last, version)
					}
				})
			}
		}
	}
}
