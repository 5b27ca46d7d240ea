package push

import (
	"context"
	"errors"
	"testing"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// TestQueueLogoutStoresWithoutAttempting: QueueLogout, and Logout under Deferred, store the
// back-channel logouts due at once with no attempt made and no client reached; Run's
// RetryDue then makes the first attempt, which delivers them.
func TestQueueLogoutStoresWithoutAttempting(t *testing.T) {
	rcv := newReceiver(t, 200)
	f := newFixture(t,
		client("app-a", rcv.URL()+"/a-admin", rcv.URL()+"/a-bc"),
		client("app-b", rcv.URL()+"/b-admin", ""), // no back-channel URL: not told
	)
	sessions := []*usersessions.UserSession{
		{ID: "s1", RealmID: "acme", UserID: "u1", Clients: map[string]*usersessions.ClientSession{"app-a": {ClientID: "app-a"}, "app-b": {ClientID: "app-b"}}},
		{ID: "s2", RealmID: "acme", UserID: "u2", Clients: map[string]*usersessions.ClientSession{"app-a": {ClientID: "app-a"}}},
	}
	n, err := f.outbox.QueueLogout(context.Background(), "acme", sessions[:1])
	if err != nil || n != 1 {
		t.Fatalf("QueueLogout = %d, %v; want 1 notice stored", n, err)
	}
	if n, err = f.outbox.QueueLogout(context.Background(), "acme", sessions[1:]); err != nil || n != 1 {
		t.Fatalf("QueueLogout = %d, %v; want 1 notice stored", n, err)
	}
	if got := rcv.requests(); len(got) != 0 {
		t.Fatalf("queueing reached the clients: %v", got)
	}
	ds := f.deliveries(t, usersessions.Pending)
	if len(ds) != 2 {
		t.Fatalf("pending deliveries %+v, want 2", ds)
	}
	for _, d := range ds {
		if d.Kind != revocationpush.BackchannelLogout || d.Attempts != 0 || d.NextAttempt.After(f.clock.Now()) || d.ClientID != "app-a" {
			t.Errorf("queued delivery %+v: want a back-channel logout to app-a, due now, no attempt started", d)
		}
	}
	if c := f.outbox.Counts(); c[OutcomeDelivered]+c[OutcomeRetried]+c[OutcomeFailed] != 0 {
		t.Errorf("counts %v after queueing only", c)
	}

	got, err := f.outbox.RetryDue(context.Background())
	if err != nil || got != 2 {
		t.Fatalf("RetryDue = %d, %v; want the 2 queued notices attempted", got, err)
	}
	if reqs := rcv.requests(); len(reqs) != 2 {
		t.Errorf("%d requests after RetryDue, want 2", len(reqs))
	}
	for _, d := range f.deliveries(t, "") {
		if d.State != usersessions.Delivered || d.Attempts != 1 {
			t.Errorf("delivery %+v: want delivered at the first attempt", d)
		}
	}

	if _, err := f.outbox.QueueLogout(context.Background(), "nowhere", sessions); !errors.Is(err, spi.ErrNotFound) {
		t.Errorf("QueueLogout in an unknown realm = %v", err)
	}
	if n, err := f.outbox.QueueLogout(context.Background(), "acme", nil); err != nil || n != 0 {
		t.Errorf("QueueLogout of no sessions = %d, %v", n, err)
	}
}
