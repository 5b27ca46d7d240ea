package conf

import (
	"strconv"
	"testing"

	"github.com/sessiond/sessiond/core/token"
)

// verified-token-cache-max-entries bounds core/token's verified-token cache: its default is
// the package's, any layer sets it, 0 turns the cache off (token.Options' negative), and a
// value that is not a whole number from 0 to ten million is refused, the key named.
func TestVerifiedTokenCacheMaxEntries(t *testing.T) {
	inDir(t, "")
	if s := resolve(t, ProfileStart, nil, nil, testDescs()); s.VerifiedTokenCache != token.DefaultVerifiedTokens {
		t.Errorf("default = %d, want core/token's %d", s.VerifiedTokenCache, token.DefaultVerifiedTokens)
	}
	for _, tc := range []struct {
		flags, env []string
		want       int
	}{
		{[]string{"--verified-token-cache-max-entries=100000"}, []string{"SESSIOND_VERIFIED_TOKEN_CACHE_MAX_ENTRIES=5"}, 100000},
		{nil, []string{"SESSIOND_VERIFIED_TOKEN_CACHE_MAX_ENTRIES=5"}, 5},
		{[]string{"--verified-token-cache-max-entries=0"}, nil, -1},
		{[]string{"--verified-token-cache-max-entries=10000000"}, nil, 10000000},
	} {
		if s := resolve(t, ProfileDev, tc.flags, tc.env, testDescs()); s.VerifiedTokenCache != tc.want {
			t.Errorf("%v %v: %d, want %d", tc.flags, tc.env, s.VerifiedTokenCache, tc.want)
		}
	}
	for _, v := range []string{"-1", "lots", strconv.Itoa(10000001)} {
		_, err := loadResolve(ProfileStart, []string{"--verified-token-cache-max-entries=" + v}, nil, testDescs())
		ps := problemsOf(t, err)
		if len(ps) != 1 {
			t.Fatalf("%s: problems = %v", v, ps)
		}
		mustContainAll(t, ps[0].Error(), "--verified-token-cache-max-entries", "a whole number")
	}
}
