package runtime

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/core/token"
	"github.com/sessiond/sessiond/internal/testclock"
)

// The passive period of a realm's keys is the longest life of a token that kind of key
// signs, from the realm's settings and its clients' overrides; the secret's covers action
// tokens too.
func TestKeyPassiveFollowsTheRealmsLongestTokens(t *testing.T) {
	const leeway = 10 * time.Second
	day := 24 * time.Hour
	tests := []struct {
		name  string
		realm realm.Realm
		want  token.Passive
	}{
		{name: "Keycloak's defaults", realm: realm.Realm{Name: "a"},
			want: token.Passive{Published: 15*time.Minute + leeway, Secret: 30 * day}}, // implicit flow; offline idle
		{name: "a client's access token lifespan", realm: realm.Realm{Name: "a", Clients: []*realm.Client{{ClientID: "c", AccessTokenLifespan: time.Hour}}},
			want: token.Passive{Published: time.Hour + leeway, Secret: 30 * day}},
		{name: "remember-me idle longer than offline idle", realm: realm.Realm{Name: "a", Timeouts: realm.Timeouts{SSOSessionIdleRememberMe: 90 * day}},
			want: token.Passive{Published: 15*time.Minute + leeway, Secret: 90 * day}},
		{name: "short lifespans: logout tokens bound it", realm: realm.Realm{Name: "a", Timeouts: realm.Timeouts{
			AccessTokenLifespan: time.Minute, AccessTokenLifespanImplicit: time.Minute, OfflineSessionIdle: time.Hour}},
			want: token.Passive{Published: signedNoticeLifespan + leeway, Secret: 12 * time.Hour}}, // Default Admin-Initiated Action Lifespan
		{name: "short lifespans and short action lifespans", realm: realm.Realm{Name: "a", Timeouts: realm.Timeouts{
			AccessTokenLifespan: time.Minute, AccessTokenLifespanImplicit: time.Minute, OfflineSessionIdle: time.Hour, AdminActionLifespan: time.Minute}},
			want: token.Passive{Published: signedNoticeLifespan + leeway, Secret: time.Hour}},
		{name: "an action override longer than every session idle", realm: realm.Realm{Name: "a",
			ActionLifespans: map[string]time.Duration{realm.ActionExecuteActions: 45 * day}},
			want: token.Passive{Published: 15*time.Minute + leeway, Secret: 45 * day}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, _, err := realm.NewRealms(&tt.realm)
			if err != nil {
				t.Fatal(err)
			}
			passive := keyPassive(rs, leeway)
			if got := passive("a"); got != tt.want {
				t.Errorf("passive = %+v, want %+v", got, tt.want)
			}
			if got := passive("gone"); got != tt.want {
				t.Errorf("passive of a realm no longer there = %+v, want the longest of all, %+v", got, tt.want)
			}
		})
	}
}

// With key-rotation-interval set, the runtime's background check rotates a realm's keys once
// they are that old: the JWKS then has the new key first and the old one after it.
func TestKeysRotateOnTheInterval(t *testing.T) {
	e := newEnv(t)
	clock := testclock.New(time.Now())
	rt := e.start(Options{now: clock.Now}, nil, "--key-rotation-interval=1m")
	old := firstKID(t, rt)
	clock.Advance(time.Minute)
	deadline := time.Now().Add(15 * time.Second) // the check runs every interval/24, at least every second
	for {
		kids := jwksKIDs(t, rt)
		if len(kids) == 2 && kids[0] != old && kids[1] == old {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("JWKS %v a minute after the keys were made, want a new key then %s", kids, old)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
