package realm

import (
	"strings"
	"testing"
)

// TestLoad_duplicateAndWrongCaseKeys: a realm file with a key given twice in one object, or
// a key matching a field only by case, is refused with the file, the line and column, and
// the key's path from the file's root. encoding/json would keep the last of the two (or read
// "RedirectUris" as redirectUris) where Keycloak, a diff or a reviewer reads the file
// otherwise.
func TestLoad_duplicateAndWrongCaseKeys(t *testing.T) {
	const client = `{"clientId":"portal","secret":"s","redirectUris":["https://portal.example/*"]}`
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"duplicate realm field", `{"realm":"acme","ssoSessionIdleTimeout":1800,
"ssoSessionIdleTimeout":99999999}`, []string{"acme.json: line 2, column 1: duplicate key ssoSessionIdleTimeout"}},
		{"duplicate in the second realm's client", `[{"realm":"one"},
{"realm":"two","clients":[` + client + `,
  {"clientId":"app","redirectUris":["https://app.example/*"],
   "redirectUris":["https://*"]}]}]`, []string{"acme.json: line 4, column 4: duplicate key [1].clients[1].redirectUris"}},
		{"duplicate client attribute", `{"realm":"acme","clients":[{"clientId":"app","attributes":{"client.session.idle.timeout":"60","client.session.idle.timeout":"6000"}}]}`,
			[]string{`duplicate key clients[0].attributes["client.session.idle.timeout"]`}},
		{"wrong-case realm field", `{"realm":"acme","SSOSessionIdleTimeout":1800}`, []string{`key SSOSessionIdleTimeout matches the field "ssoSessionIdleTimeout" only by case`}},
		{"wrong-case client field", `{"realm":"acme","clients":[{"clientId":"app","RedirectUris":["https://*"]}]}`, []string{`key clients[0].RedirectUris matches the field "redirectUris" only by case`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tc.file), "acme.json")
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			for _, s := range append(tc.want, "realm file acme.json") {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
	// Attribute names differing in case are two attributes (unknown ones are refused by
	// their own check); the same realms, each key once, load.
	for _, file := range []string{
		`[{"realm":"one"},{"realm":"two","clients":[` + client + `]}]`,
		`{"realm":"acme","ssoSessionIdleTimeout":1800,"clients":[` + client + `,{"clientId":"app","publicClient":true,"redirectUris":["https://app.example/*"]}]}`,
	} {
		if _, err := Load(strings.NewReader(file), "acme.json"); err != nil {
			t.Errorf("Load(%s): %v", file, err)
		}
	}
}
