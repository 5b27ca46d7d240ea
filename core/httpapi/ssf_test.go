package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/core/push"
	"github.com/sessiond/sessiond/core/ssf"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// queued keeps what the transmitter queues: these tests look at the HTTP surface; delivery
// is tested end to end in cmd/sessiond.
type queued struct{}

func (queued) Queue(context.Context, []*usersessions.Delivery) error { return nil }

// newTransmitter is the stack's SSF transmitter over its store and keys.
func newTransmitter(tb testing.TB, s *stack) *ssf.Transmitter {
	tb.Helper()
	t, err := ssf.New(ssf.Deps{
		Store: s.store, Keys: s.keys, Realms: s.realms, Queue: func() ssf.Queue { return queued{} },
		Issuer: s.tokens.Issuer, JWKS: func(r string) string { return s.tokens.Issuer(r) + "/protocol/openid-connect/certs" },
		NewID: push.NewID, Now: s.clock.Now,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// stream creates an SSF stream in the test realm and returns its id.
func (s *stack) stream(tb testing.TB) string {
	tb.Helper()
	events := []string{ssf.EventSessionRevoked}
	c, err := s.ssf.Create(context.Background(), realmName, ssf.Update{
		Delivery: &ssf.Delivery{Method: ssf.DeliveryPush, EndpointURL: "https://receiver.example/events"}, EventsRequested: &events,
	})
	if err != nil {
		tb.Fatal(err)
	}
	return c.StreamID
}

// The metadata is public, at the issuer's well-known path and under the issuer; the stream
// management endpoints map bad input to 400 and unknown streams to 404 (the credentials of
// every route are walked by TestAdminRoutesRefuseWrongCredentials).
func TestSSFEndpoints(t *testing.T) {
	s := newStack(t)
	id := s.stream(t)
	issuerPath := strings.TrimPrefix(s.tokens.Issuer(realmName), s.srv.URL)
	for _, c := range []struct {
		name, method, path, body string
		want                     int
		contains                 string
	}{
		{"metadata, inserted", http.MethodGet, "/.well-known/ssf-configuration" + issuerPath, "", http.StatusOK, `"configuration_endpoint":"` + s.srv.URL + "/admin/realms/" + realmName + `/ssf/streams"`},
		{"metadata, under the issuer", http.MethodGet, issuerPath + "/.well-known/ssf-configuration", "", http.StatusOK, `"delivery_methods_supported":["urn:ietf:rfc:8935"]`},
		{"metadata, unknown realm", http.MethodGet, "/.well-known/ssf-configuration/realms/nope", "", http.StatusNotFound, "not_found"},
		{"list", http.MethodGet, "/admin/realms/" + realmName + "/ssf/streams", "", http.StatusOK, id},
		{"read", http.MethodGet, "/admin/realms/" + realmName + "/ssf/streams?stream_id=" + id, "", http.StatusOK, `"events_delivered":["` + ssf.EventSessionRevoked + `"]`},
		{"stream_id twice", http.MethodGet, "/admin/realms/" + realmName + "/ssf/streams?stream_id=" + id + "&stream_id=" + id, "", http.StatusBadRequest, "2 times"},
		{"unknown", http.MethodGet, "/admin/realms/" + realmName + "/ssf/streams?stream_id=nope", "", http.StatusNotFound, "not_found"},
		{"patch without id", http.MethodPatch, "/admin/realms/" + realmName + "/ssf/streams", `{"description": "x"}`, http.StatusBadRequest, "stream_id is required"},
		{"patch", http.MethodPatch, "/admin/realms/" + realmName + "/ssf/streams", `{"stream_id": "` + id + `", "description": "x"}`, http.StatusOK, `"description":"x"`},
		{"status", http.MethodPost, "/admin/realms/" + realmName + "/ssf/status", `{"stream_id": "` + id + `", "status": "paused", "reason": "maintenance"}`, http.StatusOK, `"status":"paused"`},
		{"bad status", http.MethodPost, "/admin/realms/" + realmName + "/ssf/status", `{"stream_id": "` + id + `", "status": "off"}`, http.StatusBadRequest, "is not one of"},
		{"verify", http.MethodPost, "/admin/realms/" + realmName + "/ssf/verify", `{"stream_id": "` + id + `", "state": "s"}`, http.StatusNoContent, ""},
		{"verify, unknown field", http.MethodPost, "/admin/realms/" + realmName + "/ssf/verify", `{"stream_id": "` + id + `", "nonce": "s"}`, http.StatusBadRequest, "unknown field"},
		{"delete", http.MethodDelete, "/admin/realms/" + realmName + "/ssf/streams?stream_id=" + id, "", http.StatusNoContent, ""},
		{"delete again", http.MethodDelete, "/admin/realms/" + realmName + "/ssf/streams?stream_id=" + id, "", http.StatusNotFound, "not_found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := call{method: c.method, path: c.path, header: http.Header{}}
			if strings.HasPrefix(c.path, "/admin/") {
				req.header.Set("Authorization", "Bearer "+adminToken)
			}
			if c.body != "" {
				req.body = c.body
				req.header.Set("Content-Type", "application/json")
			}
			r := s.do(t, req)
			if r.status != c.want || !strings.Contains(string(r.body), c.contains) {
				t.Errorf("%s %s = %d %s, want %d containing %q", c.method, c.path, r.status, r.body, c.want, c.contains)
			}
		})
	}
}
