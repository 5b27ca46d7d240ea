package usersessionstest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// listAll pages through List with the given limit, checking each page's size and order,
// and returns every session listed.
func listAll(t *testing.T, p usersessions.Provider, f usersessions.Filter, limit int) []*usersessions.UserSession {
	t.Helper()
	var all []*usersessions.UserSession
	after := ""
	for range 10000 {
		page, err := p.List(t.Context(), f, usersessions.Page{After: after, Limit: limit})
		if err != nil {
			t.Fatalf("List(%+v, after %q): %v", f, after, err)
		}
		if len(page) == 0 {
			return all
		}
		// One over Limit is tolerated with Both: a provider may keep the online and offline
		// sessions of one id on the same page, since After cannot resume between them.
		if len(page) > limit && !(f.Offline == usersessions.Both && len(page) == limit+1) {
			t.Fatalf("List returned %d sessions with Limit %d", len(page), limit)
		}
		for i, s := range page {
			if s == nil {
				t.Fatalf("List returned a nil session")
			}
			if s.ID <= after || (i > 0 && s.ID < page[i-1].ID) {
				t.Fatalf("List after %q returned ids out of order: %v", after, keyStrings(page))
			}
		}
		all = append(all, page...)
		after = page[len(page)-1].ID
	}
	t.Fatal("List never returned an empty page")
	return nil
}

// pagingFixture is n online sessions of realm r1 with ids in random creation order, and
// the same ids in realm r2 as a distraction.
func pagingFixture(n int) []*usersessions.UserSession {
	var all []*usersessions.UserSession
	for _, i := range rand.Perm(n) {
		all = append(all, session("r1", fmt.Sprintf("s-%03d", i), fmt.Sprintf("u%d", i%3), false, "app"))
		all = append(all, session("r2", fmt.Sprintf("s-%03d", i), "other", false))
	}
	return all
}

// rangeFixture is a mix of online and offline sessions of several users and clients with
// LastRefresh spread over the hour before epoch, for the filter tables.
func rangeFixture() []*usersessions.UserSession {
	var all []*usersessions.UserSession
	for i := range 24 {
		var clients []string
		for c, name := range []string{"c1", "c2", "c3"} {
			if i%(c+2) == 0 {
				clients = append(clients, name)
			}
		}
		s := session("r1", fmt.Sprintf("s-%02d", i), fmt.Sprintf("u%d", i%4), i%3 == 0, clients...)
		s.LastRefresh = at(-time.Duration(i) * time.Minute * 2)
		// Expiries spread around epoch, for LiveAt: every seventh session has ended by then,
		// and of the others some client sessions have.
		if i%7 == 6 {
			s.ExpiresAt = at(-time.Duration(i) * time.Second)
		}
		for c, cs := range s.Clients {
			if c == "c2" && i%4 == 0 {
				cs.ExpiresAt = at(-time.Minute)
			}
		}
		all = append(all, s)
		if i%5 == 0 {
			twin := session("r1", s.ID, s.UserID, !s.Offline, clients...)
			twin.LastRefresh = s.LastRefresh
			twin.ExpiresAt = s.ExpiresAt
			all = append(all, twin)
		}
	}
	all = append(all, session("r2", "s-00", "u0", false, "c1"), session("r2", "s-99", "u0", true, "c1"))
	return all
}

func filterCases() []struct {
	name string
	f    usersessions.Filter
} {
	return []struct {
		name string
		f    usersessions.Filter
	}{
		{"realm, online by default", usersessions.Filter{RealmID: "r1"}},
		{"realm, offline only", usersessions.Filter{RealmID: "r1", Offline: usersessions.OfflineOnly}},
		{"realm, both kinds", usersessions.Filter{RealmID: "r1", Offline: usersessions.Both}},
		{"user", usersessions.Filter{RealmID: "r1", UserID: "u1", Offline: usersessions.Both}},
		{"user, offline only", usersessions.Filter{RealmID: "r1", UserID: "u2", Offline: usersessions.OfflineOnly}},
		{"client: sessions with a client session for it", usersessions.Filter{RealmID: "r1", ClientID: "c2", Offline: usersessions.Both}},
		{"client, online only", usersessions.Filter{RealmID: "r1", ClientID: "c1"}},
		{"user and client", usersessions.Filter{RealmID: "r1", UserID: "u0", ClientID: "c3", Offline: usersessions.Both}},
		{"ActiveSince keeps LastRefresh at or after it", usersessions.Filter{RealmID: "r1", Offline: usersessions.Both, ActiveSince: at(-20 * time.Minute)}},
		{"ActiveSince with offline only", usersessions.Filter{RealmID: "r1", Offline: usersessions.OfflineOnly, ActiveSince: at(-30 * time.Minute)}},
		{"LiveAt leaves out sessions whose ExpiresAt is not after it", usersessions.Filter{RealmID: "r1", Offline: usersessions.Both, LiveAt: epoch()}},
		{"LiveAt with a client leaves out sessions whose client session has ended", usersessions.Filter{RealmID: "r1", ClientID: "c2", Offline: usersessions.Both, LiveAt: epoch()}},
		{"LiveAt with a user, offline only", usersessions.Filter{RealmID: "r1", UserID: "u0", Offline: usersessions.OfflineOnly, LiveAt: epoch()}},
		{"LiveAt before every expiry keeps everything", usersessions.Filter{RealmID: "r1", Offline: usersessions.Both, LiveAt: at(-24 * time.Hour)}},
		{"unknown user selects nothing", usersessions.Filter{RealmID: "r1", UserID: "nobody", Offline: usersessions.Both}},
		{"unknown client selects nothing", usersessions.Filter{RealmID: "r1", ClientID: "nobody", Offline: usersessions.Both}},
		{"other realm sees only its own sessions", usersessions.Filter{RealmID: "r2", Offline: usersessions.Both}},
		{"realm without sessions selects nothing", usersessions.Filter{RealmID: "r9", Offline: usersessions.Both}},
	}
}

func selected(f usersessions.Filter, all []*usersessions.UserSession) []*usersessions.UserSession {
	var out []*usersessions.UserSession
	for _, s := range all {
		if selects(f, s) {
			out = append(out, s)
		}
	}
	return out
}

func listChecks() []check {
	checks := []check{
		{"pages by id ascending with keyset paging and sees every session once", func(t *testing.T, p usersessions.Provider) {
			all := pagingFixture(25)
			create(t, p, all...)
			f := usersessions.Filter{RealmID: "r1"}
			got := listAll(t, p, f, 10)
			want := selected(f, all)
			slices.SortFunc(want, func(a, b *usersessions.UserSession) int { return cmp.Compare(a.ID, b.ID) })
			if !slices.Equal(keyStrings(got), keyStrings(want)) {
				t.Fatalf("listed %v, want %v", keyStrings(got), keyStrings(want))
			}
			for i := range got {
				same(t, "listed "+keyString(got[i].Key()), stored(want[i]), got[i])
			}
		}},
		{"pages have at most Limit sessions and the first page is the lowest ids", func(t *testing.T, p usersessions.Provider) {
			create(t, p, pagingFixture(25)...)
			page, err := p.List(t.Context(), usersessions.Filter{RealmID: "r1"}, usersessions.Page{Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			if got := keyStrings(page); !slices.Equal(got, []string{"r1/s-000/online", "r1/s-001/online", "r1/s-002/online"}) {
				t.Errorf("first page %v", got)
			}
			page, err = p.List(t.Context(), usersessions.Filter{RealmID: "r1"}, usersessions.Page{After: "s-0105", Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			if got := keyStrings(page); !slices.Equal(got, []string{"r1/s-011/online", "r1/s-012/online"}) {
				t.Errorf("page after an id that is not stored: %v", got)
			}
		}},
		{"After the last id gives an empty page", func(t *testing.T, p usersessions.Provider) {
			create(t, p, pagingFixture(5)...)
			page, err := p.List(t.Context(), usersessions.Filter{RealmID: "r1"}, usersessions.Page{After: "s-004", Limit: 10})
			if err != nil || len(page) != 0 {
				t.Errorf("List after the last id = %v, %v; want empty", keyStrings(page), err)
			}
		}},
		{"Both lists the online and offline sessions of one id", func(t *testing.T, p usersessions.Provider) {
			on, off := session("r1", "s1", "u1", false, "app"), session("r1", "s1", "u1", true, "cli")
			create(t, p, on, off)
			page, err := p.List(t.Context(), usersessions.Filter{RealmID: "r1", Offline: usersessions.Both}, usersessions.Page{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if got := sortedKeys(page); !slices.Equal(got, sortedKeys([]*usersessions.UserSession{on, off})) {
				t.Errorf("listed %v", got)
			}
		}},
		{"without a RealmID is ErrInvalid", func(t *testing.T, p usersessions.Provider) {
			create(t, p, matchingFixture()...)
			_, err := p.List(t.Context(), usersessions.Filter{Offline: usersessions.Both}, usersessions.Page{Limit: 10})
			wantErr(t, "List", err, spi.ErrInvalid)
			_, err = p.Count(t.Context(), usersessions.Filter{UserID: "u1"})
			wantErr(t, "Count", err, spi.ErrInvalid)
			err = p.Stream(t.Context(), usersessions.StreamRequest{PageSize: 10}, func([]*usersessions.UserSession) error { return nil })
			wantErr(t, "Stream", err, spi.ErrInvalid)
		}},
	}
	// One table drives List, Count and Stream: all three must select the same sessions.
	for _, tt := range filterCases() {
		checks = append(checks, check{"List, Count and Stream select by " + tt.name, func(t *testing.T, p usersessions.Provider) {
			all := rangeFixture()
			create(t, p, all...)
			want := sortedKeys(selected(tt.f, all))
			listed := listAll(t, p, tt.f, 4)
			if got := sortedKeys(listed); !slices.Equal(got, want) {
				t.Errorf("List selected %v, want %v", got, want)
			}
			for _, s := range listed {
				if len(s.Clients) != len(mustFind(t, all, s.Key()).Clients) {
					t.Errorf("List returned %s with client sessions %v, want all of them", keyString(s.Key()), slices.Sorted(maps.Keys(s.Clients)))
				}
			}
			n, err := p.Count(t.Context(), tt.f)
			if err != nil || n != int64(len(want)) {
				t.Errorf("Count = %d, %v; want %d", n, err, len(want))
			}
			if got := sortedKeys(streamAll(t, p, usersessions.StreamRequest{Filter: tt.f, PageSize: 5})); !slices.Equal(got, want) {
				t.Errorf("Stream selected %v, want %v", got, want)
			}
		}})
	}
	return checks
}

func mustFind(t *testing.T, all []*usersessions.UserSession, k usersessions.Key) *usersessions.UserSession {
	t.Helper()
	for _, s := range all {
		if s.Key() == k {
			return s
		}
	}
	t.Fatalf("%s was listed but never created", keyString(k))
	return nil
}

func countByClientChecks() []check {
	return []check{
		{"counts sessions per client for one realm and kind", func(t *testing.T, p usersessions.Provider) {
			all := rangeFixture()
			create(t, p, all...)
			for _, tc := range []struct {
				realm   string
				offline bool
			}{{"r1", false}, {"r1", true}, {"r2", false}, {"r2", true}, {"r9", false}} {
				want := map[string]int64{}
				for _, s := range all {
					if s.RealmID == tc.realm && s.Offline == tc.offline {
						for c := range s.Clients {
							want[c]++
						}
					}
				}
				got, err := p.CountByClient(t.Context(), tc.realm, tc.offline, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				maps.DeleteFunc(got, func(_ string, n int64) bool { return n == 0 })
				if !maps.Equal(got, want) {
					t.Errorf("CountByClient(%s, offline=%v) = %v, want %v", tc.realm, tc.offline, got, want)
				}
			}
		}},
		{"with liveAt counts only live client sessions of live user sessions", func(t *testing.T, p usersessions.Provider) {
			all := rangeFixture()
			create(t, p, all...)
			for _, offline := range []bool{false, true} {
				want := map[string]int64{}
				for _, s := range all {
					if s.RealmID != "r1" || s.Offline != offline || !usersessions.Live(s.ExpiresAt, epoch()) {
						continue
					}
					for c, cs := range s.Clients {
						if usersessions.Live(cs.ExpiresAt, epoch()) {
							want[c]++
						}
					}
				}
				got, err := p.CountByClient(t.Context(), "r1", offline, epoch())
				if err != nil {
					t.Fatal(err)
				}
				maps.DeleteFunc(got, func(_ string, n int64) bool { return n == 0 })
				if !maps.Equal(got, want) {
					t.Errorf("CountByClient(r1, offline=%v, liveAt epoch) = %v, want %v", offline, got, want)
				}
			}
		}},
		{"follows client sessions being added and removed", func(t *testing.T, p usersessions.Provider) {
			s := session("r1", "s1", "u1", false, "c1")
			create(t, p, s)
			wantErr(t, "add c2", putClients(t, p, client(s, "c2"))[0])
			wantErr(t, "remove c1", p.DeleteClientSessions(t.Context(), []usersessions.ClientKey{{Session: s.Key(), ClientID: "c1"}}))
			got, err := p.CountByClient(t.Context(), "r1", false, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			maps.DeleteFunc(got, func(_ string, n int64) bool { return n == 0 })
			if want := map[string]int64{"c2": 1}; !maps.Equal(got, want) {
				t.Errorf("CountByClient = %v, want %v", got, want)
			}
		}},
	}
}

// streamAll streams req, checking page sizes and that no session comes twice, and returns
// every session. The order is the provider's.
func streamAll(t *testing.T, p usersessions.Provider, req usersessions.StreamRequest) []*usersessions.UserSession {
	t.Helper()
	var all []*usersessions.UserSession
	seen := map[usersessions.Key]bool{}
	err := p.Stream(t.Context(), req, func(page []*usersessions.UserSession) error {
		if len(page) == 0 || len(page) > req.PageSize {
			return fmt.Errorf("page of %d sessions with PageSize %d", len(page), req.PageSize)
		}
		for _, s := range page {
			if seen[s.Key()] {
				return fmt.Errorf("%s streamed twice", keyString(s.Key()))
			}
			seen[s.Key()] = true
			all = append(all, s)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Stream(%+v): %v", req, err)
	}
	return all
}

func streamChecks() []check {
	return []check{
		{"gives every selected session once, in pages of at most PageSize", func(t *testing.T, p usersessions.Provider) {
			all := rangeFixture()
			create(t, p, all...)
			f := usersessions.Filter{RealmID: "r1", Offline: usersessions.Both}
			for _, size := range []int{1, 4, 7, 1000} {
				got := streamAll(t, p, usersessions.StreamRequest{Filter: f, PageSize: size})
				if want := sortedKeys(selected(f, all)); !slices.Equal(sortedKeys(got), want) {
					t.Errorf("PageSize %d: streamed %v, want %v", size, sortedKeys(got), want)
				}
				for _, s := range got {
					same(t, "streamed "+keyString(s.Key()), stored(mustFind(t, all, s.Key())), s)
				}
			}
		}},
		{"partitions are disjoint and together complete", func(t *testing.T, p usersessions.Provider) {
			all := rangeFixture()
			create(t, p, all...)
			f := usersessions.Filter{RealmID: "r1", Offline: usersessions.Both}
			for _, count := range []int{1, 2, 3, 5} {
				seen := map[string]int{}
				var union []*usersessions.UserSession
				for i := range count {
					part := streamAll(t, p, usersessions.StreamRequest{Filter: f, PageSize: 3, Partition: usersessions.Partition{Index: i, Count: count}})
					for _, s := range part {
						if prev, dup := seen[keyString(s.Key())]; dup {
							t.Errorf("%d partitions: %s in partitions %d and %d", count, keyString(s.Key()), prev, i)
						}
						seen[keyString(s.Key())] = i
					}
					union = append(union, part...)
				}
				if want := sortedKeys(selected(f, all)); !slices.Equal(sortedKeys(union), want) {
					t.Errorf("%d partitions together streamed %v, want %v", count, sortedKeys(union), want)
				}
			}
		}},
		{"an error from fn stops the stream and is returned", func(t *testing.T, p usersessions.Provider) {
			create(t, p, pagingFixture(10)...)
			stop := errors.New("consumer stops")
			calls := 0
			err := p.Stream(t.Context(), usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: "r1"}, PageSize: 2},
				func([]*usersessions.UserSession) error { calls++; return stop })
			if !errors.Is(err, stop) {
				t.Errorf("Stream returned %v, want fn's error", err)
			}
			if calls != 1 {
				t.Errorf("fn called %d times after returning an error, want 1", calls)
			}
		}},
		{"ends when ctx is cancelled", func(t *testing.T, p usersessions.Provider) {
			create(t, p, pagingFixture(30)...)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			pages := 0
			err := p.Stream(ctx, usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: "r1"}, PageSize: 1},
				func([]*usersessions.UserSession) error { pages++; cancel(); return nil })
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Stream returned %v, want context.Canceled", err)
			}
			if pages >= 30 {
				t.Errorf("Stream delivered all %d pages after ctx was cancelled on the first", pages)
			}
		}},
		{"of an empty selection never calls fn", func(t *testing.T, p usersessions.Provider) {
			create(t, p, pagingFixture(3)...)
			err := p.Stream(t.Context(), usersessions.StreamRequest{Filter: usersessions.Filter{RealmID: "r1", Offline: usersessions.OfflineOnly}, PageSize: 10},
				func(page []*usersessions.UserSession) error { return fmt.Errorf("fn called with %v", keyStrings(page)) })
			wantErr(t, "Stream", err)
		}},
	}
}
