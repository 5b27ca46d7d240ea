// Package devlogin is the development login front-end that start-dev serves: a username is
// all it asks, and it accepts that person at once. It lets a newcomer complete a real browser
// login without writing a front-end; start never serves it.
package devlogin

import (
	"context"
	_ "embed"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/sessiond/sessiond/core/login"
	"github.com/sessiond/sessiond/core/login/pages"
)

//go:embed page.html
var page string

var tmpl = template.Must(template.New("page").Parse(page))

// Logins is what the page needs of the login service; *login.Service implements it.
type Logins interface {
	Get(ctx context.Context, realm, challenge string) (*login.LoginRequest, error)
	AcceptLogin(ctx context.Context, realm, challenge string, a login.Accept) (string, error)
	RejectLogin(ctx context.Context, realm, challenge string, rj login.Reject) (string, error)
}

// Path is the page's route pattern under the realm.
const Path = "/realms/{realm}/dev-login"

// Handler serves GET (the form) and POST (accept or cancel) on Path.
func Handler(logins Logins) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		realmName := r.PathValue("realm")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", pages.ContentSecurityPolicy(nil, nil))
		switch r.Method {
		case http.MethodGet:
			showForm(w, r, logins, realmName, r.URL.Query().Get("login_challenge"), http.StatusOK, "")
		case http.MethodPost:
			if err := r.ParseForm(); err != nil {
				http.Error(w, "malformed form", http.StatusBadRequest)
				return
			}
			challenge, username := r.PostForm.Get("login_challenge"), strings.TrimSpace(r.PostForm.Get("username"))
			if username == "" && !r.PostForm.Has("cancel") {
				// The page's input is required; a client that posts without it gets the
				// form again rather than a login cancelled behind its back.
				showForm(w, r, logins, realmName, challenge, http.StatusBadRequest, "Enter a username.")
				return
			}
			var to string
			var err error
			if r.PostForm.Has("cancel") {
				to, err = logins.RejectLogin(r.Context(), realmName, challenge, login.Reject{Error: login.AccessDenied, Description: "the person cancelled the development login"})
			} else {
				to, err = logins.AcceptLogin(r.Context(), realmName, challenge, login.Accept{
					UserID: username, Username: username, AuthMethod: "dev-login", AMR: []string{"dev"},
					IPAddress: remoteIP(r), UserAgent: r.UserAgent(), OfflineAccess: true,
				})
			}
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				_ = tmpl.Execute(w, view{Error: "The login could not be completed: " + err.Error()})
				return
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// showForm renders the form for challenge, with message above it, or the error page when
// the challenge is unknown or expired.
func showForm(w http.ResponseWriter, r *http.Request, logins Logins, realmName, challenge string, status int, message string) {
	lr, err := logins.Get(r.Context(), realmName, challenge)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = tmpl.Execute(w, view{Error: "This login is unknown or expired: " + err.Error()})
		return
	}
	// The answer to the form redirects through sessiond's /auth to the client.
	w.Header().Set("Content-Security-Policy", pages.ContentSecurityPolicy([]string{lr.RedirectURI}, nil))
	w.WriteHeader(status)
	_ = tmpl.Execute(w, view{Challenge: challenge, Request: lr, Action: r.URL.Path, Message: message})
}

type view struct {
	Challenge string
	Request   *login.LoginRequest
	Action    string
	Message   string // above the form
	Error     string // instead of the form
}

// remoteIP is the browser's address without its port (core/forwarded has set RemoteAddr
// from a trusted proxy's headers).
func remoteIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// URL returns the page's address for realmName under base, the issuer base.
func URL(base, realmName string) string {
	return base + "/realms/" + url.PathEscape(realmName) + "/dev-login"
}
