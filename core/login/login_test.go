package login

import (
	"errors"
	"net/url"
	"testing"

	"github.com/sessiond/sessiond/core/realm"
)

// TestCheckVerifier_RFC7636AppendixB: the specification's example pair, and the refusals.
func TestCheckVerifier_RFC7636AppendixB(t *testing.T) {
	const verifier, challenge = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	for _, tc := range []struct {
		name, challenge, verifier string
		ok                        bool
	}{
		{"the example", challenge, verifier, true},
		{"no PKCE at all", "", "", true},
		{"a verifier without a challenge", "", verifier, false},
		{"no verifier", challenge, "", false},
		{"another verifier", challenge, verifier[:42] + "Y", false},
		{"too short", challenge, verifier[:42], false},
		{"outside the alphabet", challenge, verifier[:42] + "+", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := checkVerifier(tc.challenge, tc.verifier); (err == nil) != tc.ok {
				t.Errorf("checkVerifier = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestParseRequest_pageOrRedirect: the client and the redirect URI are checked first and
// refused with a page; everything after them with a redirect that keeps the state.
func TestParseRequest_pageOrRedirect(t *testing.T) {
	r := &realm.Realm{Name: "acme", Enabled: true, Clients: []*realm.Client{
		{ClientID: "web", Secret: "s", Enabled: true, RedirectURIs: []string{"https://app/cb"}, PKCEMethod: realm.PKCES256},
	}}
	base := "response_type=code&client_id=web&redirect_uri=https%3A%2F%2Fapp%2Fcb&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
	for _, tc := range []struct {
		name, query string
		page        bool
		code        string
	}{
		{"valid", base, false, ""},
		{"fragment in redirect_uri", "client_id=web&redirect_uri=https%3A%2F%2Fapp%2Fcb%23x", true, ""},
		{"no client", "redirect_uri=https%3A%2F%2Fapp%2Fcb", true, ""},
		{"client requiring PKCE without it", "response_type=code&client_id=web&redirect_uri=https%3A%2F%2Fapp%2Fcb&state=s", false, InvalidRequest},
		{"max_age not a number", base + "&max_age=x", false, InvalidRequest},
		{"state twice", base + "&state=t", false, InvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			req, err := ParseRequest(r, q)
			var pe *PageError
			var re *RedirectError
			switch {
			case tc.page && !errors.As(err, &pe):
				t.Errorf("err %v, want a page", err)
			case !tc.page && tc.code == "" && err != nil:
				t.Errorf("err %v", err)
			case tc.code != "" && (!errors.As(err, &re) || re.Code != tc.code || req == nil):
				t.Errorf("err %v, want a redirect with %s", err, tc.code)
			}
		})
	}
}
