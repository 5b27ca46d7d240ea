package revocation_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jmoiron/sqlx"

	"github.com/sessiond/sessiond/internal/tcpproxy"
	"github.com/sessiond/sessiond/internal/testclock"
	"github.com/sessiond/sessiond/internal/testlog"
	"github.com/sessiond/sessiond/internal/testpg"
	"github.com/sessiond/sessiond/providers/usersessions/postgres"
	"github.com/sessiond/sessiond/spi"
)

// propagationBound is how soon a policy set on one node must be in force on another.
const propagationBound = time.Second

// TestTwoNodesOnPostgres: two nodes, each with its own provider and connections on one
// PostgreSQL schema. A policy set on A is in force on B within a second, through the store's
// change feed: B's session service refuses a refresh token issued before it and introspection
// says inactive. B reaches the database through a proxy that the test cuts: a policy set
// while B's feed is down is in force on B once the feed is back, by the reload.
func TestTwoNodesOnPostgres(t *testing.T) {
	schemaURL := freshSchema(t)
	u, err := url.Parse(schemaURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := tcpproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	viaProxy, err := proxy.URL(schemaURL)
	if err != nil {
		t.Fatal(err)
	}

	clock := testclock.New(time.Now().UTC().Truncate(time.Second))
	a := newNode(t, pgStore(t, schemaURL, "node-a"), clock, statics{})
	logB := &testlog.Buffer{}
	b := newLoggedNode(t, pgStore(t, viaProxy, "node-b"), clock, statics{}, hclog.New(&hclog.LoggerOptions{Output: logB, Level: hclog.Info}))
	running(t, a.policies)
	running(t, b.policies)

	// A login on A, refreshed on B: both nodes serve it.
	old := a.open(t, false)
	if _, err := b.refresh(t, "app", old.RefreshToken); err != nil {
		t.Fatalf("refresh on b before any policy: %v", err)
	}
	if !b.active(t, old.AccessToken) {
		t.Fatal("b says a's access token is inactive before any policy")
	}

	clock.Advance(2 * time.Second)
	policy := clock.Now()
	start := time.Now()
	if err := a.policies.SetRealm(t.Context(), realmName, policy); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "b has a's realm policy", func() bool { return b.policies.Realm(realmName).Equal(policy) })
	if took := time.Since(start); took > propagationBound {
		t.Errorf("b had a's policy after %v, want within %v", took, propagationBound)
	}
	t.Logf("a's realm policy in force on b after %v", time.Since(start))
	_, err = b.refresh(t, "app", old.RefreshToken)
	refused(t, err, "realm's not-before policy")
	if b.active(t, old.AccessToken) {
		t.Error("b says an access token issued before the policy is active")
	}
	if b.active(t, old.RefreshToken) {
		t.Error("b says a refresh token issued before the policy is active")
	}
	fresh := b.open(t, false)
	if _, err := a.refresh(t, "app", fresh.RefreshToken); err != nil {
		t.Fatalf("refresh on a of a token b issued after the policy: %v", err)
	}

	// And the other way, for a client.
	clock.Advance(2 * time.Second)
	clientPolicy := clock.Now()
	if err := b.policies.SetClient(t.Context(), realmName, "app", clientPolicy); err != nil {
		t.Fatal(err)
	}
	eventually(t, propagationBound, "a has b's client policy", func() bool { return a.policies.Client(realmName, "app").Equal(clientPolicy) })
	_, err = a.refresh(t, "app", fresh.RefreshToken)
	refused(t, err, "client's not-before policy")

	// B's connections are cut: its feed breaks. A sets a policy meanwhile, whose notification
	// B cannot hear; once B's connections are back, its reload brings the policy.
	proxy.Cut()
	eventually(t, 10*time.Second, "b notices its feed broke", func() bool { return strings.Contains(logB.String(), "change feed broke") })
	clock.Advance(2 * time.Second)
	cutPolicy := clock.Now()
	if err := a.policies.SetRealm(t.Context(), realmName, cutPolicy); err != nil {
		t.Fatal(err)
	}
	if err := a.policies.SetClient(t.Context(), realmName, "app", time.Time{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := b.policies.Realm(realmName); !got.Equal(policy) {
		t.Fatalf("with its connections cut b answers %v, want the policy it last read (%v)", got, policy)
	}
	if !b.policies.Ready() {
		t.Error("b is not ready while its feed is down, having loaded the policies before")
	}
	proxy.Restore()
	eventually(t, 15*time.Second, "b reloads the policies set while it was cut off", func() bool {
		return b.policies.Realm(realmName).Equal(cutPolicy) && b.policies.Client(realmName, "app").IsZero()
	})
	_, err = b.refresh(t, "app", fresh.RefreshToken)
	refused(t, err, "realm's not-before policy")

	// The feed is followed again, not only reloaded.
	clock.Advance(2 * time.Second)
	last := clock.Now()
	start = time.Now()
	if err := a.policies.SetClient(t.Context(), realmName, "web", last); err != nil {
		t.Fatal(err)
	}
	eventually(t, propagationBound, "b follows a again after the reconnection", func() bool { return b.policies.Client(realmName, "web").Equal(last) })
	t.Logf("after the reconnection a's client policy in force on b after %v", time.Since(start))
}

func pgStore(t *testing.T, dsn, nodeID string) *postgres.Provider {
	t.Helper()
	p := postgres.New(hclog.NewNullLogger())
	if err := p.Configure(t.Context(), spi.Config{postgres.OptURL: dsn, spi.HostNodeID: nodeID}); err != nil {
		t.Fatalf("configure postgres (run .ci/services): %v", err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// freshSchema returns a URL of the test database whose search_path is a new schema,
// dropped when t ends. An unreachable PostgreSQL fails the test.
func freshSchema(t *testing.T) string {
	t.Helper()
	db, err := sqlx.Open("postgres", testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("PostgreSQL at %s (run .ci/services): %v", testpg.URL(), err)
	}
	t.Cleanup(func() { db.Exec("DROP SCHEMA " + schema + " CASCADE") })
	u, err := url.Parse(testpg.URL())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
