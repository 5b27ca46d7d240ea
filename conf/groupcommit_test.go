package conf

import (
	"testing"

	"github.com/sessiond/sessiond/core/groupcommit"
)

// group-commit-max-in-flight sets core/groupcommit's Options.MaxInFlight: its default is
// the package's, any layer sets it, and a value that is not a whole number from 1 to 64
// is refused, the key named.
func TestGroupCommitMaxInFlight(t *testing.T) {
	inDir(t, "")
	if s := resolve(t, ProfileStart, nil, nil, testDescs()); s.GroupCommitInFlight != groupcommit.DefaultMaxInFlight {
		t.Errorf("default = %d, want core/groupcommit's %d", s.GroupCommitInFlight, groupcommit.DefaultMaxInFlight)
	}
	for _, tc := range []struct {
		flags, env []string
		want       int
	}{
		{[]string{"--group-commit-max-in-flight=8"}, []string{"SESSIOND_GROUP_COMMIT_MAX_IN_FLIGHT=2"}, 8},
		{nil, []string{"SESSIOND_GROUP_COMMIT_MAX_IN_FLIGHT=2"}, 2},
		{[]string{"--group-commit-max-in-flight=3"}, nil, 3},
		{[]string{"--group-commit-max-in-flight=64"}, nil, 64},
	} {
		if s := resolve(t, ProfileDev, tc.flags, tc.env, testDescs()); s.GroupCommitInFlight != tc.want {
			t.Errorf("%v %v: %d, want %d", tc.flags, tc.env, s.GroupCommitInFlight, tc.want)
		}
	}
	for _, v := range []string{"0", "-1", "some", "65"} {
		_, err := loadResolve(ProfileStart, []string{"--group-commit-max-in-flight=" + v}, nil, testDescs())
		ps := problemsOf(t, err)
		if len(ps) != 1 {
			t.Fatalf("%s: problems = %v", v, ps)
		}
		mustContainAll(t, ps[0].Error(), "--group-commit-max-in-flight", "a whole number")
	}
}
