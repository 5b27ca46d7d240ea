package host_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/sessiond/sessiond/internal/testlog"
	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/plugins/wire"
	"github.com/sessiond/sessiond/providers/builtin"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
)

// The test binary doubles as every process these tests need; the environment says which.
const (
	modeEnv     = "SESSIOND_HOST_TEST_PLUGIN"   // serve | raw | slow | crash | env | host
	providerEnv = "SESSIOND_HOST_TEST_PROVIDER" // "<spi>/<id>" of a built-in, for serve and raw
)

func TestMain(m *testing.M) {
	switch mode := os.Getenv(modeEnv); mode {
	case "":
		// Keep the main thread to the main goroutine: a locked goroutine that exits on the
		// main thread leaves it wedged instead of ending it, which would hide what
		// TestPluginOutlivesStartingThread looks for.
		runtime.LockOSThread()
		os.Exit(m.Run())
	case "serve": // a plugin as sessiond's built-ins run
		sdk.Serve(builtinProvider())
	case "raw": // a plugin without the SDK's parent watch: only Pdeathsig can end it
		serveRaw(builtinProvider())
	case "slow": // a plugin that takes a second before its handshake
		time.Sleep(time.Second)
		sdk.Serve(builtinProvider())
	case "crash": // a plugin that dies shortly after every Configure
		sdk.Serve(exitAfterConfigure{memory.New(sdk.Logger("memory"))})
	case "env": // a plugin whose descriptor's help is its environment, NUL between variables
		sdk.Serve(environReporter{memory.New(sdk.Logger("memory"))})
	case "host": // a sessiond stand-in: starts one raw plugin, prints its pid, waits to be killed
		runHost()
	default:
		fmt.Fprintf(os.Stderr, "unknown %s %q\n", modeEnv, mode)
		os.Exit(2)
	}
}

func builtinProvider() spi.Provider {
	name := os.Getenv(providerEnv)
	spiName, id, _ := strings.Cut(name, "/")
	f, ok := builtin.Lookup(spiName, id)
	if !ok {
		fmt.Fprintf(os.Stderr, "no built-in provider %q\n", name)
		os.Exit(2)
	}
	return f.New(sdk.Logger(id))
}

func serveRaw(p spi.Provider) {
	plugins, err := wire.ServerPlugins(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  wire.Handshake(),
		VersionedPlugins: plugins,
		GRPCServer:       plugin.DefaultGRPCServer,
	})
	os.Exit(0)
}

type exitAfterConfigure struct{ *memory.Provider }

func (e exitAfterConfigure) Configure(ctx context.Context, cfg spi.Config) error {
	err := e.Provider.Configure(ctx, cfg)
	time.AfterFunc(30*time.Millisecond, func() { os.Exit(3) })
	return err
}

type environReporter struct{ *memory.Provider }

func (e environReporter) Describe() spi.Descriptor {
	d := e.Provider.Describe()
	d.Help = strings.Join(os.Environ(), "\x00")
	return d
}

func runHost() {
	log := hclog.New(&hclog.LoggerOptions{Name: "host", Output: os.Stderr})
	h := host.New(log, host.Options{})
	p, err := h.Start(context.Background(), selfSpec(nil, "raw", spi.UserSessions, memory.ID))
	if err != nil {
		log.Error("start", "error", err)
		os.Exit(1)
	}
	fmt.Println(pidOf(h, p))
	time.Sleep(time.Hour)
	os.Exit(1)
}

// selfSHA256 is the digest of the test binary, which every Spec here runs.
var selfSHA256 = sync.OnceValues(func() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return fileDigest(exe)
})

func fileDigest(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func sha256Hex(t testing.TB, path string) string {
	t.Helper()
	sum, err := fileDigest(path)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// selfSpec runs the test binary in mode as the spiName/id plugin, as sessiond runs its
// built-ins: from its own executable. t may be nil outside tests.
func selfSpec(t testing.TB, mode, spiName, id string) host.Spec {
	exe, err := os.Executable()
	if err == nil {
		_, err = selfSHA256()
	}
	if err != nil {
		if t == nil {
			panic(err)
		}
		t.Fatal(err)
	}
	sum, _ := selfSHA256()
	return host.Spec{
		SPI: spiName, ID: id,
		Command: exe, Self: true,
		// Should the mode variable ever not reach the child, it runs no tests.
		Args:   []string{"-test.run=^$"},
		SHA256: sum,
		Env: []string{
			modeEnv + "=" + mode, providerEnv + "=" + spiName + "/" + id,
			// A -race binary otherwise sleeps a second at exit; every Stop would wait for it.
			"GORACE=atexit_sleep_ms=0",
		},
	}
}

func pidOf(h *host.Host, p *host.Plugin) int {
	for _, s := range h.Status() {
		if s.SPI == p.Descriptor().SPI && s.ID == p.Descriptor().ID {
			return s.PID
		}
	}
	return 0
}

// defaults is the configuration of a provider with every option at its default.
func defaults(d spi.Descriptor, set map[string]string) spi.Config {
	cfg := spi.Config{}
	for _, o := range d.Options {
		cfg[o.Name] = o.Default
	}
	for k, v := range set {
		cfg[k] = v
	}
	return cfg
}

// newHost returns a host stopped at the end of the test, and its log.
func newHost(t testing.TB, opts host.Options) (*host.Host, *testlog.Buffer) {
	t.Helper()
	logs := &testlog.Buffer{}
	h := host.New(hclog.New(&hclog.LoggerOptions{Name: "sessiond", Output: logs, Level: hclog.Debug}), opts)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
		if t.Failed() {
			t.Logf("host log:\n%s", logs)
		}
	})
	return h, logs
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
