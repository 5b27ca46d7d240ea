package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
)

// realmKeys is a realm's key manager and token service over an in-memory store.
func realmKeys(t *testing.T) (*token.KeyManager, *token.Service) {
	t.Helper()
	store := memory.New(hclog.NewNullLogger())
	if err := store.Configure(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	keys, err := token.NewKeyManager(store, token.KeyOptions{Algorithm: token.RS256})
	if err != nil {
		t.Fatal(err)
	}
	return keys, token.New(keys, token.Options{IssuerBase: "https://sso.example.test"})
}

// verified checks raw against the realm's JWKS, as an adapter does, and decodes its payload.
func verified(t *testing.T, keys *token.KeyManager, realm, raw string) map[string]any {
	t.Helper()
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatalf("body is not a compact JWS: %v", err)
	}
	set, err := keys.JWKS(context.Background(), realm)
	if err != nil {
		t.Fatal(err)
	}
	k := set.Key(jws.Signatures[0].Header.KeyID)
	if len(k) != 1 {
		t.Fatalf("kid %q not in the realm JWKS", jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(k[0])
	if err != nil {
		t.Fatalf("signature does not verify with the realm JWKS: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// received is one request a test receiver got.
type received struct {
	path, contentType string
	body              []byte
}

// receiver is an httptest server that records requests and answers status.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []received
	status atomic.Int32
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{}
	r.status.Store(int32(status))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{req.URL.Path, req.Header.Get("Content-Type"), body})
		r.mu.Unlock()
		w.WriteHeader(int(r.status.Load()))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func configured(t *testing.T, log hclog.Logger, set map[string]string) *Provider {
	t.Helper()
	p := New(log)
	cfg := spi.Config{}
	for _, o := range p.Describe().Options {
		cfg[o.Name] = o.Default
	}
	for k, v := range set {
		cfg[k] = v
	}
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func push(t *testing.T, p *Provider, n revocationpush.Notice) revocationpush.Result {
	t.Helper()
	results, err := p.Push(context.Background(), []revocationpush.Notice{n})
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 {
		t.Fatalf("%d results for one notice", len(results))
	}
	return results[0]
}

func TestProtocolRequests(t *testing.T) {
	keys, tokens := realmKeys(t)
	ctx := context.Background()
	notBefore := time.Unix(1772366400, 0)
	action := func(a string, extra map[string]any) string {
		m := map[string]any{"id": "d1", "expiration": notBefore.Unix() + 30, "resource": "app", "action": a, "notBefore": notBefore.Unix()}
		for k, v := range extra {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		raw, err := keys.Sign(ctx, "acme", b)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	logoutToken, err := tokens.LogoutToken(ctx, "acme", token.LogoutClaims{Subject: "u1", SessionID: "s1", Audience: "app", IssuedAt: time.Now(), Expiry: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		notice      func(adminURL string) revocationpush.Notice
		path        string
		contentType string
		token       func(body []byte) string
		claims      map[string]any
	}{
		{"not-before push", func(u string) revocationpush.Notice {
			return revocationpush.Notice{ID: "d1", Action: revocationpush.PushNotBefore, RealmID: "acme", ClientID: "app", AdminURL: u + "/app/admin", NotBefore: notBefore, Token: action("PUSH_NOT_BEFORE", nil)}
		}, "/app/admin/k_push_not_before", "text/plain", func(b []byte) string { return string(b) },
			map[string]any{"id": "d1", "resource": "app", "action": "PUSH_NOT_BEFORE", "notBefore": float64(notBefore.Unix()), "expiration": float64(notBefore.Unix() + 30)}},
		{"admin URL with a trailing slash", func(u string) revocationpush.Notice {
			return revocationpush.Notice{ID: "d1", Action: revocationpush.PushNotBefore, RealmID: "acme", ClientID: "app", AdminURL: u + "/app/", Token: action("PUSH_NOT_BEFORE", nil)}
		}, "/app/k_push_not_before", "text/plain", func(b []byte) string { return string(b) },
			map[string]any{"action": "PUSH_NOT_BEFORE"}},
		{"adapter logout", func(u string) revocationpush.Notice {
			return revocationpush.Notice{ID: "d1", Action: revocationpush.Logout, RealmID: "acme", ClientID: "app", AdminURL: u, SessionIDs: []string{"a1"}, Token: action("LOGOUT", map[string]any{"adapterSessionIds": []string{"a1"}})}
		}, "/k_logout", "text/plain", func(b []byte) string { return string(b) },
			map[string]any{"action": "LOGOUT", "adapterSessionIds": []any{"a1"}}},
		{"back-channel logout", func(u string) revocationpush.Notice {
			return revocationpush.Notice{ID: "d1", Action: revocationpush.BackchannelLogout, RealmID: "acme", ClientID: "app", AdminURL: u + "/not-here", LogoutURL: u + "/bc-logout", Token: logoutToken}
		}, "/bc-logout", "application/x-www-form-urlencoded", func(b []byte) string {
			v, err := url.ParseQuery(string(b))
			if err != nil || len(v) != 1 {
				t.Errorf("form body %q: %v", b, err)
			}
			return v.Get("logout_token")
		}, map[string]any{"sub": "u1", "sid": "s1", "aud": "app", "iss": "https://sso.example.test/realms/acme",
			"events": map[string]any{token.BackchannelLogoutEvent: map[string]any{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rcv := newReceiver(t, http.StatusNoContent)
			p := configured(t, nil, nil)
			n := tt.notice(rcv.URL)
			r := push(t, p, n)
			// Named as Keycloak's push-revocation answer names it: the admin URL, or the
			// back-channel logout URL a logout token went to.
			target := n.AdminURL
			if n.Action == revocationpush.BackchannelLogout {
				target = n.LogoutURL
			}
			if !r.OK || r.Retry || r.Status != 204 || r.NoticeID != "d1" || r.Target != target || r.Error != "" {
				t.Errorf("result %+v, want delivered to %s", r, target)
			}
			got := rcv.requests()
			if len(got) != 1 {
				t.Fatalf("receiver got %d requests, want 1", len(got))
			}
			if got[0].path != tt.path || got[0].contentType != tt.contentType {
				t.Errorf("request to %s as %s, want %s as %s", got[0].path, got[0].contentType, tt.path, tt.contentType)
			}
			raw := tt.token(got[0].body)
			if raw != n.Token {
				t.Errorf("posted token differs from the notice's")
			}
			claims := verified(t, keys, "acme", raw)
			for k, want := range tt.claims {
				if g, _ := json.Marshal(claims[k]); string(g) != mustJSON(want) {
					t.Errorf("claim %s = %s, want %s", k, g, mustJSON(want))
				}
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestStatusHandling(t *testing.T) {
	tests := []struct {
		status    int
		ok, retry bool
	}{
		{200, true, false},
		{204, true, false},
		{201, false, false}, // Keycloak counts 200 and 204 only
		{202, false, false},
		{302, false, false}, // not followed
		{400, false, false},
		{401, false, false},
		{403, false, false},
		{404, false, false},
		{408, false, true},
		{429, false, true},
		{500, false, true},
		{502, false, true},
		{503, false, true},
	}
	p := configured(t, nil, nil)
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			rcv := newReceiver(t, tt.status)
			for _, n := range []revocationpush.Notice{
				{ID: "n", Action: revocationpush.PushNotBefore, AdminURL: rcv.URL, Token: "a.b.c"},
				{ID: "n", Action: revocationpush.BackchannelLogout, LogoutURL: rcv.URL + "/bc", Token: "a.b.c"},
			} {
				r := push(t, p, n)
				if r.OK != tt.ok || r.Retry != tt.retry || r.Status != tt.status {
					t.Errorf("%s: HTTP %d gave %+v, want ok=%v retry=%v", n.Action, tt.status, r, tt.ok, tt.retry)
				}
				if !tt.ok && !strings.Contains(r.Error, fmt.Sprintf("HTTP %d", tt.status)) {
					t.Errorf("error %q does not give the status", r.Error)
				}
			}
		})
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	elsewhere := newReceiver(t, 204)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	r := push(t, configured(t, nil, nil), revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore, AdminURL: redirector.URL, Token: "a.b.c"})
	if r.OK || r.Retry || r.Status != http.StatusTemporaryRedirect {
		t.Errorf("result %+v", r)
	}
	if got := elsewhere.requests(); len(got) != 0 {
		t.Errorf("the signed action was re-sent to the redirect target: %v", got)
	}
}

func TestUnreachableAndSlowClientsAreRetried(t *testing.T) {
	down := newReceiver(t, 204)
	downURL := down.URL
	down.Close()
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-hang:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(hang) })
	p := configured(t, nil, map[string]string{OptTimeout: "100ms"})
	for name, u := range map[string]string{"connection refused": downURL, "timeout": slow.URL} {
		t.Run(name, func(t *testing.T) {
			r := push(t, p, revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore, AdminURL: u, Token: "a.b.c"})
			if r.OK || !r.Retry || r.Status != 0 || r.Error == "" {
				t.Errorf("result %+v, want a retryable failure", r)
			}
		})
	}
}

func TestNoticesThatCannotBeSent(t *testing.T) {
	tests := []struct {
		name   string
		notice revocationpush.Notice
	}{
		{"no admin URL", revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore, Token: "a.b.c"}},
		{"logout without admin URL", revocationpush.Notice{ID: "n", Action: revocationpush.Logout, Token: "a.b.c"}},
		{"back-channel without logout URL", revocationpush.Notice{ID: "n", Action: revocationpush.BackchannelLogout, AdminURL: "http://127.0.0.1:1", Token: "a.b.c"}},
		{"no token", revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore, AdminURL: "http://127.0.0.1:1"}},
		{"unknown action", revocationpush.Notice{ID: "n", Action: "PURGE", AdminURL: "http://127.0.0.1:1", Token: "a.b.c"}},
		{"not an http URL", revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore, AdminURL: "file:///etc", Token: "a.b.c"}},
	}
	p := configured(t, nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := push(t, p, tt.notice)
			if r.OK || r.Retry || r.Error == "" || r.NoticeID != "n" {
				t.Errorf("result %+v, want a final failure with a reason", r)
			}
		})
	}
}

func TestMaxConcurrentRequests(t *testing.T) {
	var inFlight, most atomic.Int32
	release := make(chan struct{})
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		inFlight.Add(-1)
		w.WriteHeader(204)
	}))
	t.Cleanup(rcv.Close)
	p := configured(t, nil, map[string]string{OptMaxConcurrent: "2"})
	notices := make([]revocationpush.Notice, 6)
	for i := range notices {
		notices[i] = revocationpush.Notice{ID: string(rune('a' + i)), Action: revocationpush.PushNotBefore, AdminURL: rcv.URL, Token: "a.b.c"}
	}
	done := make(chan []revocationpush.Result)
	go func() {
		res, _ := p.Push(context.Background(), notices)
		done <- res
	}()
	deadline := time.Now().Add(10 * time.Second)
	for inFlight.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	res := <-done
	if most.Load() != 2 {
		t.Errorf("at most %d requests at once, want 2", most.Load())
	}
	for i, r := range res {
		if !r.OK || r.NoticeID != notices[i].ID {
			t.Errorf("result %d = %+v", i, r)
		}
	}
}

func TestConfigureRefuses(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
	}{
		{"zero timeout", map[string]string{OptTimeout: "0s"}},
		{"negative timeout", map[string]string{OptTimeout: "-1s"}},
		{"malformed timeout", map[string]string{OptTimeout: "soon"}},
		{"no concurrency", map[string]string{OptMaxConcurrent: "0"}},
		{"too much concurrency", map[string]string{OptMaxConcurrent: "100000"}},
		{"malformed concurrency", map[string]string{OptMaxConcurrent: "many"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(nil).Configure(context.Background(), spi.Config(tt.set))
			if !errors.Is(err, spi.ErrInvalid) {
				t.Fatalf("Configure = %v, want spi.ErrInvalid", err)
			}
			for k := range tt.set {
				if !strings.Contains(err.Error(), "spi-revocation-push-adapter-"+k) {
					t.Errorf("error %q does not name the key", err)
				}
			}
		})
	}
}

func TestTokensAreNeverLogged(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Trace})
	ok, failing := newReceiver(t, 204), newReceiver(t, 500)
	p := configured(t, log, nil)
	const secretToken = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl"
	_, err := p.Push(context.Background(), []revocationpush.Notice{
		{ID: "n1", Action: revocationpush.PushNotBefore, AdminURL: ok.URL, Token: secretToken},
		{ID: "n2", Action: revocationpush.BackchannelLogout, LogoutURL: failing.URL, Token: secretToken},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "n1") || !strings.Contains(buf.String(), "n2") {
		t.Fatalf("outcomes not logged at debug:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), secretToken) || strings.Contains(buf.String(), "c2VjcmV0LXBheWxvYWQ") {
		t.Errorf("a token reached the log:\n%s", buf.String())
	}
}

func TestDescribe(t *testing.T) {
	d := New(nil).Describe()
	if d.SPI != spi.RevocationPush || d.ID != ID || d.Help == "" {
		t.Errorf("Describe() = %+v", d)
	}
	for _, name := range []string{OptTimeout, OptMaxConcurrent} {
		if o, ok := d.Option(name); !ok || o.Default == "" {
			t.Errorf("option %s: %+v, %v", name, o, ok)
		}
	}
}
