package realm

import (
	"strings"
	"testing"
)

// Issue 19, point 5: what a realm file's author is told.

func TestPoint5_realmFileErrorsSayWhereAndWhatInJSONTerms(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
		never      []string
	}{
		{"a trailing comma: line and column", "{\n  \"realm\": \"acme\",\n}\n",
			[]string{"acme.json: line 3, column 1: invalid character '}'"}, nil},
		{"a string where seconds go: the field and the JSON types", `{"realm": "acme", "ssoSessionIdleTimeout": "1800"}`,
			[]string{"line 1, column 49", "ssoSessionIdleTimeout is a JSON string, but sessiond reads it as a whole number"},
			[]string{"realmFile", "int64", "Go"}},
		{"a number where clients go", `{"realm": "acme", "clients": 3}`,
			[]string{"clients is a JSON number, but sessiond reads it as an array"}, []string{"clientFile"}},
		{"a client's attribute of the wrong type", `{"realm": "acme", "clients": [{"clientId": "app", "attributes": {"client.session.idle.timeout": 60}}]}`,
			[]string{"line 1, column 98: clients.attributes is a JSON number, but sessiond reads it as a string"}, nil},
		{"the file ends early", `{"realm": "acme"`, []string{"line 1, column 16", "the file ends before the JSON does"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tc.file), "acme.json")
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q says %q", err, n)
				}
			}
		})
	}
}

func TestPoint5_timeoutsOfZeroOrLessFallBackToTheDefaultWithAWarning(t *testing.T) {
	for _, tc := range []struct {
		field string
		value string
		want  string // "" for no warning
	}{
		{"ssoSessionIdleTimeout", "0", "acme.json: ssoSessionIdleTimeout is 0; Keycloak reads a value of 0 or less as not set, so the default 1800 s (30m0s) applies"},
		{"ssoSessionIdleTimeout", "-60", "ssoSessionIdleTimeout is -60; Keycloak reads a value of 0 or less as not set, so the default 1800 s"},
		{"ssoSessionMaxLifespan", "0", "ssoSessionMaxLifespan is 0; Keycloak reads a value of 0 or less as not set, so the default 36000 s"},
		{"accessTokenLifespan", "-1", "accessTokenLifespan is -1; Keycloak reads a value of 0 or less as not set, so the default 300 s"},
		{"clientSessionIdleTimeout", "0", ""}, // its default is "not set": 0 is the usual value of every export
		{"clientSessionIdleTimeout", "-5", "clientSessionIdleTimeout is -5; Keycloak reads a value of 0 or less as not set, so it is not set"},
		{"ssoSessionIdleTimeout", "600", ""},
	} {
		t.Run(tc.field+"="+tc.value, func(t *testing.T) {
			realms, err := Load(strings.NewReader(`{"realm": "acme", "`+tc.field+`": `+tc.value+`}`), "acme.json")
			if err != nil {
				t.Fatal(err)
			}
			warnings, err := realms[0].Validate()
			if err != nil {
				t.Fatal(err)
			}
			var found []string
			for _, w := range warnings {
				if w.Code == CodeTimeoutDefault {
					found = append(found, w.Message)
				}
			}
			switch {
			case tc.want == "" && len(found) > 0:
				t.Errorf("warned %q, want nothing", found)
			case tc.want != "" && (len(found) != 1 || !strings.Contains(found[0], tc.want)):
				t.Errorf("warned %q, want one saying %q", found, tc.want)
			}
			if tc.value != "600" && realms[0].Effective().SSOSessionIdle != Defaults().SSOSessionIdle && tc.field == "ssoSessionIdleTimeout" {
				t.Errorf("effective idle %s, want the default", realms[0].Effective().SSOSessionIdle)
			}
		})
	}
}
