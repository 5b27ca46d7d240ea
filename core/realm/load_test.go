package realm

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func sec(n int) time.Duration { return time.Duration(n) * time.Second }

// Brief "load realms from JSON realm files using Keycloak's realm-representation field names":
// every timeout of seeds 000/004's Sessions and Tokens tabs maps to its own field.
func TestLoad_seed000_everySessionAndTokenTimeoutMapsFromKeycloakNames(t *testing.T) {
	realms, err := LoadFiles(filepath.Join("testdata", "full.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(realms) != 1 {
		t.Fatalf("got %d realms, want 1", len(realms))
	}
	want := &Realm{
		Name:      "acme",
		Enabled:   true,
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Timeouts: Timeouts{
			SSOSessionIdle:              sec(1801),
			SSOSessionMax:               sec(36001),
			SSOSessionIdleRememberMe:    sec(604800),
			SSOSessionMaxRememberMe:     sec(2592000),
			ClientSessionIdle:           sec(900),
			ClientSessionMax:            sec(18000),
			OfflineSessionIdle:          sec(2592001),
			OfflineSessionMaxLimited:    true,
			OfflineSessionMax:           sec(5184001),
			ClientOfflineSessionIdle:    sec(86400),
			ClientOfflineSessionMax:     sec(172800),
			AccessTokenLifespan:         sec(301),
			AccessTokenLifespanImplicit: sec(901),
			ClientLoginTimeout:          sec(61),
			LoginTimeout:                sec(1802),
			LoginActionTimeout:          sec(302),
			UserActionLifespan:          sec(303),
			AdminActionLifespan:         sec(43201),
		},
		ActionLifespans: map[string]time.Duration{
			ActionVerifyEmail: sec(600), ActionIdPVerifyAccount: sec(601), ActionResetCredentials: sec(602),
			ActionExecuteActions: sec(603), "acme.invite": sec(7200),
		},
		RevokeRefreshToken:                  true,
		RefreshTokenMaxReuse:                2,
		RefreshTokenGraceWindow:             sec(30),
		EndClientSessionOnRefreshTokenReuse: true,
		Source:                              filepath.Join("testdata", "full.json"),
		Clients: []*Client{
			{
				ID:                   "0b7c-uuid",
				ClientID:             "portal",
				Secret:               "s3cr3t",
				Enabled:              true,
				AdminURL:             "https://portal.example/admin",
				BackchannelLogoutURL: "https://portal.example/bc-logout",
				RedirectURIs:         []string{"https://portal.example/*"},
				OfflineAccess:        true,
				NotBefore:            time.Date(2026, 1, 1, 0, 1, 40, 0, time.UTC),
				SessionIdle:          sec(600),
				SessionMax:           sec(7200),
				OfflineSessionIdle:   sec(3600),
				OfflineSessionMax:    sec(86400),
				AccessTokenLifespan:  sec(120),
			},
			{
				ID:           "spa",
				ClientID:     "spa",
				PublicClient: true,
				Enabled:      true,
				RedirectURIs: []string{"https://spa.example/*"},
			},
		},
	}
	got := realms[0]
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded realm differs\n got: %#v\nwant: %#v", *got, *want)
		for i := range min(len(got.Clients), len(want.Clients)) {
			if !reflect.DeepEqual(got.Clients[i], want.Clients[i]) {
				t.Errorf("client %d\n got: %+v\nwant: %+v", i, *got.Clients[i], *want.Clients[i])
			}
		}
	}
	if got.Clients[0].Secret.Reveal() != "s3cr3t" {
		t.Errorf("secret not loaded")
	}
}

func TestLoad_strictness(t *testing.T) {
	tests := []struct {
		name, file string
		wantIn     []string
	}{
		{"brief: unknown realm field names field and file", "unknown_field.json", []string{"unknown_field.json", `"sslRequired"`}},
		{"brief: unknown client field names field and file", "unknown_client_field.json", []string{"unknown_client_field.json", `"bearerOnly"`}},
		{"brief: unknown client attribute is an error (a misspelt override must not pass)", "unknown_attribute.json", []string{"unknown_attribute.json", `"client.session.idle.timout"`, `"portal"`}},
		{"attribute value must be whole seconds", "bad_attribute.json", []string{"bad_attribute.json", `"access.token.lifespan"`, `"5m"`}},
		{"data after the realm is an error", "trailing.json", []string{"trailing.json", "unexpected data"}},
		{"a timeout of the wrong JSON type is an error", "wrong_type.json", []string{"wrong_type.json", "ssoSessionIdleTimeout"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadFiles(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

func TestLoad_arrayOfRealmsAndMissingFile(t *testing.T) {
	realms, err := LoadFiles(filepath.Join("testdata", "array.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(realms) != 2 || realms[0].Name != "one" || realms[1].Name != "two" {
		t.Fatalf("got %v", realms)
	}
	if realms[0].Enabled {
		t.Error(`"enabled": false not honoured`)
	}
	if !realms[1].Enabled {
		t.Error("absent enabled should mean enabled")
	}
	_, err = LoadFiles(filepath.Join("testdata", "absent.json"))
	if err == nil || !strings.Contains(err.Error(), "absent.json") {
		t.Errorf("missing file: got %v", err)
	}
}

// REFERENCE.md "a realm value ≤ 0 falls back to its default", with the defaults it lists and
// the seeds repeat (seed 002: idle 30 min, max 10 h, access 5 min; seed 001: offline idle
// 30 days; seed 000: offline max 60 days).
func TestEffective_REFERENCE_valuesAtOrBelowZeroFallBackToKeycloakDefaults(t *testing.T) {
	want := map[string]time.Duration{
		"SSOSessionIdle":              30 * time.Minute,
		"SSOSessionMax":               10 * time.Hour,
		"SSOSessionIdleRememberMe":    0,
		"SSOSessionMaxRememberMe":     0,
		"ClientSessionIdle":           0,
		"ClientSessionMax":            0,
		"OfflineSessionIdle":          30 * 24 * time.Hour,
		"OfflineSessionMax":           60 * 24 * time.Hour,
		"ClientOfflineSessionIdle":    0,
		"ClientOfflineSessionMax":     0,
		"AccessTokenLifespan":         5 * time.Minute,
		"AccessTokenLifespanImplicit": 15 * time.Minute,
		"ClientLoginTimeout":          60 * time.Second,
		"LoginTimeout":                30 * time.Minute,
		"LoginActionTimeout":          5 * time.Minute,
		"UserActionLifespan":          5 * time.Minute,
		"AdminActionLifespan":         12 * time.Hour,
	}
	for _, in := range []struct {
		name string
		t    Timeouts
	}{
		{"zero", Timeouts{}},
		{"negative", negativeTimeouts()},
	} {
		t.Run(in.name, func(t *testing.T) {
			eff := reflect.ValueOf(in.t.Effective())
			for name, d := range want {
				if got := eff.FieldByName(name).Interface().(time.Duration); got != d {
					t.Errorf("%s = %s, want %s", name, got, d)
				}
			}
			if eff.NumField() != len(want)+1 { // + OfflineSessionMaxLimited
				t.Errorf("Timeouts has %d fields, the test knows %d: add the new one", eff.NumField(), len(want)+1)
			}
		})
	}
	// Set values are kept.
	if got := (Timeouts{SSOSessionIdle: time.Hour}).Effective().SSOSessionIdle; got != time.Hour {
		t.Errorf("set value replaced: %s", got)
	}
}

func negativeTimeouts() Timeouts {
	var t Timeouts
	v := reflect.ValueOf(&t).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Type() == reflect.TypeFor[time.Duration]() {
			f.SetInt(-1)
		}
	}
	return t
}

// A realm file with a negative timeout loads as "not set" (Keycloak: ≤ 0 means default).
func TestLoad_REFERENCE_negativeTimeoutMeansDefault(t *testing.T) {
	realms, err := Load(strings.NewReader(`{"realm":"r","accessTokenLifespan":-1,"clients":[{"clientId":"c","secret":"x","attributes":{"access.token.lifespan":"-1"}}]}`), "inline")
	if err != nil {
		t.Fatal(err)
	}
	r := realms[0]
	if r.AccessTokenLifespan != 0 || r.Effective().AccessTokenLifespan != 5*time.Minute {
		t.Errorf("realm: %s / %s", r.AccessTokenLifespan, r.Effective().AccessTokenLifespan)
	}
	if r.Clients[0].AccessTokenLifespan != 0 {
		t.Errorf("client attribute -1 should be unset, got %s", r.Clients[0].AccessTokenLifespan)
	}
}

func TestLoad_truncatedJSONNamesSource(t *testing.T) {
	_, err := Load(strings.NewReader(`{`), "broken.json")
	if err == nil || !strings.Contains(err.Error(), "broken.json") {
		t.Fatalf("got %v", err)
	}
}

// TestLoad_loginSettings: the realm's login front-end URL and the clients' PKCE method and
// post-logout redirect URIs ("##" separated, as Keycloak stores them) are read.
func TestLoad_loginSettings(t *testing.T) {
	realms, err := Load(strings.NewReader(`{"realm":"acme","loginFrontendUrl":"https://login.example/l","clients":[
		{"clientId":"web","secret":"s","redirectUris":["https://app.example/cb"],
		 "attributes":{"pkce.code.challenge.method":"S256","post.logout.redirect.uris":"https://app.example/bye##https://app.example/"}}]}`), "inline")
	if err != nil {
		t.Fatal(err)
	}
	r := realms[0]
	c, _ := r.Client("web")
	if r.LoginFrontendURL != "https://login.example/l" || c.PKCEMethod != PKCES256 ||
		!slices.Equal(c.PostLogoutRedirectURIs, []string{"https://app.example/bye", "https://app.example/"}) {
		t.Errorf("loaded %q, client %+v", r.LoginFrontendURL, c)
	}
	if !c.RedirectAllowed("https://app.example/cb") || c.RedirectAllowed("https://app.example/cb2") || !c.PostLogoutRedirectAllowed("https://app.example/bye") {
		t.Error("redirect matching")
	}
}

// TestRedirectAllowed_wildcardIsAPrefixWithoutDotDot: Keycloak's trailing wildcard.
func TestRedirectAllowed_wildcardIsAPrefixWithoutDotDot(t *testing.T) {
	c := &Client{RedirectURIs: []string{"https://app.example/cb/*"}}
	for uri, want := range map[string]bool{
		"https://app.example/cb/x": true, "https://app.example/cb/": true, "https://app.example/cb": false,
		"https://app.example/cb/../admin": false, "https://app.example.evil/cb/x": false, "": false,
	} {
		if got := c.RedirectAllowed(uri); got != want {
			t.Errorf("RedirectAllowed(%q) = %v, want %v", uri, got, want)
		}
	}
}
