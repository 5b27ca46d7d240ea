package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
)

const secret = "whsec-test-0123456789"

// t0 is the provider's clock in these tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type request struct {
	path, contentType, signature string
	body                         []byte
}

// receiver records requests and answers status.
type receiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []request
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{req.URL.Path, req.Header.Get("Content-Type"), req.Header.Get(SignatureHeader), body})
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

func configured(t *testing.T, log hclog.Logger, set map[string]string) *Provider {
	t.Helper()
	p := New(log)
	p.now = func() time.Time { return t0 }
	cfg := spi.Config{OptSecret: secret}
	for k, v := range set {
		cfg[k] = v
	}
	if err := p.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func pushOne(t *testing.T, p *Provider, n revocationpush.Notice) revocationpush.Result {
	t.Helper()
	res, err := p.Push(context.Background(), []revocationpush.Notice{n})
	if err != nil || len(res) != 1 {
		t.Fatalf("Push = %v, %v", res, err)
	}
	return res[0]
}

func TestPushSignsTheMessage(t *testing.T) {
	rcv := newReceiver(t, http.StatusAccepted)
	fixed := newReceiver(t, http.StatusOK)
	nb := time.Unix(1772366000, 0)
	tests := []struct {
		name     string
		set      map[string]string
		notice   revocationpush.Notice
		want     Message
		receiver *receiver
		path     string
	}{
		{"not-before to the admin URL", nil,
			revocationpush.Notice{ID: "d1", Action: revocationpush.PushNotBefore, RealmID: "acme", ClientID: "app", AdminURL: rcv.URL + "/hooks/app", NotBefore: nb, Token: "a.b.c"},
			Message{ID: "d1", Action: "PUSH_NOT_BEFORE", Realm: "acme", Client: "app", NotBefore: nb.Unix(), IssuedAt: t0.Unix(), Token: "a.b.c"}, rcv, "/hooks/app"},
		{"logout of sessions", nil,
			revocationpush.Notice{ID: "d2", Action: revocationpush.BackchannelLogout, RealmID: "acme", ClientID: "app", AdminURL: rcv.URL + "/app", LogoutURL: "http://ignored", SessionIDs: []string{"s1"}},
			Message{ID: "d2", Action: "BACKCHANNEL_LOGOUT", Realm: "acme", Client: "app", SessionIDs: []string{"s1"}, IssuedAt: t0.Unix()}, rcv, "/app"},
		{"the url option wins over the admin URL", map[string]string{OptURL: fixed.URL + "/all"},
			revocationpush.Notice{ID: "d3", Action: revocationpush.Logout, RealmID: "acme", ClientID: "app", AdminURL: rcv.URL + "/not-here", NotBefore: nb},
			Message{ID: "d3", Action: "LOGOUT", Realm: "acme", Client: "app", NotBefore: nb.Unix(), IssuedAt: t0.Unix()}, fixed, "/all"},
		{"the url option serves a client without an admin URL", map[string]string{OptURL: fixed.URL + "/all"},
			revocationpush.Notice{ID: "d4", Action: revocationpush.PushNotBefore, RealmID: "acme", ClientID: "cli"},
			Message{ID: "d4", Action: "PUSH_NOT_BEFORE", Realm: "acme", Client: "cli", IssuedAt: t0.Unix()}, fixed, "/all"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(tt.receiver.requests())
			r := pushOne(t, configured(t, nil, tt.set), tt.notice)
			if !r.OK || r.Retry || r.NoticeID != tt.notice.ID || !strings.HasSuffix(r.Target, tt.path) {
				t.Errorf("result %+v", r)
			}
			got := tt.receiver.requests()[before:]
			if len(got) != 1 {
				t.Fatalf("%d requests, want 1", len(got))
			}
			req := got[0]
			if req.path != tt.path || req.contentType != "application/json" {
				t.Errorf("request to %s as %s", req.path, req.contentType)
			}
			if err := Verify(secret, req.signature, req.body, t0, DefaultTolerance); err != nil {
				t.Errorf("signature does not verify: %v (header %q)", err, req.signature)
			}
			var m Message
			if err := json.Unmarshal(req.body, &m); err != nil {
				t.Fatal(err)
			}
			if mustJSON(m) != mustJSON(tt.want) {
				t.Errorf("message %s, want %s", mustJSON(m), mustJSON(tt.want))
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
		{200, true, false}, {201, true, false}, {202, true, false}, {204, true, false},
		{301, false, false}, {400, false, false}, {401, false, false}, {410, false, false},
		{429, false, true}, {500, false, true}, {503, false, true},
	}
	p := configured(t, nil, nil)
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			rcv := newReceiver(t, tt.status)
			r := pushOne(t, p, revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore, AdminURL: rcv.URL})
			if r.OK != tt.ok || r.Retry != tt.retry || r.Status != tt.status {
				t.Errorf("HTTP %d gave %+v", tt.status, r)
			}
		})
	}
	down := newReceiver(t, 204)
	u := down.URL
	down.Close()
	if r := pushOne(t, p, revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore, AdminURL: u}); r.OK || !r.Retry {
		t.Errorf("unreachable receiver gave %+v, want a retry", r)
	}
	if r := pushOne(t, p, revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore}); r.OK || r.Retry || r.Error == "" {
		t.Errorf("no target gave %+v, want a final failure", r)
	}
}

func TestConfigure(t *testing.T) {
	tests := []struct {
		name    string
		cfg     spi.Config
		wantErr string // "" means accepted
	}{
		{"secret only", spi.Config{OptSecret: secret}, ""},
		{"secret and url", spi.Config{OptSecret: secret, OptURL: "https://hooks.example.test/sessiond"}, ""},
		{"no secret", spi.Config{OptURL: "https://hooks.example.test/"}, "spi-revocation-push-webhook-secret is required"},
		{"blank secret", spi.Config{OptSecret: "  "}, "spi-revocation-push-webhook-secret is required"},
		{"relative url", spi.Config{OptSecret: secret, OptURL: "/hooks"}, "spi-revocation-push-webhook-url"},
		{"not http", spi.Config{OptSecret: secret, OptURL: "ftp://hooks.example.test/"}, "spi-revocation-push-webhook-url"},
		{"bad timeout", spi.Config{OptSecret: secret, OptTimeout: "0"}, "spi-revocation-push-webhook-timeout"},
		{"password in a url that does not parse", spi.Config{OptSecret: secret, OptURL: "https://hooks:hunter2@hooks.example.test:port/"}, "spi-revocation-push-webhook-url"},
		{"password in a url that is not http", spi.Config{OptSecret: secret, OptURL: "ftp://hooks:hunter2@hooks.example.test/"}, "spi-revocation-push-webhook-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(nil).Configure(context.Background(), tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Configure = %v", err)
				}
				return
			}
			if !errors.Is(err, spi.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Configure = %v, want spi.ErrInvalid naming %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the secret or a password is in the error: %v", err)
			}
		})
	}
	o, _ := New(nil).Describe().Option(OptSecret)
	if !o.Secret {
		t.Error("the secret option is not declared Secret")
	}
}

func TestSecretIsNeverLogged(t *testing.T) {
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Trace})
	ok, failing := newReceiver(t, 204), newReceiver(t, 503)
	p := configured(t, log, nil)
	for _, u := range []string{ok.URL, failing.URL} {
		pushOne(t, p, revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore, AdminURL: u, Token: "tok.en.value"})
	}
	if buf.Len() == 0 {
		t.Fatal("nothing logged at trace")
	}
	for _, s := range []string{secret, "tok.en.value"} {
		if strings.Contains(buf.String(), s) {
			t.Errorf("%q reached the log:\n%s", s, buf.String())
		}
	}
}

func TestVerify(t *testing.T) {
	body := []byte(`{"id":"d1","action":"PUSH_NOT_BEFORE","realm":"acme","client":"app","notBefore":1772366000,"issuedAt":1772366400}`)
	signedAt := t0
	good := Signature(secret, signedAt, body)
	_, goodMAC, _ := strings.Cut(good, ",v1=")
	tests := []struct {
		name    string
		secret  string
		header  string
		body    []byte
		now     time.Time
		wantErr error // nil: accepted
	}{
		{"as signed", secret, good, body, t0, nil},
		{"received within the window", secret, good, body, t0.Add(DefaultTolerance), nil},
		{"receiver clock a little behind", secret, good, body, t0.Add(-DefaultTolerance), nil},
		{"several v1 while a secret rotates", secret, "t=" + ts(signedAt) + ",v1=" + strings.Repeat("ab", 32) + ",v1=" + goodMAC, body, t0, nil},
		{"spaces after commas", secret, "t=" + ts(signedAt) + ", v1=" + goodMAC, body, t0, nil},
		{"replayed after the window", secret, good, body, t0.Add(DefaultTolerance + time.Second), ErrTimestamp},
		{"replayed much later", secret, good, body, t0.Add(24 * time.Hour), ErrTimestamp},
		{"signed too far in the future", secret, good, body, t0.Add(-DefaultTolerance - time.Second), ErrTimestamp},
		{"tampered body", secret, good, bytes.Replace(body, []byte("1772366000"), []byte("1000000000"), 1), t0, ErrSignature},
		{"body with a byte added", secret, good, append(append([]byte{}, body...), ' '), t0, ErrSignature},
		{"timestamp moved to pass the window", secret, "t=" + ts(t0.Add(24*time.Hour)) + ",v1=" + goodMAC, body, t0.Add(24 * time.Hour), ErrSignature},
		{"wrong secret", "another-secret", good, body, t0, ErrSignature},
		{"empty secret", "", good, body, t0, ErrSignature},
		{"signature of another body", secret, Signature(secret, t0, []byte(`{}`)), body, t0, ErrSignature},
		{"no header", secret, "", body, t0, ErrMalformed},
		{"no v1", secret, "t=" + ts(signedAt), body, t0, ErrMalformed},
		{"no t", secret, "v1=" + goodMAC, body, t0, ErrMalformed},
		{"t not a number", secret, "t=noon,v1=" + goodMAC, body, t0, ErrMalformed},
		{"t twice", secret, "t=" + ts(signedAt) + ",t=" + ts(signedAt) + ",v1=" + goodMAC, body, t0, ErrMalformed},
		{"v1 not hex", secret, "t=" + ts(signedAt) + ",v1=zz", body, t0, ErrMalformed},
		{"v1 truncated", secret, "t=" + ts(signedAt) + ",v1=" + goodMAC[:32], body, t0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.secret, tt.header, tt.body, tt.now, DefaultTolerance)
			if tt.wantErr == nil && err != nil {
				t.Errorf("Verify = %v, want accepted", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if err := Verify(secret, good, body, t0, 0); err == nil {
		t.Error("Verify with no tolerance accepted")
	}
}

func ts(t time.Time) string { return Signature("", t, nil)[2:12] }

// A request captured from a real push verifies once and is refused after the window.
func TestCapturedRequestCannotBeReplayedLater(t *testing.T) {
	rcv := newReceiver(t, 204)
	pushOne(t, configured(t, nil, nil), revocationpush.Notice{ID: "d1", Action: revocationpush.PushNotBefore, RealmID: "acme", ClientID: "app", AdminURL: rcv.URL})
	req := rcv.requests()[0]
	if err := Verify(secret, req.signature, req.body, t0.Add(time.Minute), DefaultTolerance); err != nil {
		t.Fatalf("fresh request refused: %v", err)
	}
	if err := Verify(secret, req.signature, req.body, t0.Add(time.Hour), DefaultTolerance); !errors.Is(err, ErrTimestamp) {
		t.Errorf("replay an hour later: %v, want ErrTimestamp", err)
	}
}

// A client that registered only a back-channel logout URL, with no url option to stand in
// for its missing admin URL, gets its session logouts as Back-Channel Logout 1.0 defines
// them; other notices for it fail for good.
func TestBackchannelLogoutWithoutAWebhookTarget(t *testing.T) {
	rcv := newReceiver(t, http.StatusOK)
	p := configured(t, nil, nil)
	n := revocationpush.Notice{ID: "d1", Action: revocationpush.BackchannelLogout, RealmID: "acme", ClientID: "rp",
		LogoutURL: rcv.URL + "/bc", SessionIDs: []string{"s1"}, Token: "logout.token.jwt"}
	r := pushOne(t, p, n)
	if !r.OK || r.Target != rcv.URL+"/bc" || r.NoticeID != "d1" {
		t.Errorf("result %+v, want delivered to %s", r, rcv.URL+"/bc")
	}
	got := rcv.requests()
	if len(got) != 1 || got[0].path != "/bc" || got[0].contentType != "application/x-www-form-urlencoded" || string(got[0].body) != "logout_token=logout.token.jwt" {
		t.Fatalf("requests %+v, want the form logout_token=<JWT> at /bc", got)
	}
	if got[0].signature != "" {
		t.Errorf("a back-channel logout carries the webhook signature %q", got[0].signature)
	}
	n.Token = ""
	if r := pushOne(t, p, n); r.OK || r.Retry {
		t.Errorf("without a logout token: %+v, want a final failure", r)
	}
	if r := pushOne(t, p, revocationpush.Notice{ID: "d2", Action: revocationpush.PushNotBefore, LogoutURL: rcv.URL + "/bc"}); r.OK || r.Retry || len(rcv.requests()) != 1 {
		t.Errorf("a not-before for a client with only a back-channel URL: %+v, want a final failure and no request", r)
	}
	// With the url option set, the webhook receiver takes the logout as it takes the rest.
	hub := newReceiver(t, http.StatusOK)
	n.Token = "logout.token.jwt"
	if r := pushOne(t, configured(t, nil, map[string]string{OptURL: hub.URL + "/all"}), n); !r.OK || r.Target != hub.URL+"/all" || len(hub.requests()) != 1 {
		t.Errorf("with the url option: %+v, want delivered to %s", r, hub.URL+"/all")
	}
}

// A user and password in a target are sent as Basic credentials and named nowhere: not in
// the result's target, nor in its error.
func TestCredentialsInTheTargetAreNotShown(t *testing.T) {
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	p := configured(t, nil, nil)
	withUser := strings.Replace(srv.URL, "http://", "http://hook-user:hunter2@", 1) + "/h"
	r := pushOne(t, p, revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore, AdminURL: withUser})
	if !r.OK || r.Target != srv.URL+"/h" {
		t.Errorf("result %+v, want delivered to %s", r, srv.URL+"/h")
	}
	if auth != "Basic aG9vay11c2VyOmh1bnRlcjI=" {
		t.Errorf("Authorization %q, want the URL's user and password as Basic credentials", auth)
	}
	srv.Close()
	r = pushOne(t, p, revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore, AdminURL: withUser})
	if r.OK || !r.Retry || r.Error == "" {
		t.Fatalf("unreachable: %+v", r)
	}
	for _, s := range []string{r.Target, r.Error} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "hook-user") {
			t.Errorf("result %+v names the credentials", r)
		}
	}
	r = pushOne(t, p, revocationpush.Notice{ID: "n", Action: revocationpush.PushNotBefore, AdminURL: "http://u:hunter2@host:port/x"})
	if r.OK || r.Retry || strings.Contains(r.Target+r.Error, "hunter2") {
		t.Errorf("a target that is not a URL: %+v, want a final failure without the password", r)
	}
}
