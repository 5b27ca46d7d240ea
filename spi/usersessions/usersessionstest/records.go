package usersessionstest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

func putRecord(t *testing.T, p usersessions.Provider, r *usersessions.Record) *usersessions.Record {
	t.Helper()
	got, err := p.PutRecord(t.Context(), r)
	if err != nil {
		t.Fatalf("PutRecord %s/%s at Version %d: %v", r.Kind, r.Key, r.Version, err)
	}
	if got == nil || got.Kind != r.Kind || got.Key != r.Key || string(got.Value) != string(r.Value) {
		t.Fatalf("PutRecord returned %+v for %+v", got, r)
	}
	return got
}

func getRecord(t *testing.T, p usersessions.Provider, kind, key string) *usersessions.Record {
	t.Helper()
	got, err := p.GetRecords(t.Context(), kind, []string{key})
	if err != nil || len(got) != 1 {
		t.Fatalf("GetRecords(%s, %s) = %v, %v", kind, key, got, err)
	}
	return got[0]
}

func recordChecks() []check {
	return []check{
		{"Put with Version 0 creates at Version 1 and Get returns it", func(t *testing.T, p usersessions.Provider) {
			r := &usersessions.Record{Kind: "realm-keys", Key: "r1", Value: []byte(`{"kid":"k1"}`)}
			got := putRecord(t, p, r)
			if got.Version != 1 || got.Updated.IsZero() {
				t.Errorf("stored Version %d Updated %v, want 1 and a time", got.Version, got.Updated)
			}
			same(t, "record", got, getRecord(t, p, r.Kind, r.Key))
		}},
		{"Put with the stored Version replaces and increments it", func(t *testing.T, p usersessions.Provider) {
			cur := putRecord(t, p, &usersessions.Record{Kind: "not-before", Key: "r1", Value: []byte("1")})
			for i := 2; i <= 4; i++ {
				next := putRecord(t, p, &usersessions.Record{Kind: "not-before", Key: "r1", Value: fmt.Appendf(nil, "%d", i), Version: cur.Version})
				if next.Version != cur.Version+1 {
					t.Errorf("Version %d after Put at %d, want %d", next.Version, cur.Version, cur.Version+1)
				}
				cur = next
			}
			same(t, "record", cur, getRecord(t, p, "not-before", "r1"))
		}},
		{"Put with a wrong Version is ErrConflict and changes nothing", func(t *testing.T, p usersessions.Provider) {
			cur := putRecord(t, p, &usersessions.Record{Kind: "not-before", Key: "r1", Value: []byte("1")})
			cur = putRecord(t, p, &usersessions.Record{Kind: "not-before", Key: "r1", Value: []byte("2"), Version: cur.Version})
			for _, v := range []int64{1, 5} {
				_, err := p.PutRecord(t.Context(), &usersessions.Record{Kind: "not-before", Key: "r1", Value: []byte("x"), Version: v})
				wantErr(t, fmt.Sprintf("Put at Version %d over Version %d", v, cur.Version), err, spi.ErrConflict)
			}
			// Version 0 means "must not exist"; refusing it as a conflict or as already
			// existing both tell the caller to re-read.
			_, err := p.PutRecord(t.Context(), &usersessions.Record{Kind: "not-before", Key: "r1", Value: []byte("x")})
			wantErr(t, "Put at Version 0 over an existing record", err, spi.ErrConflict, spi.ErrExists)
			same(t, "record", cur, getRecord(t, p, "not-before", "r1"))
		}},
		{"Put with a Version for a record that does not exist is refused", func(t *testing.T, p usersessions.Provider) {
			_, err := p.PutRecord(t.Context(), &usersessions.Record{Kind: "not-before", Key: "r1", Value: []byte("x"), Version: 1})
			wantErr(t, "Put at Version 1 of a missing record", err, spi.ErrConflict, spi.ErrNotFound)
			if got := getRecord(t, p, "not-before", "r1"); got != nil {
				t.Errorf("record %+v was created", got)
			}
		}},
		{"Get returns records in the order asked with nil for missing, per kind", func(t *testing.T, p usersessions.Provider) {
			a := putRecord(t, p, &usersessions.Record{Kind: "k", Key: "a", Value: []byte("A")})
			b := putRecord(t, p, &usersessions.Record{Kind: "k", Key: "b", Value: []byte("B")})
			putRecord(t, p, &usersessions.Record{Kind: "other", Key: "c", Value: []byte("C")})
			got, err := p.GetRecords(t.Context(), "k", []string{"b", "missing", "a", "c"})
			if err != nil || len(got) != 4 {
				t.Fatalf("GetRecords = %v, %v", got, err)
			}
			same(t, "first", b, got[0])
			same(t, "third", a, got[2])
			if got[1] != nil || got[3] != nil {
				t.Errorf("missing records, and a record of another kind, came back as %+v and %+v", got[1], got[3])
			}
		}},
		{"List returns every record of one kind", func(t *testing.T, p usersessions.Provider) {
			var want []*usersessions.Record
			for _, k := range []string{"r3", "r1", "r2"} {
				want = append(want, putRecord(t, p, &usersessions.Record{Kind: "realm-keys", Key: k, Value: []byte("v-" + k)}))
			}
			putRecord(t, p, &usersessions.Record{Kind: "not-before", Key: "r1", Value: []byte("x")})
			got, err := p.ListRecords(t.Context(), "realm-keys")
			if err != nil {
				t.Fatal(err)
			}
			byKey := func(a, b *usersessions.Record) int { return strings.Compare(a.Key, b.Key) }
			slices.SortFunc(got, byKey)
			slices.SortFunc(want, byKey)
			same(t, "listed records", want, got)
			if none, err := p.ListRecords(t.Context(), "no-such-kind"); err != nil || len(none) != 0 {
				t.Errorf("ListRecords of an unknown kind = %v, %v; want none", none, err)
			}
		}},
		{"Delete removes one record, and it can be created again at Version 0", func(t *testing.T, p usersessions.Provider) {
			putRecord(t, p, &usersessions.Record{Kind: "k", Key: "a", Value: []byte("A")})
			keep := putRecord(t, p, &usersessions.Record{Kind: "k", Key: "b", Value: []byte("B")})
			other := putRecord(t, p, &usersessions.Record{Kind: "other", Key: "a", Value: []byte("A")})
			wantErr(t, "DeleteRecord", p.DeleteRecord(t.Context(), "k", "a"))
			if got := getRecord(t, p, "k", "a"); got != nil {
				t.Errorf("deleted record is still there: %+v", got)
			}
			same(t, "record beside the deleted one", keep, getRecord(t, p, "k", "b"))
			same(t, "record of another kind with the same key", other, getRecord(t, p, "other", "a"))
			if again := putRecord(t, p, &usersessions.Record{Kind: "k", Key: "a", Value: []byte("A2")}); again.Version != 1 {
				t.Errorf("re-created record at Version %d, want 1", again.Version)
			}
		}},
	}
}

// delivery returns a pending delivery for the outbox, due at due.
func delivery(id, realm string, due time.Time) *usersessions.Delivery {
	return &usersessions.Delivery{
		ID: id, RealmID: realm, ClientID: "app", Kind: "PUSH_NOT_BEFORE",
		Target: "https://app.example.test/k_push_not_before", Payload: []byte(`{"notBefore":1900000000}`),
		NextAttempt: due,
	}
}

func claimIDs(t *testing.T, p usersessions.Provider, now time.Time, lease time.Duration, limit int) []string {
	t.Helper()
	got, err := p.Claim(t.Context(), now, lease, limit)
	if err != nil {
		t.Fatalf("Claim at %v: %v", now, err)
	}
	ids := make([]string, len(got))
	for i, d := range got {
		ids[i] = d.ID
	}
	slices.Sort(ids)
	return ids
}

func listDeliveries(t *testing.T, p usersessions.Provider, f usersessions.DeliveryFilter) []*usersessions.Delivery {
	t.Helper()
	got, err := p.ListDeliveries(t.Context(), f)
	if err != nil {
		t.Fatalf("ListDeliveries(%+v): %v", f, err)
	}
	return got
}

func deliveryByID(t *testing.T, p usersessions.Provider, realm, id string) *usersessions.Delivery {
	t.Helper()
	for _, d := range listDeliveries(t, p, usersessions.DeliveryFilter{RealmID: realm, Page: usersessions.Page{Limit: 1000}}) {
		if d.ID == id {
			return d
		}
	}
	t.Fatalf("delivery %s is not listed", id)
	return nil
}

func enqueue(t *testing.T, p usersessions.Provider, ds ...*usersessions.Delivery) {
	t.Helper()
	if err := p.Enqueue(t.Context(), ds); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
}

func finish(t *testing.T, p usersessions.Provider, os ...usersessions.DeliveryOutcome) {
	t.Helper()
	if err := p.Finish(t.Context(), os); err != nil {
		t.Fatalf("Finish: %v", err)
	}
}

func outboxChecks() []check {
	const lease = time.Minute
	return []check{
		{"Enqueue stores pending deliveries with their payload", func(t *testing.T, p usersessions.Provider) {
			d := delivery("d1", "r1", at(0))
			enqueue(t, p, d)
			got := deliveryByID(t, p, "r1", "d1")
			want := *d
			want.State = usersessions.Pending
			want.Created, want.Updated = got.Created, got.Updated // stamped by the provider
			same(t, "delivery", &want, got)
			if got.Created.IsZero() {
				t.Error("Created is not set")
			}
		}},
		{"Claim returns due deliveries up to limit and none due later", func(t *testing.T, p usersessions.Provider) {
			enqueue(t, p, delivery("d1", "r1", at(-time.Minute)), delivery("d2", "r1", at(0)),
				delivery("d3", "r2", at(-2*time.Minute)), delivery("later", "r1", at(time.Second)))
			first := claimIDs(t, p, at(0), lease, 2)
			if len(first) != 2 || slices.Contains(first, "later") {
				t.Fatalf("first Claim(limit 2) = %v, want two of d1, d2, d3", first)
			}
			rest := claimIDs(t, p, at(0), lease, 10)
			if got := slices.Sorted(slices.Values(append(first, rest...))); !slices.Equal(got, []string{"d1", "d2", "d3"}) {
				t.Errorf("claimed %v in all, want d1, d2, d3 (not later)", got)
			}
		}},
		{"a claimed delivery is leased: Claim before the lease ends does not return it", func(t *testing.T, p usersessions.Provider) {
			enqueue(t, p, delivery("d1", "r1", at(0)))
			if got := claimIDs(t, p, at(0), lease, 10); !slices.Equal(got, []string{"d1"}) {
				t.Fatalf("Claim = %v, want d1", got)
			}
			for _, now := range []time.Time{at(0), at(lease / 2), at(lease - time.Microsecond)} {
				if got := claimIDs(t, p, now, lease, 10); len(got) != 0 {
					t.Errorf("Claim at %v during the lease returned %v", now, got)
				}
			}
		}},
		{"after the lease ends Claim returns it again", func(t *testing.T, p usersessions.Provider) {
			enqueue(t, p, delivery("d1", "r1", at(0)))
			claimIDs(t, p, at(0), lease, 10)
			if got := claimIDs(t, p, at(lease+time.Second), lease, 10); !slices.Equal(got, []string{"d1"}) {
				t.Errorf("Claim after the lease = %v, want d1", got)
			}
			if d := deliveryByID(t, p, "r1", "d1"); d.State != usersessions.Pending || d.Attempts < 1 {
				t.Errorf("delivery after two claims: state %s, %d attempts", d.State, d.Attempts)
			}
		}},
		{"Finish Delivered or Failed records the outcome and Claim never returns it again", func(t *testing.T, p usersessions.Provider) {
			enqueue(t, p, delivery("ok", "r1", at(0)), delivery("bad", "r1", at(0)))
			claimIDs(t, p, at(0), lease, 10)
			finish(t, p,
				usersessions.DeliveryOutcome{ID: "ok", State: usersessions.Delivered},
				usersessions.DeliveryOutcome{ID: "bad", State: usersessions.Failed, Error: "HTTP 400 from client"})
			if got := claimIDs(t, p, at(24*time.Hour), lease, 10); len(got) != 0 {
				t.Errorf("Claim after Finish returned %v", got)
			}
			if d := deliveryByID(t, p, "r1", "ok"); d.State != usersessions.Delivered {
				t.Errorf("ok: state %s, want delivered", d.State)
			}
			if d := deliveryByID(t, p, "r1", "bad"); d.State != usersessions.Failed || d.LastError != "HTTP 400 from client" {
				t.Errorf("bad: state %s error %q, want failed with the error", d.State, d.LastError)
			}
		}},
		{"Finish with a Target replaces the delivery's; without one it is kept", func(t *testing.T, p usersessions.Provider) {
			moved, kept := delivery("moved", "r1", at(0)), delivery("kept", "r1", at(0))
			enqueue(t, p, moved, kept)
			claimIDs(t, p, at(0), lease, 10)
			finish(t, p,
				usersessions.DeliveryOutcome{ID: "moved", State: usersessions.Delivered, Target: "https://hooks.example.test/sessiond"},
				usersessions.DeliveryOutcome{ID: "kept", State: usersessions.Pending, NextAttempt: at(time.Minute), Error: "timeout"})
			if d := deliveryByID(t, p, "r1", "moved"); d.Target != "https://hooks.example.test/sessiond" {
				t.Errorf("target after Finish with one: %q, want the outcome's", d.Target)
			}
			if d := deliveryByID(t, p, "r1", "kept"); d.Target != kept.Target {
				t.Errorf("target after Finish without one: %q, want %q", d.Target, kept.Target)
			}
		}},
		{"Finish Pending with NextAttempt makes it due again then and not before", func(t *testing.T, p usersessions.Provider) {
			enqueue(t, p, delivery("d1", "r1", at(0)))
			claimIDs(t, p, at(0), lease, 10)
			retry := at(10 * time.Minute)
			finish(t, p, usersessions.DeliveryOutcome{ID: "d1", State: usersessions.Pending, NextAttempt: retry, Error: "connection refused"})
			d := deliveryByID(t, p, "r1", "d1")
			if d.State != usersessions.Pending || !d.NextAttempt.Equal(retry) || d.LastError != "connection refused" {
				t.Errorf("after a retryable failure: state %s next %v error %q", d.State, d.NextAttempt, d.LastError)
			}
			if got := claimIDs(t, p, retry.Add(-time.Microsecond), lease, 10); len(got) != 0 {
				t.Errorf("Claim before NextAttempt returned %v", got)
			}
			if got := claimIDs(t, p, retry, lease, 10); !slices.Equal(got, []string{"d1"}) {
				t.Errorf("Claim at NextAttempt = %v, want d1", got)
			}
		}},
		{"Enqueue keeps the attempts already made and Claim counts on from them", func(t *testing.T, p usersessions.Provider) {
			first := delivery("d1", "r1", at(lease)) // leased for the attempt its caller makes at once
			first.Attempts = 1
			enqueue(t, p, first, delivery("d2", "r1", at(0)))
			if d := deliveryByID(t, p, "r1", "d1"); d.Attempts != 1 {
				t.Errorf("d1 enqueued with 1 attempt lists %d", d.Attempts)
			}
			if d := deliveryByID(t, p, "r1", "d2"); d.Attempts != 0 {
				t.Errorf("d2 enqueued with no attempt lists %d", d.Attempts)
			}
			got, err := p.Claim(t.Context(), at(lease), lease, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range got {
				if want := map[string]int{"d1": 2, "d2": 1}[d.ID]; d.Attempts != want {
					t.Errorf("Claim returned %s with %d attempts, want %d", d.ID, d.Attempts, want)
				}
			}
			if len(got) != 2 {
				t.Errorf("Claim returned %d deliveries, want 2", len(got))
			}
			bad := delivery("d3", "r1", at(0))
			bad.Attempts = -1
			if err := p.Enqueue(t.Context(), []*usersessions.Delivery{bad}); !errors.Is(err, spi.ErrInvalid) {
				t.Errorf("Enqueue with -1 attempts = %v, want spi.ErrInvalid", err)
			}
		}},
		{"Finish ignores outcomes for deliveries no longer pending", func(t *testing.T, p usersessions.Provider) {
			// A node whose lease ran out reports after the node that took the delivery over:
			// the later report must not revive or overwrite the recorded outcome.
			enqueue(t, p, delivery("ok", "r1", at(0)), delivery("bad", "r1", at(0)))
			claimIDs(t, p, at(0), lease, 10)
			finish(t, p,
				usersessions.DeliveryOutcome{ID: "ok", State: usersessions.Delivered},
				usersessions.DeliveryOutcome{ID: "bad", State: usersessions.Failed, Error: "HTTP 400 from client"})
			finish(t, p,
				usersessions.DeliveryOutcome{ID: "ok", State: usersessions.Pending, NextAttempt: at(time.Minute), Error: "timeout"},
				usersessions.DeliveryOutcome{ID: "bad", State: usersessions.Delivered})
			if d := deliveryByID(t, p, "r1", "ok"); d.State != usersessions.Delivered || d.LastError != "" {
				t.Errorf("ok after a stale outcome: state %s error %q, want delivered", d.State, d.LastError)
			}
			if d := deliveryByID(t, p, "r1", "bad"); d.State != usersessions.Failed || d.LastError != "HTTP 400 from client" {
				t.Errorf("bad after a stale outcome: state %s error %q, want failed as recorded", d.State, d.LastError)
			}
			if got := claimIDs(t, p, at(24*time.Hour), lease, 10); len(got) != 0 {
				t.Errorf("Claim after stale outcomes returned %v", got)
			}
		}},
		{"ListDeliveries filters by realm and state and pages by id", func(t *testing.T, p usersessions.Provider) {
			var ids []string
			for i := range 7 {
				id := fmt.Sprintf("d-%02d", i)
				ids = append(ids, id)
				enqueue(t, p, delivery(id, "r1", at(0)))
			}
			enqueue(t, p, delivery("x-other-realm", "r2", at(0)))
			claimIDs(t, p, at(0), lease, 10)
			finish(t, p, usersessions.DeliveryOutcome{ID: "d-01", State: usersessions.Delivered},
				usersessions.DeliveryOutcome{ID: "d-04", State: usersessions.Delivered})
			var paged []string
			after := ""
			for range 10 {
				page := listDeliveries(t, p, usersessions.DeliveryFilter{RealmID: "r1", Page: usersessions.Page{After: after, Limit: 3}})
				if len(page) > 3 {
					t.Fatalf("page of %d with Limit 3", len(page))
				}
				if len(page) == 0 {
					break
				}
				for _, d := range page {
					paged = append(paged, d.ID)
				}
				after = page[len(page)-1].ID
			}
			if !slices.Equal(paged, ids) {
				t.Errorf("paged through %v, want %v in id order", paged, ids)
			}
			for _, tc := range []struct {
				state usersessions.DeliveryState
				want  []string
			}{
				{usersessions.Delivered, []string{"d-01", "d-04"}},
				{usersessions.Pending, []string{"d-00", "d-02", "d-03", "d-05", "d-06"}},
				{usersessions.Failed, nil},
			} {
				var got []string
				for _, d := range listDeliveries(t, p, usersessions.DeliveryFilter{RealmID: "r1", State: tc.state, Page: usersessions.Page{Limit: 100}}) {
					got = append(got, d.ID)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("%s deliveries of r1: %v, want %v", tc.state, got, tc.want)
				}
			}
			if got := listDeliveries(t, p, usersessions.DeliveryFilter{RealmID: "r2", Page: usersessions.Page{Limit: 100}}); len(got) != 1 || got[0].ID != "x-other-realm" {
				t.Errorf("deliveries of r2: %v", got)
			}
		}},
	}
}
