package session

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/cache"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// laggingFeed is a store whose change feed subscribes and then says nothing: another
// node's writes have not reached this node's cache yet.
type laggingFeed struct{ usersessions.Provider }

func (l laggingFeed) Watch(ctx context.Context, fn func(usersessions.Change) error) error {
	if err := fn(usersessions.Change{Kind: usersessions.Subscribed}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

// TestRefreshDoesNotRefuseOnAStaleCachedCopy: node B holds a cached copy of a session whose
// refresh token node A has just rotated. The new token presented on B must work: a refusal
// is decided on a fresh read. A token that really is stale is still refused.
func TestRefreshDoesNotRefuseOnAStaleCachedCopy(t *testing.T) {
	f := newFixture(t, rotation(0, 0))
	c := cache.New(laggingFeed{f.store}, cache.Options{Now: f.clock.Now})
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.Follow(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for !c.Stats().Following {
		time.Sleep(time.Millisecond)
	}
	nodeB := New(Deps{Store: c, Realms: f.realms, Tokens: f.tokens, Now: f.clock.Now,
		PersistentSessions: true, Log: hclog.NewNullLogger()})
	refreshOnB := func(raw string) (*Grant, error) {
		return nodeB.Refresh(f.ctx, RefreshRequest{Realm: realmName, Client: "app", RefreshToken: raw})
	}

	g := f.open(OpenRequest{})
	onB, err := refreshOnB(g.RefreshToken) // B caches the session, lineage at onB's token
	if err != nil {
		t.Fatal(err)
	}
	onA := f.mustRefresh("app", onB.RefreshToken) // A rotates; B's copy is now behind
	before := c.Stats().StoreReads
	if _, err := refreshOnB(onA.RefreshToken); err != nil {
		t.Fatalf("refresh on B of the token A just handed out: %v", err)
	}
	if c.Stats().StoreReads == before {
		t.Error("B accepted the token without reading the store; its cached copy could not know it")
	}
	if _, err := refreshOnB(onB.RefreshToken); err == nil {
		t.Error("B accepted a refresh token rotated out twice")
	}
}
