package session

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// committedUnanswered is the real memory provider whose creates commit and then end as a
// commit without an answer: the first attempt of a login stored its session, and its caller
// was told 503.
type committedUnanswered struct {
	usersessions.Provider
}

func (c committedUnanswered) Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	if _, err := c.Provider.Create(ctx, sessions); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("create user sessions: %w", usersessions.ErrOutcomeUnknown)
}

// TestRetriedOpenOfUnknownOutcome: an open with an idempotency key whose commit got no answer
// is retried; the retry finds the session the first attempt stored, answers with new tokens
// for it, and leaves one session, online and offline; the tokens work.
func TestRetriedOpenOfUnknownOutcome(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    []func(*config)
		req     OpenRequest
		offline bool
	}{
		{"online", nil, OpenRequest{}, false},
		{"offline", nil, OpenRequest{Scope: "openid offline_access", OfflineAccess: true}, true},
		{"with rotation", []func(*config){rotation(0, 0)}, OpenRequest{}, false},
		// The first attempt's session must neither block its retry nor be ended for it.
		{"at a deny-new limit of one", []func(*config){withLimits(realm.SessionLimits{UserRealm: realm.Limit{Max: 1}})}, OpenRequest{}, false},
		{"at a terminate-oldest limit of one", []func(*config){withLimits(realm.SessionLimits{UserRealm: realm.Limit{Max: 1, Terminate: true}})}, OpenRequest{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts...)
			req := tc.req
			req.Realm, req.ClientID, req.UserID, req.Username = realmName, "app", user, "alice"
			req.Scope = orDefault(req.Scope, "openid")
			req.IdempotencyKey = "test:k-1"
			f.svc.store = committedUnanswered{f.store}
			if _, err := f.svc.Open(f.ctx, req); !errors.Is(err, usersessions.ErrOutcomeUnknown) || !errors.Is(err, spi.ErrUnavailable) {
				t.Fatalf("first attempt: err = %v, want usersessions.ErrOutcomeUnknown", err)
			}
			stored := f.sessions()
			want := 1
			if tc.offline {
				want = 2
			}
			if len(stored) != want {
				t.Fatalf("%d sessions after the first attempt, want %d (committed)", len(stored), want)
			}
			f.svc.store = f.store
			g, err := f.svc.Open(f.ctx, req)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if g.SessionID != stored[0].ID {
				t.Errorf("retry answered session %s, want the stored %s", g.SessionID, stored[0].ID)
			}
			if after := f.sessions(); len(after) != want {
				t.Errorf("%d sessions after the retry, want %d: %s", len(after), want, dump(after))
			}
			if tc.offline != (g.RefreshTokenType == token.Offline) {
				t.Errorf("retry got a %q token", g.RefreshTokenType)
			}
			if ev, ok := f.events.last(EventLogin); !ok || ev.SessionID != g.SessionID || ev.Offline != tc.offline {
				t.Errorf("login event %+v (found %v)", ev, ok)
			}
			if f.ended != nil && len(f.ended.all()) != 0 {
				t.Errorf("the limit ended %v", f.ended.all())
			}
			r := f.mustRefresh("app", g.RefreshToken)
			if r.SessionID != g.SessionID {
				t.Errorf("refresh answered session %s", r.SessionID)
			}
			// Once more, with the first attempt's answer received: still the same session.
			again, err := f.svc.Open(f.ctx, req)
			if err != nil || again.SessionID != g.SessionID {
				t.Fatalf("third attempt: %v, session %v, want %s", err, again, g.SessionID)
			}
		})
	}
}

// TestIdempotencyKeyReused: a key that opened a session, given with another request, is
// refused and changes nothing; the same key of another client or realm is another session.
func TestIdempotencyKeyReused(t *testing.T) {
	f := newFixture(t)
	const key = "test:k-2"
	first := f.open(OpenRequest{IdempotencyKey: key, IPAddress: "192.0.2.1"})
	before := f.sessions()
	for _, tc := range []struct {
		name string
		req  OpenRequest
	}{
		{"another user", OpenRequest{UserID: "u-2"}},
		{"another scope", OpenRequest{Scope: "openid email"}},
		{"another address", OpenRequest{IPAddress: "192.0.2.2"}},
		{"notes", OpenRequest{IPAddress: "192.0.2.1", Notes: map[string]string{"n": "v"}}},
		{"remember me", OpenRequest{IPAddress: "192.0.2.1", RememberMe: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.Realm, req.ClientID, req.IdempotencyKey = realmName, "app", key
			req.UserID, req.Username, req.Scope = orDefault(req.UserID, user), "alice", orDefault(req.Scope, "openid")
			_, err := f.svc.Open(f.ctx, req)
			if !errors.Is(err, ErrIdempotencyKeyReused) {
				t.Fatalf("err = %v, want ErrIdempotencyKeyReused", err)
			}
			f.unchanged(before)
		})
	}
	other := f.open(OpenRequest{IdempotencyKey: key, ClientID: "other", IPAddress: "192.0.2.1"})
	zeta := f.open(OpenRequest{IdempotencyKey: key, Realm: "zeta", IPAddress: "192.0.2.1"})
	if other.SessionID == first.SessionID || zeta.SessionID == first.SessionID {
		t.Errorf("one key across clients and realms gave sessions %s, %s and %s, want three", first.SessionID, other.SessionID, zeta.SessionID)
	}
}

// TestOpenWithoutKey_retryLeavesTwo is the behaviour without a key, as documented: a retry
// after an unknown outcome opens a second session.
func TestOpenWithoutKey_retryLeavesTwo(t *testing.T) {
	f := newFixture(t)
	f.svc.store = committedUnanswered{f.store}
	if _, err := f.svc.Open(f.ctx, OpenRequest{Realm: realmName, ClientID: "app", UserID: user}); !errors.Is(err, usersessions.ErrOutcomeUnknown) {
		t.Fatalf("err = %v", err)
	}
	f.svc.store = f.store
	f.open(OpenRequest{})
	if n := len(f.sessions()); n != 2 {
		t.Errorf("%d sessions, want 2", n)
	}
}

// TestIdempotentSessionEnded: a key whose session has been logged out (still stored) is
// refused with a conflict rather than reopening it.
func TestIdempotentSessionEnded(t *testing.T) {
	f := newFixture(t)
	req := OpenRequest{IdempotencyKey: "test:k-3"}
	g := f.open(req)
	us := f.session(g.SessionID, false)
	us.State = usersessions.LoggedOut
	if errs, err := f.store.Update(f.ctx, []*usersessions.UserSession{us}); firstErr(errs, err) != nil {
		t.Fatal(firstErr(errs, err))
	}
	_, err := f.svc.Open(f.ctx, OpenRequest{Realm: realmName, ClientID: "app", UserID: user, Username: "alice", Scope: "openid", IdempotencyKey: "test:k-3"})
	if !errors.Is(err, ErrIdempotentSessionEnded) || !errors.Is(err, spi.ErrConflict) {
		t.Fatalf("err = %v, want ErrIdempotentSessionEnded", err)
	}
}

// TestSessionIDKeys: two services over one store (two nodes) derive one id from a key; over
// another store (another deployment, its own realm key) another; a service without a
// records store refuses a key rather than ignoring it.
func TestSessionIDKeys(t *testing.T) {
	f := newFixture(t)
	node2 := New(Deps{Store: f.store, Realms: f.realms, Tokens: f.tokens, Now: f.clock.Now, PersistentSessions: true,
		Log: hclog.NewNullLogger(), Records: f.store})
	r, c, _ := f.realms.Client(realmName, "app")
	id1, err := f.svc.sessionID(f.ctx, r, c, "test:k", t0)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := node2.sessionID(f.ctx, r, c, "test:k", t0)
	if err != nil || id1 != id2 {
		t.Fatalf("two nodes derived %s and %s (%v)", id1, id2, err)
	}
	if len(id1) != len(newID()) {
		t.Errorf("derived id %q is not shaped as a random one (%d characters)", id1, len(newID()))
	}
	elsewhere := newFixture(t)
	if id3, err := elsewhere.svc.sessionID(f.ctx, r, c, "test:k", t0); err != nil || id3 == id1 {
		t.Errorf("another store's realm key derived %s (%v), the same as %s", id3, err, id1)
	}
	bare := New(Deps{Store: f.store, Realms: f.realms, Tokens: f.tokens, Now: f.clock.Now, Log: hclog.NewNullLogger()})
	if _, err := bare.Open(f.ctx, OpenRequest{Realm: realmName, ClientID: "app", UserID: user, IdempotencyKey: "test:k"}); !errors.Is(err, spi.ErrUnavailable) {
		t.Errorf("an open with a key and no records store: %v", err)
	}
}

// storedMeanwhile is the real memory provider where another attempt of the same open stores
// its session between this attempt's read and its create.
type storedMeanwhile struct {
	usersessions.Provider
}

func (s storedMeanwhile) Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	other := make([]*usersessions.UserSession, len(sessions))
	for i, us := range sessions {
		c := *us
		other[i] = &c
	}
	if _, err := s.Provider.Create(ctx, other); err != nil {
		return nil, err
	}
	return s.Provider.Create(ctx, sessions)
}

// TestOpenRacingItsRetry: an attempt whose create finds the session stored by another
// attempt with the same key answers with that session, and leaves one.
func TestOpenRacingItsRetry(t *testing.T) {
	f := newFixture(t)
	f.svc.store = storedMeanwhile{f.store}
	g := f.open(OpenRequest{IdempotencyKey: "test:k-4"})
	if got := f.sessions(); len(got) != 1 || got[0].ID != g.SessionID {
		t.Fatalf("sessions %s, want only %s", dump(got), g.SessionID)
	}
	f.mustRefresh("app", g.RefreshToken)
}
