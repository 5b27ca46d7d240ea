package conf

import (
	"testing"
	"time"
)

// cleanup-interval and cleanup-batch-size reach Settings from every layer, with Keycloak's
// 15-minute interval and a batch of 1000 by default, in both profiles.
func TestCleanupOptions(t *testing.T) {
	inDir(t, "cleanup-interval=5m\n")
	for _, p := range []Profile{ProfileStart, ProfileDev} {
		s := resolve(t, p, []string{"--config=/dev/null"}, nil, testDescs())
		if s.CleanupInterval != 15*time.Minute || s.CleanupBatchSize != 1000 {
			t.Errorf("%s defaults: interval %s, batch size %d; want 15m, 1000", p, s.CleanupInterval, s.CleanupBatchSize)
		}
		if e := entry(t, s, "cleanup-interval"); e.Value != "15m0s" || e.Source.Kind != FromDefault {
			t.Errorf("%s show-config cleanup-interval = %+v", p, e)
		}
	}
	s := resolve(t, ProfileStart, nil, []string{"SESSIOND_CLEANUP_BATCH_SIZE=250"}, testDescs())
	if s.CleanupInterval != 5*time.Minute || s.CleanupBatchSize != 250 {
		t.Errorf("file and env: interval %s, batch size %d; want 5m, 250", s.CleanupInterval, s.CleanupBatchSize)
	}
	s = resolve(t, ProfileStart, []string{"--cleanup-interval=90", "--cleanup-batch-size", "100000"}, []string{"SESSIOND_CLEANUP_BATCH_SIZE=250"}, testDescs())
	if s.CleanupInterval != 90*time.Second || s.CleanupBatchSize != 100000 {
		t.Errorf("flags (whole seconds): interval %s, batch size %d; want 1m30s, 100000", s.CleanupInterval, s.CleanupBatchSize)
	}
	if e := entry(t, s, "cleanup-batch-size"); e.Value != "100000" || e.Source.String() != "flag --cleanup-batch-size" {
		t.Errorf("show-config cleanup-batch-size = %+v", e)
	}
}

func TestCleanupOptionsAreValidated(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"interval not a duration", nil, []string{"--cleanup-interval=often"},
			[]string{"flag --cleanup-interval", `invalid value "often"`, "30s, 5m or 1h30m"}},
		{"interval zero", []string{"SESSIOND_CLEANUP_INTERVAL=0"}, nil,
			[]string{"env SESSIOND_CLEANUP_INTERVAL", `invalid value "0"`, "a duration of at least 1s"}},
		{"interval below a second", nil, []string{"--cleanup-interval=500ms"},
			[]string{"--cleanup-interval", "at least 1s"}},
		{"interval negative", nil, []string{"--cleanup-interval=-1m"},
			[]string{"--cleanup-interval", "at least 1s"}},
		{"batch size not a number", nil, []string{"--cleanup-batch-size=lots"},
			[]string{"--cleanup-batch-size", "a whole number"}},
		{"batch size zero", nil, []string{"--cleanup-batch-size=0"},
			[]string{"--cleanup-batch-size", `invalid value "0"`, "a whole number from 1 to 100000"}},
		{"batch size too big", []string{"SESSIOND_CLEANUP_BATCH_SIZE=100001"}, nil,
			[]string{"env SESSIOND_CLEANUP_BATCH_SIZE", "from 1 to 100000"}},
		{"typo", nil, []string{"--cleanup-batchsize=10"},
			[]string{"unknown option --cleanup-batchsize", "did you mean --cleanup-batch-size?"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { mustRefuse(t, tc.args, tc.env, tc.want...) })
	}
}
