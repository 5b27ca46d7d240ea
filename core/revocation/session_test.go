package revocation_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/revocation"
	"github.com/sessiond/sessiond/core/session"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/internal/testclock"
)

// node is one sessiond's session service with its not-before policies, over a store.
type node struct {
	policies *revocation.Policies
	sessions *session.Service
}

// sessionStore is what a node needs of the store: the session service's part and the
// policies' part (a provider has both).
type sessionStore interface {
	session.Store
	revocation.Store
}

func newNode(t *testing.T, store sessionStore, clock *testclock.Clock, st statics) *node {
	t.Helper()
	return newLoggedNode(t, store, clock, st, hclog.NewNullLogger())
}

// newLoggedNode is newNode whose policies log to log.
func newLoggedNode(t *testing.T, store sessionStore, clock *testclock.Clock, st statics, log hclog.Logger) *node {
	t.Helper()
	realms := newRealms(t, st)
	keys, err := token.NewKeyManager(store, token.KeyOptions{Now: clock.Now, Log: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	tokens := token.New(keys, token.Options{IssuerBase: "https://sso.test", Now: clock.Now})
	p := revocation.New(revocation.Deps{Store: store, Realms: realms, Now: clock.Now, Log: log})
	return &node{policies: p, sessions: session.New(session.Deps{
		Store: store, Realms: realms, Tokens: tokens, NotBefore: p, Now: clock.Now,
		PersistentSessions: true, Log: hclog.NewNullLogger(),
	})}
}

func (n *node) open(t *testing.T, offline bool) *session.Grant {
	t.Helper()
	req := session.OpenRequest{Realm: realmName, ClientID: "app", UserID: "u-1", Username: "alice", Scope: "openid"}
	if offline {
		req.Scope, req.OfflineAccess = "openid offline_access", true
	}
	g, err := n.sessions.Open(t.Context(), req)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return g
}

func (n *node) refresh(t *testing.T, client, raw string) (*session.Grant, error) {
	t.Helper()
	return n.sessions.Refresh(t.Context(), session.RefreshRequest{Realm: realmName, Client: client, RefreshToken: raw})
}

func (n *node) active(t *testing.T, raw string) bool {
	t.Helper()
	in, err := n.sessions.Introspect(t.Context(), realmName, raw)
	if err != nil {
		t.Fatalf("introspect: %v", err)
	}
	return in.Active
}

// refused checks that err is an invalid_grant naming the policy.
func refused(t *testing.T, err error, what string) {
	t.Helper()
	var se *session.Error
	if !errors.As(err, &se) || se.Code != session.InvalidGrant || !strings.Contains(se.Description, what) {
		t.Fatalf("got %v, want invalid_grant naming %q", err, what)
	}
}

// TestSessionServiceEnforcesPolicies: with the policies as its source, the session service
// refuses refresh and attach, and introspection answers inactive, for what was issued before
// a policy set at run time; what is issued after it works; the token response carries the
// realm's policy; a clear undoes it.
func TestSessionServiceEnforcesPolicies(t *testing.T) {
	clock := testclock.New(t0)
	store := memoryStore(t, "node-a")
	n := newNode(t, store, clock, statics{})
	running(t, n.policies)

	old := n.open(t, false)
	offline := n.open(t, true)
	attachable, err := n.sessions.Attach(t.Context(), session.AttachRequest{Realm: realmName, SessionID: old.SessionID, ClientID: "web", Scope: "openid"})
	if err != nil {
		t.Fatalf("attach before any policy: %v", err)
	}
	if !old.NotBefore.IsZero() {
		t.Errorf("not-before-policy %v with no policy", old.NotBefore)
	}
	clock.Advance(2 * time.Second)
	policy := clock.Now()
	if err := n.policies.SetRealm(t.Context(), realmName, policy); err != nil {
		t.Fatal(err)
	}

	_, err = n.refresh(t, "app", old.RefreshToken)
	refused(t, err, "realm's not-before policy")
	_, err = n.refresh(t, "app", offline.RefreshToken)
	refused(t, err, "realm's not-before policy")
	for what, raw := range map[string]string{"access": old.AccessToken, "refresh": old.RefreshToken, "offline": offline.RefreshToken, "attached access": attachable.AccessToken} {
		if n.active(t, raw) {
			t.Errorf("the %s token issued before the policy is active", what)
		}
	}
	_, err = n.sessions.Attach(t.Context(), session.AttachRequest{Realm: realmName, SessionID: old.SessionID, ClientID: "web", Scope: "openid"})
	refused(t, err, "realm's not-before policy")

	fresh := n.open(t, false)
	if !fresh.NotBefore.Equal(policy) {
		t.Errorf("not-before-policy %v, want the realm's %v", fresh.NotBefore, policy)
	}
	if !n.active(t, fresh.AccessToken) {
		t.Error("a token issued after the policy is inactive")
	}
	if _, err := n.refresh(t, "app", fresh.RefreshToken); err != nil {
		t.Fatalf("refresh of a token issued after the policy: %v", err)
	}

	// The client's own policy, later than the realm's.
	clock.Advance(2 * time.Second)
	if err := n.policies.SetClient(t.Context(), realmName, "app", clock.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = n.refresh(t, "app", fresh.RefreshToken)
	refused(t, err, "client's not-before policy")
	if n.active(t, fresh.AccessToken) {
		t.Error("an access token issued before the client's policy is active")
	}

	// Clearing both makes what was revoked usable again, as in Keycloak: the policy is a
	// bound on issue times, not a deletion.
	if err := n.policies.SetRealm(t.Context(), realmName, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := n.policies.SetClient(t.Context(), realmName, "app", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.refresh(t, "app", offline.RefreshToken); err != nil {
		t.Errorf("refresh after the policies were cleared: %v", err)
	}
	if g := n.open(t, false); !g.NotBefore.IsZero() {
		t.Errorf("not-before-policy %v after clear", g.NotBefore)
	}
}

// TestStaticPolicyStillApplies: a realm file's not-before is in force through the policies
// when nothing is set at run time.
func TestStaticPolicyStillApplies(t *testing.T) {
	clock := testclock.New(t0)
	store := memoryStore(t, "node-a")
	early := newNode(t, store, clock, statics{})
	g := early.open(t, false)
	clock.Advance(2 * time.Second)
	n := newNode(t, store, clock, statics{app: clock.Now()})
	running(t, n.policies)
	_, err := n.refresh(t, "app", g.RefreshToken)
	refused(t, err, "client's not-before policy")
}

var _ session.NotBefore = (*revocation.Policies)(nil)
