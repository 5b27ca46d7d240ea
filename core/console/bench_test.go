package console_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
)

// BenchmarkSessionsPage renders the Sessions page's first page, and a next page from the
// middle of the realm, over a realm stored in PostgreSQL, beside the admin service's same
// page of 50 (what GET /admin/realms/{realm}/sessions?max=50 answers; the route only
// encodes it). SESSIOND_CONSOLE_BENCH_SESSIONS sets the realm's size (default 10,000):
// the times must not grow with it.
//
//	SESSIOND_CONSOLE_BENCH_SESSIONS=100000 go test -run '^$' -bench SessionsPage -benchtime 200x ./core/console
func BenchmarkSessionsPage(b *testing.B) {
	n := 10000
	if v := os.Getenv("SESSIOND_CONSOLE_BENCH_SESSIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 100 {
			b.Fatalf("SESSIOND_CONSOLE_BENCH_SESSIONS=%q: want a whole number of at least 100", v)
		}
	}
	store := postgres.New(hclog.NewNullLogger())
	dbURL := testpg.Schema(b, "console")
	if err := store.Configure(context.Background(), spi.Config{postgres.OptURL: dbURL,
		spi.HostNodeID: "bench", postgres.OptStatementTimeout: "2m"}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close(context.Background()) })
	f := newFixtureOn(b, store)
	f.addSessions(n, "r", "alice", false, app)
	// A database in service has statistics (autovacuum analyses a table that grew); right
	// after a bulk load it has none, and the planner, guessing a few rows, reads the realm.
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("ANALYZE"); err != nil {
		b.Fatal(err)
	}
	br := f.browser()
	br.signIn(viewerCred)
	page := func(b *testing.B, query string) {
		for b.Loop() {
			res, err := br.client.Get(f.srv.URL + "/admin/console/realms/acme/sessions?" + query)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || strings.Count(string(body), `class="session"`) != 50 {
				b.Fatalf("%s: %d", query, res.StatusCode)
			}
		}
	}
	b.Run(fmt.Sprintf("sessions=%d/console first page", n), func(b *testing.B) { page(b, "type=regular") })
	b.Run(fmt.Sprintf("sessions=%d/console next page", n), func(b *testing.B) {
		page(b, "type=regular&after="+fmt.Sprintf("r-%04d", n/2))
	})
	b.Run(fmt.Sprintf("sessions=%d/admin service page", n), func(b *testing.B) {
		for b.Loop() {
			reps, _, err := f.admin.RealmSessions(context.Background(), realmName, false, admin.Query{Max: 50, After: fmt.Sprintf("r-%04d", n/2)})
			if err != nil || len(reps) != 50 {
				b.Fatalf("%d sessions, %v", len(reps), err)
			}
		}
	})
}
