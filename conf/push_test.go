package conf

import (
	"testing"
	"time"
)

// The revocation-push outbox options reach Settings with their defaults, and from flags.
func TestPushOptions(t *testing.T) {
	inDir(t, "")
	s := resolve(t, ProfileStart, nil, nil, testDescs())
	if s.PushMaxAttempts != 10 || s.PushBackoffInitial != 5*time.Second || s.PushBackoffMax != 10*time.Minute ||
		s.PushLease != time.Minute || s.PushBatchSize != 100 {
		t.Errorf("defaults: %d attempts, backoff %s..%s, lease %s, batch %d", s.PushMaxAttempts, s.PushBackoffInitial, s.PushBackoffMax, s.PushLease, s.PushBatchSize)
	}
	s = resolve(t, ProfileStart, []string{"--push-max-attempts=3", "--push-backoff-initial=250ms", "--push-backoff-max=30", "--push-lease=2m", "--push-batch-size=7"}, nil, testDescs())
	if s.PushMaxAttempts != 3 || s.PushBackoffInitial != 250*time.Millisecond || s.PushBackoffMax != 30*time.Second ||
		s.PushLease != 2*time.Minute || s.PushBatchSize != 7 {
		t.Errorf("flags: %d attempts, backoff %s..%s, lease %s, batch %d", s.PushMaxAttempts, s.PushBackoffInitial, s.PushBackoffMax, s.PushLease, s.PushBatchSize)
	}
}

func TestPushOptionsAreValidated(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"no attempts", []string{"--push-max-attempts=0"}, []string{"--push-max-attempts", "a whole number from 1 to 1000"}},
		{"too many attempts", []string{"--push-max-attempts=1001"}, []string{"--push-max-attempts", "from 1 to 1000"}},
		{"backoff too short", []string{"--push-backoff-initial=10ms"}, []string{"--push-backoff-initial", "at least 100ms"}},
		{"negative maximum backoff", []string{"--push-backoff-max=-1s"}, []string{"--push-backoff-max", "at least 100ms"}},
		{"lease too short", []string{"--push-lease=500ms"}, []string{"--push-lease", "at least 1s"}},
		{"batch too big", []string{"--push-batch-size=10001"}, []string{"--push-batch-size", "from 1 to 10000"}},
		{"batch not a number", []string{"--push-batch-size=many"}, []string{"--push-batch-size", "a whole number"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { mustRefuse(t, tc.args, nil, tc.want...) })
	}
}

// An attempt is cut off at three quarters of push-lease (core/push.AttemptBudget): a lease
// under twice the selected HTTP provider's request timeout would cut off a client that
// answers within that timeout.
func TestPushLeaseOutlastsTheProvidersTimeout(t *testing.T) {
	webhook := []string{"--spi-revocation-push-provider=webhook", "--spi-revocation-push-webhook-secret=s"}
	inDir(t, "")
	if s := resolve(t, ProfileStart, append(webhook, "--push-lease=10s"), nil, testDescs()); s.PushLease != 10*time.Second {
		t.Errorf("lease %s", s.PushLease) // twice the 5s timeout
	}
	resolve(t, ProfileStart, []string{"--push-lease=2s"}, nil, testDescs()) // the selected provider has no timeout
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"lease too short", append(webhook, "--push-lease=9s"),
			[]string{"--push-lease=9s", "spi-revocation-push-webhook-timeout=5s", "at least 10s"}},
		{"timeout too long", append(webhook, "--spi-revocation-push-webhook-timeout=45s"),
			[]string{"--spi-revocation-push-webhook-timeout", "push-lease=1m0s", "at least 1m30s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { mustRefuse(t, tc.args, nil, tc.want...) })
	}
}
