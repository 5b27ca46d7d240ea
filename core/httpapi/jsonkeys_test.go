package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/core/ssf"
)

// TestJSONBodies_duplicateAndWrongCaseKeysRefused: every JSON body of the front-end and
// admin APIs is refused, 400 invalid_request naming the key, when a key appears twice in an
// object (at the top or nested: encoding/json would act on the last, a proxy or audit log
// may read the first) or matches a field only by case ("USER_ID", or "uſer_id" with a long
// s, would fill user_id where a case-sensitive reader sees an unknown key). Nothing a
// refused body asks for is done: the store, the not-before policy and the SSF streams are
// unchanged, the pending login and the action token are still there to be used, and the
// same bodies written once, in the right case, are accepted.
func TestJSONBodies_duplicateAndWrongCaseKeysRefused(t *testing.T) {
	t.Parallel()
	s := newLoginStack(t, withRealm(withActionSettings))
	good := s.open(t, login{})
	lr := s.pendingLogin(t, s.newBrowser(), confidential, rpCallback)
	action := s.mintAction(t, map[string]any{"user_id": user, "action": "verify-email"})
	stream := s.stream(t)
	before := s.snapshot(t)
	streamsBefore := s.do(t, adminCall(http.MethodGet, realmName, "/ssf/streams", adminToken, ""))

	put := func(c call) call { c.method = http.MethodPut; return c }
	open := func(body string) call { return rawJSON(sessionsPath(realmName), frontendToken, body) }
	attach := func(body string) call {
		return rawJSON(sessionsPath(realmName)+"/"+good.SessionID+"/clients", frontendToken, body)
	}
	accept := func(body string) call {
		return put(rawJSON(loginRequestPath(realmName, lr.Challenge)+"/accept", frontendToken, body))
	}
	reject := func(body string) call {
		return put(rawJSON(loginRequestPath(realmName, lr.Challenge)+"/reject", frontendToken, body))
	}
	mint := func(body string) call { return rawJSON(actionTokensPath(realmName), frontendToken, body) }
	consume := func(body string) call { return rawJSON(consumePath(realmName), frontendToken, body) }
	notBefore := func(body string) call { return adminCall(http.MethodPut, realmName, "/not-before", adminToken, body) }
	adminMint := func(body string) call {
		return adminCall(http.MethodPost, realmName, "/users/"+user+"/action-tokens", adminToken, body)
	}
	createStream := func(body string) call { return adminCall(http.MethodPost, realmName, "/ssf/streams", adminToken, body) }
	streamStatus := func(body string) call { return adminCall(http.MethodPost, realmName, "/ssf/status", adminToken, body) }
	const delivery = `"delivery":{"method":"` + ssf.DeliveryPush + `","endpoint_url":"https://receiver.example/events"}`

	for _, tc := range []struct {
		name string
		call call
		desc string // in the answer's error_description
	}{
		{"open: duplicate top-level key", open(`{"client_id":"confidential","user_id":"u-1","user_id":"u-2","scope":"openid"}`), "duplicate key user_id"},
		{"open: duplicate key by escape", open(`{"client_id":"confidential","user_id":"u-1","user\u005fid":"u-2"}`), "duplicate key user_id"},
		{"open: duplicate nested key", open(`{"client_id":"confidential","user_id":"u-1","notes":{"k":"a","k":"b"}}`), "duplicate key notes.k"},
		{"open: wrong-case key", open(`{"client_id":"confidential","USER_ID":"u-1","scope":"openid"}`), `key USER_ID matches the field "user_id" only by case`},
		{"open: long s", open(`{"client_id":"confidential","uſer_id":"u-1","scope":"openid"}`), `matches the field "user_id" only by case`},
		{"attach: duplicate key", attach(`{"client_id":"spa","client_id":"confidential"}`), "duplicate key client_id"},
		{"attach: wrong-case key", attach(`{"Client_ID":"spa"}`), `key Client_ID matches the field "client_id"`},
		{"accept: duplicate top-level key", accept(`{"user_id":"u-1","username":"alice","user_id":"u-2"}`), "duplicate key user_id"},
		{"accept: duplicate nested key", accept(`{"user_id":"u-1","claims":{"email":"a@example.test","email":"b@example.test"}}`), "duplicate key claims.email"},
		{"accept: wrong-case key", accept(`{"user_id":"u-1","Claims":{"email":"a@example.test"}}`), `key Claims matches the field "claims"`},
		{"reject: duplicate key", reject(`{"error":"access_denied","error":"login_required"}`), "duplicate key error"},
		{"mint: duplicate key", mint(`{"user_id":"u-1","action":"verify-email","user_id":"u-2"}`), "duplicate key user_id"},
		{"mint: wrong-case promoted key", mint(`{"user_id":"u-1","ACTION":"verify-email"}`), `key ACTION matches the field "action"`},
		{"consume: duplicate key", consume(`{"token":"` + action.Token + `","token":"` + action.Token + `"}`), "duplicate key token"},
		{"consume: Kelvin sign", consume(`{"to\u212aen":"` + action.Token + `"}`), `matches the field "token" only by case`},
		{"admin not-before: duplicate key", notBefore(`{"action":"clear","action":"now"}`), "duplicate key action"},
		{"admin not-before: wrong-case key", notBefore(`{"Action":"now"}`), `key Action matches the field "action"`},
		{"admin mint: duplicate key", adminMint(`{"action":"update-password","lifespan":60,"lifespan":999999}`), "duplicate key lifespan"},
		{"admin ssf create: duplicate nested key", createStream(`{"delivery":{"method":"` + ssf.DeliveryPush + `","endpoint_url":"https://receiver.example/events","endpoint_url":"https://elsewhere.example/"}}`), "duplicate key delivery.endpoint_url"},
		{"admin ssf create: wrong-case nested key", createStream(`{"delivery":{"method":"` + ssf.DeliveryPush + `","Endpoint_URL":"https://receiver.example/events"}}`), `key delivery.Endpoint_URL matches the field "endpoint_url"`},
		{"admin ssf create: duplicate key beside an array", createStream(`{` + delivery + `,"events_requested":["` + ssf.EventSessionRevoked + `"],"description":"d","description":"e"}`), "duplicate key description"},
		{"admin ssf status: duplicate key", streamStatus(`{"stream_id":"` + stream + `","status":"paused","status":"enabled"}`), "duplicate key status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.do(t, tc.call)
			if got.status >= 500 {
				t.Fatalf("answered %d: %s", got.status, got.body)
			}
			got.refused(t, http.StatusBadRequest, "invalid_request", tc.desc)
		})
	}

	// Nothing was done.
	s.unchanged(t, before)
	if nb := s.adm.policies.Realm(realmName); !nb.IsZero() {
		t.Errorf("a refused body set the not-before policy to %v", nb)
	}
	if after := s.do(t, adminCall(http.MethodGet, realmName, "/ssf/streams", adminToken, "")); string(after.body) != string(streamsBefore.body) {
		t.Errorf("a refused body changed the SSF streams:\nbefore %s\nafter  %s", streamsBefore.body, after.body)
	}

	// The same bodies, each key once and in its case, are accepted; what the refused ones
	// named is still there to be used.
	for _, tc := range []struct {
		name string
		call call
		want int
	}{
		{"open", open(`{"client_id":"confidential","user_id":"u-1","scope":"openid","notes":{"k":"a","K":"b"}}`), http.StatusCreated},
		{"attach", attach(`{"client_id":"spa","scope":"openid"}`), http.StatusCreated},
		{"accept", accept(`{"user_id":"u-1","username":"alice","claims":{"email":"a@example.test","Email":"b@example.test"}}`), http.StatusOK},
		{"mint", mint(`{"user_id":"u-1","action":"verify-email"}`), http.StatusCreated},
		{"consume", consume(`{"token":"` + action.Token + `"}`), http.StatusOK},
		{"admin not-before", notBefore(`{"action":"now"}`), http.StatusOK},
		{"admin mint", adminMint(`{"action":"update-password","lifespan":60}`), http.StatusCreated},
		{"admin ssf create", createStream(`{` + delivery + `,"description":"d"}`), http.StatusCreated},
		{"admin ssf status", streamStatus(`{"stream_id":"` + stream + `","status":"paused"}`), http.StatusOK},
	} {
		t.Run("accepted/"+tc.name, func(t *testing.T) {
			if got := s.do(t, tc.call); got.status != tc.want {
				t.Errorf("answered %d, want %d: %s", got.status, tc.want, got.body)
			} else if strings.Contains(string(got.body), "only by case") || strings.Contains(string(got.body), "duplicate key") {
				t.Errorf("answer %s", got.body)
			}
		})
	}
}
