package main

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Issue 16 item 6 across nodes: two sessiond processes on one PostgreSQL schema. An action
// token the front-end mints on A is redeemed on B, then refused on both as used; a token
// redeemed by many requests on both nodes at once is redeemed exactly once.
func TestActionTokens_singleUseAcrossTwoNodes(t *testing.T) {
	t.Parallel()
	a, b, _ := startTwoNodes(t)
	ca, cb := newAPIClient(a.base, 10*time.Second), newAPIClient(b.base, 10*time.Second)
	defer ca.close()
	defer cb.close()

	mint := func(c *apiClient, action string) string {
		t.Helper()
		r, err := c.frontendIn(persistRealm, "/action-tokens", map[string]any{"user_id": "alice-id", "action": action, "email": "alice@example.test"})
		if err != nil || r.status != http.StatusCreated {
			t.Fatalf("mint %s: %v %s", action, err, r.summary())
		}
		var m struct {
			Token     string `json:"token"`
			ExpiresIn int64  `json:"expires_in"`
		}
		if err := json.Unmarshal([]byte(r.body), &m); err != nil || m.Token == "" || m.ExpiresIn != 300 {
			t.Fatalf("mint answer %s: %v; want a token living User-Initiated Action Lifespan (300 s)", r.body, err)
		}
		return m.Token
	}
	consume := func(c *apiClient, raw string) *apiResult {
		t.Helper()
		r, err := c.frontendIn(persistRealm, "/action-tokens/consume", map[string]any{"token": raw})
		if err != nil {
			t.Fatalf("consume: %v", err)
		}
		return r
	}

	raw := mint(ca, "verify-email")
	if r := consume(cb, raw); r.status != http.StatusOK {
		t.Fatalf("redeem on B the token minted on A: %s", r.summary())
	}
	for name, c := range map[string]*apiClient{"A": ca, "B": cb} {
		if r := consume(c, raw); r.status != http.StatusConflict || r.Error != "used_action_token" {
			t.Errorf("second redemption on %s: %s, want 409 used_action_token", name, r.summary())
		}
	}

	race := mint(cb, "reset-credentials")
	var mu sync.Mutex
	var wg sync.WaitGroup
	outcomes := map[int]int{}
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := ca
			if i%2 == 1 {
				c = cb
			}
			r, err := c.frontendIn(persistRealm, "/action-tokens/consume", map[string]any{"token": race})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("consume: %v", err)
				return
			}
			outcomes[r.status]++
		}()
	}
	wg.Wait()
	if outcomes[http.StatusOK] != 1 || outcomes[http.StatusConflict] != 11 {
		t.Errorf("12 concurrent redemptions on two nodes answered %v, want one 200 and eleven 409", outcomes)
	}
}
