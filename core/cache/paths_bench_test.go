package cache_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// BenchmarkCachePaths: the cache on the hot paths, with 100k sessions cached, each an
// online login with Revoke Refresh Token on (a client session with its token id and its
// generation's notes):
//
//	go test -run '^$' -bench CachePaths ./core/cache
//
// "hit" is a read served from memory (introspection, and the read every refresh makes);
// "touch" moves the idle clocks (a refresh with rotation off); "rotate" reads the session
// and writes its client session (a refresh with rotation on). touch and rotate reach the
// memory provider too, which costs the same whatever the cache's representation.
// bench/memory runs it in the trees it compares. Helpers here are prefixed bench so that
// the file also builds beside older versions of the package's tests.
func BenchmarkCachePaths(b *testing.B) {
	const n = 100000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store := memory.New(hclog.NewNullLogger())
	if err := store.Configure(ctx, spi.Config{spi.HostNodeID: "n1"}); err != nil {
		b.Fatal(err)
	}
	defer store.Close(context.Background())
	c := cache.New(store, cache.Options{NodeID: "n1", MaxEntries: n})
	go c.Follow(ctx)
	for !c.Stats().Following {
		time.Sleep(time.Millisecond)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	keys := make([]usersessions.Key, n)
	for i := 0; i < n; i += 1000 {
		batch := make([]*usersessions.UserSession, 1000)
		for j := range batch {
			batch[j] = benchSession(i+j, now)
			keys[i+j] = batch[j].Key()
		}
		if _, err := c.Create(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	if st := c.Stats(); st.Entries != n {
		b.Fatalf("%d sessions cached, want %d", st.Entries, n)
	}
	b.Run("hit", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			got, err := c.Get(ctx, keys[i%n:i%n+1])
			if err != nil || got[0] == nil {
				b.Fatal("miss", err)
			}
			i++
		}
	})
	b.Run("touch", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			at := now.Add(time.Duration(i) * time.Microsecond)
			errs, err := c.Touch(ctx, []usersessions.Touch{{Session: keys[i%n], LastRefresh: at, ExpiresAt: at.Add(time.Hour),
				ClientID: "app", ClientExpiresAt: at.Add(time.Hour)}})
			if err != nil || errs[0] != nil {
				b.Fatal(err, errs)
			}
			i++
		}
	})
	b.Run("rotate", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			got, err := c.Get(ctx, keys[i%n:i%n+1])
			if err != nil || got[0] == nil {
				b.Fatal("miss", err)
			}
			cs := got[0].Clients["app"]
			cs.PreviousRefreshToken, cs.CurrentRefreshToken = cs.CurrentRefreshToken, fmt.Sprintf("rt-%d", i)
			cs.Notes["sessiond.refresh-token-generation"] = cs.CurrentRefreshToken
			errs, err := c.PutClientSessions(ctx, []*usersessions.ClientSession{cs})
			if err != nil || errs[0] != nil {
				b.Fatal(err, errs)
			}
			i++
		}
	})
}

func benchSession(i int, now time.Time) *usersessions.UserSession {
	id := fmt.Sprintf("%026x", i*7919)
	s := &usersessions.UserSession{RealmID: "bench", ID: id, UserID: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i),
		LoginUsername: fmt.Sprintf("user%d", i), IPAddress: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", AuthMethod: "openid-connect",
		State: usersessions.LoggedIn, Started: now, LastRefresh: now, ExpiresAt: now.Add(time.Hour),
		Clients: map[string]*usersessions.ClientSession{}}
	token := fmt.Sprintf("%026x", i*104729)
	s.Clients["app"] = &usersessions.ClientSession{RealmID: "bench", UserSessionID: id, ClientID: "app",
		Started: now, LastRefresh: now, ExpiresAt: now.Add(time.Hour), AuthMethod: "openid-connect", Action: "AUTHENTICATE",
		Scope: "openid profile email", CurrentRefreshToken: token,
		Notes: map[string]string{"sessiond.refresh-token-generation": token, "sessiond.refresh-token-generation-start": strconv.FormatInt(now.Unix(), 10)}}
	return s
}
