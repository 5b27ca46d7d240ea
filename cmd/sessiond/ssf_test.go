package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// This file is past 600 lines because the receiver it tests against is one: an RFC 8935
// receiver that checks every SET as a real one must, and a login front-end for the
// RP-initiated logout, both needed by the two tests here.
//
// These tests run the Shared Signals transmitter as an operator does: the ssf
// revocation-push provider as a plugin process of the real binary, two nodes on one
// PostgreSQL schema, and a receiver that checks every Security Event Token as RFC 8417,
// RFC 8935 and SSF 1.0 have it, with the keys the realm publishes.

const (
	ssfRealm        = "signals"
	sessionRevoked  = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
	ssfVerification = "https://schemas.openid.net/secevent/ssf/event-type/verification"
	ssfReceiverAuth = "Bearer receiver-push-secret"
	ssfAudience     = "https://receiver.example"
	rpCallbackURL   = "http://rp.test/cb"
)

// ssfRealmJSON (%[1]s is the login front-end): refresh tokens rotate and a reused one ends
// its client session; each user may hold one session, the oldest ending to make room.
const ssfRealmJSON = `{
  "realm": "signals",
  "loginFrontendUrl": "%[1]s/login",
  "revokeRefreshToken": true,
  "refreshTokenMaxReuse": 0,
  "endClientSessionOnRefreshTokenReuse": true,
  "attributes": {"sessionLimits.userRealmLimit": "1", "sessionLimits.behavior": "Terminate oldest session"},
  "clients": [{"clientId": "app", "secret": "app-secret", "redirectUris": ["http://rp.test/*"]}]
}`

// receivedSET is what the receiver read from one SET it accepted.
type receivedSET struct {
	jti, txn, event, state      string
	sub, sid, client, initiator string
	reason                      string
}

// setReceiver is an SSF push receiver (RFC 8935): it verifies each SET's signature with the
// realm's JWKS, its header type and claims, answers 202, and counts deliveries by jti.
// While down it drops each connection unanswered, as a receiver that is not running.
type setReceiver struct {
	jwksURL, issuer string
	auth            string // the Authorization header the stream was given; "" is ssfReceiverAuth

	mu       sync.Mutex
	down     bool
	dropped  int
	byJTI    map[string]int
	got      []receivedSET
	problems []string
	keys     jose.JSONWebKeySet
}

func (rc *setReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	if rc.down {
		rc.dropped++
		rc.mu.Unlock()
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	rc.mu.Unlock()
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	set, problem := rc.check(r, body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if problem != "" {
		rc.problems = append(rc.problems, problem)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"err": "invalid_request", "description": problem})
		return
	}
	rc.byJTI[set.jti]++
	if rc.byJTI[set.jti] == 1 {
		rc.got = append(rc.got, set)
	}
	w.WriteHeader(http.StatusAccepted)
}

// check reads one push request as a receiver must before it accepts the SET.
func (rc *setReceiver) check(r *http.Request, body []byte) (receivedSET, string) {
	switch {
	case r.Method != http.MethodPost:
		return receivedSET{}, "method " + r.Method
	case r.Header.Get("Content-Type") != "application/secevent+jwt":
		return receivedSET{}, "content type " + r.Header.Get("Content-Type")
	case r.Header.Get("Authorization") != cmpOr(rc.auth, ssfReceiverAuth):
		return receivedSET{}, "authorization header " + r.Header.Get("Authorization")
	}
	jws, err := jose.ParseSignedCompact(string(body), []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.EdDSA})
	if err != nil {
		return receivedSET{}, "not a compact JWS: " + err.Error()
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders["typ"].(string); typ != "secevent+jwt" {
		return receivedSET{}, fmt.Sprintf("JWS typ %q, want secevent+jwt", typ)
	}
	key, err := rc.key(h.KeyID)
	if err != nil {
		return receivedSET{}, err.Error()
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return receivedSET{}, "signature does not verify with the realm's JWKS: " + err.Error()
	}
	var c struct {
		Iss    string                     `json:"iss"`
		Jti    string                     `json:"jti"`
		Iat    int64                      `json:"iat"`
		Aud    string                     `json:"aud"`
		Txn    string                     `json:"txn"`
		Sub    *string                    `json:"sub"`
		Exp    *int64                     `json:"exp"`
		SubID  map[string]json.RawMessage `json:"sub_id"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return receivedSET{}, "claims: " + err.Error()
	}
	now := time.Now().Unix()
	switch {
	case c.Iss != rc.issuer:
		return receivedSET{}, "iss " + c.Iss
	case c.Aud != ssfAudience:
		return receivedSET{}, "aud " + c.Aud
	case c.Jti == "":
		return receivedSET{}, "no jti"
	case c.Iat < now-300 || c.Iat > now+60:
		return receivedSET{}, fmt.Sprintf("iat %d is not now (%d)", c.Iat, now)
	case c.Sub != nil || c.Exp != nil:
		return receivedSET{}, "a SET has neither sub nor exp (RFC 8417 §2.2)"
	case len(c.Events) != 1:
		return receivedSET{}, fmt.Sprintf("%d events, want 1", len(c.Events))
	}
	out := receivedSET{jti: c.Jti, txn: c.Txn}
	var format string
	_ = json.Unmarshal(c.SubID["format"], &format)
	for typ, raw := range c.Events {
		out.event = typ
		switch typ {
		case sessionRevoked:
			var ev struct {
				EventTimestamp int64             `json:"event_timestamp"`
				Initiator      string            `json:"initiating_entity"`
				ReasonAdmin    map[string]string `json:"reason_admin"`
			}
			var user, sess, app struct {
				Format, Iss, Sub, ID string
			}
			_ = json.Unmarshal(raw, &ev)
			_ = json.Unmarshal(c.SubID["user"], &user)
			_ = json.Unmarshal(c.SubID["session"], &sess)
			_ = json.Unmarshal(c.SubID["application"], &app)
			switch {
			case format != "complex" || user.Format != "iss_sub" || user.Iss != rc.issuer || user.Sub == "" || sess.Format != "opaque" || sess.ID == "":
				return receivedSET{}, "sub_id is not the complex subject of a user (iss_sub) and a session (opaque): " + string(payload)
			case ev.EventTimestamp < now-300 || ev.EventTimestamp > now+60:
				return receivedSET{}, fmt.Sprintf("event_timestamp %d is not now", ev.EventTimestamp)
			case !slices.Contains([]string{"admin", "user", "policy", "system"}, ev.Initiator):
				return receivedSET{}, "initiating_entity " + ev.Initiator
			}
			out.sub, out.sid, out.client, out.initiator, out.reason = user.Sub, sess.ID, app.ID, ev.Initiator, ev.ReasonAdmin["en"]
		case ssfVerification:
			var ev struct {
				State string `json:"state"`
			}
			_ = json.Unmarshal(raw, &ev)
			if format != "opaque" {
				return receivedSET{}, "verification sub_id format " + format
			}
			out.state = ev.State
		default:
			return receivedSET{}, "event type " + typ
		}
	}
	return out, ""
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// key returns the published key with that kid, reading the JWKS again when it is new.
func (rc *setReceiver) key(kid string) (*jose.JSONWebKey, error) {
	rc.mu.Lock()
	keys := rc.keys.Key(kid)
	rc.mu.Unlock()
	if len(keys) == 0 {
		resp, err := http.Get(rc.jwksURL)
		if err != nil {
			return nil, fmt.Errorf("JWKS: %w", err)
		}
		defer resp.Body.Close()
		var set jose.JSONWebKeySet
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
			return nil, fmt.Errorf("JWKS: %w", err)
		}
		rc.mu.Lock()
		rc.keys = set
		keys = set.Key(kid)
		rc.mu.Unlock()
	}
	if len(keys) != 1 {
		return nil, fmt.Errorf("kid %q is not in the realm's JWKS", kid)
	}
	return &keys[0], nil
}

func (rc *setReceiver) setDown(down bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.down = down
}

func (rc *setReceiver) snapshot() (got []receivedSET, byJTI map[string]int, dropped int, problems []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	byJTI = map[string]int{}
	for k, v := range rc.byJTI {
		byJTI[k] = v
	}
	return slices.Clone(rc.got), byJTI, rc.dropped, slices.Clone(rc.problems)
}

// waitFor waits until the receiver has accepted a SET that match says is the one.
func (rc *setReceiver) waitFor(t *testing.T, what string, match func(receivedSET) bool) receivedSET {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, _, _, problems := rc.snapshot()
		for _, s := range got {
			if match(s) {
				return s
			}
		}
		if len(problems) > 0 || time.Now().After(deadline) {
			t.Fatalf("no SET for %s within 20s; received %+v; refused %q", what, got, problems)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// loginFrontend is a login front-end that accepts every login request as user_id <login_hint>.
type loginFrontend struct {
	sessiond func() string // the node it calls
}

func (fe *loginFrontend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("login_challenge")
	base := fe.sessiond() + "/realms/" + ssfRealm + "/login-requests/" + url.PathEscape(challenge)
	get, _ := http.NewRequest(http.MethodGet, base, nil)
	get.Header.Set("Authorization", "Bearer "+persistFrontend)
	resp, err := http.DefaultClient.Do(get)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	var lr struct {
		LoginHint string `json:"login_hint"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&lr)
	resp.Body.Close()
	body, _ := json.Marshal(map[string]any{"user_id": lr.LoginHint + "-id", "username": lr.LoginHint})
	put, _ := http.NewRequest(http.MethodPut, base+"/accept", strings.NewReader(string(body)))
	put.Header.Set("Authorization", "Bearer "+persistFrontend)
	put.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(put)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var to struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&to); err != nil || to.RedirectTo == "" {
		http.Error(w, fmt.Sprintf("accept answered %d", resp.StatusCode), http.StatusBadGateway)
		return
	}
	// sessiond names itself by its public hostname, which this test does not resolve.
	http.Redirect(w, r, strings.Replace(to.RedirectTo, persistHostname, fe.sessiond(), 1), http.StatusFound)
}

// codeLogin runs the authorization code flow with PKCE for user through the front-end and
// returns the token endpoint's answer (with its id_token).
func codeLogin(t *testing.T, base, user string) map[string]any {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "rp.test" {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	verifier := strings.Repeat("v", 20) + user + strings.Repeat("x", 40)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {persistClient}, "redirect_uri": {rpCallbackURL}, "scope": {"openid"},
		"state": {"state-" + user}, "login_hint": {user}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	resp, err := browser.Get(base + "/realms/" + ssfRealm + "/protocol/openid-connect/auth?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if back == nil || back.Query().Get("code") == "" {
		t.Fatalf("the code flow did not come back with a code (last status %d)", resp.StatusCode)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {rpCallbackURL}, "code_verifier": {verifier}}
	req, _ := http.NewRequest(http.MethodPost, base+"/realms/"+ssfRealm+"/protocol/openid-connect/token", strings.NewReader(form.Encode()))
	req.SetBasicAuth(persistClient, persistSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK || tok["id_token"] == nil {
		t.Fatalf("code exchange answered %d %v (%v)", resp.StatusCode, tok, err)
	}
	return tok
}

// ssfCall is one call of the SSF endpoints with a bearer credential ("" for none).
func ssfCall(t *testing.T, method, u, bearer, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSharedSignals_everySessionEndOnceAcrossNodesAndAnOutage is issue 18's SSF "done when":
// a receiver that verifies each SET with the realm's JWKS gets exactly one session-revoked
// event for every way a session ends (logout, RP-initiated logout, admin logout of a session
// and of a user, refresh-token reuse, /revoke, a session limit, sign out all), one per jti,
// also when it was down when the session ended. The stream is created on one node and the
// sessions end on both: streams live in the shared store.
func TestSharedSignals_everySessionEndOnceAcrossNodesAndAnOutage(t *testing.T) {
	t.Parallel()
	fe := &loginFrontend{}
	feSrv := httptest.NewServer(fe)
	defer feSrv.Close()
	a, b, _ := startTwoNodesWith(t, func(t *testing.T) string {
		path := filepath.Join(t.TempDir(), "signals.json")
		if err := os.WriteFile(path, []byte(fmt.Sprintf(ssfRealmJSON, feSrv.URL)), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}, "--spi-revocation-push-provider=ssf", "--push-backoff-initial=200ms", "--push-backoff-max=1s")
	fe.sessiond = func() string { return a.base }
	if kids := pluginChildren(t, a.cmd.Process.Pid); kids["revocation-push/ssf"] == 0 {
		t.Errorf("no plugin process for revocation-push/ssf among children %v", kids)
	}
	issuer := persistHostname + "/realms/" + ssfRealm
	rc := &setReceiver{byJTI: map[string]int{}, issuer: issuer}
	rcv := httptest.NewServer(rc)
	defer rcv.Close()

	// The transmitter metadata, where SSF 1.0 §7.2 puts it for an issuer with a path, and
	// under the issuer as OpenID discovery is.
	var md struct {
		SpecVersion           string   `json:"spec_version"`
		Issuer                string   `json:"issuer"`
		JWKSURI               string   `json:"jwks_uri"`
		Delivery              []string `json:"delivery_methods_supported"`
		ConfigurationEndpoint string   `json:"configuration_endpoint"`
		StatusEndpoint        string   `json:"status_endpoint"`
		VerificationEndpoint  string   `json:"verification_endpoint"`
	}
	for _, path := range []string{"/.well-known/ssf-configuration/realms/" + ssfRealm, "/realms/" + ssfRealm + "/.well-known/ssf-configuration"} {
		code, body := ssfCall(t, http.MethodGet, b.base+path, "", "")
		if code != http.StatusOK || json.Unmarshal([]byte(body), &md) != nil {
			t.Fatalf("GET %s = %d %s", path, code, body)
		}
		if md.Issuer != issuer || md.SpecVersion != "1_0" || !slices.Equal(md.Delivery, []string{"urn:ietf:rfc:8935"}) ||
			md.ConfigurationEndpoint != persistHostname+"/admin/realms/"+ssfRealm+"/ssf/streams" {
			t.Fatalf("metadata at %s: %s", path, body)
		}
	}
	if code, _ := ssfCall(t, http.MethodGet, b.base+"/.well-known/ssf-configuration/realms/nope", "", ""); code != http.StatusNotFound {
		t.Errorf("metadata of an unknown realm answered %d, want 404", code)
	}
	local := func(d *daemon, public string) string { return d.base + strings.TrimPrefix(public, persistHostname) }
	rc.jwksURL = local(b, md.JWKSURI)
	streamsA, streamsB := local(a, md.ConfigurationEndpoint), local(b, md.ConfigurationEndpoint)

	create := fmt.Sprintf(`{"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": %q, "authorization_header": %q},
		"events_requested": [%q, "urn:example:not-supported"], "aud": %q, "description": "test receiver"}`,
		rcv.URL+"/events", ssfReceiverAuth, sessionRevoked, ssfAudience)
	t.Run("stream management refuses without the admin credential and refuses bad input", func(t *testing.T) {
		for _, c := range []struct {
			name, method, url, bearer, body string
			want                            int
		}{
			{"no credential", http.MethodPost, streamsA, "", create, http.StatusUnauthorized},
			{"no credential, read", http.MethodGet, streamsA, "", "", http.StatusUnauthorized},
			{"wrong credential", http.MethodPost, streamsA, "not-the-admin", create, http.StatusUnauthorized},
			{"front-end credential", http.MethodPost, streamsA, persistFrontend, create, http.StatusForbidden},
			{"no credential, status", http.MethodPost, local(a, md.StatusEndpoint), "", `{"stream_id": "x", "status": "paused"}`, http.StatusUnauthorized},
			{"no credential, verify", http.MethodPost, local(a, md.VerificationEndpoint), "", `{"stream_id": "x"}`, http.StatusUnauthorized},
			{"poll delivery", http.MethodPost, streamsA, persistAdmin, `{"delivery": {"method": "urn:ietf:rfc:8936"}}`, http.StatusBadRequest},
			{"no endpoint", http.MethodPost, streamsA, persistAdmin, `{"delivery": {"method": "urn:ietf:rfc:8935"}}`, http.StatusBadRequest},
			{"not http", http.MethodPost, streamsA, persistAdmin, `{"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "ftp://x/y"}}`, http.StatusBadRequest},
			{"no delivery", http.MethodPost, streamsA, persistAdmin, `{"events_requested": []}`, http.StatusBadRequest},
			{"unknown field", http.MethodPost, streamsA, persistAdmin, `{"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "https://r.example/e"}, "colour": 1}`, http.StatusBadRequest},
			{"stream id given", http.MethodPost, streamsA, persistAdmin, `{"stream_id": "mine", "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "https://r.example/e"}}`, http.StatusBadRequest},
			{"not an event URI", http.MethodPost, streamsA, persistAdmin, `{"delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": "https://r.example/e"}, "events_requested": ["revoked"]}`, http.StatusBadRequest},
			{"not JSON", http.MethodPost, streamsA, persistAdmin, `{"delivery":`, http.StatusBadRequest},
			{"unknown stream", http.MethodGet, streamsA + "?stream_id=nope", persistAdmin, "", http.StatusNotFound},
			{"no stream id", http.MethodDelete, streamsA, persistAdmin, "", http.StatusBadRequest},
			{"unknown status", http.MethodPost, local(a, md.StatusEndpoint), persistAdmin, `{"stream_id": "nope", "status": "asleep"}`, http.StatusBadRequest},
			{"verify unknown stream", http.MethodPost, local(a, md.VerificationEndpoint), persistAdmin, `{"stream_id": "nope"}`, http.StatusNotFound},
			{"unknown realm", http.MethodPost, a.base + "/admin/realms/nope/ssf/streams", persistAdmin, create, http.StatusNotFound},
		} {
			if code, body := ssfCall(t, c.method, c.url, c.bearer, c.body); code != c.want {
				t.Errorf("%s: %s answered %d %s, want %d", c.name, c.method, code, body, c.want)
			}
		}
	})

	// Created on node a, read and changed on node b.
	code, body := ssfCall(t, http.MethodPost, streamsA, persistAdmin, create)
	var stream struct {
		StreamID        string         `json:"stream_id"`
		Iss             string         `json:"iss"`
		Aud             string         `json:"aud"`
		EventsRequested []string       `json:"events_requested"`
		EventsDelivered []string       `json:"events_delivered"`
		Delivery        map[string]any `json:"delivery"`
		Description     string         `json:"description"`
	}
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &stream) != nil || stream.StreamID == "" {
		t.Fatalf("create stream = %d %s", code, body)
	}
	if stream.Iss != issuer || stream.Aud != ssfAudience || !slices.Equal(stream.EventsDelivered, []string{sessionRevoked}) ||
		stream.Delivery["endpoint_url"] != rcv.URL+"/events" || stream.Delivery["authorization_header"] != nil {
		t.Errorf("created stream %s: want iss, aud, only session-revoked delivered, and no authorization_header shown", body)
	}
	code, body = ssfCall(t, http.MethodPatch, streamsB, persistAdmin, fmt.Sprintf(`{"stream_id": %q, "description": "patched on b"}`, stream.StreamID))
	if code != http.StatusOK || !strings.Contains(body, `"description":"patched on b"`) || !strings.Contains(body, sessionRevoked) {
		t.Errorf("PATCH on node b = %d %s", code, body)
	}
	if code, body := ssfCall(t, http.MethodGet, streamsA+"?stream_id="+stream.StreamID, persistAdmin, ""); code != http.StatusOK || !strings.Contains(body, "patched on b") {
		t.Errorf("GET on node a after b's PATCH = %d %s", code, body)
	}
	if code, body := ssfCall(t, http.MethodGet, local(b, md.StatusEndpoint)+"?stream_id="+stream.StreamID, persistAdmin, ""); code != http.StatusOK || !strings.Contains(body, `"status":"enabled"`) {
		t.Errorf("GET status = %d %s", code, body)
	}

	// The verification event carries the receiver's state back.
	if code, body := ssfCall(t, http.MethodPost, local(b, md.VerificationEndpoint), persistAdmin, fmt.Sprintf(`{"stream_id": %q, "state": "state-42"}`, stream.StreamID)); code != http.StatusNoContent {
		t.Fatalf("verify = %d %s", code, body)
	}
	rc.waitFor(t, "verification", func(s receivedSET) bool { return s.event == ssfVerification && s.state == "state-42" })

	ca, cb := newAPIClient(a.base, 20*time.Second), newAPIClient(b.base, 20*time.Second)
	defer ca.close()
	defer cb.close()
	admin := func(t *testing.T, method, path string) {
		t.Helper()
		if code, body := ssfCall(t, method, b.base+"/admin/realms/"+ssfRealm+path, persistAdmin, ""); code >= 300 {
			t.Fatalf("%s %s = %d %s", method, path, code, body)
		}
	}
	// want lists the events expected: session, client ("" for the whole session), initiator.
	type end struct{ sid, client, initiator string }
	var want []end
	expect := func(t *testing.T, what string, e end) {
		t.Helper()
		want = append(want, e)
		rc.waitFor(t, what, func(s receivedSET) bool {
			return s.event == sessionRevoked && s.sid == e.sid && s.client == e.client && s.initiator == e.initiator
		})
	}

	t.Run("logout", func(t *testing.T) {
		s := mustOpenIn(t, ca, ssfRealm, "u-logout")
		if r, err := cb.logoutIn(ssfRealm, s.RefreshToken); err != nil || r.status != http.StatusNoContent {
			t.Fatalf("logout: %v %v", r, err)
		}
		expect(t, "logout", end{s.SessionID, "", "user"})
	})
	t.Run("RP-initiated logout", func(t *testing.T) {
		tok := codeLogin(t, a.base, "u-rp")
		sid, _ := tok["session_state"].(string)
		q := url.Values{"id_token_hint": {tok["id_token"].(string)}}
		resp, err := http.Get(b.base + "/realms/" + ssfRealm + "/protocol/openid-connect/logout?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || sid == "" {
			t.Fatalf("end-session answered %d (session %q)", resp.StatusCode, sid)
		}
		expect(t, "RP-initiated logout", end{sid, "", "user"})
	})
	t.Run("admin logout of a session", func(t *testing.T) {
		s := mustOpenIn(t, ca, ssfRealm, "u-admin")
		admin(t, http.MethodDelete, "/sessions/"+s.SessionID)
		expect(t, "admin logout", end{s.SessionID, "", "admin"})
	})
	t.Run("admin logout of a user", func(t *testing.T) {
		s := mustOpenIn(t, ca, ssfRealm, "u-user")
		admin(t, http.MethodPost, "/users/u-user-id/logout")
		expect(t, "admin user logout", end{s.SessionID, "", "admin"})
	})
	t.Run("refresh token reuse", func(t *testing.T) {
		s := mustOpenIn(t, ca, ssfRealm, "u-reuse")
		if r, err := cb.refreshIn(ssfRealm, s.RefreshToken); err != nil || r.status != http.StatusOK {
			t.Fatalf("refresh: %v %v", r, err)
		}
		if r, err := ca.refreshIn(ssfRealm, s.RefreshToken); err != nil || r.status != http.StatusBadRequest {
			t.Fatalf("reused refresh token answered %v %v, want 400", r, err)
		}
		expect(t, "reuse", end{s.SessionID, persistClient, "policy"})
	})
	t.Run("token revocation", func(t *testing.T) {
		s := mustOpenIn(t, ca, ssfRealm, "u-revoke")
		for range 2 { // revoking twice ends the client session once
			if r, err := cb.oidcIn(ssfRealm, "revoke", url.Values{"token": {s.RefreshToken}}); err != nil || r.status != http.StatusOK {
				t.Fatalf("revoke: %v %v", r, err)
			}
		}
		expect(t, "revoke", end{s.SessionID, persistClient, "user"})
	})
	t.Run("session limit ends the oldest", func(t *testing.T) {
		first := mustOpenIn(t, ca, ssfRealm, "u-limit")
		mustOpenIn(t, cb, ssfRealm, "u-limit")
		expect(t, "session limit", end{first.SessionID, "", "policy"})
	})
	t.Run("receiver outage", func(t *testing.T) {
		rc.setDown(true)
		s := mustOpenIn(t, ca, ssfRealm, "u-outage")
		if r, err := ca.logoutIn(ssfRealm, s.RefreshToken); err != nil || r.status != http.StatusNoContent {
			t.Fatalf("logout: %v %v", r, err)
		}
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, _, dropped, _ := rc.snapshot(); dropped >= 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the transmitter did not try the receiver while it was down")
			}
		}
		rc.setDown(false)
		expect(t, "logout during the outage", end{s.SessionID, "", "user"})
	})
	t.Run("sign out all", func(t *testing.T) {
		mustOpenIn(t, ca, ssfRealm, "u-all-1")
		mustOpenIn(t, cb, ssfRealm, "u-all-2")
		code, body := ssfCall(t, http.MethodGet, a.base+"/admin/realms/"+ssfRealm+"/sessions?max=100", persistAdmin, "")
		var live []struct {
			ID string `json:"id"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &live) != nil || len(live) < 2 {
			t.Fatalf("GET sessions = %d %s", code, body)
		}
		admin(t, http.MethodPost, "/logout-all")
		for _, s := range live {
			expect(t, "sign out all", end{s.ID, "", "admin"})
		}
	})

	// Nothing more arrives, and nothing arrived twice.
	time.Sleep(time.Second)
	got, byJTI, dropped, problems := rc.snapshot()
	if len(problems) > 0 {
		t.Errorf("the receiver refused SETs: %q", problems)
	}
	for jti, n := range byJTI {
		if n != 1 {
			t.Errorf("jti %s was delivered %d times, want once", jti, n)
		}
	}
	counted := map[end]int{}
	for _, s := range got {
		if s.event == sessionRevoked {
			counted[end{s.sid, s.client, s.initiator}]++
		}
	}
	for _, e := range want {
		if counted[e] != 1 {
			t.Errorf("session end %+v was told %d times, want once", e, counted[e])
		}
	}
	if n := len(got) - 1; n != len(want) { // the verification event besides
		t.Errorf("the receiver got %d session-revoked events, want %d: %+v", n, len(want), got)
	}
	t.Logf("%d SETs accepted, %d connections dropped during the outage", len(got), dropped)

	t.Run("a deleted stream gets nothing more", func(t *testing.T) {
		if code, body := ssfCall(t, http.MethodDelete, streamsB+"?stream_id="+stream.StreamID, persistAdmin, ""); code != http.StatusNoContent {
			t.Fatalf("DELETE = %d %s", code, body)
		}
		if code, _ := ssfCall(t, http.MethodGet, streamsA+"?stream_id="+stream.StreamID, persistAdmin, ""); code != http.StatusNotFound {
			t.Errorf("GET after DELETE = %d, want 404", code)
		}
		s := mustOpenIn(t, ca, ssfRealm, "u-after")
		if r, err := ca.logoutIn(ssfRealm, s.RefreshToken); err != nil || r.status != http.StatusNoContent {
			t.Fatalf("logout: %v %v", r, err)
		}
		time.Sleep(500 * time.Millisecond)
		if after, _, _, _ := rc.snapshot(); len(after) != len(got) {
			t.Errorf("a deleted stream got %d more SETs", len(after)-len(got))
		}
	})
}

// TestSharedSignalsGuide runs docs/shared-signals.md's example as written: its realm file,
// start-dev with the ssf provider, and its requests; a receiver on the guide's endpoint gets
// the verification event with the guide's state, then one session-revoked for the session
// the guide logged out, each verified with the realm's JWKS. Only the ports and the binary's
// path differ.
func TestSharedSignalsGuide(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "shared-signals.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(raw)
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "signals.json"), []byte(guideBlock(t, guide, "guide:ssf-realm")), 0o600); err != nil {
		t.Fatal(err)
	}
	start := strings.Fields(guideBlock(t, guide, "guide:ssf-start"))
	if len(start) < 2 || start[0] != "./sessiond" || start[1] != "start-dev" {
		t.Fatalf("the guide's start block is not ./sessiond start-dev …: %q", start)
	}
	const frontend, adminToken = "fe-guide-ssf", "admin-guide-ssf"
	d := startDaemonIn(t, work, append([]string{"--http-port=0", "--frontend-token=" + frontend, "--admin-token=" + adminToken}, start[2:]...)...)
	waitUp(t, d)

	code, body := ssfCall(t, http.MethodGet, d.base+"/.well-known/ssf-configuration/realms/signals", "", "")
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &md) != nil {
		t.Fatalf("metadata = %d %s", code, body)
	}
	rc := &setReceiver{byJTI: map[string]int{}, issuer: md.Issuer, jwksURL: md.JWKSURI, auth: "Bearer receiver-secret"}
	rcv := httptest.NewServer(rc)
	defer rcv.Close()

	try := guideBlock(t, guide, "guide:ssf-try")
	try = strings.ReplaceAll(try, "http://localhost:9999", rcv.URL)
	try = strings.ReplaceAll(try, "http://localhost:8080", d.base)
	out := guideRun(t, work, "export SESSIOND_FRONTEND_TOKEN="+frontend+" SESSIOND_ADMIN_TOKEN="+adminToken+"\n"+try)
	lines := strings.Fields(out)
	if len(lines) != 4 || !strings.HasSuffix(lines[0], "/admin/realms/signals/ssf/streams") || lines[1] != "204" || lines[3] != "204" {
		t.Fatalf("the guide's requests printed %q, want the streams endpoint, 204, a session id, 204", out)
	}
	sid := lines[2]
	rc.waitFor(t, "the guide's verification", func(s receivedSET) bool { return s.event == ssfVerification && s.state == "hello" })
	rc.waitFor(t, "the guide's logout", func(s receivedSET) bool {
		return s.event == sessionRevoked && s.sid == sid && s.sub == "alice" && s.initiator == "admin"
	})

	// The stream is a record of start-dev's embedded store: it survives a restart.
	stopDaemon(t, d)
	d = startDaemonIn(t, work, append([]string{"--http-port=0", "--frontend-token=" + frontend, "--admin-token=" + adminToken}, start[2:]...)...)
	waitUp(t, d)
	if code, body := ssfCall(t, http.MethodGet, d.base+"/admin/realms/signals/ssf/streams", adminToken, ""); code != http.StatusOK || !strings.Contains(body, rcv.URL+"/events") {
		t.Errorf("streams after a restart = %d %s, want the guide's stream", code, body)
	}
}
