package ssf

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/revocationpush"
)

type request struct {
	path, contentType, accept, authorization, body string
}

// receiver records requests and answers with status and body.
type receiver struct {
	*httptest.Server
	mu  sync.Mutex
	got []request
}

func newReceiver(t *testing.T, status int, body string) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, request{req.URL.Path, req.Header.Get("Content-Type"), req.Header.Get("Accept"), req.Header.Get("Authorization"), string(b)})
		r.mu.Unlock()
		if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

// A SET is POSTed as RFC 8935 has it, and the answer read as one: 202 delivered, an RFC
// 8935 error named and retried only for invalid_key, a down receiver retried.
func TestPushSET(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		body       string
		auth       string
		ok, retry  bool
		wantErrSub string
	}{
		{name: "accepted", status: http.StatusAccepted, auth: "Bearer rcv", ok: true},
		{name: "200 from a lenient receiver", status: http.StatusOK, ok: true},
		{name: "invalid audience", status: http.StatusBadRequest, body: `{"err":"invalid_audience","description":"not for us"}`, wantErrSub: "HTTP 400 from client: invalid_audience (not for us)"},
		{name: "invalid key is retried", status: http.StatusBadRequest, body: `{"err":"invalid_key","description":"unknown kid"}`, retry: true, wantErrSub: "invalid_key"},
		{name: "authentication failed", status: http.StatusUnauthorized, body: `{"err":"authentication_failed"}`, wantErrSub: "HTTP 401 from client: authentication_failed"},
		{name: "400 without an RFC 8935 body", status: http.StatusBadRequest, body: `oops`, wantErrSub: "HTTP 400 from client"},
		{name: "receiver down", status: http.StatusServiceUnavailable, retry: true, wantErrSub: "HTTP 503"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rcv := newReceiver(t, c.status, c.body)
			p := New(nil)
			n := revocationpush.Notice{ID: "d1", Action: revocationpush.SecurityEvent, RealmID: "r", Token: "eyJ.set.sig", PushURL: rcv.URL + "/events", Authorization: c.auth}
			res, err := p.Push(context.Background(), []revocationpush.Notice{n})
			if err != nil || len(res) != 1 {
				t.Fatalf("Push = %v, %v", res, err)
			}
			r := res[0]
			if r.OK != c.ok || r.Retry != c.retry || r.NoticeID != "d1" || r.Status != c.status || !strings.Contains(r.Error, c.wantErrSub) || (c.ok && r.Error != "") {
				t.Errorf("result %+v, want ok=%v retry=%v error containing %q", r, c.ok, c.retry, c.wantErrSub)
			}
			got := rcv.requests()
			if len(got) != 1 {
				t.Fatalf("receiver got %d requests", len(got))
			}
			want := request{"/events", ContentType, "application/json", c.auth, "eyJ.set.sig"}
			if got[0] != want {
				t.Errorf("request %+v, want %+v", got[0], want)
			}
		})
	}
}

// A SET notice without its token or endpoint fails without a request; the adapter
// provider's notices go as that provider sends them.
func TestPushOtherNotices(t *testing.T) {
	rcv := newReceiver(t, http.StatusOK, "")
	p := New(nil)
	res, err := p.Push(context.Background(), []revocationpush.Notice{
		{ID: "no-token", Action: revocationpush.SecurityEvent, PushURL: rcv.URL},
		{ID: "no-url", Action: revocationpush.SecurityEvent, Token: "x"},
		{ID: "bcl", Action: revocationpush.BackchannelLogout, LogoutURL: rcv.URL + "/bcl", Token: "logout.jwt.sig"},
		{ID: "odd", Action: "NOPE", Token: "x"},
	})
	if err != nil || len(res) != 4 {
		t.Fatalf("Push = %v, %v", res, err)
	}
	if res[0].OK || res[0].Retry || res[1].OK || res[1].Retry || !res[2].OK || res[3].OK || res[3].Retry {
		t.Errorf("results %+v", res)
	}
	got := rcv.requests()
	form := url.Values{"logout_token": {"logout.jwt.sig"}}.Encode()
	if len(got) != 1 || got[0].path != "/bcl" || got[0].body != form {
		t.Errorf("receiver got %+v, want the one back-channel logout", got)
	}
}

func TestConfigure(t *testing.T) {
	p := New(nil)
	if err := p.Configure(context.Background(), spi.Config{OptTimeout: "0s"}); err == nil || !strings.Contains(err.Error(), "spi-revocation-push-ssf-timeout") {
		t.Errorf("Configure(timeout 0) = %v, want a refusal naming the key", err)
	}
	if err := p.Configure(context.Background(), spi.Config{OptTimeout: "2s", OptMaxConcurrent: "4"}); err != nil {
		t.Errorf("Configure = %v", err)
	}
	if d := p.Describe(); d.SPI != spi.RevocationPush || d.ID != ID {
		t.Errorf("Describe = %+v", d)
	}
}
