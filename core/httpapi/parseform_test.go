package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// parseForm fills r.PostForm and fails as r.ParseForm does, for the requests form lets
// through: the same values, and an error exactly when ParseForm has one, of the same kind.
func TestParseFormIsParseForm(t *testing.T) {
	tests := []struct {
		name, method, target, body string
	}{
		{"refresh", http.MethodPost, "/t", "grant_type=refresh_token&refresh_token=eyJ.a.b&scope=openid+profile"},
		{"empty body", http.MethodPost, "/t", ""},
		{"repeated and empty", http.MethodPost, "/t", "a=1&a=2&b=&c"},
		{"escapes", http.MethodPost, "/t", "a=%41%2B%20b&%C3%A9=%E2%80%A8"},
		{"malformed escape", http.MethodPost, "/t", "a=%zz&b=2"},
		{"semicolon", http.MethodPost, "/t", "a=1;b=2"},
		{"query too", http.MethodPost, "/t?x=1&y=2", "a=1"},
		{"malformed query", http.MethodPost, "/t?x=%zz", "a=1"},
		{"malformed both", http.MethodPost, "/t?x=%zz", "a=%zz"},
		{"put", http.MethodPut, "/t", "a=1"},
		{"patch", http.MethodPatch, "/t", "a=1"},
		{"delete reads no body", http.MethodDelete, "/t?x=1", "a=1"},
		{"get reads no body", http.MethodGet, "/t", "a=1"},
		{"too big", http.MethodPost, "/t", "a=" + strings.Repeat("x", maxBody)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := func() *http.Request {
				r := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, maxBody)
				return r
			}
			want, got := req(), req()
			wantErr, gotErr := want.ParseForm(), parseForm(got)
			if !reflect.DeepEqual(got.PostForm, want.PostForm) {
				t.Errorf("PostForm %v, ParseForm's %v", got.PostForm, want.PostForm)
			}
			var wantBig, gotBig *http.MaxBytesError
			if (gotErr == nil) != (wantErr == nil) || errors.As(gotErr, &gotBig) != errors.As(wantErr, &wantBig) {
				t.Errorf("error %v, ParseForm's %v", gotErr, wantErr)
			}
			if again := parseForm(got); again != nil {
				t.Errorf("read again: %v", again)
			}
		})
	}
}

func TestIsForm(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/x-www-form-urlencoded":                true,
		"application/x-www-form-urlencoded; charset=UTF-8": true,
		"Application/X-WWW-Form-URLEncoded":                true,
		"application/x-www-form-urlencoded;":               true,
		"application/x-www-form-urlencoded; charset":       false,
		"application/json":                                 false,
		"multipart/form-data; boundary=x":                  false,
		"":                                                 false,
	} {
		if got := isForm(ct); got != want {
			t.Errorf("isForm(%q) = %v, want %v", ct, got, want)
		}
	}
}
