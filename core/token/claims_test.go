package token

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
)

// checkWireJSON fails unless appendJSON writes what encoding/json writes for w.
func checkWireJSON(t *testing.T, w wire) {
	t.Helper()
	want, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.appendJSON(nil); !bytes.Equal(got, want) {
		t.Errorf("appendJSON\n%s\nencoding/json\n%s", got, want)
	}
}

func TestWireJSON(t *testing.T) {
	full := wire{Exp: 1772352300, Iat: 1772352000, Jti: "jti-1", Iss: "https://sso.example.com/realms/acme",
		Aud: audience{"web"}, Sub: "u-1", Typ: Bearer, Azp: "web", Sid: "s-1", SessionState: "s-1",
		Scope: "openid profile", Username: "alice", Cnf: &Cnf{JKT: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}
	tests := map[string]func(w *wire){
		"every claim":          func(w *wire) {},
		"no optional claims":   func(w *wire) { w.Aud, w.Sid, w.SessionState, w.Scope, w.Username, w.Cnf = nil, "", "", "", "", nil },
		"empty audience":       func(w *wire) { w.Aud = audience{} },
		"empty audience value": func(w *wire) { w.Aud = audience{""} },
		"several audiences":    func(w *wire) { w.Aud = audience{"a", "b<c>", "d"} },
		"negative and zero":    func(w *wire) { w.Exp, w.Iat = -1, 0 },
		"empty required":       func(w *wire) { w.Jti, w.Iss, w.Sub, w.Typ, w.Azp = "", "", "", "", "" },
		"empty cnf":            func(w *wire) { w.Cnf = &Cnf{} },
		"HTML characters":      func(w *wire) { w.Username = `<script>&"'` },
		"escapes":              func(w *wire) { w.Scope = "a\\b\"c\nd\re\tf\bg\fh\x00i\x1fj\x7fk" },
		"non-ASCII":            func(w *wire) { w.Username = "Zoë 日本 \u2028\u2029 😀" },
		"invalid UTF-8":        func(w *wire) { w.Sub = "a\xffb\xc3" },
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			w := full
			change(&w)
			checkWireJSON(t, w)
		})
	}
	// Each character the plain path must not take alone, and its neighbours that it may.
	for _, c := range []string{"<", ">", "&", `\"`, `\\`, `\x00`, `\x1f`, " ", "~", `\x7f`, `\x80`, "é", `\u2028`, `\ufffd`} {
		t.Run("character "+c, func(t *testing.T) {
			s, err := strconv.Unquote(`"` + c + `"`)
			if err != nil {
				t.Fatal(err)
			}
			w := full
			w.Username = "a" + s + "b"
			checkWireJSON(t, w)
		})
	}
}

func FuzzWireJSON(f *testing.F) {
	f.Add(int64(1772352300), "jti", "https://sso.example.com/realms/acme", "web", "u-1", "openid", "alice", "", 1)
	f.Add(int64(-5), "<&>", "\u2028", "a\xffb", "\x00", "\"\\", "Zoë", "jkt", 3)
	f.Fuzz(func(t *testing.T, exp int64, jti, iss, aud, sub, scope, username, jkt string, auds int) {
		w := wire{Exp: exp, Iat: exp / 2, Jti: jti, Iss: iss, Sub: sub, Typ: Type(scope), Azp: aud, Sid: jti,
			SessionState: sub, Scope: scope, Username: username}
		for i := range auds % 4 {
			w.Aud = append(w.Aud, aud[:len(aud)*i/3])
		}
		if jkt != "" {
			w.Cnf = &Cnf{JKT: jkt}
		}
		checkWireJSON(t, w)
	})
}
