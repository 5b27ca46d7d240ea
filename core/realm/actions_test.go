package realm

import (
	"strings"
	"testing"
	"time"
)

// Seeds 000/001/004 "Override User-Initiated Action Lifespan": each override is a realm
// attribute named after the action; a bad one is refused with the attribute and the rule.
func TestLoad_actionLifespanAttributes_refusedWithTheAttributeNamed(t *testing.T) {
	tests := []struct {
		name, attrs string
		wantIn      []string
	}{
		{"zero seconds", `{"actionTokenGeneratedByUserLifespan.verify-email": "0"}`, []string{`"actionTokenGeneratedByUserLifespan.verify-email"`, "positive whole number of seconds"}},
		{"negative seconds", `{"actionTokenGeneratedByUserLifespan.execute-actions": "-5"}`, []string{`execute-actions`, "positive"}},
		{"not a number", `{"actionTokenGeneratedByUserLifespan.reset-credentials": "5m"}`, []string{`reset-credentials`, `"5m"`}},
		{"beyond ten years", `{"actionTokenGeneratedByUserLifespan.reset-credentials": "9999999999"}`, []string{"up to"}},
		{"an unsafe custom action name", `{"actionTokenGeneratedByUserLifespan.a/b": "60"}`, []string{`"a/b"`, "not a valid action name"}},
		{"an empty action name", `{"actionTokenGeneratedByUserLifespan.": "60"}`, []string{"not a valid action name"}},
		{"a misspelt prefix", `{"actionTokenGeneratedByUserLifespn.verify-email": "60"}`, []string{"unknown attribute", "actionTokenGeneratedByUserLifespan.<action>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { wantAttributesRefused(t, tc.attrs, tc.wantIn...) })
	}
}

// wantAttributesRefused loads realm acme with the attributes (a JSON object) from
// inline.json and wants an error naming the file, the realm and each of wantIn.
func wantAttributesRefused(t *testing.T, attrs string, wantIn ...string) {
	t.Helper()
	_, err := Load(strings.NewReader(`{"realm": "acme", "attributes": `+attrs+`}`), "inline.json")
	if err == nil {
		t.Fatal("loaded, want an error")
	}
	for _, s := range append(wantIn, "inline.json", `"acme"`) {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
}

// Keycloak's RealmModel.getActionTokenGeneratedByUserLifespan(action): the override when the
// realm has one for the action, else User-Initiated Action Lifespan, which itself, when not
// set, is Login action timeout (accessCodeLifespanUserAction), else 5 minutes.
func TestUserActionLifespanFor_overrideElseUserInitiatedElseLoginActionTimeout(t *testing.T) {
	tests := []struct {
		name   string
		realm  Realm
		action string
		want   time.Duration
	}{
		{"override of a Keycloak action", Realm{Timeouts: Timeouts{UserActionLifespan: sec(300)}, ActionLifespans: map[string]time.Duration{ActionVerifyEmail: sec(900)}}, ActionVerifyEmail, sec(900)},
		{"override of a custom action", Realm{ActionLifespans: map[string]time.Duration{"acme.invite": sec(7200)}}, "acme.invite", sec(7200)},
		{"no override: User-Initiated Action Lifespan", Realm{Timeouts: Timeouts{UserActionLifespan: sec(420)}, ActionLifespans: map[string]time.Duration{ActionVerifyEmail: sec(900)}}, ActionResetCredentials, sec(420)},
		{"nothing set: Login action timeout", Realm{Timeouts: Timeouts{LoginActionTimeout: sec(600)}}, ActionExecuteActions, sec(600)},
		{"nothing at all: 5 minutes", Realm{}, ActionExecuteActions, 5 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.realm.UserActionLifespanFor(tc.action); got != tc.want {
				t.Errorf("UserActionLifespanFor(%q) = %s, want %s", tc.action, got, tc.want)
			}
		})
	}
}

func TestValidate_actionLifespansInCode_mustBePositiveSecondsWithSafeNames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spans  map[string]time.Duration
		wantIn string
	}{
		{"zero", map[string]time.Duration{ActionVerifyEmail: 0}, "positive whole number of seconds"},
		{"a fraction of a second", map[string]time.Duration{ActionVerifyEmail: 1500 * time.Millisecond}, "positive whole number of seconds"},
		{"a bad name", map[string]time.Duration{"no spaces": sec(60)}, "not a valid action name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Realm{Name: "acme", Enabled: true, ActionLifespans: tc.spans}
			_, err := r.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantIn) || !strings.Contains(err.Error(), "attributes."+AttrActionLifespanPrefix) {
				t.Errorf("Validate = %v, want a problem naming the attribute and %q", err, tc.wantIn)
			}
		})
	}
}

func TestClone_actionLifespansAreCopied(t *testing.T) {
	r := &Realm{Name: "acme", ActionLifespans: map[string]time.Duration{ActionVerifyEmail: sec(60)}}
	c := r.Clone()
	c.ActionLifespans[ActionVerifyEmail] = sec(1)
	if r.ActionLifespans[ActionVerifyEmail] != sec(60) {
		t.Error("changing the clone's overrides changed the original's")
	}
}
