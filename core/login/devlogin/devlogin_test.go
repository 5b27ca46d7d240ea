package devlogin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/core/login"
)

// logins is a login service with one pending challenge, "c1", for a client whose redirect
// URI is on https://app.test.
type logins struct {
	accepted, rejected string
}

func (l *logins) Get(_ context.Context, _, challenge string) (*login.LoginRequest, error) {
	if challenge != "c1" {
		return nil, login.ErrNotFound
	}
	return &login.LoginRequest{Challenge: "c1", ClientID: "app", RedirectURI: "https://app.test/cb"}, nil
}

func (l *logins) AcceptLogin(_ context.Context, _, _ string, a login.Accept) (string, error) {
	l.accepted = a.UserID
	return "http://sessiond.test/realms/r/protocol/openid-connect/auth?login_verifier=v", nil
}

func (l *logins) RejectLogin(_ context.Context, _, _ string, rj login.Reject) (string, error) {
	l.rejected = rj.Error
	return "https://app.test/cb?error=" + rj.Error, nil
}

func TestHandler_formSignInCancelAndEmptyUsername(t *testing.T) {
	tests := []struct {
		name, method, target string
		form                 url.Values
		status               int
		body, location, csp  string
		accepted, rejected   string
	}{
		{name: "form, marked and posting to itself", method: http.MethodGet, target: "/realms/r/dev-login?login_challenge=c1",
			status: http.StatusOK, body: "NOT FOR PRODUCTION", csp: "form-action 'self' https://app.test;"},
		{name: "unknown challenge", method: http.MethodGet, target: "/realms/r/dev-login?login_challenge=nope",
			status: http.StatusBadRequest, body: "unknown or expired", csp: "form-action 'self';"},
		{name: "sign in", method: http.MethodPost, form: url.Values{"login_challenge": {"c1"}, "username": {" alice "}},
			status: http.StatusSeeOther, location: "login_verifier=v", accepted: "alice"},
		{name: "cancel", method: http.MethodPost, form: url.Values{"login_challenge": {"c1"}, "username": {""}, "cancel": {"1"}},
			status: http.StatusSeeOther, location: "error=access_denied", rejected: login.AccessDenied},
		{name: "empty username shows the form again, cancels nothing", method: http.MethodPost,
			form:   url.Values{"login_challenge": {"c1"}, "username": {"  "}},
			status: http.StatusBadRequest, body: "Enter a username.", csp: "form-action 'self' https://app.test;"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &logins{}
			mux := http.NewServeMux()
			mux.Handle(Path, Handler(l))
			var req *http.Request
			if tt.method == http.MethodGet {
				req = httptest.NewRequest(tt.method, tt.target, nil)
			} else {
				req = httptest.NewRequest(tt.method, "/realms/r/dev-login", strings.NewReader(tt.form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.body) ||
				!strings.Contains(rec.Header().Get("Location"), tt.location) || !strings.Contains(rec.Header().Get("Content-Security-Policy"), tt.csp) {
				t.Errorf("%d Location %q CSP %q body:\n%s", rec.Code, rec.Header().Get("Location"), rec.Header().Get("Content-Security-Policy"), rec.Body)
			}
			if l.accepted != tt.accepted || l.rejected != tt.rejected {
				t.Errorf("accepted %q rejected %q, want %q and %q", l.accepted, l.rejected, tt.accepted, tt.rejected)
			}
		})
	}
}
