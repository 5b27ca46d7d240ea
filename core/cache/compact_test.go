package cache_test

import (
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Preloaded sessions of every shape the compact form treats apart (one client session and
// one note share the entry's allocation; more or fewer do not) come back as they went in,
// also after Reserve has rebuilt the index between two pages.
func TestPreloadedSessionsComeBackAsTheyWentIn(t *testing.T) {
	withNotes := func(s *usersessions.UserSession, notes map[string]string, clientNotes ...map[string]string) *usersessions.UserSession {
		s.Notes = notes
		i := 0
		for _, id := range slices.Sorted(maps.Keys(s.Clients)) {
			if i < len(clientNotes) {
				s.Clients[id].Notes = clientNotes[i]
			}
			i++
		}
		return s
	}
	for _, tt := range []struct {
		name string
		s    *usersessions.UserSession
	}{
		{"no client session", session("none")},
		{"one client, one note", withNotes(session("one", "app"), map[string]string{"sessiond.offline_access": "true"})},
		{"one client, no notes", withNotes(session("bare", "app"), nil, nil)},
		{"one client, empty notes", withNotes(session("empty", "app"), map[string]string{}, map[string]string{})},
		{"one client, three notes", withNotes(session("three", "app"), map[string]string{"a": "1", "b": "2", "c": "3"}, map[string]string{"gen": "x y"})},
		{"two clients", withNotes(session("two", "app", "other"), map[string]string{"k": "v"}, map[string]string{"a": "b"}, nil)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := memoryStore(t, "n1")
			c := cache.New(store, cache.Options{NodeID: "n1", MaxEntries: 1 << 20, Now: func() time.Time { return t0 }})
			following(t, c)
			p, err := c.BeginPreload()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			filler := []*usersessions.UserSession{session("filler-1", "app"), session("filler-2")}
			if n, _, err := p.Import(t.Context(), filler); err != nil || n != 2 {
				t.Fatalf("Import = %d, %v", n, err)
			}
			p.Reserve(1 << 16)
			if n, _, err := p.Import(t.Context(), []*usersessions.UserSession{tt.s}); err != nil || n != 1 {
				t.Fatalf("Import = %d, %v", n, err)
			}
			reads := store.gets.Load()
			for _, want := range append(filler, tt.s) {
				got := get(t, c, want.Key())
				if !reflect.DeepEqual(normalized(got), normalized(want)) {
					t.Errorf("%s came back as\n%+v\nwant\n%+v", want.ID, normalized(got), normalized(want))
				}
			}
			if store.gets.Load() != reads {
				t.Errorf("%d reads reached the store, want none", store.gets.Load()-reads)
			}
		})
	}
}

// normalized is s with times in UTC and empty maps as nil.
func normalized(s *usersessions.UserSession) usersessions.UserSession {
	c := *s
	c.Started, c.LastRefresh, c.ExpiresAt = c.Started.UTC(), c.LastRefresh.UTC(), c.ExpiresAt.UTC()
	if len(c.Notes) == 0 {
		c.Notes = nil
	}
	c.Clients = map[string]*usersessions.ClientSession{}
	for id, cs := range s.Clients {
		cc := *cs
		cc.Started, cc.LastRefresh, cc.ExpiresAt = cc.Started.UTC(), cc.LastRefresh.UTC(), cc.ExpiresAt.UTC()
		if len(cc.Notes) == 0 {
			cc.Notes = nil
		}
		c.Clients[id] = &cc
	}
	return c
}
