package push

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/testlog"
	"github.com/sessiond/sessiond/providers/revocation/webhook"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// hanging is a client that takes a request and never answers it until the test ends.
func hanging(t *testing.T) string {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv.URL
}

// An attempt never outlasts the lease it is made under, whatever the provider's own
// timeout: were it to, another node would take the delivery over and send it again.
func TestAttemptEndsWithinItsLease(t *testing.T) {
	slow := hanging(t)
	f := newFixture(t, client("slow", slow, ""))
	f.opts.Lease = 2 * time.Second // the adapter's timeout is 5s
	o := f.newOutbox(t, f.store, f.provider)

	start := time.Now()
	rep := push(t, o, "")
	if took := time.Since(start); took >= f.opts.Lease {
		t.Errorf("the first attempt took %s, beyond its %s lease", took.Round(time.Millisecond), f.opts.Lease)
	}
	sameList(t, "Failed", rep.Failed, []string{slow})
	p := f.deliveries(t, usersessions.Pending)
	if len(p) != 1 || p[0].LastError == "" {
		t.Fatalf("pending %+v, want the cut attempt recorded for a retry", p)
	}

	f.clock.Advance(f.opts.BackoffMax)
	start = time.Now()
	if n, err := o.RetryDue(context.Background()); n != 1 || err != nil {
		t.Fatalf("RetryDue = %d, %v", n, err)
	}
	if took := time.Since(start); took >= f.opts.Lease {
		t.Errorf("a retry took %s, beyond its %s lease", took.Round(time.Millisecond), f.opts.Lease)
	}
}

// heldFinish holds Finish until released: a node that stalls (a pause, a partition) after
// its attempt and records the outcome after its lease has ended.
type heldFinish struct {
	Store
	entered chan struct{}
	release chan struct{}
}

func (h heldFinish) Finish(ctx context.Context, os []usersessions.DeliveryOutcome) error {
	close(h.entered)
	<-h.release
	return h.Store.Finish(ctx, os)
}

// A node whose lease ended must not undo the outcome the node that took the delivery over
// recorded: a delivered notice revived as pending is sent again, and again.
func TestStaleOutcomeDoesNotOverwriteTheTakeover(t *testing.T) {
	rcv := newReceiver(t, 204)
	f := newFixture(t, client("app", rcv.URL(), ""))
	rcv.stop()
	held := heldFinish{Store: f.store, entered: make(chan struct{}), release: make(chan struct{})}
	stalled := f.newOutbox(t, held, f.provider)
	done := make(chan Report)
	go func() {
		rep, _ := stalled.PushNotBefore(context.Background(), "acme", "")
		done <- rep
	}()
	<-held.entered // the client was down; the outcome (pending) is not recorded yet

	rcv.start()
	f.clock.Advance(f.opts.Lease)
	if n, err := f.outbox.RetryDue(context.Background()); n != 1 || err != nil {
		t.Fatalf("the other node's RetryDue after the lease = %d, %v", n, err)
	}
	close(held.release)
	<-done

	if d := f.deliveries(t, ""); len(d) != 1 || d[0].State != usersessions.Delivered {
		t.Fatalf("deliveries %+v, want the one delivered by the node that took it over", d)
	}
	f.clock.Advance(f.opts.BackoffMax + f.opts.Lease)
	if n, _ := f.outbox.RetryDue(context.Background()); n != 0 {
		t.Errorf("a delivered notice was attempted again (%d)", n)
	}
	if got := len(rcv.requests()); got != 1 {
		t.Errorf("client got %d requests, want 1", got)
	}
}

// The outbox counts the first attempt, made as the delivery is stored, as it counts later
// ones: the admin API shows how many were made.
func TestAttemptsCountTheFirstAttempt(t *testing.T) {
	rcv := newReceiver(t, 204)
	f := newFixture(t, client("app", rcv.URL(), ""))
	rcv.stop()
	push(t, f.outbox, "")
	if d := f.deliveries(t, ""); len(d) != 1 || d[0].Attempts != 1 {
		t.Fatalf("after the first attempt: %+v, want 1 attempt", d)
	}
	rcv.start()
	f.clock.Advance(f.opts.BackoffInitial)
	if n, err := f.outbox.RetryDue(context.Background()); n != 1 || err != nil {
		t.Fatalf("RetryDue = %d, %v", n, err)
	}
	if d := f.deliveries(t, ""); len(d) != 1 || d[0].Attempts != 2 || d[0].State != usersessions.Delivered {
		t.Fatalf("after the second attempt: %+v, want delivered in 2 attempts", d)
	}
}

func webhookProvider(t *testing.T, hub string) revocationpush.Provider {
	t.Helper()
	p := webhook.New(hclog.NewNullLogger())
	cfg := spi.Config{webhook.OptSecret: "lease-test-secret"}
	if hub != "" {
		cfg[webhook.OptURL] = hub
	}
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// Reports name the URL a notice was sent to, which the webhook provider, not the client's
// registration, decides.
func TestReportNamesTheURLContacted(t *testing.T) {
	session := func(clients ...string) []*usersessions.UserSession {
		cs := map[string]*usersessions.ClientSession{}
		for _, c := range clients {
			cs[c] = &usersessions.ClientSession{ClientID: c}
		}
		return []*usersessions.UserSession{{ID: "s1", RealmID: "acme", UserID: "u1", Clients: cs}}
	}
	t.Run("the webhook's url option", func(t *testing.T) {
		app, hub := newReceiver(t, 200), newReceiver(t, 200)
		f := newFixture(t, client("app", app.URL()+"/admin", app.URL()+"/bc"))
		o := f.newOutbox(t, f.store, webhookProvider(t, hub.URL()+"/all"))
		sameList(t, "Succeeded", push(t, o, "").Succeeded, []string{hub.URL() + "/all"})
		rep, err := o.Logout(context.Background(), "acme", session("app"))
		if err != nil {
			t.Fatal(err)
		}
		sameList(t, "Succeeded", rep.Succeeded, []string{hub.URL() + "/all"})
		if n := len(app.requests()); n != 0 {
			t.Errorf("the client got %d requests; the url option takes them all", n)
		}
	})
	t.Run("the webhook without a url option", func(t *testing.T) {
		rcv := newReceiver(t, 200)
		f := newFixture(t, client("app", rcv.URL()+"/admin", rcv.URL()+"/bc"), client("bc-only", "", rcv.URL()+"/bc-only"))
		o := f.newOutbox(t, f.store, webhookProvider(t, ""))
		rep, err := o.Logout(context.Background(), "acme", session("app", "bc-only"))
		if err != nil {
			t.Fatal(err)
		}
		// app's webhook receiver is its admin URL; bc-only registered nothing but a
		// back-channel logout URL, and gets the standard logout token there.
		sameList(t, "Succeeded", rep.Succeeded, []string{rcv.URL() + "/admin", rcv.URL() + "/bc-only"})
		sameList(t, "Failed", rep.Failed, nil)
		for _, r := range rcv.requests() {
			if r.path != "/bc-only" {
				continue
			}
			form, err := url.ParseQuery(string(r.body))
			if err != nil || r.contentType != "application/x-www-form-urlencoded" || f.verified(t, form.Get("logout_token"))["sid"] != "s1" {
				t.Errorf("back-channel logout of bc-only: %s %q", r.contentType, r.body)
			}
		}
		if d := f.deliveries(t, usersessions.Delivered); len(d) != 2 {
			t.Errorf("delivered %+v, want both", d)
		}
	})
}

// A password in a client's URL reaches neither the report nor the log.
func TestCredentialsInTargetsAreNotShown(t *testing.T) {
	refusing := newReceiver(t, 400)
	withUser := "http://user:hunter2@" + strings.TrimPrefix(refusing.URL(), "http://") + "/x"
	f := newFixture(t, client("app", withUser, ""))
	var logged testlog.Buffer
	o, err := New(Deps{
		Store: f.store, Provider: f.provider, Realms: f.realms, Keys: f.keys, Tokens: f.tokens, NotBefore: f.policies,
		Now: f.clock.Now, Log: hclog.New(&hclog.LoggerOptions{Output: &logged, Level: hclog.Trace}),
	}, f.opts)
	if err != nil {
		t.Fatal(err)
	}
	rep := push(t, o, "")
	sameList(t, "Failed", rep.Failed, []string{refusing.URL() + "/x"})
	if strings.Contains(logged.String(), "hunter2") || !strings.Contains(logged.String(), "refused") {
		t.Errorf("log shows the password, or not the refusal:\n%s", logged.String())
	}
}
