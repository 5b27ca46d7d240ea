package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/cleanup"
	"github.com/sessiond/sessiond/core/eventlog"
	"github.com/sessiond/sessiond/core/metrics"
	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// families is one scrape, parsed.
type families map[string]*dto.MetricFamily

// scrape GETs the handler's exposition and parses it; the answer must be 200.
func scrape(t *testing.T, h http.Handler) families {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	return fams
}

// value is the value of the series of name whose labels include want: a counter's or a
// gauge's value, a histogram's sample count. ok is false when there is no such series.
func (f families) value(name string, want map[string]string) (v float64, ok bool) {
	fam := f[name]
	if fam == nil {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, lp := range m.GetLabel() {
		got[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

func (f families) must(t *testing.T, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := f.value(name, labels)
	if !ok {
		t.Errorf("%s%v: no such series", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func (f families) absent(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	if v, ok := f.value(name, labels); ok {
		t.Errorf("%s%v = %v, want no series", name, labels, v)
	}
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func testRealms(t *testing.T) *realm.Realms {
	t.Helper()
	rs, _, err := realm.NewRealms(
		&realm.Realm{Name: "acme", Enabled: true, Clients: []*realm.Client{
			{ClientID: "app", Secret: "s", Enabled: true}, {ClientID: "spa", PublicClient: true, Enabled: true},
			{ClientID: "idle", Secret: "s", Enabled: true},
		}},
		&realm.Realm{Name: "other", Enabled: true, Clients: []*realm.Client{{ClientID: "app", Secret: "s", Enabled: true}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func memoryStore(t *testing.T) *memory.Provider {
	t.Helper()
	p := memory.New(hclog.NewNullLogger())
	if err := p.Configure(context.Background(), spi.Config{spi.HostNodeID: "node"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

var seq atomic.Int64

// put stores one user session of realmName holding client sessions of clients.
func put(t *testing.T, store usersessions.Provider, realmName string, offline bool, expires time.Time, clients ...string) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	us := &usersessions.UserSession{ID: fmt.Sprint("s", seq.Add(1)), RealmID: realmName, UserID: "u", Offline: offline,
		State: usersessions.LoggedIn, Started: now, LastRefresh: now, ExpiresAt: expires, Clients: map[string]*usersessions.ClientSession{}}
	for _, c := range clients {
		us.Clients[c] = &usersessions.ClientSession{UserSessionID: us.ID, RealmID: realmName, ClientID: c, Offline: offline,
			Started: now, LastRefresh: now, ExpiresAt: expires}
	}
	errs, err := store.Create(context.Background(), []*usersessions.UserSession{us})
	if err = errors.Join(append(errs, err)...); err != nil {
		t.Fatal(err)
	}
}

// countingStore counts CountByClient calls and fails them for the realms in failing.
type countingStore struct {
	usersessions.Provider
	calls   atomic.Int64
	failing sync.Map // realm → true
}

func (c *countingStore) CountByClient(ctx context.Context, realmID string, offline bool, liveAt time.Time) (map[string]int64, error) {
	c.calls.Add(1)
	if _, bad := c.failing.Load(realmID); bad {
		return nil, fmt.Errorf("count sessions: connection refused: %w", spi.ErrUnavailable)
	}
	return c.Provider.CountByClient(ctx, realmID, offline, liveAt)
}

func newMetrics(t *testing.T, d metrics.Deps) *metrics.Metrics {
	t.Helper()
	m, err := metrics.New(d)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSessionGaugesCountTheStorePerRealmAndClient(t *testing.T) {
	store := memoryStore(t)
	later := time.Now().Add(time.Hour)
	put(t, store, "acme", false, later, "app")
	put(t, store, "acme", false, later, "app")
	put(t, store, "acme", false, later, "app", "spa")
	put(t, store, "acme", true, later, "app")
	put(t, store, "other", false, later, "app")
	m := newMetrics(t, metrics.Deps{Sessions: store, Realms: testRealms(t)})
	f := scrape(t, m.Handler())

	tests := []struct {
		name          string
		realm, client string
		want          float64
	}{
		{"sessiond_sessions_active", "acme", "app", 3},
		{"sessiond_sessions_active", "acme", "spa", 1},
		{"sessiond_sessions_active", "acme", "idle", 0}, // configured, no session: shown as 0
		{"sessiond_sessions_offline", "acme", "app", 1},
		{"sessiond_sessions_offline", "acme", "spa", 0},
		{"sessiond_sessions_active", "other", "app", 1},
		{"sessiond_sessions_offline", "other", "app", 0},
	}
	for _, tc := range tests {
		f.must(t, tc.name, labels("realm", tc.realm, "client", tc.client), tc.want)
	}
	f.must(t, "sessiond_sessions_count_failed", labels("realm", "acme"), 0)
	f.must(t, "sessiond_sessions_count_failures_total", nil, 0)
}

// Issue 19, point 7: a session that has ended by its own rules is not counted, even while
// cleanup has not removed it yet.
func TestSessionGaugesLeaveOutExpiredSessionsBeforeCleanup(t *testing.T) {
	store := memoryStore(t)
	clock := testclock.New(time.Now())
	put(t, store, "acme", false, clock.Now().Add(time.Hour), "app")
	put(t, store, "acme", false, clock.Now().Add(time.Minute), "app", "spa")
	put(t, store, "acme", true, clock.Now().Add(time.Minute), "app")
	m := newMetrics(t, metrics.Deps{Sessions: store, Realms: testRealms(t), CountEvery: time.Second, Now: clock.Now})
	f := scrape(t, m.Handler())
	f.must(t, "sessiond_sessions_active", labels("realm", "acme", "client", "app"), 2)
	f.must(t, "sessiond_sessions_offline", labels("realm", "acme", "client", "app"), 1)

	clock.Advance(2 * time.Minute)
	f = scrape(t, m.Handler())
	f.must(t, "sessiond_sessions_active", labels("realm", "acme", "client", "app"), 1)
	f.must(t, "sessiond_sessions_active", labels("realm", "acme", "client", "spa"), 0)
	f.must(t, "sessiond_sessions_offline", labels("realm", "acme", "client", "app"), 0)
}

func TestSessionCountsAreCachedBetweenScrapes(t *testing.T) {
	store := &countingStore{Provider: memoryStore(t)}
	later := time.Now().Add(time.Hour)
	put(t, store, "acme", false, later, "app")
	clock := testclock.New(time.Now())
	m := newMetrics(t, metrics.Deps{Sessions: store, Realms: testRealms(t), CountEvery: 10 * time.Second, Now: clock.Now})
	perCount := int64(4) // two realms, online and offline

	scrape(t, m.Handler()).must(t, "sessiond_sessions_active", labels("realm", "acme", "client", "app"), 1)
	put(t, store, "acme", false, later, "app")
	// Many scrapes within the interval, some at once: one count serves them all.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			scrape(t, m.Handler()).must(t, "sessiond_sessions_active", labels("realm", "acme", "client", "app"), 1)
		})
	}
	wg.Wait()
	if got := store.calls.Load(); got != perCount {
		t.Fatalf("%d store counts for 21 scrapes within the interval, want %d", got, perCount)
	}
	clock.Advance(10 * time.Second)
	scrape(t, m.Handler()).must(t, "sessiond_sessions_active", labels("realm", "acme", "client", "app"), 2)
	if got := store.calls.Load(); got != 2*perCount {
		t.Fatalf("%d store counts after the interval, want %d", got, 2*perCount)
	}
}

func TestStoreErrorIsReportedNotAFailedScrape(t *testing.T) {
	store := &countingStore{Provider: memoryStore(t)}
	later := time.Now().Add(time.Hour)
	put(t, store, "acme", false, later, "app")
	put(t, store, "other", false, later, "app")
	store.failing.Store("acme", true)
	clock := testclock.New(time.Now())
	m := newMetrics(t, metrics.Deps{Sessions: store, Realms: testRealms(t), Now: clock.Now})

	f := scrape(t, m.Handler()) // 200, or scrape fails the test
	f.must(t, "sessiond_sessions_count_failed", labels("realm", "acme"), 1)
	f.must(t, "sessiond_sessions_count_failed", labels("realm", "other"), 0)
	f.absent(t, "sessiond_sessions_active", labels("realm", "acme"))
	f.must(t, "sessiond_sessions_active", labels("realm", "other", "client", "app"), 1)
	f.must(t, "sessiond_sessions_count_failures_total", nil, 1)
	if _, ok := f.value("go_goroutines", nil); !ok {
		t.Error("the other collectors were not served")
	}

	store.failing.Delete("acme") // the store is back: the next count after the interval
	clock.Advance(metrics.DefaultCountEvery)
	f = scrape(t, m.Handler())
	f.must(t, "sessiond_sessions_count_failed", labels("realm", "acme"), 0)
	f.must(t, "sessiond_sessions_active", labels("realm", "acme", "client", "app"), 1)
	f.must(t, "sessiond_sessions_count_failures_total", nil, 1)
}

func TestSessionEventsAreCounted(t *testing.T) {
	m := newMetrics(t, metrics.Deps{Sessions: memoryStore(t), Realms: testRealms(t)})
	ev := func(typ string, mod func(*session.Event)) session.Event {
		e := session.Event{Type: typ, Realm: "acme", ClientID: "app", SessionID: "s", UserID: "u"}
		if mod != nil {
			mod(&e)
		}
		return e
	}
	refused := func(kind, reason string) session.Event {
		return ev(session.EventRefreshRefused, func(e *session.Event) { e.Refusal, e.Reason = kind, reason })
	}
	for _, e := range []session.Event{
		ev(session.EventLogin, nil), ev(session.EventLogin, func(e *session.Event) { e.ClientID = "spa" }),
		ev(session.EventAttach, nil),
		ev(session.EventRefresh, nil), ev(session.EventRefresh, nil), ev(session.EventRefresh, func(e *session.Event) { e.Offline = true }),
		refused(session.RefusedNotBefore, "Stale token: issued before the realm's not-before policy"),
		refused(session.RefusedReuse, "Maximum allowed refresh token reuse exceeded"),
		refused(session.RefusedReuse, "Maximum allowed refresh token reuse exceeded"),
		refused("Session not active: free text from somewhere", "free text"), // not a class: "other"
		refused("", "no class"),
		ev(session.EventLogout, nil), ev(session.EventLogout, func(e *session.Event) { e.ClientID = "" }),
		ev(session.EventRevoke, nil),
		ev("something-new", nil), // unknown types are ignored
	} {
		m.Emit(e)
	}
	f := scrape(t, m.Handler())
	acmeApp := func(kv ...string) map[string]string {
		return labels(append([]string{"realm", "acme", "client", "app"}, kv...)...)
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"sessiond_logins_total", acmeApp(), 1},
		{"sessiond_logins_total", labels("realm", "acme", "client", "spa"), 1},
		{"sessiond_client_attaches_total", acmeApp(), 1},
		{"sessiond_refreshes_total", acmeApp("outcome", "success"), 3},
		{"sessiond_refreshes_total", acmeApp("outcome", "refused"), 5},
		{"sessiond_refresh_refusals_total", acmeApp("reason", "not_before"), 1},
		{"sessiond_refresh_refusals_total", acmeApp("reason", "reuse"), 2},
		{"sessiond_refresh_refusals_total", acmeApp("reason", "other"), 2},
		{"sessiond_logouts_total", acmeApp(), 1},
		{"sessiond_logouts_total", labels("realm", "acme", "client", ""), 1},
		{"sessiond_token_revocations_total", acmeApp(), 1},
	}
	for _, tc := range tests {
		f.must(t, tc.name, tc.labels, tc.want)
	}
	// No free text reached a label.
	for name, fam := range f {
		for _, mt := range fam.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if strings.Contains(lp.GetValue(), " ") {
					t.Errorf("%s has the label %s=%q", name, lp.GetName(), lp.GetValue())
				}
			}
		}
	}
}

// Refused authentication is counted by kind and reason, throttled answers among them; a
// value outside the closed sets is counted as "other".
func TestRefusedAuthenticationIsCountedByKindAndReason(t *testing.T) {
	m := newMetrics(t, metrics.Deps{Sessions: memoryStore(t), Realms: testRealms(t)})
	for range 3 {
		m.AuthRefused(string(authfail.KindClient), authfail.ReasonInvalidSecret)
	}
	m.AuthRefused(string(authfail.KindClient), authfail.ReasonThrottled)
	m.AuthRefused(string(authfail.KindAdmin), authfail.ReasonMissing)
	m.AuthRefused(string(authfail.KindLogin), authfail.ReasonThrottled)
	m.AuthRefused(string(authfail.KindLogin), authfail.ReasonThrottled)
	m.AuthRefused("someone", "made up reason")
	f := scrape(t, m.Handler())
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{labels("kind", "client", "reason", "invalid_secret"), 3},
		{labels("kind", "client", "reason", "throttled"), 1},
		{labels("kind", "admin", "reason", "missing_credentials"), 1},
		{labels("kind", "login", "reason", "throttled"), 2},
		{labels("kind", "other", "reason", "other"), 1},
	} {
		f.must(t, "sessiond_auth_refusals_total", tc.labels, tc.want)
	}
	f.absent(t, "sessiond_auth_refusals_total", labels("kind", "someone", "reason", "made up reason"))
}

func TestTokenEndpointLatencyByGrantType(t *testing.T) {
	m := newMetrics(t, metrics.Deps{Sessions: memoryStore(t), Realms: testRealms(t)})
	// As the token endpoint: it parses the form, and refuses what it does not serve.
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.PostForm.Get("grant_type") != "refresh_token" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		time.Sleep(2 * time.Millisecond)
		_, _ = w.Write([]byte(`{}`)) // 200 implied
	})
	h := m.Instrument(api)
	post := func(path, form string) {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	const token = "/realms/acme/protocol/openid-connect/token"
	post(token, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}.Encode())
	post(token, url.Values{"grant_type": {"refresh_token"}}.Encode())
	post(token, url.Values{"grant_type": {"password"}}.Encode())
	post(token, url.Values{"grant_type": {"made up by a caller"}}.Encode())
	post(token, "")
	// Not the token endpoint: not measured.
	post(token+"/introspect", url.Values{"grant_type": {"refresh_token"}}.Encode())
	post("/realms/a/b/protocol/openid-connect/token", url.Values{"grant_type": {"refresh_token"}}.Encode())
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, token, nil))

	f := scrape(t, m.Handler())
	const name = "sessiond_token_request_duration_seconds"
	f.must(t, name, labels("grant_type", "refresh_token", "code", "200"), 2)
	f.must(t, name, labels("grant_type", "password", "code", "400"), 1)
	f.must(t, name, labels("grant_type", "other", "code", "400"), 1)
	f.must(t, name, labels("grant_type", "none", "code", "400"), 1)
	total := 0.0
	for _, mt := range f[name].GetMetric() {
		total += float64(mt.GetHistogram().GetSampleCount())
		if mt.GetHistogram().GetSampleSum() <= 0 {
			t.Errorf("a latency of 0 s: %v", mt)
		}
	}
	if total != 5 {
		t.Errorf("%v token requests measured, want 5", total)
	}
}

// pushCounts has the shape of the revocation-push outbox's cumulative counts.
type pushCounts struct {
	mu sync.Mutex
	m  map[string]int64
}

func (p *pushCounts) Counts() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int64{}
	for k, v := range p.m {
		out[k] = v
	}
	return out
}

func TestProgressOfCleanupPluginsPushAndEventLog(t *testing.T) {
	store := memoryStore(t)
	put(t, store, "acme", false, time.Now().Add(-time.Minute), "app") // expired
	put(t, store, "acme", false, time.Now().Add(-time.Minute), "app")
	put(t, store, "acme", false, time.Now().Add(time.Hour), "app")
	m := newMetrics(t, metrics.Deps{Sessions: store, Realms: testRealms(t)})

	cleaner, err := cleanup.New(cleanup.Deps{Store: store}, cleanup.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchCleanup(cleaner); err != nil {
		t.Fatal(err)
	}
	f := scrape(t, m.Handler())
	f.must(t, "sessiond_cleanup_passes_total", nil, 0)
	f.absent(t, "sessiond_cleanup_last_run_timestamp_seconds", nil)
	res, err := cleaner.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	h := host.New(hclog.NewNullLogger(), host.Options{SocketDir: t.TempDir()})
	t.Cleanup(func() { _ = h.Stop(context.Background()) })
	if _, err := h.Start(context.Background(), host.Spec{SPI: spi.UserSessions, ID: "memory", InProcess: memoryStore(t)}); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchPlugins(h); err != nil {
		t.Fatal(err)
	}
	push := &pushCounts{m: map[string]int64{"delivered": 7, "failed": 2}}
	if err := m.WatchPush(push); err != nil {
		t.Fatal(err)
	}
	events := eventlog.New(&strings.Builder{}, nil, eventlog.Options{Queue: 1}) // not running: the queue stays full
	for range 4 {
		events.Emit(session.Event{Type: session.EventLogin})
	}
	if err := m.WatchEventLog(events); err != nil {
		t.Fatal(err)
	}
	if err := m.WatchPush(push); err == nil {
		t.Error("a second push collector was registered")
	}

	f = scrape(t, m.Handler())
	f.must(t, "sessiond_cleanup_passes_total", nil, 1)
	f.must(t, "sessiond_cleanup_deleted_user_sessions_total", nil, 2)
	f.must(t, "sessiond_cleanup_last_run_timestamp_seconds", nil, float64(res.Cutoff.UnixNano())/1e9)
	f.must(t, "sessiond_cleanup_last_success_timestamp_seconds", nil, float64(res.Cutoff.UnixNano())/1e9)
	f.must(t, "sessiond_cleanup_last_duration_seconds", nil, res.Duration.Seconds())
	f.must(t, "sessiond_cleanup_pending_realms", nil, 0)
	plugin := labels("spi", spi.UserSessions, "provider", "memory")
	f.must(t, "sessiond_plugin_restarts_total", plugin, 0)
	f.must(t, "sessiond_plugin_up", plugin, 1)
	f.must(t, "sessiond_plugin_state", labels("spi", spi.UserSessions, "provider", "memory", "state", "in-process"), 1)
	f.must(t, "sessiond_push_deliveries_total", labels("outcome", "delivered"), 7)
	f.must(t, "sessiond_push_deliveries_total", labels("outcome", "failed"), 2)
	f.must(t, "sessiond_event_log_dropped_total", nil, 3)

	push.mu.Lock()
	push.m["delivered"]++
	push.mu.Unlock()
	scrape(t, m.Handler()).must(t, "sessiond_push_deliveries_total", labels("outcome", "delivered"), 8)
}

func TestNewRefusesMissingDeps(t *testing.T) {
	tests := []struct {
		name string
		deps metrics.Deps
	}{
		{"no store", metrics.Deps{Realms: testRealms(t)}},
		{"no realms", metrics.Deps{Sessions: memoryStore(t)}},
		{"negative interval", metrics.Deps{Sessions: memoryStore(t), Realms: testRealms(t), CountEvery: -time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := metrics.New(tc.deps); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

// Two Metrics in one process do not share a registry.
func TestMetricsHaveTheirOwnRegistry(t *testing.T) {
	a := newMetrics(t, metrics.Deps{Sessions: memoryStore(t), Realms: testRealms(t)})
	b := newMetrics(t, metrics.Deps{Sessions: memoryStore(t), Realms: testRealms(t)})
	a.Emit(session.Event{Type: session.EventLogin, Realm: "acme", ClientID: "app"})
	scrape(t, a.Handler()).must(t, "sessiond_logins_total", labels("realm", "acme", "client", "app"), 1)
	scrape(t, b.Handler()).absent(t, "sessiond_logins_total", labels("realm", "acme", "client", "app"))
}

// nilStore answers a count as a plugin does for a realm with no session: a nil map.
type nilStore struct {
	usersessions.Provider
	calls atomic.Int64
}

func (s *nilStore) CountByClient(context.Context, string, bool, time.Time) (map[string]int64, error) {
	s.calls.Add(1)
	return nil, nil
}

func TestNilCountsOfTheStoreShowConfiguredClientsAtZero(t *testing.T) {
	store := &nilStore{Provider: memoryStore(t)}
	clock := testclock.New(time.Now())
	m := newMetrics(t, metrics.Deps{Sessions: store, Realms: testRealms(t), Now: clock.Now})

	f := scrape(t, m.Handler())
	for _, r := range []string{"acme", "other"} {
		f.must(t, "sessiond_sessions_count_failed", labels("realm", r), 0)
		f.must(t, "sessiond_sessions_active", labels("realm", r, "client", "app"), 0)
		f.must(t, "sessiond_sessions_offline", labels("realm", r, "client", "app"), 0)
	}
	f.must(t, "sessiond_sessions_active", labels("realm", "acme", "client", "idle"), 0)
	// The count was kept: the next scrape within the interval does not count again.
	scrape(t, m.Handler()).must(t, "sessiond_sessions_active", labels("realm", "acme", "client", "spa"), 0)
	if got := store.calls.Load(); got != 4 {
		t.Errorf("%d store counts for two scrapes within the interval, want 4", got)
	}
}

// sharedStore answers every count with the same map, as a store caching its answer would.
type sharedStore struct {
	usersessions.Provider
	counts map[string]int64
}

func (s *sharedStore) CountByClient(context.Context, string, bool, time.Time) (map[string]int64, error) {
	return s.counts, nil
}

func TestCountsNeverWriteIntoTheStoresAnswer(t *testing.T) {
	store := &sharedStore{Provider: memoryStore(t), counts: map[string]int64{"app": 2}}
	m := newMetrics(t, metrics.Deps{Sessions: store, Realms: testRealms(t)})
	f := scrape(t, m.Handler())
	f.must(t, "sessiond_sessions_active", labels("realm", "acme", "client", "app"), 2)
	f.must(t, "sessiond_sessions_active", labels("realm", "acme", "client", "idle"), 0)
	if len(store.counts) != 1 {
		t.Errorf("the store's answer was written to: %v", store.counts)
	}
}

// slowStore answers no count before its context ends.
type slowStore struct{ usersessions.Provider }

func (slowStore) CountByClient(ctx context.Context, _ string, _ bool, _ time.Time) (map[string]int64, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestOneDeadlineBoundsTheWholeCount(t *testing.T) {
	var rs []*realm.Realm
	for i := range 6 {
		rs = append(rs, &realm.Realm{Name: fmt.Sprint("r", i), Enabled: true,
			Clients: []*realm.Client{{ClientID: "app", Secret: "s", Enabled: true}}})
	}
	realms, _, err := realm.NewRealms(rs...)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 200 * time.Millisecond
	m := newMetrics(t, metrics.Deps{Sessions: slowStore{memoryStore(t)}, Realms: realms, CountTimeout: limit})
	start := time.Now()
	f := scrape(t, m.Handler())
	if took := time.Since(start); took > 3*limit {
		t.Errorf("a scrape over %d realms took %v, want about the count timeout %v", len(rs), took, limit)
	}
	for _, r := range rs {
		f.must(t, "sessiond_sessions_count_failed", labels("realm", r.Name), 1)
	}
	f.must(t, "sessiond_sessions_count_failures_total", nil, float64(len(rs)))
}
