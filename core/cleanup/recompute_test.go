package cleanup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/expiry"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// recomputeRealm starts with SSO Session Idle 2 h; remember-me and offline sessions have
// their own, longer timeouts.
func recomputeRealm() *realm.Realm {
	r := seed003Realm()
	r.Timeouts.SSOSessionIdle = 2 * hour
	return r
}

// opened is a session the recompute tests open through core/session.
type opened struct {
	name string
	id   string
}

// openMix opens, through the core under recomputeRealm, sessions last active at various
// ages before `at`: returns them by name.
//
//	"recent":  ordinary, app used 30 min before
//	"idle90":  ordinary, app used 90 min before
//	"split":   ordinary, app used 100 min before, other attached 40 min before
//	"remember": remember-me, app used 90 min before
//	"offline": ordinary with an offline token, app used 90 min before
//	"idle3h":  ordinary, app used 3 h before (expired under 2 h: opened and refreshed
//	           while it lived)
func openMix(t *testing.T, c *core, at time.Time) map[string]string {
	t.Helper()
	ctx := context.Background()
	ids := map[string]string{}
	open := func(name string, age time.Duration, rememberMe bool, scope string) {
		c.clock.Set(at.Add(-age))
		g, err := c.svc.Open(ctx, session.OpenRequest{Realm: "acme", ClientID: "app", UserID: "u-" + name,
			RememberMe: rememberMe, Scope: scope, OfflineAccess: true})
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		ids[name] = g.SessionID
	}
	open("idle3h", 3*hour, false, "openid")
	open("split", 100*minute, false, "openid")
	open("idle90", 90*minute, false, "openid")
	open("remember", 90*minute, true, "openid")
	open("offline", 90*minute, false, "openid offline_access")
	c.clock.Set(at.Add(-40 * minute))
	if _, err := c.svc.Attach(ctx, session.AttachRequest{Realm: "acme", SessionID: ids["split"], ClientID: "other", Scope: "openid"}); err != nil {
		t.Fatal(err)
	}
	open("recent", 30*minute, false, "openid")
	c.clock.Set(at)
	return ids
}

// stampedAsRules checks that every stored row carries the expiry the rules give it.
func stampedAsRules(t *testing.T, store usersessions.Provider, rules expiry.Rules) {
	t.Helper()
	_, all := rows(t, store, rules.Realm.Name)
	for _, us := range all {
		want := *us
		want.Clients = map[string]*usersessions.ClientSession{}
		for id, cs := range us.Clients {
			cc := *cs
			want.Clients[id] = &cc
		}
		rules.Stamp(&want)
		if !us.ExpiresAt.Equal(want.ExpiresAt) {
			t.Errorf("%s expires %s, the rules say %s", rowName(us, ""), us.ExpiresAt, want.ExpiresAt)
		}
		for id, cs := range us.Clients {
			if !cs.ExpiresAt.Equal(want.Clients[id].ExpiresAt) {
				t.Errorf("%s expires %s, the rules say %s", rowName(us, id), cs.ExpiresAt, want.Clients[id].ExpiresAt)
			}
		}
	}
}

func kept(t *testing.T, store usersessions.Provider, ids map[string]string, want map[string][]string) {
	t.Helper()
	got, _ := rows(t, store, "acme")
	expect := map[string]bool{}
	for name, suffixes := range want {
		for _, s := range suffixes {
			expect[ids[name]+"/"+s] = true
		}
	}
	byID := map[string]string{}
	for name, id := range ids {
		byID[id] = name
	}
	for _, r := range diff(got, expect) {
		t.Errorf("row %s of %q is still stored", r, byID[splitRow(r)[0]])
	}
	for _, r := range diff(expect, got) {
		t.Errorf("row %s of %q is gone", r, byID[splitRow(r)[0]])
	}
}

// Shortening SSO Session Idle from 2 h to 1 h: the sessions idle for more than an hour
// were stored as live until their 2 hours ran out, so cleanup kept them; once Recompute
// has rewritten their expiries, the next cleanup removes them, client sessions included,
// and keeps what is still valid (recent, remember-me, offline).
func TestRecompute_shorterSSOIdleMakesSessionsDeletable(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store usersessions.Provider) {
		ctx := context.Background()
		at := t0.Add(10 * day)
		c := newCore(t, store, t0, recomputeRealm())
		ids := openMix(t, c, at)
		cl := newCleaner(t, store, c.clock.Now, Options{BatchSize: 2, Pause: -1})

		// First start: no fingerprint yet, every session read, nothing to rewrite.
		res, err := cl.Recompute(ctx, c.rules(t, "acme"))
		if err != nil || len(res) != 1 || !res[0].Changed || !res[0].First || res[0].Scanned != 7 || res[0].Sessions+res[0].Clients != 0 {
			t.Fatalf("first Recompute = %+v, %v; want 7 sessions read, none rewritten", res, err)
		}
		if _, err := cl.Once(ctx); err != nil {
			t.Fatal(err)
		}
		all := []string{"online", "online/app"}
		kept(t, store, ids, map[string][]string{"recent": all, "idle90": all, "split": {"online", "online/app", "online/other"},
			"remember": all, "offline": {"online", "online/app", "offline", "offline/app"}})

		c.setTimeouts(t, "acme", func(tm *realm.Timeouts) { tm.SSOSessionIdle = hour })
		// Without a recompute the stale expiries keep the sessions that are now invalid.
		if res, _ := cl.Once(ctx); res.Users != 0 {
			t.Fatalf("premise: a pass over stale expiries removed %d sessions", res.Users)
		}
		res, err = cl.Recompute(ctx, c.rules(t, "acme"))
		if err != nil {
			t.Fatal(err)
		}
		// recent, idle90, split (user + 2 clients) and offline's online part move earlier;
		// remember-me and the offline session do not depend on SSO Session Idle.
		if r := res[0]; !r.Changed || r.First || r.Scanned != 6 || r.Sessions != 4 || r.Clients != 5 {
			t.Errorf("Recompute after shortening = %+v; want 6 read, 4 user and 5 client sessions rewritten", r)
		}
		stampedAsRules(t, store, c.rules(t, "acme"))
		if _, err := cl.Once(ctx); err != nil {
			t.Fatal(err)
		}
		kept(t, store, ids, map[string][]string{"recent": all, "split": {"online", "online/other"},
			"remember": all, "offline": {"offline", "offline/app"}})

		// Same settings again: nothing is read.
		res, err = cl.Recompute(ctx, c.rules(t, "acme"))
		if err != nil || res[0].Changed || res[0].Scanned != 0 {
			t.Errorf("Recompute with unchanged settings = %+v, %v; want nothing read", res, err)
		}
		st := cl.Stats()
		if st.RealmsRecomputed != 2 || st.SessionsRecomputed != 4 || st.ClientsRecomputed != 5 || len(st.PendingRealms) != 0 {
			t.Errorf("stats = %+v", st)
		}
	})
}

// Lengthening SSO Session Idle from 2 h to 4 h: a session idle for 3 h was stored to
// expire an hour ago, so cleanup would remove a session that is valid again; after
// Recompute its expiry has moved later, cleanup keeps it, and it can still be refreshed.
func TestRecompute_longerSSOIdleKeepsSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, store usersessions.Provider) {
		ctx := context.Background()
		at := t0.Add(10 * day)
		c := newCore(t, store, t0, recomputeRealm())
		ids := openMix(t, c, at)
		cl := newCleaner(t, store, c.clock.Now, Options{BatchSize: 3, Pause: -1})
		if _, err := cl.Recompute(ctx, c.rules(t, "acme")); err != nil {
			t.Fatal(err)
		}
		_, before := rows(t, store, "acme")
		var idle3h *usersessions.UserSession
		for _, us := range before {
			if us.ID == ids["idle3h"] {
				idle3h = us
			}
		}
		if idle3h == nil || !idle3h.ExpiresAt.Before(at) {
			t.Fatalf("premise: the 3 h idle session is stored as expired before %s: %+v", at, idle3h)
		}

		c.setTimeouts(t, "acme", func(tm *realm.Timeouts) { tm.SSOSessionIdle = 4 * hour })
		res, err := cl.Recompute(ctx, c.rules(t, "acme"))
		if err != nil {
			t.Fatal(err)
		}
		// Every ordinary online user and client session moves later: idle3h, recent,
		// idle90, split (user + 2 clients), offline's online part.
		if r := res[0]; !r.Changed || r.Scanned != 7 || r.Sessions != 5 || r.Clients != 6 {
			t.Errorf("Recompute after lengthening = %+v; want 7 read, 5 user and 6 client sessions rewritten", r)
		}
		stampedAsRules(t, store, c.rules(t, "acme"))
		if res, err := cl.Once(ctx); err != nil || res.Users != 0 || res.Clients != 0 {
			t.Errorf("pass after lengthening = %+v, %v; want nothing removed", res, err)
		}
		all := []string{"online", "online/app"}
		kept(t, store, ids, map[string][]string{"idle3h": all, "recent": all, "idle90": all, "split": {"online", "online/app", "online/other"},
			"remember": all, "offline": {"online", "online/app", "offline", "offline/app"}})
		// The session is valid under the new settings: the core attaches a client to it.
		if _, err := c.svc.Attach(ctx, session.AttachRequest{Realm: "acme", SessionID: ids["idle3h"], ClientID: "other", Scope: "openid"}); err != nil {
			t.Errorf("attach to the session kept by the longer idle: %v", err)
		}
	})
}

// The record holds the fingerprint and the settings in readable form.
func TestRecompute_storesTheFingerprintRecord(t *testing.T) {
	store := memory.New(hclog.NewNullLogger())
	cl := newCleaner(t, store, func() time.Time { return t0 }, Options{})
	rules := expiry.Rules{Realm: seed003Realm(), PersistentSessions: true}
	if _, err := cl.Recompute(context.Background(), rules); err != nil {
		t.Fatal(err)
	}
	recs, err := store.GetRecords(context.Background(), RecordKind, []string{"acme"})
	if err != nil || recs[0] == nil {
		t.Fatalf("record: %v, %v", recs, err)
	}
	var v map[string]any
	if err := json.Unmarshal(recs[0].Value, &v); err != nil {
		t.Fatal(err)
	}
	r := v["rules"].(map[string]any)
	if v["fingerprint"] != describe(rules).fingerprint() || r["ssoSessionIdleTimeout"] != "1h0m0s" ||
		r["ssoSessionIdleTimeoutRememberMe"] != "2880h0m0s" || r["idleWindow"] != "0s" || r["version"] != float64(rulesVersion) {
		t.Errorf("record value = %s", recs[0].Value)
	}
}

// Settings that do not change a stored expiry do not force a recompute; each one that
// does, does.
func TestFingerprint(t *testing.T) {
	base := expiry.Rules{Realm: seed003Realm(), PersistentSessions: true}
	fp := describe(base).fingerprint()
	same := func(name string, change func(r *expiry.Rules)) {
		r := base
		r.Realm = base.Realm.Clone()
		change(&r)
		if got := describe(r).fingerprint(); got != fp {
			t.Errorf("%s changes the fingerprint", name)
		}
	}
	differs := func(name string, change func(r *expiry.Rules)) {
		r := base
		r.Realm = base.Realm.Clone()
		change(&r)
		if got := describe(r).fingerprint(); got == fp {
			t.Errorf("%s does not change the fingerprint", name)
		}
	}
	same("an unset value set to its default", func(r *expiry.Rules) { r.Realm.SSOSessionMax = 10 * hour })
	same("the access token lifespan", func(r *expiry.Rules) { r.Realm.AccessTokenLifespan = 2 * minute })
	same("a client without overrides", func(r *expiry.Rules) {
		r.Realm.Clients = append(r.Realm.Clients, &realm.Client{ClientID: "new", Enabled: true, AccessTokenLifespan: minute})
	})
	same("the order of clients", func(r *expiry.Rules) {
		r.Realm.Clients = append(r.Realm.Clients, &realm.Client{ClientID: "a", SessionIdle: minute}, &realm.Client{ClientID: "b", SessionIdle: minute})
		fp = describe(*r).fingerprint()
		r.Realm.Clients[2], r.Realm.Clients[3] = r.Realm.Clients[3], r.Realm.Clients[2]
	})
	fp = describe(base).fingerprint()
	differs("SSO Session Idle", func(r *expiry.Rules) { r.Realm.SSOSessionIdle = 2 * hour })
	differs("persistent sessions (the idle window)", func(r *expiry.Rules) { r.PersistentSessions = false })
	differs("a client's idle override", func(r *expiry.Rules) { r.Realm.Clients[0].SessionIdle = 10 * minute })
	differs("a client's internal id, with an override", func(r *expiry.Rules) {
		r.Realm.Clients[0].SessionIdle = 10 * minute
		fp = describe(*r).fingerprint()
		r.Realm.Clients[0].ID = "uuid-1"
	})
}

// The fingerprint covers every setting the expiry maths reads: for each field of the
// realm's timeouts and of a client, if changing it moves the stored expiry of any sample
// session, it changes the fingerprint. A future input of core/expiry that the fingerprint
// misses fails here instead of leaving stale expiries behind.
func TestFingerprint_coversEveryInputOfTheExpiryMaths(t *testing.T) {
	clientFields := []string{}
	ct := reflect.TypeFor[realm.Client]()
	for i := range ct.NumField() {
		if ct.Field(i).Type == reflect.TypeFor[time.Duration]() {
			clientFields = append(clientFields, ct.Field(i).Name)
		}
	}
	for _, limited := range []bool{false, true} {
		base := func() expiry.Rules {
			r := seed003Realm()
			r.OfflineSessionMaxLimited = limited
			r.ClientSessionIdle = 20 * minute
			r.SSOSessionMaxRememberMe = 200 * day // so that the remember-me idle can end a session first
			r.Clients = []*realm.Client{{ClientID: "app", ID: "uuid-app", SessionMax: 3 * hour}, {ClientID: "other"}}
			return expiry.Rules{Realm: r, PersistentSessions: true}
		}
		stamps := func(r expiry.Rules) string {
			var out []time.Time
			for _, offline := range []bool{false, true} {
				for _, rm := range []bool{false, true} {
					for _, age := range []time.Duration{0, 90 * minute, 26 * hour, 40 * day, 200 * day} {
						for _, lived := range []time.Duration{2 * hour, 9 * hour, 50 * day, 150 * day} {
							start := t0.Add(-age - lived)
							us := &usersessions.UserSession{Started: start, LastRefresh: t0.Add(-age), RememberMe: rm, Offline: offline,
								Clients: map[string]*usersessions.ClientSession{}}
							for _, id := range []string{"app", "uuid-app", "other", "gone"} {
								us.Clients[id] = &usersessions.ClientSession{Started: start, LastRefresh: t0.Add(-age - minute)}
							}
							r.Stamp(us)
							out = append(out, us.ExpiresAt, us.Clients["app"].ExpiresAt, us.Clients["uuid-app"].ExpiresAt,
								us.Clients["other"].ExpiresAt, us.Clients["gone"].ExpiresAt)
						}
					}
				}
			}
			return fmt.Sprint(out)
		}
		b := base()
		baseStamps, baseFP := stamps(b), describe(b).fingerprint()
		check := func(what string, r expiry.Rules) {
			if stamps(r) != baseStamps && describe(r).fingerprint() == baseFP {
				t.Errorf("limited=%v: %s moves stored expiries but not the fingerprint", limited, what)
			}
		}
		tt := reflect.TypeFor[realm.Timeouts]()
		for i := range tt.NumField() {
			r := base()
			f := reflect.ValueOf(&r.Realm.Timeouts).Elem().Field(i)
			switch f.Kind() {
			case reflect.Bool:
				f.SetBool(!f.Bool())
			case reflect.Int64:
				f.SetInt(int64(f.Interface().(time.Duration) + 7*hour + 13*minute))
			default:
				t.Fatalf("Timeouts.%s is a %s: teach this test to change it", tt.Field(i).Name, f.Kind())
			}
			check("realm "+tt.Field(i).Name, r)
		}
		for _, name := range clientFields {
			for _, ci := range []int{0, 1} {
				r := base()
				f := reflect.ValueOf(r.Realm.Clients[ci]).Elem().FieldByName(name)
				f.SetInt(int64(f.Interface().(time.Duration) + 5*hour + 7*minute))
				check(fmt.Sprintf("client %d %s", ci, name), r)
			}
		}
		r := base()
		r.PersistentSessions = false
		check("persistent sessions", r)
	}
}

// flakyStore fails GetRecords while broken.
type flakyStore struct {
	usersessions.Provider
	broken  atomic.Bool
	deletes atomic.Int64
}

func (s *flakyStore) GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error) {
	if s.broken.Load() {
		return nil, fmt.Errorf("records: %w", spi.ErrUnavailable)
	}
	return s.Provider.GetRecords(ctx, kind, keys)
}

func (s *flakyStore) DeleteExpired(ctx context.Context, before time.Time, limit int) (int, int, error) {
	s.deletes.Add(1)
	return s.Provider.DeleteExpired(ctx, before, limit)
}

// A realm whose recompute failed is pending: passes remove nothing (a lengthened timeout
// would otherwise have valid sessions removed) and retry the recompute, until it succeeds.
func TestRecompute_failureHoldsCleanupUntilRetried(t *testing.T) {
	ctx := context.Background()
	store := &flakyStore{Provider: memory.New(hclog.NewNullLogger())}
	rules := expiry.Rules{Realm: recomputeRealm(), PersistentSessions: true}
	old := stamped(rules, "s", 3, t0.Add(-3*hour)) // 2 h idle: expired an hour ago
	mustCreate(t, store.Provider, old)
	longer := rules
	longer.Realm = rules.Realm.Clone()
	longer.Realm.SSOSessionIdle = 4 * hour // valid again
	cl := newCleaner(t, store, func() time.Time { return t0 }, Options{Pause: -1})

	store.broken.Store(true)
	if _, err := cl.Recompute(ctx, longer); !errors.Is(err, spi.ErrUnavailable) {
		t.Fatalf("Recompute on a broken store: %v", err)
	}
	if st := cl.Stats(); len(st.PendingRealms) != 1 || st.PendingRealms[0] != "acme" {
		t.Errorf("pending = %v", st.PendingRealms)
	}
	if _, err := cl.Once(ctx); err == nil || store.deletes.Load() != 0 {
		t.Fatalf("pass while the recompute is pending: %v, %d deletes; want an error and none", err, store.deletes.Load())
	}
	store.broken.Store(false)
	res, err := cl.Once(ctx)
	if err != nil || res.Users != 0 || store.deletes.Load() == 0 {
		t.Fatalf("pass once the store is back = %+v, %v; want the recompute done and nothing removed", res, err)
	}
	// The offline session (every fifth) does not depend on SSO Session Idle.
	if st := cl.Stats(); len(st.PendingRealms) != 0 || st.SessionsRecomputed != 2 || st.ClientsRecomputed != 4 {
		t.Errorf("stats = %+v", st)
	}
	if all, _ := rows(t, store.Provider, "acme"); len(all) != 3*3 {
		t.Errorf("%d rows left, want all 9", len(all))
	}
}

// racingStore makes another writer change a session just before the cleaner's Update or
// PutClientSessions, as a concurrent logout note or refresh-token rotation would.
type racingStore struct {
	usersessions.Provider
	updates, puts atomic.Int64
}

func (s *racingStore) Update(ctx context.Context, ss []*usersessions.UserSession) ([]error, error) {
	if s.updates.Add(1) == 1 {
		got, err := s.Provider.Get(ctx, []usersessions.Key{ss[0].Key()})
		if err != nil {
			return nil, err
		}
		got[0].Notes = map[string]string{"written": "meanwhile"}
		if errs, err := s.Provider.Update(ctx, got); err != nil || errs[0] != nil {
			return nil, fmt.Errorf("concurrent update: %v %v", err, errs)
		}
	}
	return s.Provider.Update(ctx, ss)
}

func (s *racingStore) PutClientSessions(ctx context.Context, cs []*usersessions.ClientSession) ([]error, error) {
	if s.puts.Add(1) == 1 {
		got, err := s.Provider.Get(ctx, []usersessions.Key{cs[0].Key().Session})
		if err != nil {
			return nil, err
		}
		c := got[0].Clients[cs[0].ClientID]
		c.CurrentRefreshToken = "rotated"
		if errs, err := s.Provider.PutClientSessions(ctx, []*usersessions.ClientSession{c}); err != nil || errs[0] != nil {
			return nil, fmt.Errorf("concurrent put: %v %v", err, errs)
		}
	}
	return s.Provider.PutClientSessions(ctx, cs)
}

// A version conflict while moving an expiry earlier re-reads the session and tries again:
// the other writer's change stays, and the expiry is the new one.
func TestRecompute_conflictRereadsAndRetries(t *testing.T) {
	ctx := context.Background()
	store := &racingStore{Provider: memory.New(hclog.NewNullLogger())}
	rules := expiry.Rules{Realm: recomputeRealm(), PersistentSessions: true}
	mustCreate(t, store.Provider, stamped(rules, "s", 4, t0.Add(-30*minute)))
	shorter := rules
	shorter.Realm = rules.Realm.Clone()
	shorter.Realm.SSOSessionIdle = hour
	cl := newCleaner(t, store, func() time.Time { return t0 }, Options{Pause: -1})
	res, err := cl.Recompute(ctx, shorter)
	if err != nil {
		t.Fatal(err)
	}
	// The offline session (every fifth) does not depend on SSO Session Idle.
	if r := res[0]; r.Sessions != 3 || r.Clients != 6 {
		t.Errorf("Recompute = %+v; want every online user and client session rewritten once", r)
	}
	if store.updates.Load() < 2 || store.puts.Load() < 2 {
		t.Errorf("%d Update and %d PutClientSessions calls; want a retry of each", store.updates.Load(), store.puts.Load())
	}
	stampedAsRules(t, store.Provider, shorter)
	_, all := rows(t, store.Provider, "acme")
	notes, rotated := 0, 0
	for _, us := range all {
		if us.Notes["written"] == "meanwhile" {
			notes++
		}
		for _, cs := range us.Clients {
			if cs.CurrentRefreshToken == "rotated" {
				rotated++
			}
		}
	}
	if notes != 1 || rotated != 1 {
		t.Errorf("the concurrent writes were lost: %d notes, %d rotations; want 1 and 1", notes, rotated)
	}
}
