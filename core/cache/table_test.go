package cache

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// The table against a map: random adds, removes, rewrites (some of them records too large
// to share a chunk) and touches, enough of them that chunks fill, die, are returned and
// evacuated, and the index grows and shifts entries back on removal. After every step the
// table holds what the map holds, in the same LRU order.
func TestTableAgreesWithAMap(t *testing.T) {
	strs := newStrtab()
	tb := newTable(strs)
	rng := rand.New(rand.NewPCG(1, 2))
	model := map[usersessions.Key]*usersessions.UserSession{}
	used := map[usersessions.Key]int{} // the step of each key's last use
	sess := func(i int, big bool) *usersessions.UserSession {
		s := &usersessions.UserSession{RealmID: fmt.Sprintf("r%d", i%3), ID: fmt.Sprintf("s%06d", i), Offline: i%2 == 0,
			UserID: fmt.Sprintf("u%d", i), State: usersessions.LoggedIn, Started: time.Unix(int64(i), 0).UTC(),
			Notes: map[string]string{"n": strings.Repeat("x", rng.IntN(300))}, Clients: map[string]*usersessions.ClientSession{}}
		if big {
			s.Notes["big"] = strings.Repeat("y", bigRecord)
		}
		s.Clients["app"] = &usersessions.ClientSession{RealmID: s.RealmID, UserSessionID: s.ID, ClientID: "app", Offline: s.Offline,
			CurrentRefreshToken: fmt.Sprintf("rt%d", rng.Int())}
		return s
	}
	sawEvacuation, sawBig := false, false
	const ids = 6000
	for step := range 60000 {
		i := rng.IntN(ids)
		s := sess(i, rng.IntN(2000) == 0)
		k := s.Key()
		h := tb.hash(k)
		slot := tb.lookup(k, h)
		if (slot != 0) != (model[k] != nil) {
			t.Fatalf("step %d: lookup of %v = %d, the model has %v", step, k, slot, model[k] != nil)
		}
		chunksBefore := len(tb.chunks) - len(tb.spare)
		switch op := rng.IntN(4); {
		case slot == 0 || op == 0: // add, or rewrite
			en := encoder{tab: strs}
			r := en.session(s, 0)
			if slot == 0 {
				tb.add(h, r, 1)
			} else {
				tb.replace(slot, r)
				tb.toFront(slot)
			}
			model[k] = s
			used[k] = step
			sawBig = sawBig || len(r) > bigRecord
		case op == 1: // remove
			tb.remove(slot)
			delete(model, k)
		default: // touch in place
			b := tb.body(slot)
			putNanos(b[recLastRefresh:], int64(step))
			model[k].LastRefresh = time.Unix(0, int64(step)).UTC()
			tb.toFront(slot)
			used[k] = step
		}
		if len(tb.chunks)-len(tb.spare) < chunksBefore {
			sawEvacuation = true
		}
		if step%5000 == 0 || step == 59999 {
			check(t, tb, strs, model, used)
		}
	}
	if !sawEvacuation || !sawBig {
		t.Errorf("the run returned chunks: %v, stored a record of its own chunk: %v; want both", sawEvacuation, sawBig)
	}
	if tb.dead*4 > tb.live+tb.dead && tb.dead >= minCompact {
		t.Errorf("%d of %d bytes held are dead", tb.dead, tb.live+tb.dead)
	}
	k := sess(0, false).Key()
	tb.clear()
	if tb.len() != 0 || tb.bytes() != 0 || tb.lookup(k, tb.hash(k)) != 0 {
		t.Errorf("after clear: %d entries, %d bytes", tb.len(), tb.bytes())
	}
}

func check(t *testing.T, tb *table, strs *strtab, model map[usersessions.Key]*usersessions.UserSession, used map[usersessions.Key]int) {
	t.Helper()
	if tb.len() != len(model) {
		t.Fatalf("%d entries, want %d", tb.len(), len(model))
	}
	last := -1
	for s := tb.newest(); s != 0; s = tb.slots[s].next {
		got := materialize(tb.body(s), strs)
		if u := used[got.Key()]; last >= 0 && u >= last {
			t.Fatalf("%v, used at step %d, follows one used at %d in the LRU ring", got.Key(), u, last)
		} else {
			last = u
		}
		want := model[got.Key()]
		if got.LastRefresh != want.LastRefresh.UTC() && !(want.LastRefresh.IsZero() && got.LastRefresh.IsZero()) ||
			got.Notes["n"] != want.Notes["n"] || got.Notes["big"] != want.Notes["big"] ||
			got.Clients["app"].CurrentRefreshToken != want.Clients["app"].CurrentRefreshToken || got.UserID != want.UserID {
			t.Fatalf("%v came back as %+v, want %+v", got.Key(), got, want)
		}
		if tb.lookup(got.Key(), tb.hash(got.Key())) != s {
			t.Fatalf("the index does not find %v at its slot", got.Key())
		}
	}
	var live int64
	for s := tb.newest(); s != 0; s = tb.slots[s].next {
		live += int64(len(tb.body(s)) + recHeader)
	}
	if live != tb.live {
		t.Fatalf("live bytes %d, the records add up to %d", tb.live, live)
	}
}

// A string table full of values stores the next ones in the records themselves.
func TestStringTableBound(t *testing.T) {
	strs := newStrtab()
	for i := range maxStrs {
		if _, ok := strs.ref(fmt.Sprint(i)); !ok {
			t.Fatalf("value %d refused", i)
		}
	}
	if _, ok := strs.ref("one more"); ok {
		t.Fatal("the table took a value past its bound")
	}
	en := encoder{tab: strs}
	s := &usersessions.UserSession{RealmID: "one more", ID: "x", UserAgent: "7", Clients: map[string]*usersessions.ClientSession{}}
	if got := materialize(en.session(s, 0), strs); got.RealmID != "one more" || got.UserAgent != "7" {
		t.Errorf("came back as %+v", got)
	}
}

// withClient replaces, adds and removes one client session and leaves the rest of the
// record as it was, for sessions of none, one and two client sessions.
func TestWithClient(t *testing.T) {
	strs := newStrtab()
	base := func(clients ...string) *usersessions.UserSession {
		s := &usersessions.UserSession{RealmID: "r", ID: "s", UserID: "u", Notes: map[string]string{"k": "v"},
			Clients: map[string]*usersessions.ClientSession{}}
		for _, id := range clients {
			s.Clients[id] = &usersessions.ClientSession{RealmID: "r", UserSessionID: "s", ClientID: id, Scope: "scope of " + id,
				CurrentRefreshToken: "rt-" + id, Version: 3, Notes: map[string]string{"n": id}}
		}
		return s
	}
	put := &usersessions.ClientSession{RealmID: "r", UserSessionID: "s", ClientID: "b", Scope: "new", Version: 4,
		LastRefresh: time.Unix(5, 0).UTC(), CurrentRefreshTokenUseCount: -2}
	for _, tt := range []struct {
		name    string
		clients []string
		id      string
		cs      *usersessions.ClientSession
		want    []string // the client sessions after, "b*" for put
	}{
		{"add to none", nil, "b", put, []string{"b*"}},
		{"add to one", []string{"a"}, "b", put, []string{"a", "b*"}},
		{"replace the only one", []string{"b"}, "b", put, []string{"b*"}},
		{"replace one of two", []string{"a", "b"}, "b", put, []string{"a", "b*"}},
		{"remove one of two", []string{"a", "b"}, "a", nil, []string{"b"}},
		{"remove the only one", []string{"a"}, "a", nil, nil},
		{"remove a missing one", []string{"a"}, "b", nil, []string{"a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			en := encoder{tab: strs}
			b := withClient(nil, en.session(base(tt.clients...), 0), &encoder{tab: strs}, tt.id, tt.cs)
			got := materialize(b, strs)
			want := base()
			for _, id := range tt.want {
				if id == "b*" {
					want.Clients["b"] = put
				} else {
					want.Clients[id] = base(id).Clients[id]
				}
			}
			if fmt.Sprint(normalizedForTest(got)) != fmt.Sprint(normalizedForTest(want)) {
				t.Errorf("got\n%v\nwant\n%v", normalizedForTest(got), normalizedForTest(want))
			}
		})
	}
}

// normalizedForTest lists a session's client sessions in id order, with what the record
// does not keep (zero times come back as the zero time) made equal.
func normalizedForTest(s *usersessions.UserSession) []any {
	out := []any{s.RealmID, s.ID, s.UserID, s.Notes}
	for _, id := range []string{"a", "b"} {
		if cs := s.Clients[id]; cs != nil {
			out = append(out, *cs)
		}
	}
	return append(out, len(s.Clients))
}
