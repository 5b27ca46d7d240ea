package sdk

import (
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestLoggerLevel(t *testing.T) {
	for env, want := range map[string]hclog.Level{
		"":      hclog.Info,
		"debug": hclog.Debug,
		"TRACE": hclog.Trace,
		"warn":  hclog.Warn,
		"bogus": hclog.Info,
	} {
		t.Setenv(LogLevelEnv, env)
		if got := Logger("p").GetLevel(); got != want {
			t.Errorf("%s=%q: level %v, want %v", LogLevelEnv, env, got, want)
		}
	}
}
