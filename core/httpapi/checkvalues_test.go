package httpapi

import (
	"errors"
	"net/url"
	"testing"

	"github.com/sessiond/sessiond/spi"
)

// checkValues names the name or the value that cannot be stored, as the 400's description.
func TestCheckValuesNamesWhatFails(t *testing.T) {
	tests := []struct {
		name string
		vs   url.Values
		want string // "": accepted
	}{
		{"plain", url.Values{"grant_type": {"refresh_token"}, "scope": {"openid é"}}, ""},
		{"no values", url.Values{}, ""},
		{"NUL in a name", url.Values{"sc\x00ope": {"openid"}}, "form parameter name holds a NUL character, which cannot be stored: invalid request"},
		{"invalid UTF-8 in a value", url.Values{"scope": {"a\xffb"}}, "form parameter scope is not valid UTF-8, which cannot be stored: invalid request"},
		{"NUL in a second value", url.Values{"scope": {"openid", "x\x00"}}, "form parameter scope holds a NUL character, which cannot be stored: invalid request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkValues("form parameter", tc.vs)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
			case err == nil || err.Error() != tc.want || !errors.Is(err, spi.ErrInvalid):
				t.Fatalf("got %v, want %q wrapping spi.ErrInvalid", err, tc.want)
			}
		})
	}
}
