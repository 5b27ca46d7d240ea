package usersessionstest

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// unstorable are strings no provider may store (usersessions.CheckText): PostgreSQL refuses
// them, and gRPC refuses the second in a string field.
var unstorable = []struct{ name, s string }{
	{"NUL", "a\x00b"},
	{"invalid UTF-8", "a\xffb"},
}

// spoilers set one string field of a session (and its client session "app") to bad.
var spoilers = []struct {
	field string
	spoil func(s *usersessions.UserSession, bad string)
}{
	{"session id", func(s *usersessions.UserSession, bad string) { s.ID = bad; s.Clients["app"].UserSessionID = bad }},
	{"user id", func(s *usersessions.UserSession, bad string) { s.UserID = bad }},
	{"login username", func(s *usersessions.UserSession, bad string) { s.LoginUsername = bad }},
	{"IP address", func(s *usersessions.UserSession, bad string) { s.IPAddress = bad }},
	{"user agent", func(s *usersessions.UserSession, bad string) { s.UserAgent = bad }},
	{"broker session id", func(s *usersessions.UserSession, bad string) { s.BrokerSessionID = bad }},
	{"note key", func(s *usersessions.UserSession, bad string) { s.Notes[bad] = "v" }},
	{"note value", func(s *usersessions.UserSession, bad string) { s.Notes["k"] = bad }},
	{"client scope", func(s *usersessions.UserSession, bad string) { s.Clients["app"].Scope = bad }},
	{"client note value", func(s *usersessions.UserSession, bad string) { s.Clients["app"].Notes["n"] = bad }},
	{"client id", func(s *usersessions.UserSession, bad string) {
		c := s.Clients["app"]
		delete(s.Clients, "app")
		c.ClientID = bad
		s.Clients[bad] = c
	}},
}

func textChecks() []check {
	return []check{
		{"Create refuses unstorable text per item with ErrInvalid and stores the rest", func(t *testing.T, p usersessions.Provider) {
			for _, u := range unstorable {
				for _, sp := range spoilers {
					good := session("r1", "good-"+u.name+sp.field, "u1", false, "app")
					bad := session("r1", "bad-"+u.name+sp.field, "u1", false, "app")
					sp.spoil(bad, u.s)
					errs, err := p.Create(t.Context(), []*usersessions.UserSession{bad, good})
					errs = batch(t, errs, err, 2)
					wantErr(t, "Create with "+u.name+" in "+sp.field, errs[0], spi.ErrInvalid)
					wantErr(t, "Create of the good session beside it", errs[1])
					if got := get(t, p, bad.Key()); got != nil {
						t.Errorf("%s in %s: the session was stored", u.name, sp.field)
					}
					mustGet(t, p, good.Key())
				}
			}
		}},
		{"Update, PutClientSessions and Touch refuse unstorable text and change nothing", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			before := mustGet(t, p, s.Key())
			for _, u := range unstorable {
				upd := mustGet(t, p, s.Key())
				upd.IPAddress = u.s
				errs, err := p.Update(t.Context(), []*usersessions.UserSession{upd})
				wantErr(t, "Update with "+u.name, batch(t, errs, err, 1)[0], spi.ErrInvalid)

				cs := mustGet(t, p, s.Key()).Clients["app"]
				cs.Notes = map[string]string{"n": u.s}
				errs, err = p.PutClientSessions(t.Context(), []*usersessions.ClientSession{cs})
				wantErr(t, "PutClientSessions with "+u.name, batch(t, errs, err, 1)[0], spi.ErrInvalid)

				touch := usersessions.Touch{Session: s.Key(), LastRefresh: at(time.Minute), ExpiresAt: at(2 * time.Hour), ClientID: "app" + u.s}
				errs, err = p.Touch(t.Context(), []usersessions.Touch{touch})
				wantErr(t, "Touch with "+u.name, batch(t, errs, err, 1)[0], spi.ErrInvalid, spi.ErrNotFound)
			}
			same(t, "the session after refused writes", before, mustGet(t, p, s.Key()))
		}},
		{"a key holding unstorable text names nothing", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "app")
			create(t, p, s)
			for _, u := range unstorable {
				bad := usersessions.Key{RealmID: "r1", ID: "s1" + u.s}
				got, err := p.Get(t.Context(), []usersessions.Key{bad, s.Key(), {RealmID: u.s, ID: "s1"}})
				if err != nil || len(got) != 3 || got[0] != nil || got[1] == nil || got[2] != nil {
					t.Errorf("Get with %s in keys = %v, %v; want nil, the session, nil", u.name, keyStrings(got), err)
				}
				if n, err := p.Delete(t.Context(), []usersessions.Key{bad}); n != 0 || err != nil {
					t.Errorf("Delete with %s in the key = %d, %v; want 0, nil", u.name, n, err)
				}
				ck := usersessions.ClientKey{Session: s.Key(), ClientID: "app" + u.s}
				if err := p.DeleteClientSessions(t.Context(), []usersessions.ClientKey{ck}); err != nil {
					t.Errorf("DeleteClientSessions with %s in the client id: %v", u.name, err)
				}
				recs, err := p.GetRecords(t.Context(), "kind"+u.s, []string{"key" + u.s})
				if err != nil || len(recs) != 1 || recs[0] != nil {
					t.Errorf("GetRecords with %s = %v, %v; want one nil entry", u.name, recs, err)
				}
			}
			if len(mustGet(t, p, s.Key()).Clients) != 1 {
				t.Error("a delete with an unstorable key removed a client session")
			}
		}},
		{"filters, pages and names holding unstorable text are ErrInvalid", func(t *testing.T, p usersessions.Provider) {
			create(t, p, session("r1", "s1", "u1", false, "app"))
			for _, u := range unstorable {
				for _, f := range []usersessions.Filter{{RealmID: u.s}, {RealmID: "r1", UserID: u.s}, {RealmID: "r1", ClientID: u.s}} {
					_, err := p.List(t.Context(), f, usersessions.Page{})
					wantErr(t, "List with "+u.name+" in the filter", err, spi.ErrInvalid)
					_, err = p.Count(t.Context(), f)
					wantErr(t, "Count with "+u.name+" in the filter", err, spi.ErrInvalid)
					_, err = p.DeleteMatching(t.Context(), f)
					wantErr(t, "DeleteMatching with "+u.name+" in the filter", err, spi.ErrInvalid)
					err = p.Stream(t.Context(), usersessions.StreamRequest{Filter: f}, func([]*usersessions.UserSession) error { return nil })
					wantErr(t, "Stream with "+u.name+" in the filter", err, spi.ErrInvalid)
				}
				_, err := p.List(t.Context(), usersessions.Filter{RealmID: "r1"}, usersessions.Page{After: u.s})
				wantErr(t, "List with "+u.name+" in the cursor", err, spi.ErrInvalid)
				_, err = p.CountByClient(t.Context(), u.s, false, time.Time{})
				wantErr(t, "CountByClient with "+u.name, err, spi.ErrInvalid)
				_, err = p.PutRecord(t.Context(), &usersessions.Record{Kind: "k", Key: u.s, Value: []byte("v")})
				wantErr(t, "PutRecord with "+u.name+" in the key", err, spi.ErrInvalid)
				_, err = p.ListRecords(t.Context(), u.s)
				wantErr(t, "ListRecords with "+u.name, err, spi.ErrInvalid)
				wantErr(t, "DeleteRecord with "+u.name, p.DeleteRecord(t.Context(), "k", u.s), spi.ErrInvalid)
				err = p.Enqueue(t.Context(), []*usersessions.Delivery{{ID: "d1", RealmID: "r1", ClientID: "app", Kind: "LOGOUT", Target: "https://app.test/" + u.s}})
				wantErr(t, "Enqueue with "+u.name+" in the target", err, spi.ErrInvalid)
				_, err = p.ListDeliveries(t.Context(), usersessions.DeliveryFilter{RealmID: u.s})
				wantErr(t, "ListDeliveries with "+u.name, err, spi.ErrInvalid)
			}
			if n, err := p.Count(t.Context(), usersessions.Filter{RealmID: "r1"}); n != 1 || err != nil {
				t.Errorf("after refused calls Count = %d, %v; want 1", n, err)
			}
		}},
	}
}
