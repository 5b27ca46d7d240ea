package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/core/admin"
)

// The console's own sessions. They live in this node's memory: a restart signs everyone
// out, and behind a load balancer the console needs sticky sessions (docs/admin-console.md).
const (
	// CookieName is the console session's cookie; its value is a random id, never the
	// credential.
	CookieName = "sessiond_console"
	// DefaultIdleTimeout ends a console session nobody used for that long.
	DefaultIdleTimeout = 15 * time.Minute
	// DefaultMaxLifetime ends a console session that long after sign-in, used or not.
	DefaultMaxLifetime = 8 * time.Hour
	// maxSessions bounds the sessions held; a sign-in past it ends the oldest.
	maxSessions = 10000
	// csrfField is the hidden form field holding the session's CSRF token.
	csrfField = "csrf"
)

// signedIn is one console session.
type signedIn struct {
	actor    string // admin.ActorAdmin or admin.ActorViewer
	role     admin.Role
	csrf     string
	started  time.Time
	lastSeen time.Time
}

// canAct reports whether the session may change anything.
func (s *signedIn) canAct() bool { return s.role == admin.RoleManage }

// sessions holds the console sessions by the SHA-256 of their id, so that a lookup's
// timing tells nothing about the ids held.
type sessions struct {
	idle, max time.Duration

	mu   sync.Mutex
	byID map[[32]byte]*signedIn
}

func newSessions(idle, max time.Duration) *sessions {
	return &sessions{idle: idle, max: max, byID: map[[32]byte]*signedIn{}}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// start opens a session and returns its id.
func (ss *sessions) start(actor string, role admin.Role, now time.Time) (string, *signedIn) {
	id := randomToken()
	s := &signedIn{actor: actor, role: role, csrf: randomToken(), started: now, lastSeen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.sweep(now)
	if len(ss.byID) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, v := range ss.byID {
			if at.IsZero() || v.started.Before(at) {
				oldest, at = k, v.started
			}
		}
		delete(ss.byID, oldest)
	}
	ss.byID[sha256.Sum256([]byte(id))] = s
	return id, s
}

// sweep drops the expired sessions; ss.mu is held.
func (ss *sessions) sweep(now time.Time) {
	for k, v := range ss.byID {
		if ss.expired(v, now) {
			delete(ss.byID, k)
		}
	}
}

func (ss *sessions) expired(s *signedIn, now time.Time) bool {
	return now.Sub(s.lastSeen) >= ss.idle || now.Sub(s.started) >= ss.max
}

// get returns the live session with that id and marks it used; an expired one is ended.
func (ss *sessions) get(id string, now time.Time) (*signedIn, bool) {
	if id == "" {
		return nil, false
	}
	k := sha256.Sum256([]byte(id))
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[k]
	if !ok {
		return nil, false
	}
	if ss.expired(s, now) {
		delete(ss.byID, k)
		return nil, false
	}
	s.lastSeen = now
	c := *s
	return &c, true
}

// end ends the session with that id.
func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, sha256.Sum256([]byte(id)))
}

// secure reports whether the browser reached sessiond over TLS (directly, or through a
// proxy whose headers are trusted: core/forwarded sets the scheme).
func secure(r *http.Request) bool { return r.TLS != nil || r.URL.Scheme == "https" }

// setCookie gives the browser the session's id.
func setCookie(w http.ResponseWriter, r *http.Request, id string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: id, Path: Path, HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: int(maxAge / time.Second),
	})
}

// clearCookie takes the session's cookie back.
func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: Path, HttpOnly: true, Secure: secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: -1, Expires: time.Unix(0, 0),
	})
}

// sameOrigin is the browser's half of the CSRF defence: a POST that says it comes from
// another site (Sec-Fetch-Site) or another origin (Origin) is refused, whatever it
// carries. A request that says neither (an old browser, a script) still needs the token.
//
// Sec-Fetch-Site, where the browser sends it, decides: the console's pages are served with
// Referrer-Policy: no-referrer, under which a browser sends "Origin: null" with their own
// forms. Without it, Origin must be the console's: the host the request was sent to, or the
// configured hostname (a proxy that does not pass the Host header on).
func (c *Console) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Host == r.Host || (c.hostname != "" && strings.EqualFold(origin, c.hostname))
}

// validCSRF compares a form's token with the session's, in constant time.
func validCSRF(s *signedIn, got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}
