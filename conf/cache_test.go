package conf

import "testing"

// cache-max-entries bounds the session cache: Keycloak's 10000 by default, any layer may
// raise it (a preload of a million offline sessions needs room for them), 0 is refused.
func TestCacheMaxEntries(t *testing.T) {
	inDir(t, "")
	if s := resolve(t, ProfileStart, nil, nil, testDescs()); s.CacheMaxEntries != 10000 {
		t.Errorf("default = %d, want 10000", s.CacheMaxEntries)
	}
	s := resolve(t, ProfileDev, []string{"--cache-max-entries=1000000"}, []string{"SESSIOND_CACHE_MAX_ENTRIES=5"}, testDescs())
	if s.CacheMaxEntries != 1000000 {
		t.Errorf("flag over env = %d, want 1000000", s.CacheMaxEntries)
	}
	for _, v := range []string{"0", "-1", "lots", "1000000001"} {
		_, err := loadResolve(ProfileStart, []string{"--cache-max-entries=" + v}, nil, testDescs())
		ps := problemsOf(t, err)
		if len(ps) != 1 {
			t.Fatalf("%s: problems = %v", v, ps)
		}
		mustContainAll(t, ps[0].Error(), "--cache-max-entries", "a whole number")
	}
}
