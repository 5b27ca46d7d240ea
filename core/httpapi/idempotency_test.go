package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"

	"github.com/sessiond/sessiond/core/httpapi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// lostAnswers is a store whose next creates commit and then end as a commit without an
// answer (usersessions.ErrOutcomeUnknown), as PostgreSQL's do when a synchronous standby is
// gone and the statement timeout ends the wait.
type lostAnswers struct {
	usersessions.Provider
	left atomic.Int32 // creates still to lose the answer of
}

func (l *lostAnswers) Create(ctx context.Context, sessions []*usersessions.UserSession) ([]error, error) {
	errs, err := l.Provider.Create(ctx, sessions)
	if err == nil && l.left.Add(-1) >= 0 {
		return nil, fmt.Errorf("create user sessions: %w", usersessions.ErrOutcomeUnknown)
	}
	return errs, err
}

func (s *stack) rows(tb testing.TB, userID string) int {
	tb.Helper()
	n, err := s.store.Count(s.ctx, usersessions.Filter{RealmID: realmName, UserID: userID, Offline: usersessions.Both})
	if err != nil {
		tb.Fatal(err)
	}
	return int(n)
}

// withKey is an open of l with an Idempotency-Key header of value v.
func withKey(l login, v string) call {
	c := jsonCall(sessionsPath(realmName), frontendToken, withDefaults(l))
	c.header.Set("Idempotency-Key", v)
	return c
}

// TestIdempotentOpen_retryAfterUnknownOutcome: the first open's commit got no answer (503,
// the session stored); the retry with the same key, on the same node or another, answers 201
// with that session, leaves one session (online and offline), and its tokens work.
func TestIdempotentOpen_retryAfterUnknownOutcome(t *testing.T) {
	for _, tc := range []struct {
		name     string
		l        login
		sessions int // online and offline rows of one login
		other    bool
	}{
		{"same node", login{}, 1, false},
		{"offline", login{Scope: "openid offline_access", OfflineAccess: true}, 2, false},
		{"another node", login{}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &lostAnswers{Provider: memoryStore(t)}
			a := newStack(t, withStore(store))
			b := a
			if tc.other {
				b = newStack(t, withStore(store))
			}
			const key = `"5b0cf1b0-58c0-4f1c-9d53-2c1f1c0a3a5e"`
			store.left.Store(1)
			a.do(t, withKey(tc.l, key)).refused(t, http.StatusServiceUnavailable, "temporarily_unavailable", "")
			if n := a.rows(t, user); n != tc.sessions {
				t.Fatalf("%d sessions after the first attempt, want %d (committed)", n, tc.sessions)
			}
			stored := a.snapshot(t)[0].ID
			var got tokens
			b.do(t, withKey(tc.l, key)).decode(t, http.StatusCreated, &got)
			if got.SessionID != stored {
				t.Errorf("the retry answered session %s, want the stored %s", got.SessionID, stored)
			}
			if n := a.rows(t, user); n != tc.sessions {
				t.Errorf("%d sessions after the retry, want %d", n, tc.sessions)
			}
			if r := b.refresh(t, confidentialAuth, got.RefreshToken); r.SessionState != stored {
				t.Errorf("refresh answered session %s", r.SessionState)
			}
			if in := b.introspect(t, got.AccessToken); !in.Active {
				t.Errorf("the retry's access token is not active: %+v", in)
			}
			// The bare value is the same key as the Structured Field string.
			var again tokens
			b.do(t, withKey(tc.l, strings.Trim(key, `"`))).decode(t, http.StatusCreated, &again)
			if again.SessionID != stored || a.rows(t, user) != tc.sessions {
				t.Errorf("the bare key answered session %s, %d sessions", again.SessionID, a.rows(t, user))
			}
		})
	}
}

// TestIdempotentOpen_refusals: a key reused with another request is refused with 422 and
// changes nothing; a malformed key is refused, not ignored; without a key a retry opens a
// second session, as documented.
func TestIdempotentOpen_refusals(t *testing.T) {
	s := newStack(t)
	first := tokens{}
	s.do(t, withKey(login{}, "k-1")).decode(t, http.StatusCreated, &first)
	before := s.snapshot(t)
	for _, tc := range []struct {
		name   string
		c      call
		status int
		code   string
		desc   string
	}{
		{"another user", withKey(login{UserID: "u-2", Username: "bob"}, "k-1"), http.StatusUnprocessableEntity, httpapi.IdempotencyKeyReused, "another request"},
		{"another scope", withKey(login{Scope: "openid email"}, "k-1"), http.StatusUnprocessableEntity, httpapi.IdempotencyKeyReused, "another request"},
		{"remember me", withKey(login{RememberMe: true}, "k-1"), http.StatusUnprocessableEntity, httpapi.IdempotencyKeyReused, "another request"},
		{"empty", withKey(login{}, `""`), http.StatusBadRequest, "invalid_request", "Idempotency-Key: empty"},
		{"too long", withKey(login{}, strings.Repeat("k", 256)), http.StatusBadRequest, "invalid_request", "longer than 255"},
		{"not ASCII", withKey(login{}, "clé"), http.StatusBadRequest, "invalid_request", "printable ASCII"},
		{"bad escape", withKey(login{}, `"a\b"`), http.StatusBadRequest, "invalid_request", "escapes only"},
		{"twice", func() call {
			c := withKey(login{}, "k-1")
			c.header.Add("Idempotency-Key", "k-2")
			return c
		}(), http.StatusBadRequest, "invalid_request", "give it once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.do(t, tc.c).refused(t, tc.status, tc.code, tc.desc)
			s.unchanged(t, before)
		})
	}
	t.Run("another client, another session", func(t *testing.T) {
		var other tokens
		s.do(t, withKey(login{ClientID: spa}, "k-1")).decode(t, http.StatusCreated, &other)
		if other.SessionID == first.SessionID {
			t.Errorf("one key on two clients answered one session %s", first.SessionID)
		}
	})
	t.Run("without a key a retry leaves two", func(t *testing.T) {
		store := &lostAnswers{Provider: memoryStore(t)}
		s := newStack(t, withStore(store))
		store.left.Store(1)
		s.do(t, jsonCall(sessionsPath(realmName), frontendToken, withDefaults(login{}))).refused(t, http.StatusServiceUnavailable, "temporarily_unavailable", "")
		s.open(t, login{})
		if n := s.rows(t, user); n != 2 {
			t.Errorf("%d sessions, want 2", n)
		}
	})
}

// TestAcceptRetried_afterUnknownOutcome: an accept whose session create got no answer (503)
// is retried; the retry records the session the first stored, the browser finishes the
// login with it, and one session is left.
func TestAcceptRetried_afterUnknownOutcome(t *testing.T) {
	store := &lostAnswers{Provider: memoryStore(t)}
	s := newLoginStack(t, withStore(store))
	web := s.rp(t, confidential, confidentialSecret, rpCallback, "openid")
	var challenge string
	s.fe.setDecide(func(lr loginRequest) map[string]any { challenge = lr.Challenge; return nil })
	b := s.newBrowser()
	verifier := oauth2.GenerateVerifier()
	if back, status := b.visit(t, web.conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))); back != nil || status != http.StatusOK {
		t.Fatalf("the browser went to %v (%d), want the front-end's page", back, status)
	}
	var to struct {
		RedirectTo string `json:"redirect_to"`
	}
	store.left.Store(1)
	if status, _ := s.fe.call(http.MethodPut, loginRequestPath(realmName, challenge)+"/accept", acceptAlice(loginRequest{}), &to); status != http.StatusServiceUnavailable {
		t.Fatalf("first accept answered %d, want 503", status)
	}
	if n := s.rows(t, user); n != 1 {
		t.Fatalf("%d sessions after the first accept, want 1 (committed)", n)
	}
	stored := s.snapshot(t)[0].ID
	if status, err := s.fe.call(http.MethodPut, loginRequestPath(realmName, challenge)+"/accept", acceptAlice(loginRequest{}), &to); err != nil {
		t.Fatalf("retried accept: %d %v", status, err)
	}
	back, _ := b.visit(t, to.RedirectTo)
	if back == nil || back.Query().Get("code") == "" {
		t.Fatalf("the browser came back to %v, want the client with a code", back)
	}
	tok, err := web.conf.Exchange(web.ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	if sid, _ := tok.Extra("session_state").(string); sid != stored {
		t.Errorf("the code's tokens are of session %q, want the stored %s", sid, stored)
	}
	if n := s.rows(t, user); n != 1 {
		t.Errorf("%d sessions after the retried accept, want 1", n)
	}
}
