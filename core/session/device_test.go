package session

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi/usersessions"
)

// counting is the real memory provider counting the client-session writes a refresh makes.
type counting struct {
	usersessions.Provider
	puts atomic.Int64
}

func (c *counting) PutClientSessions(ctx context.Context, cs []*usersessions.ClientSession) ([]error, error) {
	c.puts.Add(1)
	return c.Provider.PutClientSessions(ctx, cs)
}

const (
	firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	chrome  = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)

// TestRefreshRecordsWhereTheSessionIsUsedFrom: the login's address and user agent are where
// the session was last seen until a refresh comes from elsewhere; a refresh from where the
// session already is writes only its touch (no client-session write), one from elsewhere
// writes the client session's notes, with or without rotation.
func TestRefreshRecordsWhereTheSessionIsUsedFrom(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []func(*config)
		// base is the client-session writes every refresh makes anyway.
		base int64
	}{
		{"without rotation", nil, 0},
		{"with rotation", []func(*config){rotation(0, 0)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts...)
			g := f.open(OpenRequest{IPAddress: "192.0.2.1", UserAgent: firefox})
			store := &counting{Provider: f.store}
			f.svc.store = store
			refresh := func(ip, ua string) {
				t.Helper()
				f.clock.Advance(time.Minute)
				next, err := f.svc.Refresh(f.ctx, RefreshRequest{Realm: realmName, Client: "app", RefreshToken: g.RefreshToken, IPAddress: ip, UserAgent: ua})
				if err != nil {
					t.Fatalf("refresh: %v", err)
				}
				g = next
			}
			seen := func(wantIP, wantUA string) {
				t.Helper()
				ip, ua := LastSeen(f.session(g.SessionID, false))
				if ip != wantIP || ua != wantUA {
					t.Errorf("LastSeen = %q, %q; want %q, %q", ip, ua, wantIP, wantUA)
				}
			}
			seen("192.0.2.1", firefox)

			for i, step := range []struct {
				ip, ua         string
				wantIP, wantUA string
				write          bool
			}{
				{"192.0.2.1", firefox, "192.0.2.1", firefox, false}, // where it logged in
				{"198.51.100.7", firefox, "198.51.100.7", firefox, true},
				{"198.51.100.7", firefox, "198.51.100.7", firefox, false}, // unchanged
				{"198.51.100.7", chrome, "198.51.100.7", chrome, true},
				{"", "", "198.51.100.7", chrome, false},            // nothing said, nothing recorded
				{"192.0.2.1", firefox, "192.0.2.1", firefox, true}, // back where it began: recorded too
			} {
				before := store.puts.Load()
				refresh(step.ip, step.ua)
				want := tc.base
				if step.write {
					want = 1
				}
				if got := store.puts.Load() - before; got != want {
					t.Errorf("step %d (%s, %.20s): %d client-session writes, want %d", i, step.ip, step.ua, got, want)
				}
				seen(step.wantIP, step.wantUA)
			}
		})
	}
}

// TestLastSeenIsTheLatestClients: a session used by two clients was last seen where the
// client refreshed last was.
func TestLastSeenIsTheLatestClients(t *testing.T) {
	t1 := time.Unix(1000, 0)
	us := &usersessions.UserSession{IPAddress: "192.0.2.1", UserAgent: firefox, Clients: map[string]*usersessions.ClientSession{
		"a": {ClientID: "a", LastRefresh: t1, Notes: map[string]string{NoteLastIP: "198.51.100.1"}},
		"b": {ClientID: "b", LastRefresh: t1.Add(time.Second), Notes: map[string]string{NoteLastUserAgent: chrome}},
	}}
	if ip, ua := LastSeen(us); ip != "192.0.2.1" || ua != chrome {
		t.Errorf("LastSeen = %q, %q; want b's: the login's address, b's user agent", ip, ua)
	}
	us.Clients["a"].LastRefresh = t1.Add(2 * time.Second)
	if ip, ua := LastSeen(us); ip != "198.51.100.1" || ua != firefox {
		t.Errorf("LastSeen = %q, %q; want a's", ip, ua)
	}
	if ip, ua := LastSeen(&usersessions.UserSession{IPAddress: "192.0.2.9", UserAgent: "x"}); ip != "192.0.2.9" || ua != "x" {
		t.Errorf("LastSeen of a session without clients = %q, %q; want the login's", ip, ua)
	}
}

func TestSeenTextIsWhatAStoreHolds(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", "plain"},
		{"nul\x00inside", "nulinside"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{strings.Repeat("é", 300), strings.Repeat("é", 256)}, // 512 bytes, not a half character
	} {
		if got := seenText(tc.in, maxSeenUserAgent); got != tc.want {
			t.Errorf("seenText(%.20q) = %.20q (%d bytes), want %.20q", tc.in, got, len(got), tc.want)
		}
	}
}
