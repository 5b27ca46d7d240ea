package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The runtime pushes through the selected revocation-push provider, signed with the realm
// key it publishes at its certs endpoint, carrying the not-before policy in force.
func TestRuntimePushesRevocation(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.URL.Path+" "+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rcv.Close)

	e := newEnv(t)
	realmJSON := fmt.Sprintf(`{"realm": %q, "clients": [
		{"clientId": "app", "secret": "s", "adminUrl": %q},
		{"clientId": "cli", "publicClient": true}
	]}`, testRealm, rcv.URL+"/app")
	if err := os.WriteFile(e.realmFile, []byte(realmJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	rt := e.start(Options{}, nil, "--spi-revocation-push-provider=adapter", "--spi-revocation-push-adapter-in-process=true",
		"--push-backoff-initial=1s")
	waitReady(t, rt, nil)
	if rt.Push() == nil {
		t.Fatal("no revocation-push outbox")
	}
	notBefore := time.Now().Truncate(time.Second).Add(-time.Minute)
	if err := rt.Policies().SetRealm(context.Background(), testRealm, notBefore); err != nil {
		t.Fatal(err)
	}

	rep, err := rt.Push().PushNotBefore(context.Background(), testRealm, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Succeeded) != 1 || rep.Succeeded[0] != rcv.URL+"/app" || len(rep.Failed) != 0 {
		t.Fatalf("report %+v, want app's admin URL reached", rep)
	}
	mu.Lock()
	got := append([]string(nil), bodies...)
	mu.Unlock()
	const path = "/app/k_push_not_before "
	if len(got) != 1 || len(got[0]) < len(path) || got[0][:len(path)] != path {
		t.Fatalf("receiver got %q", got)
	}

	// Verify as an adapter does: with the keys the realm publishes.
	resp, err := http.Get(base(rt) + "/realms/" + testRealm + "/protocol/openid-connect/certs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(got[0][len(path):], []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatal(err)
	}
	keys := jwks.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid not in the published JWKS %+v", jwks)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("signature does not verify with the published JWKS: %v", err)
	}
	var action struct {
		Action    string `json:"action"`
		Resource  string `json:"resource"`
		NotBefore int64  `json:"notBefore"`
	}
	if err := json.Unmarshal(payload, &action); err != nil {
		t.Fatal(err)
	}
	if action.Action != "PUSH_NOT_BEFORE" || action.Resource != "app" || action.NotBefore != notBefore.Unix() {
		t.Errorf("action %+v, want PUSH_NOT_BEFORE for app at %d", action, notBefore.Unix())
	}
	if c := rt.Push().Counts(); c["delivered"] != 1 {
		t.Errorf("Counts() = %v", c)
	}
}
