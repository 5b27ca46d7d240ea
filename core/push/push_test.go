package push

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/providers/revocation/adapter"
	"github.com/sessiond/sessiond/providers/revocation/webhook"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
)

func client(id, adminURL, logoutURL string) *realm.Client {
	return &realm.Client{ID: id, ClientID: id, Enabled: true, PublicClient: true, AdminURL: adminURL, BackchannelLogoutURL: logoutURL}
}

func push(t *testing.T, o *Outbox, clientID string) Report {
	t.Helper()
	rep, err := o.PushNotBefore(context.Background(), "acme", clientID)
	if err != nil {
		t.Fatalf("PushNotBefore(%q): %v", clientID, err)
	}
	return rep
}

func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func TestPushNotBeforeReachesEveryClient(t *testing.T) {
	a, b, c := newReceiver(t, 204), newReceiver(t, 200), newReceiver(t, 204)
	f := newFixture(t,
		client("app-a", a.URL()+"/app-a", ""),
		client("app-b", b.URL(), ""),
		client("cli", "", ""), // no admin URL: skipped
		client("app-c", c.URL()+"/admin/", ""),
	)
	realmNB, clientNB := t0.Add(-time.Hour), t0.Add(-10*time.Minute)
	f.policies.setRealm("acme", realmNB)
	f.policies.setClient("acme", "app-b", clientNB)
	f.policies.setClient("acme", "app-c", t0.Add(-2*time.Hour)) // older than the realm's: the realm's holds
	f.clock.Advance(5 * time.Second)
	now := f.clock.Now()

	rep := push(t, f.outbox, "")
	sameList(t, "Succeeded", rep.Succeeded, []string{a.URL() + "/app-a", b.URL(), c.URL() + "/admin/"})
	sameList(t, "Failed", rep.Failed, nil)

	delivered := map[string]*usersessions.Delivery{}
	for _, d := range f.deliveries(t, usersessions.Delivered) {
		delivered[d.ClientID] = d
	}
	if len(f.deliveries(t, "")) != 3 || len(delivered) != 3 {
		t.Fatalf("deliveries %v, want three, all delivered", f.deliveries(t, ""))
	}
	for _, tc := range []struct {
		rcv       *receiver
		clientID  string
		target    string // the client's admin URL, as reported and stored
		path      string
		notBefore time.Time
	}{
		{a, "app-a", a.URL() + "/app-a", "/app-a/k_push_not_before", realmNB},
		{b, "app-b", b.URL(), "/k_push_not_before", clientNB},
		{c, "app-c", c.URL() + "/admin/", "/admin/k_push_not_before", realmNB},
	} {
		got := tc.rcv.requests()
		if len(got) != 1 {
			t.Fatalf("%s: %d requests, want 1", tc.clientID, len(got))
		}
		if got[0].path != tc.path || got[0].contentType != "text/plain" {
			t.Errorf("%s: POST %s as %s, want %s as text/plain", tc.clientID, got[0].path, got[0].contentType, tc.path)
		}
		claims := f.verified(t, string(got[0].body))
		d := delivered[tc.clientID]
		if claims["action"] != "PUSH_NOT_BEFORE" || claims["resource"] != tc.clientID || claims["id"] != d.ID ||
			num(claims["notBefore"]) != tc.notBefore.Unix() || num(claims["expiration"]) != now.Add(30*time.Second).Unix() {
			t.Errorf("%s: claims %v, want not-before %d, expiration %d, id %s", tc.clientID, claims, tc.notBefore.Unix(), now.Add(30*time.Second).Unix(), d.ID)
		}
		if d.Kind != revocationpush.PushNotBefore || d.Target != tc.target || d.Attempts != 1 || d.LastError != "" {
			t.Errorf("%s: delivery %+v", tc.clientID, d)
		}
	}
	if got := f.outbox.Counts(); got[OutcomeDelivered] != 3 || got[OutcomeRetried] != 0 || got[OutcomeFailed] != 0 {
		t.Errorf("Counts() = %v", got)
	}
}

func TestPushNotBeforeOfOneClient(t *testing.T) {
	a, b := newReceiver(t, 204), newReceiver(t, 204)
	f := newFixture(t, client("app-a", a.URL(), ""), client("app-b", b.URL(), ""), client("cli", "", ""))
	tests := []struct {
		name, realm, client string
		wantErr             error
		succeeded           []string
	}{
		{"one client", "acme", "app-b", nil, []string{b.URL()}},
		{"a client without admin URL", "acme", "cli", nil, nil},
		{"an unknown client", "acme", "nobody", spi.ErrNotFound, nil},
		{"an unknown realm", "nowhere", "", spi.ErrNotFound, nil},
		{"a realm without clients", "other", "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.deliveries(t, ""))
			rep, err := f.outbox.PushNotBefore(context.Background(), tt.realm, tt.client)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("PushNotBefore = %v, want %v", err, tt.wantErr)
			}
			sameList(t, "Succeeded", rep.Succeeded, tt.succeeded)
			sameList(t, "Failed", rep.Failed, nil)
			if added := len(f.deliveries(t, "")) - before; added != len(tt.succeeded) {
				t.Errorf("%d deliveries stored, want %d", added, len(tt.succeeded))
			}
		})
	}
	if n := len(a.requests()); n != 0 {
		t.Errorf("app-a got %d requests; only app-b was pushed to", n)
	}
}

func TestDownClientFailsThenRunDeliversIt(t *testing.T) {
	a, b := newReceiver(t, 204), newReceiver(t, 204)
	f := newFixture(t, client("app-a", a.URL(), ""), client("app-b", b.URL(), ""))
	b.stop()
	f.policies.setRealm("acme", t0)

	rep := push(t, f.outbox, "")
	sameList(t, "Succeeded", rep.Succeeded, []string{a.URL()})
	sameList(t, "Failed", rep.Failed, []string{b.URL()})
	pending := f.deliveries(t, usersessions.Pending)
	if len(pending) != 1 || pending[0].ClientID != "app-b" || pending[0].LastError == "" {
		t.Fatalf("pending deliveries %+v, want app-b's with its error", pending)
	}
	if n, err := f.outbox.RetryDue(context.Background()); n != 0 || err != nil {
		t.Fatalf("RetryDue before the backoff = %d, %v; want nothing due", n, err)
	}

	b.start()
	f.clock.Advance(f.opts.BackoffInitial) // the longest first wait
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.outbox.Run(ctx)
	}()
	eventually(t, 10*time.Second, "app-b's delivery is delivered by Run", func() bool {
		return len(f.deliveries(t, usersessions.Delivered)) == 2
	})
	cancel()
	<-done

	got := b.requests()
	if len(got) != 1 {
		t.Fatalf("app-b got %d requests, want 1", len(got))
	}
	claims := f.verified(t, string(got[0].body))
	if claims["id"] != pending[0].ID || num(claims["notBefore"]) != t0.Unix() || num(claims["expiration"]) != f.clock.Now().Add(30*time.Second).Unix() {
		t.Errorf("retried action %v: want the delivery's id, the policy and a fresh expiration", claims)
	}
	if c := f.outbox.Counts(); c[OutcomeDelivered] != 2 || c[OutcomeRetried] != 1 || c[OutcomeFailed] != 0 {
		t.Errorf("Counts() = %v", c)
	}
}

func TestAttemptsEndInFailure(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		requests  int    // attempts the client sees in all
		lastError string // part of the recorded error
	}{
		{"a client that keeps failing is given up after MaxAttempts", 503, 4, "gave up after 4 attempts: HTTP 503"},
		{"a client that refuses is not retried", 400, 1, "HTTP 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newReceiver(t, tt.status)
			f := newFixture(t, client("app", rcv.URL(), ""))
			rep := push(t, f.outbox, "")
			sameList(t, "Failed", rep.Failed, []string{rcv.URL()})
			for range 2 * f.opts.MaxAttempts {
				f.clock.Advance(f.opts.BackoffMax)
				if _, err := f.outbox.RetryDue(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if n := len(rcv.requests()); n != tt.requests {
				t.Errorf("client got %d requests, want %d", n, tt.requests)
			}
			failed := f.deliveries(t, usersessions.Failed)
			if len(failed) != 1 || !strings.Contains(failed[0].LastError, tt.lastError) {
				t.Fatalf("failed deliveries %+v, want one with %q", failed, tt.lastError)
			}
			if c := f.outbox.Counts(); c[OutcomeFailed] != 1 || c[OutcomeRetried] != int64(tt.requests-1) {
				t.Errorf("Counts() = %v", c)
			}
		})
	}
}

func TestBackoffDoublesUpToTheMaximumWithJitter(t *testing.T) {
	f := &Outbox{opts: Options{BackoffInitial: time.Second, BackoffMax: 10 * time.Second}}
	for n, full := range []time.Duration{0, 1, 2, 4, 8, 10, 10, 10} {
		if n == 0 {
			continue
		}
		full *= time.Second
		seen := map[time.Duration]bool{}
		for range 200 {
			d := f.backoff(n)
			if d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, full/2, full)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) is always %v: no jitter", n, seen)
		}
	}
}

func TestRetryCarriesTheLaterNotBefore(t *testing.T) {
	rcv := newReceiver(t, 204)
	f := newFixture(t, client("app", rcv.URL(), ""))
	f.policies.setRealm("acme", t0.Add(-time.Hour))
	rcv.stop()
	push(t, f.outbox, "")
	later := t0.Add(-time.Minute)
	f.policies.setRealm("acme", later)
	rcv.start()
	f.clock.Advance(f.opts.BackoffInitial)
	if n, err := f.outbox.RetryDue(context.Background()); n != 1 || err != nil {
		t.Fatalf("RetryDue = %d, %v", n, err)
	}
	got := rcv.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	if nb := num(f.verified(t, string(got[0].body))["notBefore"]); nb != later.Unix() {
		t.Errorf("retry carried not-before %d, want the policy now in force %d", nb, later.Unix())
	}
}

func TestPendingDeliverySurvivesRestart(t *testing.T) {
	rcv := newReceiver(t, 204)
	f := newFixture(t, client("app", rcv.URL(), ""))
	rcv.stop()
	rep := push(t, f.outbox, "")
	sameList(t, "Failed", rep.Failed, []string{rcv.URL()})
	if err := f.store.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A new process: a new store connection, provider and Outbox.
	store := openStore(t, f.dbURL)
	restarted := f.newOutbox(t, store, f.provider)
	rcv.start()
	f.clock.Advance(f.opts.BackoffInitial)
	if n, err := restarted.RetryDue(context.Background()); n != 1 || err != nil {
		t.Fatalf("RetryDue after restart = %d, %v; want the pending delivery", n, err)
	}
	if got := rcv.requests(); len(got) != 1 {
		t.Fatalf("%d requests after restart, want 1", len(got))
	}
	ds, err := restarted.Deliveries(context.Background(), usersessions.DeliveryFilter{RealmID: "acme"})
	if err != nil || len(ds) != 1 || ds[0].State != usersessions.Delivered {
		t.Fatalf("deliveries after restart %+v, %v", ds, err)
	}
}

// forgetful drops Finish: a node that dies after sending, before recording the outcome.
type forgetful struct{ Store }

func (forgetful) Finish(context.Context, []usersessions.DeliveryOutcome) error {
	return errors.New("node died")
}

func TestUnrecordedAttemptIsTakenOverAfterTheLease(t *testing.T) {
	rcv := newReceiver(t, 204)
	f := newFixture(t, client("app", rcv.URL(), ""))
	dying := f.newOutbox(t, forgetful{f.store}, f.provider)
	rep := push(t, dying, "")
	sameList(t, "Succeeded", rep.Succeeded, []string{rcv.URL()})

	other := f.outbox
	if n, _ := other.RetryDue(context.Background()); n != 0 {
		t.Fatalf("another node took the delivery during its lease")
	}
	f.clock.Advance(f.opts.Lease)
	if n, err := other.RetryDue(context.Background()); n != 1 || err != nil {
		t.Fatalf("RetryDue after the lease = %d, %v", n, err)
	}
	if got := len(rcv.requests()); got != 2 {
		t.Errorf("client got %d requests, want 2 (at least once: the unrecorded attempt is made again)", got)
	}
	if d := f.deliveries(t, usersessions.Delivered); len(d) != 1 {
		t.Errorf("delivered %+v", d)
	}
}

func TestTwoNodesDoNotSendTheSameDeliveryTwice(t *testing.T) {
	rcv := newReceiver(t, 204)
	var clients []*realm.Client
	for i := range 12 {
		clients = append(clients, client(fmt.Sprintf("app-%02d", i), fmt.Sprintf("%s/app-%02d", rcv.URL(), i), ""))
	}
	f := newFixture(t, clients...)
	rcv.stop()
	rep := push(t, f.outbox, "")
	if len(rep.Failed) != 12 {
		t.Fatalf("Failed %v", rep.Failed)
	}
	rcv.start()
	f.clock.Advance(f.opts.BackoffInitial)
	nodes := []*Outbox{f.outbox, f.newOutbox(t, openStore(t, f.dbURL), f.provider)}
	counts := make([]int, len(nodes))
	var wg sync.WaitGroup
	for i, o := range nodes {
		wg.Go(func() {
			for {
				n, err := o.RetryDue(context.Background())
				if err != nil {
					t.Error(err)
				}
				if n == 0 {
					return
				}
				counts[i] += n
			}
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != 12 {
		t.Errorf("nodes attempted %v, want 12 in all", counts)
	}
	paths := map[string]int{}
	for _, r := range rcv.requests() {
		paths[r.path]++
	}
	for p, n := range paths {
		if n != 1 {
			t.Errorf("%s got %d requests", p, n)
		}
	}
	if len(paths) != 12 {
		t.Errorf("%d clients reached, want 12", len(paths))
	}
}

func TestLogoutSendsBackchannelLogoutTokens(t *testing.T) {
	rcv := newReceiver(t, 200)
	f := newFixture(t,
		client("app-a", rcv.URL()+"/a-admin", rcv.URL()+"/a-bc"),
		client("app-b", rcv.URL()+"/b-admin", ""), // no back-channel URL: not told
		client("app-c", "", rcv.URL()+"/c-bc"),
	)
	cs := func(ids ...string) map[string]*usersessions.ClientSession {
		m := map[string]*usersessions.ClientSession{}
		for _, id := range ids {
			m[id] = &usersessions.ClientSession{ClientID: id}
		}
		return m
	}
	sessions := []*usersessions.UserSession{
		{ID: "s1", RealmID: "acme", UserID: "u1", Clients: cs("app-b", "app-a")},
		{ID: "s2", RealmID: "acme", UserID: "u2", Clients: cs("app-a", "app-c", "gone")},
		{ID: "s3", RealmID: "acme", UserID: "u3"},
		nil,
	}
	now := f.clock.Now()
	rep, err := f.outbox.Logout(context.Background(), "acme", sessions)
	if err != nil {
		t.Fatal(err)
	}
	sameList(t, "Succeeded", rep.Succeeded, []string{rcv.URL() + "/a-bc", rcv.URL() + "/a-bc", rcv.URL() + "/c-bc"})
	sameList(t, "Failed", rep.Failed, nil)

	got := map[string]map[string]any{} // "sid/aud" → claims
	for _, r := range rcv.requests() {
		if r.contentType != "application/x-www-form-urlencoded" {
			t.Errorf("%s: content type %s", r.path, r.contentType)
		}
		form, err := url.ParseQuery(string(r.body))
		if err != nil {
			t.Fatal(err)
		}
		claims := f.verified(t, form.Get("logout_token"))
		key := fmt.Sprint(claims["sid"], "/", claims["aud"])
		if want := "/" + strings.TrimPrefix(fmt.Sprint(claims["aud"]), "app-") + "-bc"; r.path != want {
			t.Errorf("%s sent to %s, want %s", key, r.path, want)
		}
		got[key] = claims
	}
	want := map[string]string{"s1/app-a": "u1", "s2/app-a": "u2", "s2/app-c": "u2"}
	if len(got) != len(want) {
		t.Fatalf("logout tokens for %v, want %v", got, want)
	}
	for key, sub := range want {
		c := got[key]
		events, _ := c["events"].(map[string]any)
		if c == nil || c["sub"] != sub || c["iss"] != issuerBase+"/realms/acme" || c["typ"] != "Logout" || c["jti"] == "" ||
			num(c["iat"]) != now.Unix() || num(c["exp"]) != now.Add(2*time.Minute).Unix() || events[token.BackchannelLogoutEvent] == nil {
			t.Errorf("%s: claims %v", key, c)
		}
		if _, ok := c["nonce"]; ok {
			t.Errorf("%s: a logout token has a nonce", key)
		}
	}
	for _, d := range f.deliveries(t, "") {
		if d.Kind != revocationpush.BackchannelLogout || d.State != usersessions.Delivered {
			t.Errorf("delivery %+v", d)
		}
	}
	if _, err := f.outbox.Logout(context.Background(), "nowhere", sessions); !errors.Is(err, spi.ErrNotFound) {
		t.Errorf("Logout in an unknown realm = %v", err)
	}
	if rep, err := f.outbox.Logout(context.Background(), "acme", nil); err != nil || len(rep.Succeeded)+len(rep.Failed) != 0 {
		t.Errorf("Logout of no sessions = %+v, %v", rep, err)
	}
}

func TestLogoutAllSendsTheAdapterLogoutAction(t *testing.T) {
	rcv := newReceiver(t, 204)
	f := newFixture(t, client("app-a", rcv.URL()+"/a", ""), client("app-b", rcv.URL()+"/b", rcv.URL()+"/b-bc"), client("cli", "", ""))
	before := t0.Add(-time.Second)
	rep, err := f.outbox.LogoutAll(context.Background(), "acme", before)
	if err != nil {
		t.Fatal(err)
	}
	sameList(t, "Succeeded", rep.Succeeded, []string{rcv.URL() + "/a", rcv.URL() + "/b"})
	got := rcv.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	for _, r := range got {
		claims := f.verified(t, string(r.body))
		want := "/" + strings.TrimPrefix(fmt.Sprint(claims["resource"]), "app-") + "/k_logout"
		if r.path != want || claims["action"] != "LOGOUT" || num(claims["notBefore"]) != before.Unix() {
			t.Errorf("POST %s with %v, want %s with LOGOUT and not-before %d", r.path, claims, want, before.Unix())
		}
		// Without adapterSessionIds the adapter logs out all its sessions; an empty list
		// would log out none.
		if _, ok := claims["adapterSessionIds"]; ok {
			t.Errorf("logout-all action carries adapterSessionIds: %v", claims)
		}
	}
	if _, err := f.outbox.LogoutAll(context.Background(), "nowhere", before); !errors.Is(err, spi.ErrNotFound) {
		t.Errorf("LogoutAll in an unknown realm = %v", err)
	}
}

// The built-in providers as the runtime runs them by default: a plugin process.
func TestThroughPluginProcess(t *testing.T) {
	t.Run("adapter", func(t *testing.T) {
		up, down := newReceiver(t, 204), newReceiver(t, 204)
		f := newFixture(t, client("app-up", up.URL(), up.URL()+"/bc"), client("app-down", down.URL(), ""))
		down.stop()
		plugin := pluginProvider(t, adapter.ID, nil)
		o := f.newOutbox(t, f.store, plugin)
		rep := push(t, o, "")
		sameList(t, "Succeeded", rep.Succeeded, []string{up.URL()})
		sameList(t, "Failed", rep.Failed, []string{down.URL()})
		if got := up.requests(); len(got) != 1 || f.verified(t, string(got[0].body))["action"] != "PUSH_NOT_BEFORE" {
			t.Errorf("requests %v", got)
		}
		down.start()
		f.clock.Advance(f.opts.BackoffInitial)
		if n, err := o.RetryDue(context.Background()); n != 1 || err != nil {
			t.Fatalf("RetryDue = %d, %v", n, err)
		}
		if got := down.requests(); len(got) != 1 || f.verified(t, string(got[0].body))["resource"] != "app-down" {
			t.Errorf("retried requests %v", got)
		}
		rep, err := o.Logout(context.Background(), "acme", []*usersessions.UserSession{{ID: "s1", UserID: "u1", Clients: map[string]*usersessions.ClientSession{"app-up": {}}}})
		if err != nil || len(rep.Succeeded) != 1 {
			t.Fatalf("Logout = %+v, %v", rep, err)
		}
		last := up.requests()[1]
		form, _ := url.ParseQuery(string(last.body))
		if c := f.verified(t, form.Get("logout_token")); c["sid"] != "s1" || last.path != "/bc" {
			t.Errorf("back-channel logout %s %v", last.path, c)
		}
	})
	t.Run("webhook", func(t *testing.T) {
		const secret = "plugin-test-secret"
		rcv := newReceiver(t, 202)
		f := newFixture(t, client("app", rcv.URL()+"/hook", ""))
		f.policies.setRealm("acme", t0)
		o := f.newOutbox(t, f.store, pluginProvider(t, webhook.ID, spi.Config{webhook.OptSecret: secret}))
		rep := push(t, o, "")
		sameList(t, "Succeeded", rep.Succeeded, []string{rcv.URL() + "/hook"})
		got := rcv.requests()
		if len(got) != 1 {
			t.Fatalf("%d requests", len(got))
		}
		if err := webhook.Verify(secret, got[0].signature, got[0].body, time.Now(), webhook.DefaultTolerance); err != nil {
			t.Errorf("signature from the plugin process: %v", err)
		}
		if !strings.Contains(string(got[0].body), `"action":"PUSH_NOT_BEFORE"`) || !strings.Contains(string(got[0].body), fmt.Sprintf(`"notBefore":%d`, t0.Unix())) {
			t.Errorf("body %s", got[0].body)
		}
	})
}

// flaky fails every call of the whole batch: a provider process that is down.
type flaky struct{ revocationpush.Provider }

func (flaky) Push(context.Context, []revocationpush.Notice) ([]revocationpush.Result, error) {
	return nil, fmt.Errorf("plugin restarting: %w", spi.ErrUnavailable)
}

func TestProviderDownIsRetried(t *testing.T) {
	rcv := newReceiver(t, 204)
	f := newFixture(t, client("app", rcv.URL(), ""))
	rep := push(t, f.newOutbox(t, f.store, flaky{f.provider}), "")
	sameList(t, "Failed", rep.Failed, []string{rcv.URL()})
	p := f.deliveries(t, usersessions.Pending)
	if len(p) != 1 || !strings.Contains(p[0].LastError, "plugin restarting") {
		t.Fatalf("pending %+v", p)
	}
	f.clock.Advance(f.opts.BackoffInitial)
	if n, _ := f.outbox.RetryDue(context.Background()); n != 1 || len(rcv.requests()) != 1 {
		t.Errorf("retry after the provider came back: %d attempted, %d requests", n, len(rcv.requests()))
	}
}

func TestNewRefuses(t *testing.T) {
	f := newFixture(t)
	full := Deps{Store: f.store, Provider: f.provider, Realms: f.realms, Keys: f.keys, Tokens: f.tokens, NotBefore: f.policies}
	tests := []struct {
		name string
		deps func(d *Deps)
		opts Options
	}{
		{"no store", func(d *Deps) { d.Store = nil }, Options{}},
		{"no provider", func(d *Deps) { d.Provider = nil }, Options{}},
		{"no realms", func(d *Deps) { d.Realms = nil }, Options{}},
		{"no keys", func(d *Deps) { d.Keys = nil }, Options{}},
		{"no tokens", func(d *Deps) { d.Tokens = nil }, Options{}},
		{"no not-before policies", func(d *Deps) { d.NotBefore = nil }, Options{}},
		{"negative attempts", func(*Deps) {}, Options{MaxAttempts: -1}},
		{"negative lease", func(*Deps) {}, Options{Lease: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := full
			tt.deps(&d)
			if _, err := New(d, tt.opts); !errors.Is(err, spi.ErrInvalid) {
				t.Errorf("New = %v, want spi.ErrInvalid", err)
			}
		})
	}
	o, err := New(full, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{MaxAttempts: DefaultMaxAttempts, BackoffInitial: DefaultBackoffInitial, BackoffMax: DefaultBackoffMax,
		Lease: DefaultLease, BatchSize: DefaultBatchSize, PollInterval: DefaultBackoffInitial}
	if o.opts != want {
		t.Errorf("defaults %+v, want %+v", o.opts, want)
	}
}

// garbled is a provider whose refusals carry text no store can hold, as a third party's
// plugin or a remote client's words may.
type garbled struct{ revocationpush.Provider }

func (garbled) Push(_ context.Context, ns []revocationpush.Notice) ([]revocationpush.Result, error) {
	out := make([]revocationpush.Result, len(ns))
	for i, n := range ns {
		out[i] = revocationpush.Result{NoticeID: n.ID, Error: "refused: \x00\xff", Retry: true}
	}
	return out, nil
}

// TestUnstorableErrorTextIsRecorded: issue 15, the stores refuse NUL and invalid UTF-8, so an
// attempt's error text is made storable before its outcome is recorded on PostgreSQL;
// otherwise the outcome would be lost and the delivery attempted again at every lease.
func TestUnstorableErrorTextIsRecorded(t *testing.T) {
	rcv := newReceiver(t, 204)
	f := newFixture(t, client("app", rcv.URL(), ""))
	push(t, f.newOutbox(t, f.store, garbled{f.provider}), "")
	p := f.deliveries(t, usersessions.Pending)
	if len(p) != 1 || p[0].LastError != "refused: \uFFFD\uFFFD" {
		t.Fatalf("pending %+v, want one with the error recorded", p)
	}
}
