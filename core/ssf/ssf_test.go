package ssf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
)

const realmName = "acme"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// plainSigner "signs" by returning the payload, so that tests read the claims; the real
// signature is checked end to end in cmd/sessiond.
type plainSigner struct{}

func (plainSigner) SignSET(_ context.Context, realm string, payload []byte) (string, error) {
	return realm + " " + string(payload), nil
}

// queue keeps what is queued.
type queue struct {
	mu sync.Mutex
	ds []*usersessions.Delivery
}

func (q *queue) Queue(_ context.Context, ds []*usersessions.Delivery) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.ds = append(q.ds, ds...)
	return nil
}

func (q *queue) take() []*usersessions.Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.ds
	q.ds = nil
	return out
}

func store(t *testing.T) *memory.Provider {
	t.Helper()
	p := memory.New(hclog.NewNullLogger())
	if err := p.Configure(t.Context(), spi.Config{spi.HostNodeID: "n1"}); err != nil {
		t.Fatal(err)
	}
	return p
}

// transmitter returns a Transmitter over st, as one node of several sharing it.
func transmitter(t *testing.T, st Store, q *queue) *Transmitter {
	t.Helper()
	rs, _, err := realm.NewRealms(&realm.Realm{Name: realmName, Enabled: true}, &realm.Realm{Name: "other realm", Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	tr, err := New(Deps{
		Store: st, Keys: plainSigner{}, Realms: rs, Queue: func() Queue { return q },
		Issuer: func(r string) string { return "https://sso.example/realms/" + r },
		JWKS:   func(r string) string { return "https://sso.example/realms/" + r + "/certs" },
		Now:    func() time.Time { return t0 },
		NewID:  func(time.Time) string { n++; return fmt.Sprintf("jti-%d", n) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func ptr[T any](v T) *T { return &v }

func push(endpoint string, events ...string) Update {
	return Update{Delivery: &Delivery{Method: DeliveryPush, EndpointURL: endpoint, Authorization: "Bearer x"}, EventsRequested: &events}
}

func TestCreateRefusesBadInput(t *testing.T) {
	tr := transmitter(t, store(t), &queue{})
	long := string(make([]byte, maxText+1))
	cases := []struct {
		name string
		u    Update
	}{
		{"no delivery", Update{}},
		{"poll", Update{Delivery: &Delivery{Method: "urn:ietf:rfc:8936", EndpointURL: "https://r.example/e"}}},
		{"no endpoint", Update{Delivery: &Delivery{Method: DeliveryPush}}},
		{"relative endpoint", push("/events")},
		{"ftp endpoint", push("ftp://r.example/e")},
		{"fragment", push("https://r.example/e#x")},
		{"header on two lines", Update{Delivery: &Delivery{Method: DeliveryPush, EndpointURL: "https://r.example/e", Authorization: "a\r\nX-Evil: 1"}}},
		{"event not a URI", push("https://r.example/e", "session-revoked")},
		{"stream id chosen", func() Update { u := push("https://r.example/e"); u.StreamID = "mine"; return u }()},
		{"iss set", func() Update { u := push("https://r.example/e"); u.Issuer = ptr("https://evil.example"); return u }()},
		{"events_delivered set", func() Update {
			u := push("https://r.example/e")
			u.EventsDelivered = ptr([]string{EventVerification})
			return u
		}()},
		{"long description", func() Update { u := push("https://r.example/e"); u.Description = &long; return u }()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := tr.Create(t.Context(), realmName, c.u); !errors.Is(err, spi.ErrInvalid) {
				t.Errorf("Create = %v, want spi.ErrInvalid", err)
			}
		})
	}
	if _, err := tr.Create(t.Context(), "nope", push("https://r.example/e")); !errors.Is(err, spi.ErrNotFound) {
		t.Errorf("Create in an unknown realm = %v, want spi.ErrNotFound", err)
	}
	if all, _ := tr.List(t.Context(), realmName); len(all) != 0 {
		t.Errorf("refused creates left streams: %+v", all)
	}
}

// Streams are store records: a second Transmitter over the store (another node, or this
// one restarted) reads and changes what the first wrote, and a write over a stale read
// conflicts.
func TestStreamsAreSharedThroughTheStore(t *testing.T) {
	st := store(t)
	a, b := transmitter(t, st, &queue{}), transmitter(t, st, &queue{})
	c, err := a.Create(t.Context(), realmName, push("https://r.example/e", EventSessionRevoked, "urn:example:other"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Audience != "https://r.example" || !slices.Equal(c.EventsDelivered, []string{EventSessionRevoked}) || c.Delivery.Authorization != "" || c.Issuer != "https://sso.example/realms/acme" {
		t.Errorf("created %+v", c)
	}
	got, err := b.Get(t.Context(), realmName, c.StreamID)
	if err != nil || got.StreamID != c.StreamID {
		t.Fatalf("Get on the other node = %+v, %v", got, err)
	}
	if _, err := b.Get(t.Context(), "other realm", c.StreamID); !errors.Is(err, spi.ErrNotFound) {
		t.Errorf("a stream of acme read in another realm: %v", err)
	}
	if _, err := b.Update(t.Context(), realmName, Update{StreamID: c.StreamID, Description: ptr("patched")}, false); err != nil {
		t.Fatal(err)
	}
	got, _ = a.Get(t.Context(), realmName, c.StreamID)
	if got.Description != "patched" || got.Delivery.EndpointURL != "https://r.example/e" {
		t.Errorf("after PATCH: %+v", got)
	}
	if _, err := a.Update(t.Context(), realmName, Update{StreamID: c.StreamID, Description: ptr("replaced")}, true); !errors.Is(err, spi.ErrInvalid) {
		t.Errorf("PUT without delivery = %v, want spi.ErrInvalid", err)
	}
	stale, _ := a.get(t.Context(), realmName, c.StreamID)
	if _, err := b.SetStatus(t.Context(), realmName, Status{StreamID: c.StreamID, Status: StatusPaused}); err != nil {
		t.Fatal(err)
	}
	stale.Description = "stale"
	if err := a.put(t.Context(), stale); !errors.Is(err, spi.ErrConflict) {
		t.Errorf("write over a stale read = %v, want spi.ErrConflict", err)
	}
	if s, _ := a.Status(t.Context(), realmName, c.StreamID); s.Status != StatusPaused {
		t.Errorf("status %+v", s)
	}
	if err := b.Delete(t.Context(), realmName, c.StreamID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(t.Context(), realmName, c.StreamID); !errors.Is(err, spi.ErrNotFound) {
		t.Errorf("Get after Delete = %v", err)
	}
}

// Each ended session is one delivery per stream that wants session-revoked and is not
// disabled; the SET names the user and the session, and its jti is the delivery id.
func TestSessionsEndedAndTheirSETs(t *testing.T) {
	q := &queue{}
	tr := transmitter(t, store(t), q)
	ctx := t.Context()
	enabled, _ := tr.Create(ctx, realmName, push("https://a.example/e", EventSessionRevoked))
	paused, _ := tr.Create(ctx, realmName, push("https://b.example/e", EventSessionRevoked))
	disabled, _ := tr.Create(ctx, realmName, push("https://c.example/e", EventSessionRevoked))
	if _, err := tr.Create(ctx, realmName, push("https://d.example/e")); err != nil { // requests nothing
		t.Fatal(err)
	}
	if _, err := tr.Create(ctx, "other realm", push("https://e.example/e", EventSessionRevoked)); err != nil {
		t.Fatal(err)
	}
	tr.SetStatus(ctx, realmName, Status{StreamID: paused.StreamID, Status: StatusPaused})
	tr.SetStatus(ctx, realmName, Status{StreamID: disabled.StreamID, Status: StatusDisabled})

	err := tr.SessionsEnded(ctx, []session.Ended{
		{Realm: realmName, SessionID: "s1", UserID: "u1", At: t0.Add(-time.Second), Initiator: session.InitiatorUser, Reason: "logout"},
		{Realm: realmName, SessionID: "s2", UserID: "u2", ClientID: "app", At: t0, Initiator: session.InitiatorPolicy, Reason: "refresh token reuse"},
	})
	if err != nil {
		t.Fatal(err)
	}
	ds := q.take()
	targets := map[string]int{}
	for _, d := range ds {
		targets[d.Target]++
	}
	if len(ds) != 4 || targets["https://a.example/e"] != 2 || targets["https://b.example/e"] != 2 {
		t.Fatalf("queued %d deliveries to %v, want two each to the enabled and the paused stream", len(ds), targets)
	}

	type claims struct {
		Iss    string                    `json:"iss"`
		Jti    string                    `json:"jti"`
		Iat    int64                     `json:"iat"`
		Aud    string                    `json:"aud"`
		Txn    string                    `json:"txn"`
		SubID  subject                   `json:"sub_id"`
		Events map[string]map[string]any `json:"events"`
	}
	var txn string
	for _, d := range ds {
		n, err := tr.Notice(ctx, d, t0.Add(time.Minute))
		if d.Target == "https://b.example/e" {
			if err == nil || errors.Is(err, spi.ErrInvalid) {
				t.Errorf("notice for a paused stream = %v, want an error worth retrying", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n.PushURL != "https://a.example/e" || n.Authorization != "Bearer x" || n.ClientID != "https://a.example" {
			t.Errorf("notice %+v", n)
		}
		var c claims
		if err := json.Unmarshal([]byte(n.Token[len(realmName)+1:]), &c); err != nil {
			t.Fatal(err)
		}
		if txn == "" {
			txn = c.Txn
		}
		ev := c.Events[EventSessionRevoked]
		if c.Iss != "https://sso.example/realms/acme" || c.Jti != d.ID || c.Iat != t0.Add(time.Minute).Unix() || c.Aud != "https://a.example" ||
			c.Txn != txn || c.Txn == "" || ev == nil || c.SubID.Format != "complex" || c.SubID.User.Format != "iss_sub" ||
			c.SubID.User.Iss != c.Iss || c.SubID.Session.Format != "opaque" {
			t.Errorf("SET claims %+v", c)
		}
		switch c.SubID.Session.ID {
		case "s1":
			if c.SubID.User.Sub != "u1" || c.SubID.Application != nil || ev["initiating_entity"] != "user" || ev["event_timestamp"] != float64(t0.Add(-time.Second).Unix()) {
				t.Errorf("s1's SET %+v", c)
			}
		case "s2":
			if c.SubID.User.Sub != "u2" || c.SubID.Application == nil || c.SubID.Application.ID != "app" || ev["initiating_entity"] != "policy" {
				t.Errorf("s2's SET %+v", c)
			}
		default:
			t.Errorf("SET of session %q", c.SubID.Session.ID)
		}
	}
	// Once queued, a stream that is disabled, deleted, or no longer wants the event drops it.
	drop := []func(){
		func() {
			tr.Update(ctx, realmName, Update{StreamID: enabled.StreamID, EventsRequested: &[]string{}}, false)
		},
		func() { tr.SetStatus(ctx, realmName, Status{StreamID: enabled.StreamID, Status: StatusDisabled}) },
		func() { tr.Delete(ctx, realmName, enabled.StreamID) },
	}
	i := slices.IndexFunc(ds, func(d *usersessions.Delivery) bool { return d.Target == "https://a.example/e" })
	for n, change := range drop {
		tr.Update(ctx, realmName, Update{StreamID: enabled.StreamID, EventsRequested: &[]string{EventSessionRevoked}}, false)
		tr.SetStatus(ctx, realmName, Status{StreamID: enabled.StreamID, Status: StatusEnabled})
		change()
		if _, err := tr.Notice(ctx, ds[i], t0); !errors.Is(err, spi.ErrInvalid) {
			t.Errorf("change %d: notice = %v, want spi.ErrInvalid (dropped)", n, err)
		}
	}
}

// A verification event carries the receiver's state; a disabled stream refuses it.
func TestVerify(t *testing.T) {
	q := &queue{}
	tr := transmitter(t, store(t), q)
	c, _ := tr.Create(t.Context(), realmName, push("https://a.example/e"))
	if err := tr.Verify(t.Context(), realmName, c.StreamID, "st-1"); err != nil {
		t.Fatal(err)
	}
	ds := q.take()
	if len(ds) != 1 || ds[0].Kind != revocationpush.SecurityEvent {
		t.Fatalf("queued %+v", ds)
	}
	n, err := tr.Notice(t.Context(), ds[0], t0)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		SubID  subject                   `json:"sub_id"`
		Events map[string]map[string]any `json:"events"`
	}
	json.Unmarshal([]byte(n.Token[len(realmName)+1:]), &claims)
	if claims.SubID.Format != "opaque" || claims.SubID.ID != c.StreamID || claims.Events[EventVerification]["state"] != "st-1" {
		t.Errorf("verification SET %+v", claims)
	}
	tr.SetStatus(t.Context(), realmName, Status{StreamID: c.StreamID, Status: StatusDisabled})
	if err := tr.Verify(t.Context(), realmName, c.StreamID, ""); !errors.Is(err, spi.ErrInvalid) {
		t.Errorf("Verify of a disabled stream = %v, want spi.ErrInvalid", err)
	}
	if err := tr.Verify(t.Context(), realmName, "nope", ""); !errors.Is(err, spi.ErrNotFound) {
		t.Errorf("Verify of an unknown stream = %v, want spi.ErrNotFound", err)
	}
}

// The metadata lives where SSF 1.0 §7.2 puts it for an issuer with a path.
func TestMetadata(t *testing.T) {
	tr := transmitter(t, store(t), &queue{})
	md, err := tr.Metadata(realmName)
	if err != nil {
		t.Fatal(err)
	}
	if md.Issuer != "https://sso.example/realms/acme" || md.ConfigurationEndpoint != "https://sso.example/admin/realms/acme/ssf/streams" ||
		md.JWKSURI != "https://sso.example/realms/acme/certs" || !slices.Equal(md.DeliveryMethodsSupported, []string{DeliveryPush}) {
		t.Errorf("metadata %+v", md)
	}
	for path, want := range map[string]string{
		"/.well-known/ssf-configuration/realms/acme":          "acme",
		"/.well-known/ssf-configuration/realms/other%20realm": "other realm",
		"/.well-known/ssf-configuration/realms/nope":          "",
		"/.well-known/ssf-configuration":                      "",
	} {
		if got := tr.RealmOf(path); got != want {
			t.Errorf("RealmOf(%q) = %q, want %q", path, got, want)
		}
	}
}
