// Package sqlstoretest serves a user-sessions provider under test as a real plugin process,
// so that its package can run the conformance suite through the plugin boundary.
//
// The provider's test binary doubles as the plugin: its TestMain calls Main, and
// StartPlugin starts the binary again with an environment variable that makes Main serve
// the provider instead of running tests.
package sqlstoretest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

const serveEnv = "SESSIOND_SQLSTORE_TEST_SERVE"

// Main is a provider package's TestMain. In a process StartPlugin started it serves the
// provider newProvider makes and never returns; otherwise it runs the tests.
func Main(m *testing.M, newProvider func(log hclog.Logger) spi.Provider) {
	if os.Getenv(serveEnv) != "" {
		sdk.Serve(newProvider(sdk.Logger(os.Getenv(serveEnv))))
	}
	os.Exit(m.Run())
}

// StartPlugin starts the running test binary as the plugin of the user-sessions provider
// id, configures it with set (every other option at its default) and returns it as the
// host sees it. The process is stopped when t ends.
func StartPlugin(t testing.TB, id string, set spi.Config) usersessions.Provider {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := host.FileSHA256(exe)
	if err != nil {
		t.Fatal(err)
	}
	h := host.New(hclog.NewNullLogger(), host.Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			t.Errorf("stopping the plugin: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := h.Start(ctx, host.Spec{
		SPI: spi.UserSessions, ID: id,
		Command: exe,
		Args:    []string{"-test.run=^$"}, // should the variable not reach the child, it runs no tests
		SHA256:  sum,
		// A -race binary otherwise sleeps a second at exit.
		Env: []string{serveEnv + "=" + id, "GORACE=atexit_sleep_ms=0"},
	})
	if err != nil {
		t.Fatalf("starting the %s plugin: %v", id, err)
	}
	cfg := spi.Config{}
	for _, o := range p.Descriptor().Options {
		cfg[o.Name] = o.Default
	}
	for k, v := range set {
		cfg[k] = v
	}
	if err := p.Configure(ctx, cfg); err != nil {
		t.Fatalf("configuring the %s plugin: %v", id, err)
	}
	us, ok := p.Provider().(usersessions.Provider)
	if !ok {
		t.Fatalf("the %s plugin is a %T, not a user-sessions provider", id, p.Provider())
	}
	return us
}
