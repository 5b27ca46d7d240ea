package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
)

// withRotation turns Revoke Refresh Token on in acme, with max reuse 0 and a grace window.
func withRotation(grace time.Duration) option {
	return withRealm(func(r *realm.Realm) {
		r.RevokeRefreshToken, r.RefreshTokenMaxReuse, r.RefreshTokenGraceWindow = true, 0, grace
	})
}

// refreshAtOnce sends n refreshes of raw at the same moment and returns the answers.
func (s *stack) refreshAtOnce(tb testing.TB, raw string, n int) []tokens {
	tb.Helper()
	c := refreshCall(realmName, confidentialAuth, raw)
	out := make([]tokens, n)
	errs := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(s.ctx, c.method, s.srv.URL+c.path, strings.NewReader(c.body))
			if err != nil {
				errs[i] = err.Error()
				return
			}
			req.Header = c.header.Clone()
			<-start
			resp, err := s.client.Do(req)
			if err != nil {
				errs[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &out[i]) != nil {
				errs[i] = resp.Status + " " + string(body)
			}
		})
	}
	close(start)
	wg.Wait()
	for i, e := range errs {
		if e != "" {
			tb.Fatalf("refresh %d of %d at once: %s", i+1, n, e)
		}
	}
	return out
}

// TestLineageHoldsForConcurrentRefreshes: issue 15, "with a rotation grace window, more than
// 16 concurrent refreshes leave tokens that later count as stale lineage". 64 refreshes of
// one token at once through HTTP, on the stores that persist, all succeed; each token they
// handed out refreshes in turn (the first rotates, the rest are reuses within the grace
// window); and after the window the documented rule holds for the generation as a whole.
func TestLineageHoldsForConcurrentRefreshes(t *testing.T) {
	t.Parallel()
	const n = 64
	for _, st := range everyStore[1:] { // postgres, embedded
		t.Run(st.name, func(t *testing.T) {
			s := newStack(t, withStore(st.store(t)), withRotation(30*time.Second))
			login := s.open(t, login{})
			first := s.refreshAtOnce(t, login.RefreshToken, n)
			var second []tokens
			for i, g := range first {
				var next tokens
				got := s.do(t, refreshCall(realmName, confidentialAuth, g.RefreshToken))
				if got.status != http.StatusOK {
					t.Fatalf("token %d of %d handed out at once: %d %s", i+1, n, got.status, got.body)
				}
				got.decode(t, http.StatusOK, &next)
				second = append(second, next)
			}
			s.clock.Advance(time.Minute)
			s.refresh(t, confidentialAuth, second[n-1].RefreshToken) // rotates
			s.clock.Advance(time.Minute)
			s.do(t, refreshCall(realmName, confidentialAuth, second[0].RefreshToken)).
				refused(t, http.StatusBadRequest, "invalid_grant", "Maximum allowed refresh token reuse exceeded")
			s.do(t, refreshCall(realmName, confidentialAuth, first[n/2].RefreshToken)).
				refused(t, http.StatusBadRequest, "invalid_grant", "Stale token")
		})
	}
}
