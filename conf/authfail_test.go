package conf

import (
	"testing"
	"time"
)

// The failed-authentication options reach Settings with their defaults, from flags and from
// the environment; 0 turns a limit off.
func TestAuthFailureOptions(t *testing.T) {
	inDir(t, "")
	s := resolve(t, ProfileStart, nil, nil, testDescs())
	if s.AuthFailureLimit != 20 || s.AuthFailureClientLimit != 100 || s.AuthFailureWindow != time.Minute {
		t.Errorf("defaults: limit %d, client limit %d, window %s", s.AuthFailureLimit, s.AuthFailureClientLimit, s.AuthFailureWindow)
	}
	s = resolve(t, ProfileStart, []string{"--auth-failure-limit=0", "--auth-failure-window=30s"},
		[]string{"SESSIOND_AUTH_FAILURE_CLIENT_LIMIT=0"}, testDescs())
	if s.AuthFailureLimit != 0 || s.AuthFailureClientLimit != 0 || s.AuthFailureWindow != 30*time.Second {
		t.Errorf("set: limit %d, client limit %d, window %s", s.AuthFailureLimit, s.AuthFailureClientLimit, s.AuthFailureWindow)
	}
}

func TestAuthFailureOptionsAreValidated(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"negative limit", []string{"--auth-failure-limit=-1"}, []string{"--auth-failure-limit", "from 0 (off) to 1000000"}},
		{"client limit too big", []string{"--auth-failure-client-limit=1000001"}, []string{"--auth-failure-client-limit", "from 0 (off) to 1000000"}},
		{"limit not a number", []string{"--auth-failure-limit=lots"}, []string{"--auth-failure-limit", "a whole number"}},
		{"window too short", []string{"--auth-failure-window=100ms"}, []string{"--auth-failure-window", "from 1s to 24h"}},
		{"window too long", []string{"--auth-failure-window=48h"}, []string{"--auth-failure-window", "from 1s to 24h"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { mustRefuse(t, tc.args, nil, tc.want...) })
	}
}
