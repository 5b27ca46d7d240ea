package expiry

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/core/realm"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// Brief "Explain": for a session and each client session, the effective limits, the setting
// each came from, when each ends and which ends first, as JSON.
func TestExplain(t *testing.T) {
	r := rules(realm.Timeouts{SSOSessionIdle: hour, SSOSessionIdleRememberMe: 7 * day, SSOSessionMaxRememberMe: 14 * day},
		&realm.Client{ClientID: "portal", SessionMax: 2 * hour},
	)
	r.PersistentSessions = false
	us := &usersessions.UserSession{
		ID: "s1", RealmID: "acme", Started: t0, LastRefresh: at(hour), RememberMe: true,
		Clients: map[string]*usersessions.ClientSession{
			"portal": {ClientID: "portal", Started: t0, LastRefresh: at(hour)},
			"gone":   {ClientID: "gone", Started: t0, LastRefresh: at(hour)},
		},
	}
	now := at(3 * hour)
	e := r.Explain(us, now)

	if e.Expired || e.Session.EndsBy != EndsByIdle || e.Session.Idle.Source != "realm ssoSessionIdleTimeoutRememberMe" {
		t.Errorf("session: %+v", e.Session)
	}
	if e.Session.Max.Source != "realm ssoSessionMaxLifespanRememberMe" || !e.Session.Max.Ends.Equal(at(14*day)) {
		t.Errorf("session max: %+v", e.Session.Max)
	}
	if len(e.Clients) != 2 || e.Clients[0].ClientID != "gone" || e.Clients[1].ClientID != "portal" {
		t.Fatalf("clients not sorted by id: %+v", e.Clients)
	}
	gone, portal := e.Clients[0], e.Clients[1]
	if gone.Known || gone.Expired || gone.Expiry.Idle.Source != "realm ssoSessionIdleTimeoutRememberMe" {
		t.Errorf("unknown client uses the realm's values: %+v", gone)
	}
	if !portal.Known || !portal.Expired || portal.Expiry.EndsBy != EndsByMax ||
		portal.Expiry.Max.Source != "client attribute client.session.max.lifespan" || !portal.Expiry.Max.Ends.Equal(at(2*hour)) {
		t.Errorf("portal: %+v", portal)
	}
	if !strings.Contains(portal.Expiry.Why, "client attribute client.session.max.lifespan") {
		t.Errorf("why does not name the setting: %q", portal.Expiry.Why)
	}
	if !strings.Contains(e.Session.Why, "2m0s idle window") {
		t.Errorf("session why does not mention the window: %q", e.Session.Why)
	}

	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"realm", "sessionId", "offline", "rememberMe", "persistentSessions", "now", "expired", "session", "clients"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	session := m["session"].(map[string]any)
	for _, k := range []string{"idle", "max", "idleWindowSeconds", "expiresAt", "storedExpiresAt", "endsBy", "why"} {
		if _, ok := session[k]; !ok {
			t.Errorf("session JSON lacks %q", k)
		}
	}
	idle := session["idle"].(map[string]any)
	if idle["seconds"] != float64(7*86400) || idle["source"] != "realm ssoSessionIdleTimeoutRememberMe" {
		t.Errorf("idle JSON: %v", idle)
	}
	client := m["clients"].([]any)[1].(map[string]any)["expiry"].(map[string]any)
	if _, ok := client["userSession"]; !ok {
		t.Errorf("client JSON lacks the user-session limit: %v", client)
	}
}

// An offline session whose realm does not limit offline max explains why the configured
// max settings do not apply (seed 000), and that no max applies.
func TestExplain_seed000_offlineMaxNotLimitedIsExplained(t *testing.T) {
	r := rules(realm.Timeouts{OfflineSessionMax: day, ClientOfflineSessionMax: hour}, &realm.Client{ClientID: "app", OfflineSessionMax: hour})
	us := &usersessions.UserSession{ID: "s", RealmID: "acme", Started: t0, Offline: true,
		Clients: map[string]*usersessions.ClientSession{"app": {ClientID: "app", Started: t0}}}
	e := r.Explain(us, at(40*day))
	if !e.Expired || e.Session.Max != nil || !strings.Contains(e.Session.Why, "no max applies") {
		t.Errorf("session: %+v", e.Session)
	}
	ign := strings.Join(e.Clients[0].Expiry.Ignored, "\n")
	for _, s := range []string{"client attribute client.offline.session.max.lifespan", "realm clientOfflineSessionMaxLifespan", "seed 000"} {
		if !strings.Contains(ign, s) {
			t.Errorf("ignored %q lacks %q", ign, s)
		}
	}
}
