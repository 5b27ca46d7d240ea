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
	if s.LoginRequestLimit != 100 || s.LoginRequestWindow != time.Minute {
		t.Errorf("defaults: login request limit %d, window %s", s.LoginRequestLimit, s.LoginRequestWindow)
	}
	s = resolve(t, ProfileStart, []string{"--auth-failure-limit=0", "--auth-failure-window=30s"},
		[]string{"SESSIOND_AUTH_FAILURE_CLIENT_LIMIT=0"}, testDescs())
	if s.AuthFailureLimit != 0 || s.AuthFailureClientLimit != 0 || s.AuthFailureWindow != 30*time.Second {
		t.Errorf("set: limit %d, client limit %d, window %s", s.AuthFailureLimit, s.AuthFailureClientLimit, s.AuthFailureWindow)
	}
	// The login-request keys land in their own fields, not in the failures'.
	s = resolve(t, ProfileStart, []string{"--login-request-limit=0", "--login-request-window=2h"}, nil, testDescs())
	if s.LoginRequestLimit != 0 || s.LoginRequestWindow != 2*time.Hour || s.AuthFailureLimit != 20 || s.AuthFailureWindow != time.Minute {
		t.Errorf("login request keys set: limit %d, window %s; failure limit %d, window %s", s.LoginRequestLimit, s.LoginRequestWindow, s.AuthFailureLimit, s.AuthFailureWindow)
	}
	s = resolve(t, ProfileStart, nil, []string{"SESSIOND_LOGIN_REQUEST_LIMIT=7"}, testDescs())
	if s.LoginRequestLimit != 7 {
		t.Errorf("from the environment: login request limit %d", s.LoginRequestLimit)
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
		{"negative login request limit", []string{"--login-request-limit=-5"}, []string{"--login-request-limit", "from 0 (off) to 1000000"}},
		{"login request limit not a number", []string{"--login-request-limit=many"}, []string{"--login-request-limit", "a whole number"}},
		{"login request window too short", []string{"--login-request-window=500ms"}, []string{"--login-request-window", "from 1s to 24h"}},
		{"login request window not a duration", []string{"--login-request-window=soon"}, []string{"--login-request-window"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { mustRefuse(t, tc.args, nil, tc.want...) })
	}
}
