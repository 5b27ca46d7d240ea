package realm

import (
	"strings"
	"testing"
)

func TestLoad_sessionLimitAttributes_readAsLimitsWithBehaviours(t *testing.T) {
	tests := []struct {
		name, attrs string
		want        SessionLimits
	}{
		{"none", `{}`, SessionLimits{}},
		{"Keycloak's limiter: one behaviour for both", `{"sessionLimits.userRealmLimit": "3", "sessionLimits.userClientLimit": "1",
			"sessionLimits.behavior": "Terminate oldest session", "sessionLimits.errorMessage": "Too many"}`,
			SessionLimits{UserRealm: Limit{3, true}, UserClient: Limit{1, true}, Client: Limit{0, true}, Realm: Limit{0, true}, ErrorMessage: "Too many"}},
		{"per-limit behaviour over the realm's", `{"sessionLimits.clientLimit": "100", "sessionLimits.realmLimit": "1000",
			"sessionLimits.behavior": "Terminate oldest session", "sessionLimits.realmBehavior": "Deny new session", "sessionLimits.countOffline": "true"}`,
			SessionLimits{UserRealm: Limit{0, true}, UserClient: Limit{0, true}, Client: Limit{100, true}, Realm: Limit{1000, false}, CountOffline: true}},
		{"empty values are not set", `{"sessionLimits.userRealmLimit": "", "sessionLimits.behavior": " "}`, SessionLimits{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := Load(strings.NewReader(`{"realm": "acme", "attributes": `+tc.attrs+`}`), "inline.json")
			if err != nil {
				t.Fatal(err)
			}
			if got := rs[0].SessionLimits; got != tc.want {
				t.Errorf("SessionLimits = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLoad_sessionLimitAttributes_refusedWithTheAttributeNamed(t *testing.T) {
	tests := []struct {
		name, attrs string
		wantIn      []string
	}{
		{"negative", `{"sessionLimits.userRealmLimit": "-1"}`, []string{`"sessionLimits.userRealmLimit"`, "0 (no limit)"}},
		{"not a number", `{"sessionLimits.clientLimit": "ten"}`, []string{`"ten"`}},
		{"unknown behaviour", `{"sessionLimits.behavior": "Kill them all"}`, []string{`"Kill them all"`, DenyNewSession, TerminateOldestSession}},
		{"misspelt name", `{"sessionLimits.userLimit": "1"}`, []string{"unknown attribute", "sessionLimits.userRealmLimit"}},
		{"countOffline not a bool", `{"sessionLimits.countOffline": "sometimes"}`, []string{"true or false"}},
		{"message too long", `{"sessionLimits.errorMessage": "` + strings.Repeat("x", 501) + `"}`, []string{"longer than 500"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantAttributesRefused(t, tc.attrs, tc.wantIn...) })
	}
}

func TestSessionLimits_anyAndMessage(t *testing.T) {
	if (SessionLimits{ErrorMessage: "x", CountOffline: true}).Any() {
		t.Error("Any with no limit set")
	}
	if !(SessionLimits{Realm: Limit{Max: 1}}).Any() {
		t.Error("not Any with a realm limit")
	}
	if got := (SessionLimits{}).Message(); got != DefaultLimitMessage {
		t.Errorf("Message = %q", got)
	}
}
