package httpapi_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/admin"
	"github.com/sessiond/sessiond/core/authfail"
	"github.com/sessiond/sessiond/core/token"
)

// TestAdminKeys_rotateOnDemandKeepsOldTokensAndIsAudited: the admin credential rotates a
// realm's keys; the listing (Keycloak's shape) shows the new active keys and the old ones
// passive, with no private material; the JWKS publishes both published keys; tokens signed
// before the rotation still work. The view-only credential may list but not rotate.
func TestAdminKeys_rotateOnDemandKeepsOldTokensAndIsAudited(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	g := s.open(t, login{})
	var before admin.KeysRep
	s.do(t, adminCall(http.MethodGet, realmName, "/keys", viewerToken, "")).decode(t, http.StatusOK, &before)
	if len(before.Keys) != 2 || before.Active["ES256"] == "" || before.Active["HS512"] == "" {
		t.Fatalf("keys before rotation: %+v", before)
	}

	s.do(t, adminCall(http.MethodPost, realmName, "/keys/rotate", viewerToken, "")).refused(t, http.StatusForbidden, "forbidden", "rotate-keys")
	if all := s.guard.all(); len(all) == 0 || all[len(all)-1].Action != "rotate-keys" || all[len(all)-1].Actor != admin.ActorViewer || all[len(all)-1].Reason != authfail.ReasonForbidden {
		t.Errorf("the viewer's refused rotation, as the guard saw it: %+v", all)
	}

	s.clock.Advance(time.Second)
	var after admin.KeysRep
	r := s.do(t, adminCall(http.MethodPost, realmName, "/keys/rotate", adminToken, ""))
	r.decode(t, http.StatusOK, &after)
	if e := s.adm.audit.last(t); e.Action != "rotate-keys" || e.Outcome != admin.OutcomeSuccess || e.Actor != admin.ActorAdmin || e.Realm != realmName {
		t.Errorf("audit of the rotation: %+v", e)
	}
	if strings.Contains(string(r.body), "pkcs8") || strings.Contains(string(r.body), "secret") {
		t.Errorf("the listing shows private material: %s", r.body)
	}
	statuses := map[string]string{}
	for _, k := range after.Keys {
		statuses[k.KID] = k.Status
		if (k.Status == "PASSIVE") != (k.VerifiesUntil != nil) || k.Use != "SIG" || (k.Type == "OCT") != (k.PublicKey == "") {
			t.Errorf("key %+v", k)
		}
	}
	for alg, kid := range before.Active {
		if statuses[kid] != "PASSIVE" || after.Active[alg] == kid || statuses[after.Active[alg]] != "ACTIVE" {
			t.Errorf("%s: before %s, after %s; statuses %v", alg, kid, after.Active[alg], statuses)
		}
	}
	if set, err := s.keys.JWKS(s.ctx, realmName); err != nil || len(set.Keys) != 2 || set.Keys[0].KeyID != after.Active["ES256"] {
		t.Errorf("JWKS after rotation: %+v, %v", set, err)
	}
	if in := s.introspect(t, g.AccessToken); !in.Active {
		t.Errorf("the access token signed before the rotation is inactive: %+v", in)
	}
	next := s.refresh(t, confidentialAuth, g.RefreshToken)
	if h := header(t, next.AccessToken); h["kid"] != after.Active["ES256"] {
		t.Errorf("refreshed access token signed with %v, want the new key %s", h["kid"], after.Active["ES256"])
	}
	s.do(t, adminCall(http.MethodPost, "nowhere", "/keys/rotate", adminToken, "")).refused(t, http.StatusNotFound, "not_found", "realm not found")
}

// TestKeysThatCannotBeDecrypted_answer503: a realm whose stored keys were sealed with a
// key-encryption key this node does not have signs and verifies nothing; every endpoint that
// needs them answers 503 (the reason goes to the log, not to the client), never 500 and never
// a token.
func TestKeysThatCannotBeDecrypted_answer503(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	kek, err := token.NewKEK([]byte("another node's kek of 32 bytes!!"))
	if err != nil {
		t.Fatal(err)
	}
	sealing, err := token.NewKeyManager(s.store, token.KeyOptions{KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sealing.Rotate(s.ctx, otherRealm); err != nil { // the realm's first keys, sealed
		t.Fatal(err)
	}
	g := s.open(t, login{}) // acme's keys are this node's own
	for _, c := range []call{
		jsonCall(sessionsPath(otherRealm), frontendToken, login{ClientID: confidential, UserID: user, Username: "alice", Scope: "openid"}),
		{method: http.MethodGet, path: oidcPath(otherRealm, "certs")},
		form(introspectPath(otherRealm), confidentialAuth, "token", g.AccessToken),
		refreshCall(otherRealm, confidentialAuth, g.RefreshToken),
	} {
		r := s.do(t, c)
		if r.status != http.StatusServiceUnavailable || !strings.Contains(string(r.body), "temporarily_unavailable") {
			t.Errorf("%s %s: %d %s, want 503", c.method, c.path, r.status, r.body)
		}
	}
}
