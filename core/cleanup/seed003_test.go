package cleanup

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// seed003Realm is the realm of seed 003's report: "SSO Session Idle Remember Me is set to
// 120 days and SSO Session Idle is set to just 1 hour". SSO Session Max Remember Me is 120
// days too, or the 10-hour SSO Session Max would end remember-me sessions first. Both
// clients may get offline tokens.
func seed003Realm() *realm.Realm {
	return &realm.Realm{Name: "acme", Enabled: true,
		Timeouts: realm.Timeouts{SSOSessionIdle: hour, SSOSessionIdleRememberMe: 120 * day, SSOSessionMaxRememberMe: 120 * day},
		Clients: []*realm.Client{
			{ClientID: "app", Enabled: true, PublicClient: true, OfflineAccess: true},
			{ClientID: "other", Enabled: true, PublicClient: true, OfflineAccess: true},
		}}
}

// login is one kind of session of the seed 003 test: how it was used, as ages before the
// cleanup, and which of its rows must survive the cleanup.
type login struct {
	name       string
	rememberMe bool
	offline    bool            // scope offline_access: an offline session and token too
	open       time.Duration   // logged in to "app" this long before the cleanup
	attach     time.Duration   // "other" attached this long before (0: never)
	refreshes  []time.Duration // app's refresh (or offline) token used this long before
	// keep lists the rows left after the cleanup: "online", "offline", "online/<client>",
	// "offline/<client>". Every other row the login made must be gone.
	keep []string
}

// every returns the ages from `from` down to (not below) `to`, `step` apart.
func every(from, to, step time.Duration) []time.Duration {
	var out []time.Duration
	for a := from; a >= to; a -= step {
		out = append(out, a)
	}
	return out
}

var seed003Logins = []login{
	{name: "ordinary, active 10 min ago", open: 10 * minute, keep: []string{"online", "online/app"}},
	{name: "ordinary, idle 59 min", open: 59 * minute, keep: []string{"online", "online/app"}},
	{name: "ordinary, idle 61 min", open: 61 * minute},
	{name: "ordinary, idle 2 h (seed 003: kept 120 days by Keycloak)", open: 2 * hour},
	{name: "ordinary, idle 30 days", open: 30 * day},
	{name: "ordinary, idle 100 days", open: 100 * day},
	{name: "ordinary, app idle 90 min, other attached 40 min ago", open: 90 * minute, attach: 40 * minute,
		keep: []string{"online", "online/other"}},
	{name: "ordinary, refreshed every 40 min, last 20 min ago", open: 3 * hour, refreshes: every(2*hour+20*minute, 20*minute, 40*minute),
		keep: []string{"online", "online/app"}},
	{name: "ordinary, refreshed 30 min ago but started 10 h 15 min ago (SSO Session Max)", open: 10*hour + 15*minute,
		refreshes: every(9*hour+30*minute, 30*minute, 45*minute)},
	{name: "remember-me, active 10 min ago", rememberMe: true, open: 10 * minute, keep: []string{"online", "online/app"}},
	{name: "remember-me, idle 2 h (seed 003: must stay)", rememberMe: true, open: 2 * hour, keep: []string{"online", "online/app"}},
	{name: "remember-me, idle 30 days", rememberMe: true, open: 30 * day, keep: []string{"online", "online/app"}},
	{name: "remember-me, idle 119 days", rememberMe: true, open: 119 * day, keep: []string{"online", "online/app"}},
	{name: "remember-me, idle 121 days", rememberMe: true, open: 121 * day},
	{name: "remember-me, refreshed 100 days ago but started 125 days ago (Max Remember Me)", rememberMe: true, open: 125 * day,
		refreshes: []time.Duration{100 * day}},
	{name: "remember-me, other attached a day ago", rememberMe: true, open: 50 * day, attach: day,
		keep: []string{"online", "online/app", "online/other"}},
	{name: "offline, ordinary, 2 h ago", offline: true, open: 2 * hour, keep: []string{"offline", "offline/app"}},
	{name: "offline, ordinary, 29 days ago", offline: true, open: 29 * day, keep: []string{"offline", "offline/app"}},
	{name: "offline, ordinary, 31 days ago (Offline Session Idle)", offline: true, open: 31 * day},
	{name: "offline, remember-me, 2 h ago", offline: true, rememberMe: true, open: 2 * hour,
		keep: []string{"online", "online/app", "offline", "offline/app"}},
	{name: "offline, remember-me, 31 days ago", offline: true, rememberMe: true, open: 31 * day, keep: []string{"online", "online/app"}},
	{name: "offline, ordinary, 40 days ago, offline token used 15 days ago", offline: true, open: 40 * day, refreshes: []time.Duration{15 * day},
		keep: []string{"offline", "offline/app"}},
	{name: "offline, ordinary, app 90 min ago, other attached 40 min ago", offline: true, open: 90 * minute, attach: 40 * minute,
		keep: []string{"online", "online/other", "offline", "offline/app", "offline/other"}},
}

// Seed 003: with SSO Session Idle 1 h and SSO Session Idle Remember Me 120 days, Keycloak's
// cleanup kept expired ordinary sessions for 120 days. Here many sessions are opened,
// attached and refreshed through core/session under a controllable clock, online and
// offline, ordinary and remember-me, and one cleanup pass later every expired session and
// client session is gone from the store and every live one, remember-me included, is still
// there — in each real provider.
func TestCleanup_seed003_rememberMeKeepsOnlyLiveSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store usersessions.Provider) {
		ctx := context.Background()
		cleanupAt := t0.Add(200 * day)
		c := newCore(t, store, t0, seed003Realm())
		const copies = 4

		type state struct {
			l       login
			user    string
			id      string
			refresh string
		}
		type event struct {
			what string
			at   time.Time
			do   func() error
		}
		var events []event
		var states []*state
		for _, l := range seed003Logins {
			for i := range copies {
				st := &state{l: l, user: fmt.Sprintf("user-%d-%d", len(states), i)}
				states = append(states, st)
				scope := "openid"
				if l.offline {
					scope += " offline_access"
				}
				events = append(events, event{l.name + " open", cleanupAt.Add(-l.open), func() error {
					g, err := c.svc.Open(ctx, session.OpenRequest{Realm: "acme", ClientID: "app", UserID: st.user,
						RememberMe: l.rememberMe, Scope: scope, OfflineAccess: l.offline})
					if err != nil {
						return err
					}
					st.id, st.refresh = g.SessionID, g.RefreshToken
					return nil
				}})
				if l.attach > 0 {
					events = append(events, event{l.name + " attach", cleanupAt.Add(-l.attach), func() error {
						_, err := c.svc.Attach(ctx, session.AttachRequest{Realm: "acme", SessionID: st.id, ClientID: "other", Scope: scope})
						return err
					}})
				}
				for _, age := range l.refreshes {
					events = append(events, event{l.name + " refresh", cleanupAt.Add(-age), func() error {
						g, err := c.svc.Refresh(ctx, session.RefreshRequest{Realm: "acme", Client: "app", RefreshToken: st.refresh})
						if err != nil {
							return err
						}
						st.refresh = g.RefreshToken
						return nil
					}})
				}
			}
		}
		slices.SortStableFunc(events, func(a, b event) int { return a.at.Compare(b.at) })
		for _, e := range events {
			c.clock.Set(e.at)
			if err := e.do(); err != nil {
				t.Fatalf("at %s (%s): %v", e.at, e.what, err)
			}
		}
		c.clock.Set(cleanupAt)

		before, stored := rows(t, store, "acme")
		want := map[string]bool{}
		names := map[string]string{}
		for _, st := range states {
			for _, k := range st.l.keep {
				row := st.id + "/" + k
				if !before[row] {
					t.Fatalf("%s: row %s, which must survive, was never stored", st.l.name, k)
				}
				want[row] = true
			}
			names[st.id] = st.l.name
		}
		// The hand-written expectations agree with core/expiry: a row is kept exactly when
		// it (and, for a client session, its user session) is valid at the cleanup.
		rules := c.rules(t, "acme")
		for _, us := range stored {
			s := expiry.SessionOf(us)
			if valid := rules.UserSessionValid(s, cleanupAt); valid != want[rowName(us, "")] {
				t.Errorf("%s: %s valid=%v at the cleanup, but the test expects kept=%v", names[us.ID], rowName(us, ""), valid, !valid)
			}
			for id, cs := range us.Clients {
				cl, _ := rules.Realm.Client(id)
				if valid := rules.ClientSessionValid(cl, s, expiry.ClientSessionOf(cs), cleanupAt); valid != want[rowName(us, id)] {
					t.Errorf("%s: %s valid=%v at the cleanup, but the test expects kept=%v", names[us.ID], rowName(us, id), valid, !valid)
				}
			}
		}
		if len(want) == 0 || len(want) == len(before) {
			t.Fatalf("premise: %d of %d rows to keep", len(want), len(before))
		}

		cl := newCleaner(t, store, c.clock.Now, Options{BatchSize: 7, Pause: -1})
		// The core stamped every row; recomputing under the same rules rewrites nothing.
		rec, err := cl.Recompute(ctx, rules)
		if err != nil {
			t.Fatalf("Recompute: %v", err)
		}
		if rec[0].Scanned != len(stored) || rec[0].Sessions != 0 || rec[0].Clients != 0 {
			t.Errorf("Recompute over rows the core stamped = %+v; want %d scanned and nothing rewritten", rec[0], len(stored))
		}

		res, err := cl.Once(ctx)
		if err != nil {
			t.Fatalf("Once: %v", err)
		}
		after, _ := rows(t, store, "acme")
		if extra := diff(after, want); len(extra) > 0 {
			for _, r := range extra {
				t.Errorf("expired row left in the store: %s (%s)", r, names[splitRow(r)[0]])
			}
		}
		if missing := diff(want, after); len(missing) > 0 {
			for _, r := range missing {
				t.Errorf("live row removed from the store: %s (%s)", r, names[splitRow(r)[0]])
			}
		}
		goneUsers := 0
		for r := range before {
			if !after[r] && len(splitRow(r)) == 2 {
				goneUsers++
			}
		}
		if res.Users != goneUsers || res.Batches < goneUsers/7 {
			t.Errorf("pass = %+v; want %d user sessions removed in batches of at most 7", res, goneUsers)
		}
		t.Logf("%d rows, %d kept; pass %+v", len(before), len(after), res)

		// The pass left nothing expired: the next removes nothing.
		if res, err := cl.Once(ctx); err != nil || res.Users != 0 || res.Clients != 0 {
			t.Errorf("second pass = %+v, %v; want nothing removed", res, err)
		}
		st := cl.Stats()
		if st.Passes != 2 || st.FailedPasses != 0 || st.UsersRemoved != int64(goneUsers) || !st.LastSuccess.Equal(cleanupAt) {
			t.Errorf("stats = %+v", st)
		}
	})
}

func splitRow(r string) []string {
	var parts []string
	start := 0
	for i := range len(r) {
		if r[i] == '/' {
			parts = append(parts, r[start:i])
			start = i + 1
		}
	}
	return append(parts, r[start:])
}
