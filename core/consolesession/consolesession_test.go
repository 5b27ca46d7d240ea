package consolesession_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/consolesession"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/internal/testmem"
	"github.com/sessiond/sessiond/spi"
)

const (
	idle = 15 * time.Minute
	max  = 8 * time.Hour
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func node(store consolesession.Records, kek consolesession.Sealer, c *clock) *consolesession.Manager {
	return consolesession.New(consolesession.Options{Records: store, KEK: kek, Idle: idle, Max: max, Now: c.Now})
}

func creds(m map[string]string) func(string) string { return func(a string) string { return m[a] } }

var current = creds(map[string]string{"admin": "admin-secret", "viewer": "viewer-secret"})

func newKEK(t *testing.T, fill byte) *token.KEK {
	t.Helper()
	k, err := token.NewKEK(bytes.Repeat([]byte{fill}, token.KEKSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Two nodes over one store: what one issues, the other opens, with the same CSRF token; a
// node started later (a restart) opens it too.
func TestEveryNodeOfTheStoreOpensWhatOneIssued(t *testing.T) {
	ctx := context.Background()
	store, c := testmem.Store(t), &clock{now: time.Unix(1_800_000_000, 0)}
	a, b := node(store, nil, c), node(store, nil, c)
	value, started, err := a.Start(ctx, "admin", "manage", "admin-secret")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(value, "admin-secret") {
		t.Fatalf("cookie %q holds the credential", value)
	}
	for name, m := range map[string]*consolesession.Manager{"other node": b, "restarted node": node(store, nil, c)} {
		s, renewed, err := m.Open(ctx, value, current)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.ID != started.ID || s.Actor != "admin" || s.Role != "manage" || s.CSRF != started.CSRF || renewed != "" {
			t.Errorf("%s: %+v, renewed %q; want the session as started, %+v", name, s, renewed, started)
		}
	}
}

func TestOpenRefusesWhatNoNodeOfTheStoreIssuedOrWasAltered(t *testing.T) {
	ctx := context.Background()
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	a := node(testmem.Store(t), nil, c)
	value, _, err := a.Start(ctx, "viewer", "view", "viewer-secret")
	if err != nil {
		t.Fatal(err)
	}
	elsewhere, _, err := node(testmem.Store(t), nil, c).Start(ctx, "admin", "manage", "admin-secret")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(value, ".")
	// The viewer's payload made the administrator's, under the viewer's MAC.
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	payload = bytes.Replace(bytes.Replace(payload, []byte(`"view"`), []byte(`"manage"`), 1), []byte(`"viewer"`), []byte(`"admin"`), 1)
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	for name, v := range map[string]string{
		"another store's cookie": elsewhere,
		"altered payload":        forged,
		"altered MAC":            parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
		"no MAC":                 parts[0] + "." + parts[1],
		"other version":          "v0." + parts[1] + "." + parts[2],
		"garbage":                "not a cookie",
		"empty":                  "",
	} {
		if _, _, err := a.Open(ctx, v, current); !errors.Is(err, consolesession.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestSessionsEndWhenIdleAtTheirMaxAndWhenTheCredentialChanges(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		steps []time.Duration // uses, each that long after the one before
		creds func(string) string
		want  error
	}{
		{"used within the idle timeout", []time.Duration{idle - time.Second}, current, nil},
		{"idle", []time.Duration{idle}, current, consolesession.ErrExpired},
		{"used every 10 minutes until just before its max", repeat(10*time.Minute, 47), current, nil},
		{"used every 10 minutes up to its max", repeat(10*time.Minute, 48), current, consolesession.ErrExpired},
		{"credential changed", []time.Duration{time.Second}, creds(map[string]string{"admin": "rotated"}), consolesession.ErrRebound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{now: time.Unix(1_800_000_000, 0)}
			m := node(testmem.Store(t), nil, c)
			value, _, err := m.Start(ctx, "admin", "manage", "admin-secret")
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range tc.steps {
				c.now = c.now.Add(d)
				_, renewed, err := m.Open(ctx, value, tc.creds)
				if i < len(tc.steps)-1 || tc.want == nil {
					if err != nil {
						t.Fatalf("use %d at +%s: %v", i, d, err)
					}
				} else if !errors.Is(err, tc.want) {
					t.Fatalf("last use: %v, want %v", err, tc.want)
				}
				if renewed != "" { // the browser keeps the renewed cookie
					value = renewed
				}
			}
		})
	}
}

func repeat(d time.Duration, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d
	}
	return out
}

// A sign-out on one node holds on every node; the record goes once the session would have
// ended anyway, and others' records stay.
func TestSignOutOnOneNodeHoldsOnEveryNodeUntilTheSessionsMax(t *testing.T) {
	ctx := context.Background()
	store, c := testmem.Store(t), &clock{now: time.Unix(1_800_000_000, 0)}
	a, b := node(store, nil, c), node(store, nil, c)
	first, _, _ := a.Start(ctx, "admin", "manage", "admin-secret")
	c.now = c.now.Add(10 * time.Minute)
	second, _, _ := a.Start(ctx, "admin", "manage", "admin-secret")
	s1, _, err := b.Open(ctx, first, current)
	if err != nil {
		t.Fatal(err)
	}
	s2, _, _ := b.Open(ctx, second, current)
	if err := b.End(ctx, s1); err != nil {
		t.Fatal(err)
	}
	if err := b.End(ctx, s2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Open(ctx, first, current); !errors.Is(err, consolesession.ErrSignedOut) {
		t.Errorf("signed out on the other node, then opened: %v, want ErrSignedOut", err)
	}
	if err := b.End(ctx, s1); err != nil {
		t.Errorf("signing out twice: %v", err)
	}
	c.now = time.Unix(s1.Started, 0).Add(max)
	if err := a.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	recs, err := store.ListRecords(ctx, consolesession.SignOutKind)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Key != s2.ID {
		t.Errorf("after the first session's max, sign-out records %d, want the second one's only", len(recs))
	}
}

// The key is stored sealed under the key-encryption key: a node with another one, or none,
// cannot open it and says so; a key stored in plain text (start-dev) is sealed once a KEK
// is configured, and the sessions it issued still open.
func TestTheKeyIsSealedWithTheKEK(t *testing.T) {
	ctx := context.Background()
	store, c := testmem.Store(t), &clock{now: time.Unix(1_800_000_000, 0)}
	plain := node(store, nil, c)
	value, _, err := plain.Start(ctx, "admin", "manage", "admin-secret")
	if err != nil {
		t.Fatal(err)
	}
	kek := newKEK(t, 1)
	sealed := node(store, kek, c)
	if _, _, err := sealed.Open(ctx, value, current); err != nil {
		t.Fatalf("with a KEK over the plain key: %v", err)
	}
	recs, _ := store.GetRecords(ctx, consolesession.KeyKind, []string{consolesession.KeyName})
	if recs[0] == nil || !strings.Contains(string(recs[0].Value), kek.ID()) || strings.Contains(string(recs[0].Value), `"key"`) {
		t.Fatalf("stored key %s: want it sealed under %s", recs[0].Value, kek.ID())
	}
	if _, _, err := node(store, kek, c).Open(ctx, value, current); err != nil {
		t.Errorf("a node with the same KEK: %v", err)
	}
	for name, k := range map[string]consolesession.Sealer{"another KEK": newKEK(t, 2), "no KEK": nil} {
		_, _, err := node(store, k, c).Start(ctx, "admin", "manage", "admin-secret")
		if !errors.Is(err, spi.ErrUnavailable) || !strings.Contains(err.Error(), kek.ID()) {
			t.Errorf("%s: %v, want unavailable naming KEK %s", name, err, kek.ID())
		}
	}
}

// Nodes starting together race to make the key; all end with the same one.
func TestNodesRacingToMakeTheKeyAgreeOnOne(t *testing.T) {
	ctx := context.Background()
	store, c := testmem.Store(t), &clock{now: time.Unix(1_800_000_000, 0)}
	nodes := make([]*consolesession.Manager, 8)
	values := make([]string, len(nodes))
	var wg sync.WaitGroup
	for i := range nodes {
		nodes[i] = node(store, nil, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _, err := nodes[i].Start(ctx, "viewer", "view", "viewer-secret")
			if err != nil {
				t.Error(err)
			}
			values[i] = v
		}()
	}
	wg.Wait()
	for i, v := range values {
		for j, m := range nodes {
			if _, _, err := m.Open(ctx, v, current); err != nil {
				t.Errorf("node %d's cookie on node %d: %v", i, j, err)
			}
		}
	}
}

// A sign-in's state opens on any node of the store, for its label only, until its ttl.
func TestSealedStateOpensForItsLabelUntilItsTTL(t *testing.T) {
	ctx := context.Background()
	store, c := testmem.Store(t), &clock{now: time.Unix(1_800_000_000, 0)}
	a, b := node(store, nil, c), node(store, nil, c)
	type state struct{ State, Verifier string }
	sealed, err := a.SealState(ctx, "oidc", state{"s1", "v1"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var got state
	if err := b.OpenState(ctx, "oidc", sealed, &got); err != nil || got != (state{"s1", "v1"}) {
		t.Fatalf("the other node: %+v, %v", got, err)
	}
	elsewhere, _ := node(testmem.Store(t), nil, c).SealState(ctx, "oidc", state{}, time.Minute)
	for _, tc := range []struct {
		name, label, value string
		at                 time.Duration
		want               error
	}{
		{"another label", "other", sealed, 0, consolesession.ErrInvalid},
		{"altered", "oidc", "x" + sealed, 0, consolesession.ErrInvalid},
		{"another store's", "oidc", elsewhere, 0, consolesession.ErrInvalid},
		{"past its ttl", "oidc", sealed, time.Minute, consolesession.ErrExpired},
	} {
		c.now = time.Unix(1_800_000_000, 0).Add(tc.at)
		if err := b.OpenState(ctx, tc.label, tc.value, &got); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// Two consoles over one store (the admin console's and the account console's): each has a
// key of its own, so that one's cookie opens nothing in the other, and sign-outs of their
// own, so that neither's sweep reads the other's. What a named console's session holds of
// the person comes back from its cookie on any node of the console.
func TestEachConsoleHasAKeyAndSignOutsOfItsOwn(t *testing.T) {
	ctx := context.Background()
	store, c := testmem.Store(t), &clock{now: time.Unix(1_800_000_000, 0)}
	kek := newKEK(t, 1)
	named := func() *consolesession.Manager {
		return consolesession.New(consolesession.Options{Name: "account", Records: store, KEK: kek, Idle: idle, Max: max, Now: c.Now})
	}
	adminConsole, account := node(store, kek, c), named()
	anyone := func(string) string { return "console" }
	adminValue, _, err := adminConsole.Start(ctx, "admin", "manage", "console")
	if err != nil {
		t.Fatal(err)
	}
	value, s, err := account.StartSession(ctx, consolesession.Session{Actor: "u-1", Realm: "acme", UserSession: "us-1", Username: "alice"}, "console")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := account.Open(ctx, adminValue, anyone); !errors.Is(err, consolesession.ErrInvalid) {
		t.Errorf("the admin console's cookie in the account console: %v, want ErrInvalid", err)
	}
	if _, _, err := adminConsole.Open(ctx, value, anyone); !errors.Is(err, consolesession.ErrInvalid) {
		t.Errorf("the account console's cookie in the admin console: %v, want ErrInvalid", err)
	}
	got, _, err := named().Open(ctx, value, anyone)
	if err != nil || got.Actor != "u-1" || got.Realm != "acme" || got.UserSession != "us-1" || got.Username != "alice" || got.CSRF != s.CSRF {
		t.Errorf("another node of the account console: %+v, %v; want what was signed in", got, err)
	}
	if err := account.End(ctx, s); err != nil {
		t.Fatal(err)
	}
	if admin, _ := store.ListRecords(ctx, consolesession.SignOutKind); len(admin) != 0 {
		t.Errorf("the account console's sign-out is among the admin console's: %d records", len(admin))
	}
	if _, _, err := named().Open(ctx, value, anyone); !errors.Is(err, consolesession.ErrSignedOut) {
		t.Errorf("after signing out: %v, want ErrSignedOut", err)
	}
	if _, _, err := adminConsole.Open(ctx, adminValue, anyone); err != nil {
		t.Errorf("the admin console's session after the account console's sign-out: %v", err)
	}
}
