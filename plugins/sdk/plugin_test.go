package sdk_test

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/internal/testlog"
	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/plugins/sdk"
	"github.com/sessiond/sessiond/plugins/sdk/sdktest"
	"github.com/sessiond/sessiond/plugins/wire"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/cachelifespan"
	"github.com/sessiond/sessiond/spi/offlinepreload"
	"github.com/sessiond/sessiond/spi/revocationpush"
	"github.com/sessiond/sessiond/spi/usersessions"
	"github.com/sessiond/sessiond/spi/usersessions/usersessionstest"
)

// versionsEnv makes the test binary serve the echo provider as a plugin built for other
// protocol versions would ("1,99": a newer SDK that still speaks 1).
const versionsEnv = "SDK_TEST_PLUGIN_VERSIONS"

func TestMain(m *testing.M) {
	if vs := os.Getenv(versionsEnv); vs != "" {
		var versions []int
		for _, f := range strings.Split(vs, ",") {
			v, _ := strconv.Atoi(f)
			versions = append(versions, v)
		}
		sdk.ServeAs(newEcho(sdk.Logger("echo")), versions...)
	}
	sdktest.Main(m,
		func(log hclog.Logger) spi.Provider { return memory.New(log) },
		func(log hclog.Logger) spi.Provider { return &preload{base: base{spi.OfflinePreload, "fixed", log}} },
		func(log hclog.Logger) spi.Provider { return &lifespan{base: base{spi.CacheLifespan, "fixed", log}} },
		func(log hclog.Logger) spi.Provider { return newEcho(log) },
	)
}

// base is the spi.Provider part of the small providers below.
type base struct {
	spi, id string
	log     hclog.Logger
}

func (b *base) Describe() spi.Descriptor {
	return spi.Descriptor{SPI: b.spi, ID: b.id, Version: "0.1.0", Help: "A provider of the SDK's tests."}
}
func (b *base) Configure(context.Context, spi.Config) error { return nil }
func (b *base) Close(context.Context) error                 { return nil }

type preload struct{ base }

func (p *preload) Plan(context.Context, offlinepreload.Situation) (offlinepreload.Plan, error) {
	return offlinepreload.Plan{}, nil
}

type lifespan struct{ base }

func (p *lifespan) Lifespans(_ context.Context, entries []cachelifespan.Entry) ([]time.Duration, error) {
	out := make([]time.Duration, len(entries))
	for i := range out {
		out[i] = time.Minute
	}
	return out, nil
}

// echo is a revocation-push provider with one option of each type. Configure logs what it
// got, at debug and at warn; Push answers every notice with the greeting as its target.
type echo struct {
	log      hclog.Logger
	greeting string
}

func newEcho(log hclog.Logger) *echo { return &echo{log: log} }

func (e *echo) Describe() spi.Descriptor {
	return spi.Descriptor{SPI: spi.RevocationPush, ID: "echo", Version: "2.3.4", Help: "Echoes notices.",
		Options: []spi.Option{
			{Name: "greeting", Type: spi.String, Default: "hello", Help: "What Push answers."},
			{Name: "repeat", Type: spi.Int, Default: "2", Help: "How often."},
			{Name: "loud", Type: spi.Bool, Default: "false", Help: "Shout."},
			{Name: "pause", Type: spi.Duration, Default: "90", Help: "A pause, in whole seconds by default."},
			{Name: "mood", Type: spi.Enum, Default: "calm", Allowed: []string{"calm", "wild"}, Help: "Mood."},
		}}
}

func (e *echo) Configure(_ context.Context, cfg spi.Config) error {
	c := sdk.ReadConfig(e.Describe(), cfg)
	greeting, repeat, loud, pause, mood := c.String("greeting"), c.Int("repeat"), c.Bool("loud"), c.Duration("pause"), c.String("mood")
	if err := c.Err(); err != nil {
		return err
	}
	e.greeting = strings.Repeat(greeting, repeat)
	if loud {
		e.greeting = strings.ToUpper(e.greeting)
	}
	e.log.Debug("echo debug line", "node", c.NodeID())
	e.log.Warn("echo configured", "greeting", e.greeting, "pause", pause.String(), "mood", mood)
	return nil
}

func (e *echo) Close(context.Context) error { return nil }

func (e *echo) Push(_ context.Context, notices []revocationpush.Notice) ([]revocationpush.Result, error) {
	out := make([]revocationpush.Result, len(notices))
	for i, n := range notices {
		out[i] = revocationpush.Result{NoticeID: n.ID, Target: e.greeting, OK: true}
	}
	return out, nil
}

func TestServeServesEverySPI(t *testing.T) {
	sum := selfSum(t)
	for _, tc := range []struct{ spi, id string }{
		{spi.UserSessions, memory.ID},
		{spi.OfflinePreload, "fixed"},
		{spi.CacheLifespan, "fixed"},
		{spi.RevocationPush, "echo"},
	} {
		t.Run(tc.spi, func(t *testing.T) {
			p := sdktest.Start(t, sdktest.Plugin{SPI: tc.spi, ID: tc.id})
			st := p.Status()
			if st.State != host.StateRunning || st.PID <= 0 || st.PID == os.Getpid() || st.Protocol != wire.ProtocolVersion || st.SHA256 != sum {
				t.Errorf("status %+v: want running in a process of its own, protocol %d, sha256 %s", st, wire.ProtocolVersion, sum)
			}
			ctx := t.Context()
			var err error
			switch pr := p.Provider().(type) {
			case usersessions.Provider:
				_, err = pr.Count(ctx, usersessions.Filter{RealmID: "r"})
			case offlinepreload.Provider:
				_, err = pr.Plan(ctx, offlinepreload.Situation{})
			case cachelifespan.Provider:
				_, err = pr.Lifespans(ctx, []cachelifespan.Entry{{}})
			case revocationpush.Provider:
				_, err = pr.Push(ctx, []revocationpush.Notice{{ID: "n1"}})
			default:
				t.Fatalf("provider %T implements no SPI", pr)
			}
			if err != nil {
				t.Errorf("a call through the plugin failed: %v", err)
			}
		})
	}
}

func TestOptionsReachTheProviderWithTheirDefaults(t *testing.T) {
	push := func(p *sdktest.Process) string {
		res, err := p.Provider().(revocationpush.Provider).Push(t.Context(), []revocationpush.Notice{{ID: "n"}})
		if err != nil || len(res) != 1 {
			t.Fatalf("Push = %v, %v", res, err)
		}
		return res[0].Target
	}
	p := sdktest.Start(t, sdktest.Plugin{SPI: spi.RevocationPush, ID: "echo"})
	if got := push(p); got != "hellohello" {
		t.Errorf("with defaults the provider answers %q, want hellohello", got)
	}
	if d, _ := p.Descriptor().Option("pause"); d.Type != spi.Duration || d.Default != "90" {
		t.Errorf("the host sees option pause as %+v", d)
	}
	p = sdktest.Start(t, sdktest.Plugin{SPI: spi.RevocationPush, ID: "echo", Config: spi.Config{"greeting": "hi", "repeat": "3", "loud": "true"}})
	if got := push(p); got != "HIHIHI" {
		t.Errorf("configured, the provider answers %q, want HIHIHI", got)
	}
	if !regexp.MustCompile(`pause=1m30s`).MatchString(waitLog(p, regexp.MustCompile(`pause=1m30s`))) {
		t.Errorf("a duration default in whole seconds did not read as 90s:\n%s", p.Log())
	}
	// A malformed value (sessiond itself never passes one) is refused, naming the key.
	_, err := sdktest.TryStart(t, sdktest.Plugin{SPI: spi.RevocationPush, ID: "echo", Config: spi.Config{"repeat": "often"}})
	if !errors.Is(err, spi.ErrInvalid) || !strings.Contains(err.Error(), "spi-revocation-push-echo-repeat") {
		t.Errorf("configure with repeat=often: %v, want ErrInvalid naming spi-revocation-push-echo-repeat", err)
	}
}

func TestPluginLogsGoToTheHostLogAtTheHostLevel(t *testing.T) {
	// hclog's text format: "<time> [WARN]  sessiond.revocation-push.echo.echo: echo configured: greeting=… "
	warn := regexp.MustCompile(`\[WARN\] +sessiond\.revocation-push\.echo[.\w-]*: echo configured: .*greeting=hellohello`)
	for _, tc := range []struct {
		level     hclog.Level
		wantDebug bool
	}{{hclog.Info, false}, {hclog.Debug, true}} {
		t.Run(tc.level.String(), func(t *testing.T) {
			p := sdktest.Start(t, sdktest.Plugin{SPI: spi.RevocationPush, ID: "echo", LogLevel: tc.level, NodeID: "node-7"})
			log := waitLog(p, warn)
			if !warn.MatchString(log) {
				t.Errorf("the plugin's warning is not in the host's log as its own WARN line under the plugin's name:\n%s", log)
			}
			// hclog's fields come in no fixed order.
			if got := regexp.MustCompile(`echo debug line: .*node=node-7`).MatchString(log); got != tc.wantDebug {
				t.Errorf("host at %s: plugin debug line logged = %v, want %v:\n%s", tc.level, got, tc.wantDebug, log)
			}
		})
	}
}

// waitLog waits briefly for re to match the host's log: go-plugin copies the plugin's
// stderr into it asynchronously.
func waitLog(p *sdktest.Process, re *regexp.Regexp) string {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && !re.MatchString(p.Log()) {
		time.Sleep(10 * time.Millisecond)
	}
	return p.Log()
}

func TestProtocolVersionNegotiation(t *testing.T) {
	versioned := func(vs string) sdktest.Plugin {
		return sdktest.Plugin{SPI: spi.RevocationPush, ID: "echo", Env: []string{versionsEnv + "=" + vs}}
	}
	t.Run("a plugin that also speaks a version sessiond does not know negotiates the common one", func(t *testing.T) {
		p := sdktest.Start(t, versioned("1,99"))
		if st := p.Status(); st.Protocol != 1 || st.State != host.StateRunning {
			t.Errorf("status %+v, want running on protocol 1", st)
		}
		if _, err := p.Provider().(revocationpush.Provider).Push(t.Context(), []revocationpush.Notice{{ID: "n"}}); err != nil {
			t.Error(err)
		}
	})
	t.Run("a plugin that speaks no version sessiond speaks is refused, naming both sides' versions", func(t *testing.T) {
		for _, vs := range []string{"99", "98,99", "0"} {
			_, err := sdktest.TryStart(t, versioned(vs))
			var ve *wire.VersionError
			if !errors.As(err, &ve) {
				t.Fatalf("plugin speaking %s: error %v, want a *wire.VersionError", vs, err)
			}
			oldest := strings.Split(vs, ",")[0]
			for _, want := range []string{"plugin speaks protocol version " + oldest, "this sessiond speaks version 1"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("plugin speaking %s: error %q does not say %q", vs, err, want)
				}
			}
		}
	})
	t.Run("the refused plugin's own log line lists every version on both sides", func(t *testing.T) {
		logs := &testlog.Buffer{}
		h := host.New(hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}), host.Options{})
		defer h.Stop(context.Background())
		exe, _ := os.Executable()
		_, err := h.Start(t.Context(), host.Spec{SPI: spi.RevocationPush, ID: "echo", Command: exe, Args: []string{"-test.run=^$"},
			SHA256: selfSum(t), Env: []string{versionsEnv + "=98,99", "GORACE=atexit_sleep_ms=0"}})
		if err == nil {
			t.Fatal("the host accepted a plugin without a common version")
		}
		h.Stop(context.Background())
		// One line, its fields in no fixed order.
		line := regexp.MustCompile(`(?m)^.*no plugin protocol version in common with sessiond.*$`).FindString(logs.String())
		if !strings.Contains(line, "plugin_versions=[98, 99]") || !strings.Contains(line, "sessiond_versions=[1]") {
			t.Errorf("host log has no plugin line naming both sides' versions:\n%s", logs.String())
		}
	})
}

func TestVersionErrorFromGoPlugin(t *testing.T) {
	// The text go-plugin's client uses; wire.ExplainStart depends on it.
	err := wire.ExplainStart(errors.New("incompatible API version with plugin. Plugin version: 3, Client versions: [1 2]"))
	var ve *wire.VersionError
	if !errors.As(err, &ve) || ve.Plugin != 3 || len(ve.Host) != 2 {
		t.Fatalf("ExplainStart = %#v", err)
	}
	if want := "this sessiond speaks versions 1, 2"; !strings.Contains(err.Error(), want) {
		t.Errorf("%q does not say %q", err, want)
	}
	other := errors.New("plugin exited before we could connect")
	if wire.ExplainStart(other) != other || wire.ExplainStart(nil) != nil {
		t.Error("ExplainStart changed an error that is not about versions")
	}
	if vs := wire.ProtocolVersions(); len(vs) != 1 || vs[0] != wire.ProtocolVersion {
		t.Errorf("ProtocolVersions = %v", vs)
	}
}

func TestConformanceSuiteRunsThroughAPluginProcess(t *testing.T) {
	// sdktest.Provider would do (one process per check, started when the check opens it);
	// Prestart overlaps the start-ups with the checks.
	next := sdktest.Prestart(t, 2, func() sdktest.Plugin { return sdktest.Plugin{SPI: spi.UserSessions, ID: memory.ID} })
	usersessionstest.Run(t, func(t *testing.T) usersessions.Provider {
		return next(t).Provider().(usersessions.Provider)
	})
}

func TestStartRefusesAWrongChecksum(t *testing.T) {
	_, err := sdktest.TryStart(t, sdktest.Plugin{SPI: spi.RevocationPush, ID: "echo", SHA256: strings.Repeat("0", 64)})
	var ce *host.ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a *host.ChecksumError", err)
	}
}

func selfSum(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := host.FileSHA256(exe)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}
