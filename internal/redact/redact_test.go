package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://app.test/admin", "https://app.test/admin"},
		{"https://user:hunter2@app.test/admin/k_push_not_before", "https://app.test/admin/k_push_not_before"},
		{"https://tok3n@app.test/hook?x=1", "https://app.test/hook?x=1"},
		{"http://u:hunter2@app.test:99999/x", "http://app.test:99999/x"}, // parses
		{"http://u:hunter2@app.test:port/x", "http://app.test:port/x"},   // invalid port: does not parse
		{"http://u:hun ter2@app.test/x\x7f", "http://app.test/x\x7f"},    // control character: does not parse
		{"u:hunter2@app.test/x", "u:app.test/x"},                         // no scheme: "u" reads as one
		{"https:u:hunter2@app.test/x", "https:app.test/x"},               // opaque
		{"mailto:ops@example.test", "mailto:example.test"},               // opaque with @
		{"", ""},
		{"not a url", "not a url"},
		{"https://app.test/path@with-at", "https://app.test/path@with-at"},
		// Secret query parameters, in a URL that parses and in one that does not.
		{"https://app.test/hook?token=hunter2&x=1", "https://app.test/hook?token=xxxxx&x=1"},
		{"https://app.test/hook?x=1&Client_Secret=hunter2#frag", "https://app.test/hook?x=1&Client_Secret=xxxxx#frag"},
		{"https://app.test/hook?pass%77ord=hunter2", "https://app.test/hook?pass%77ord=xxxxx"}, // an encoded name
		{"http://u:p@app.test:port/x?password=hunter2&a=b#f", "http://app.test:port/x?password=xxxxx&a=b#f"},
		{"https://app.test/hook?password", "https://app.test/hook?password"}, // no value to hide
	} {
		got := URL(tc.in)
		if got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if strings.Contains(got, "hunter2") {
			t.Errorf("URL(%q) = %q keeps the password", tc.in, got)
		}
	}
}

// TestConnString: issue 15, "`?password=` in a PostgreSQL URL is logged": every way lib/pq
// takes a password is masked, and the rest stays readable.
func TestConnString(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"URL without secrets", "postgres://db.test:5432/sessions?sslmode=require", "postgres://db.test:5432/sessions?sslmode=require"},
		{"URL user and password", "postgres://app:hunter2@db.test/sessions", "postgres://db.test/sessions"},
		{"URL password parameter", "postgres://app@db.test/sessions?sslmode=disable&password=hunter2", "postgres://db.test/sessions?sslmode=disable&password=xxxxx"},
		{"URL sslpassword parameter", "postgresql://db.test/s?sslpassword=hunter2&sslcert=/c.pem", "postgresql://db.test/s?sslpassword=xxxxx&sslcert=/c.pem"},
		{"URL both, upper case", "postgres://db.test/s?PASSWORD=hunter2&SSLPassword=hunter2", "postgres://db.test/s?PASSWORD=xxxxx&SSLPassword=xxxxx"},
		{"URL that does not parse", "postgres://app:hunter2@db.test:port/s?password=hunter2", "postgres://db.test:port/s?password=xxxxx"},
		{"key=value", "host=db.test user=app password=hunter2 dbname=s", "host=db.test user=app password=xxxxx dbname=s"},
		{"key=value quoted", "host=db.test password='hunter2 with space' sslmode=disable", "host=db.test password=xxxxx sslmode=disable"},
		{"key=value quoted with escapes", `password='hun\'ter2' host=db.test`, "password=xxxxx host=db.test"},
		{"key=value escaped unquoted", `password=hun\ ter2 host=db.test`, "password=xxxxx host=db.test"},
		{"key = value with spaces", "host = db.test password = hunter2", "host = db.test password = xxxxx"},
		{"key=value sslpassword", "sslpassword=hunter2 sslkey=/k.pem", "sslpassword=xxxxx sslkey=/k.pem"},
		{"key=value unclosed quote", "password='hunter2", "password=xxxxx"},
		// libpq skips the space after "=": the value is "host=db.test".
		{"key=value space after =", "password= hunter2 host=db.test", "password= xxxxx host=db.test"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ConnString(tc.in)
			if got != tc.want {
				t.Errorf("ConnString(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if strings.Contains(got, "hunter2") || strings.Contains(got, "ter2") {
				t.Errorf("ConnString(%q) = %q keeps the password", tc.in, got)
			}
		})
	}
}
