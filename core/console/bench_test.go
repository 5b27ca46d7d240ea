package console_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
)

// BenchmarkSessionsPage renders the Sessions page's first page, and a next page from the
// middle of the realm, over a realm stored in PostgreSQL, beside the admin API's same page
// of 50 (GET /admin/realms/{realm}/sessions?max=50), each over HTTP through sessiond's own
// handler, for two realm sizes in two schemas: 10,000 sessions and
// SESSIOND_CONSOLE_BENCH_SESSIONS (default 1,000,000). Each iteration times every page of
// both realms once, interleaved, so that the machine's noise falls on all alike; the
// figures are each page's min, median and max in ms, and the ratios of the large realm's
// medians to the small one's (a page must not grow with the realm) and of the console's to
// the admin API's.
//
//	go test -run '^$' -bench SessionsPage -benchtime 100x -timeout 30m ./core/console
func BenchmarkSessionsPage(b *testing.B) {
	large := 1_000_000
	if v := os.Getenv("SESSIOND_CONSOLE_BENCH_SESSIONS"); v != "" {
		var err error
		if large, err = strconv.Atoi(v); err != nil || large <= 10_000 {
			b.Fatalf("SESSIOND_CONSOLE_BENCH_SESSIONS=%q: want a whole number above 10000 (the small realm)", v)
		}
	}
	realms := []*benchRealm{newBenchRealm(b, 10_000), newBenchRealm(b, large)}
	type page struct{ name, path string }
	pagesOf := func(r *benchRealm) []page {
		return []page{
			{"console first page", "/admin/console/realms/acme/sessions?type=regular"},
			{"console next page", "/admin/console/realms/acme/sessions?type=regular&after=" + r.middle},
			{"admin API first page", "/admin/realms/acme/sessions?max=50"},
			{"admin API next page", "/admin/realms/acme/sessions?max=50&after=" + r.middle},
		}
	}
	samples := map[string][]time.Duration{}
	key := func(r *benchRealm, p page) string { return fmt.Sprintf("sessions=%d/%s", r.n, p.name) }
	b.ResetTimer()
	for b.Loop() {
		for _, r := range realms {
			for _, p := range pagesOf(r) {
				start := time.Now()
				r.get(b, p.path)
				samples[key(r, p)] = append(samples[key(r, p)], time.Since(start))
			}
		}
	}
	b.StopTimer()
	// A benchmark's log keeps 10 lines: one line per realm size, then the ratios.
	medians := map[string]float64{}
	for _, r := range realms {
		line := fmt.Sprintf("sessions=%d, ms min/median/max:", r.n)
		for _, p := range pagesOf(r) {
			k := key(r, p)
			s := samples[k]
			slices.Sort(s)
			lo, mid, hi := ms(s[0]), ms(s[len(s)/2]), ms(s[len(s)-1])
			medians[k] = mid
			unit := strings.ReplaceAll(k, " ", "-")
			b.ReportMetric(lo, unit+"-min-ms")
			b.ReportMetric(mid, unit+"-median-ms")
			b.ReportMetric(hi, unit+"-max-ms")
			line += fmt.Sprintf("  %s %.1f/%.1f/%.1f;", p.name, lo, mid, hi)
		}
		b.Log(line)
	}
	small, big := realms[0], realms[1]
	line := fmt.Sprintf("median, %d vs %d sessions:", big.n, small.n)
	for _, p := range pagesOf(big) {
		line += fmt.Sprintf("  %s ×%.2f;", p.name, medians[key(big, p)]/medians[key(small, p)])
	}
	b.Log(line)
	for _, r := range realms {
		ps := pagesOf(r)
		b.Logf("median, console / admin API, sessions=%d: first page ×%.2f, next page ×%.2f", r.n,
			medians[key(r, ps[0])]/medians[key(r, ps[2])], medians[key(r, ps[1])]/medians[key(r, ps[3])])
	}
	b.ReportMetric(medians[key(big, pagesOf(big)[0])]/medians[key(small, pagesOf(small)[0])], "console-first-page-large/small")
	b.ReportMetric(medians[key(big, pagesOf(big)[1])]/medians[key(small, pagesOf(small)[1])], "console-next-page-large/small")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchRealm is realm acme with n regular sessions in a schema of its own, served by the
// console and the admin API of one sessiond HTTP handler.
type benchRealm struct {
	n      int
	middle string // the session id half way through the realm, in the cursor's order
	srv    *httptest.Server
	client *http.Client
	cookie string
}

func newBenchRealm(b *testing.B, n int) *benchRealm {
	b.Helper()
	dbURL := testpg.Schema(b, "console_bench")
	store := postgres.New(hclog.NewNullLogger())
	if err := store.Configure(context.Background(), spi.Config{postgres.OptURL: dbURL,
		spi.HostNodeID: "bench", postgres.OptStatementTimeout: "2m"}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close(context.Background()) })
	f := newFixtureOn(b, store)
	start := time.Now()
	middle := fillSessions(b, dbURL, n, f.now)
	b.Logf("sessions=%d: loaded and analysed in %s", n, time.Since(start).Round(time.Millisecond))
	r := &benchRealm{n: n, middle: middle}
	h := httpapi.New(hclog.NewNullLogger(), httpapi.Deps{Ready: noChecks{}, Realms: f.realms, Admin: f.admin,
		AdminToken: adminCred, Console: f.console})
	r.srv = httptest.NewServer(h)
	b.Cleanup(r.srv.Close)
	br := f.browser()
	br.f = &fixture{t: b, srv: r.srv}
	br.signIn(viewerCred)
	r.client = br.client
	return r
}

type noChecks struct{}

func (noChecks) Checks(context.Context) []httpapi.Check { return nil }

// get reads a page and checks it holds 50 sessions.
func (r *benchRealm) get(b *testing.B, path string) {
	req, _ := http.NewRequest(http.MethodGet, r.srv.URL+path, nil)
	if strings.HasPrefix(path, "/admin/realms/") {
		req.Header.Set("Authorization", "Bearer "+adminCred)
	}
	res, err := r.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	rows := strings.Count(string(body), `class="session"`)
	if strings.HasPrefix(path, "/admin/realms/") {
		rows = strings.Count(string(body), `"userId"`)
	}
	if res.StatusCode != http.StatusOK || rows != 50 {
		b.Fatalf("%s: %d with %d sessions, want 200 with 50:\n%.500s", path, res.StatusCode, rows, body)
	}
}

// fillSessions writes n regular sessions of realm acme, one client session each, in two
// INSERT … SELECT FROM generate_series statements: PostgreSQL makes the rows itself, faster
// still than a COPY fed from Go (bench/preload's fill), which matters on a shared machine.
// Ids are md5s of the row number, random in the cursor's order as sessiond's own are, so
// that the table's key order is not the order its rows were written in. Then ANALYZE: a
// database in service has statistics (autovacuum analyses a table that grew), which the
// planner needs to page by the index rather than read the realm. It returns the id half
// way through the realm in the cursor's order (COLLATE "C", by id).
func fillSessions(b *testing.B, dbURL string, n int, now time.Time) string {
	b.Helper()
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	started, expires := now.Add(-time.Minute), now.Add(time.Hour)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO user_session (realm_id, id, offline, id_hash, user_id, login_username, ip_address, user_agent, auth_method,
			broker_session_id, broker_user_id, remember_me, state, started, last_refresh, expires_at, notes, version)
		SELECT $1, md5(g::text), false, hashtext(md5(g::text)) & 2147483647, 'user-' || g, 'user' || g || '@example.test',
			'10.' || (g >> 16 & 255) || '.' || (g >> 8 & 255) || '.' || (g & 255),
			'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', 'openid-connect', '', '', false, 'LOGGED_IN',
			$2, $2, $3, '{}', 1
		FROM generate_series(1, $4) AS g`, []any{realmName, started, expires, n}},
		{`INSERT INTO client_session (realm_id, user_session_id, offline, client_id, started, last_refresh, expires_at, auth_method,
			redirect_uri, action, scope, notes, current_refresh_token, current_refresh_token_use_count, previous_refresh_token, rotated_at, version)
		SELECT realm_id, id, false, $1, started, last_refresh, expires_at, 'openid-connect', 'https://app.test/callback', 'AUTHENTICATE',
			'openid', '{}', '', 0, '', $2, 1
		FROM user_session WHERE realm_id = $3`, []any{app, time.Time{}, realmName}},
		{`ANALYZE`, nil},
	} {
		if _, err := db.Exec(q.sql, q.args...); err != nil {
			b.Fatalf("%v\n%s", err, q.sql)
		}
	}
	var middle string
	if err := db.QueryRow(`SELECT id FROM user_session WHERE realm_id = $1 AND NOT offline ORDER BY id OFFSET $2 LIMIT 1`,
		realmName, n/2).Scan(&middle); err != nil {
		b.Fatal(err)
	}
	return middle
}
