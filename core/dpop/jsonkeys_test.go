package dpop_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sessiond/sessiond/core/dpop"
)

// signRaw makes a proof of the header and claims exactly as written, signed with s's key.
func (s *signer) signRaw(t testing.TB, header, claims string) string {
	t.Helper()
	input := b64.EncodeToString([]byte(header)) + "." + b64.EncodeToString([]byte(claims))
	return input + "." + b64.EncodeToString(s.signature(t, input))
}

// TestParse_duplicateAndWrongCaseMembers: a proof whose header or claims repeat a member,
// or carry one that matches typ, htm, … only by case, is refused naming it. encoding/json
// would read "TYP" (or "Typ") as typ and keep the last of two, while go-jose and other
// verifiers read the header case-sensitively: a proof typed JWT for them passed the typ
// check here, and a resource server could see another htm or htu than the one checked.
func TestParse_duplicateAndWrongCaseMembers(t *testing.T) {
	es := newSigner(t, jose.ES256)
	jwk, err := json.Marshal(es.jwk)
	if err != nil {
		t.Fatal(err)
	}
	header := func(members string) string {
		return `{"typ":"dpop+jwt","alg":"ES256","jwk":` + string(jwk) + members + `}`
	}
	now := time.Now().Unix()
	claims := func(members string) string {
		return fmt.Sprintf(`{"jti":%q,"htm":"POST","htu":%q,"iat":%d%s}`, strings.Repeat("j", 16), tokenURL, now, members)
	}
	jwkWith := func(member string) string {
		return `{"typ":"dpop+jwt","alg":"ES256","jwk":` + strings.TrimSuffix(string(jwk), "}") + member + `}}`
	}
	for _, tc := range []struct {
		name, header, claims, desc string
	}{
		{"typ twice", `{"typ":"JWT","typ":"dpop+jwt","alg":"ES256","jwk":` + string(jwk) + `}`, claims(""), "header: duplicate key typ"},
		{"TYP beside typ", `{"typ":"JWT","alg":"ES256","jwk":` + string(jwk) + `,"TYP":"dpop+jwt"}`, claims(""), `header: key TYP matches the field "typ" only by case`},
		{"Alg", `{"typ":"dpop+jwt","Alg":"ES256","jwk":` + string(jwk) + `}`, claims(""), `header: key Alg matches the field "alg"`},
		{"jwk member twice", jwkWith(`,"kty":"EC"`), claims(""), "header: duplicate key jwk.kty"},
		{"htm twice", header(""), claims(`,"htm":"GET"`), "claims: duplicate key htm"},
		{"HTM beside htm", header(""), claims(`,"HTM":"GET"`), `claims: key HTM matches the field "htm" only by case`},
		{"Htu", header(""), `{"jti":"jjjjjjjjjjjjjjjj","htm":"POST","Htu":"` + tokenURL + `","iat":` + fmt.Sprint(now) + `}`, `claims: key Htu matches the field "htu"`},
		{"extra claim twice", header(""), claims(`,"x":1,"x":2`), "claims: duplicate key x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := dpop.Parse(es.signRaw(t, tc.header, tc.claims))
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			wantRefusal(t, err, dpop.InvalidProof, tc.desc)
		})
	}
	// Members of other names, a jwk member in another case (not the private "d") and
	// claims beyond the ones read stay accepted.
	for _, tc := range []struct{ name, header, claims string }{
		{"as written", header(""), claims("")},
		{"other header members", header(`,"kid":"k","x5u":"https://a.example/"`), claims(`,"nonce":"n","extra":{"a":1,"A":2}`)},
	} {
		t.Run("accepted/"+tc.name, func(t *testing.T) {
			if _, err := dpop.Parse(es.signRaw(t, tc.header, tc.claims)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
