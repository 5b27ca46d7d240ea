package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
)

// TestIdempotentOpen_postgresTwoNodes: on PostgreSQL whose commits wait for a synchronous
// standby that is gone, an open on one node ends at the statement timeout as 503 with its
// commit applied locally (an unknown outcome, not simulated); once commits complete again,
// the retry with the same key on another node answers 201 with that session, and one
// session is left. It runs on a throwaway cluster of its own: the shared server must never
// have its commits starved.
func TestIdempotentOpen_postgresTwoNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a PostgreSQL cluster of its own (about 30 s)")
	}
	cluster := testpg.NewCluster(t)
	a := newStack(t, withStore(pgProvider(t, cluster.URL(), "node-a", postgres.OptStatementTimeout, "1s")))
	b := newStack(t, withStore(pgProvider(t, cluster.URL(), "node-b", postgres.OptStatementTimeout, "1s")))
	// An open with a key before the commits hang: the realm's session-id key is stored.
	var bob tokens
	a.do(t, withKey(login{UserID: "u-2", Username: "bob"}, "k-bob")).decode(t, http.StatusCreated, &bob)

	cluster.SQL(t, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'", "SELECT pg_reload_conf()")
	// The reload reaches each server process in its own time, and a pooled one applies it
	// only between two commands: until it has, a commit completes as before. So the first
	// attempt is made, each with its own key and user, until one ends in the unknown
	// outcome the test is about.
	var key, user string
	for i := range 10 {
		key, user = fmt.Sprintf("3f1e2a9c-2d8b-4c55-a0de-%012d", i), fmt.Sprintf("u-unknown-%d", i)
		r := a.do(t, withKey(login{UserID: user}, key))
		if r.status == http.StatusCreated && i < 9 {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		r.refused(t, http.StatusServiceUnavailable, "temporarily_unavailable", "")
		break
	}
	if got := cluster.SQL(t, "SELECT count(*) FROM user_session WHERE user_id = '"+user+"'"); got != "1" {
		t.Fatalf("%s sessions of %s after the first attempt, want 1 (applied locally)", got, user)
	}
	cluster.SQL(t, "ALTER SYSTEM RESET synchronous_standby_names", "SELECT pg_reload_conf()")

	var got tokens
	b.do(t, withKey(login{UserID: user}, key)).decode(t, http.StatusCreated, &got)
	if n := cluster.SQL(t, "SELECT count(*) FROM user_session WHERE user_id = '"+user+"'"); n != "1" {
		t.Errorf("%s sessions of %s after the retry on another node, want 1", n, user)
	}
	if id := cluster.SQL(t, "SELECT id FROM user_session WHERE user_id = '"+user+"'"); id != got.SessionID {
		t.Errorf("the retry answered session %s, the stored one is %s", got.SessionID, id)
	}
	if r := b.refresh(t, confidentialAuth, got.RefreshToken); r.SessionState != got.SessionID {
		t.Errorf("refresh answered session %s", r.SessionState)
	}
}
