package runtime

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/internal/testlog"
)

// What a newcomer meets when a start fails (issue 19): the error names what to change and
// where it was set, and comes before anything else was started or shown.

// startErr is the error of a start with args, which must fail.
func startErr(t *testing.T, opts Options, args ...string) error {
	t.Helper()
	if opts.Profile == "" {
		opts.Profile = conf.ProfileStart
	}
	opts.Args = args
	rt, err := Start(context.Background(), hclog.NewNullLogger(), opts)
	if err == nil {
		stop(t, rt)
		t.Fatalf("start with %v succeeded, want an error", args)
	}
	return err
}

func wantAll(t *testing.T, err error, parts ...string) {
	t.Helper()
	t.Log(err)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q\n  does not say %q", err, p)
		}
	}
}

// Point 5: a realm file is read before any provider process starts, so its mistake is the
// one reported even when a plugin could not have started either.
func TestPoint5_realmFileIsCheckedBeforePluginsStart(t *testing.T) {
	e := newEnv(t)
	if err := os.WriteFile(e.realmFile, []byte("{\n  \"realm\": \"acme\",\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := startErr(t, Options{}, append(e.args(),
		"--spi-user-sessions-provider=mine", "--spi-user-sessions-mine-command=missing-plugin",
		"--spi-user-sessions-mine-sha256="+strings.Repeat("ab", 32))...)
	wantAll(t, err, "realm-file", e.realmFile, "line 3, column 1")
	if strings.Contains(err.Error(), "missing-plugin") {
		t.Errorf("error %q is about the plugin: the realm file must be read first", err)
	}
}

// Point 5: a plugin binary that is not there names the key that registered it, its source,
// and where the relative path was looked for (plugin-dir).
func TestPoint5_missingPluginBinaryNamesItsKeyAndPluginDir(t *testing.T) {
	e := newEnv(t)
	err := startErr(t, Options{}, append(e.args(),
		"--spi-user-sessions-provider=mine", "--spi-user-sessions-mine-command=missing-plugin",
		"--spi-user-sessions-mine-sha256="+strings.Repeat("ab", 32))...)
	wantAll(t, err, "spi-user-sessions-mine-command=missing-plugin", "flag --spi-user-sessions-mine-command",
		`plugin-dir "plugins" (default)`, filepath.Join(e.dir, "plugins", "missing-plugin"), "no plugin binary there")
}

// Point 5: a malformed PostgreSQL URL names the key that set it and where.
func TestPoint5_malformedPostgresURLNamesItsKeyAndSource(t *testing.T) {
	e := newEnv(t)
	t.Setenv("SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL", "postgres://user:secret@[::1")
	err := startErr(t, Options{Environ: os.Environ()}, append(without(e.args(), "--spi-user-sessions-provider", "--spi-user-sessions-embedded"),
		"--spi-user-sessions-provider=postgres", "--spi-user-sessions-postgres-in-process=true")...)
	wantAll(t, err, "spi-user-sessions-postgres-url is set by env SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL")
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q shows the URL's password", err)
	}
}

// Point 11: start-dev shows its generated secrets only once it serves; a start that fails
// on a port in use has shown none.
func TestPoint11_startDevShowsNoSecretWhenItCannotServe(t *testing.T) {
	e := newEnv(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, port, _ := net.SplitHostPort(busy.Addr().String())
	var out bytes.Buffer
	args := []string{"--http-host=127.0.0.1", "--http-port=" + port, "--node-id=test-node",
		"--spi-user-sessions-provider=embedded", "--spi-user-sessions-embedded-path=" + filepath.Join(e.dir, "sessions.db"),
		"--spi-user-sessions-embedded-in-process=true", "--spi-offline-preload-lazy-in-process=true",
		"--spi-cache-lifespan-default-in-process=true", "--spi-revocation-push-log-only-in-process=true"}
	err = startErr(t, Options{Profile: conf.ProfileDev, Stdout: &out}, args...)
	wantAll(t, err, port)
	if out.Len() > 0 {
		t.Errorf("a start-dev that failed printed %q", out.String())
	}

	// The same start on a free port shows the demo client's secret and the credentials.
	out.Reset()
	args[1] = "--http-port=0"
	opts := Options{Profile: conf.ProfileDev, Stdout: &out, Args: args}
	rt, err := Start(context.Background(), hclog.NewNullLogger(), opts)
	if err != nil {
		t.Fatal(err)
	}
	stop(t, rt)
	for _, want := range []string{"client secret", "--frontend-token=", "--admin-token="} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("start-dev printed %q, want %q in it", out.String(), want)
		}
	}
}

// Point 3: start logs, once, every option of a provider that is not selected, with its key
// and source.
func TestPoint3_startWarnsOnceAboutOptionsOfProvidersNotSelected(t *testing.T) {
	e := newEnv(t)
	var logs testlog.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	e.start(Options{}, log, "--spi-user-sessions-memory-in-process=true")
	const want = `--spi-user-sessions-memory-in-process has no effect: it is an option of user-sessions provider "memory", and spi-user-sessions-provider is "embedded"`
	if n := logs.Count(want); n != 1 {
		t.Errorf("logged %d times %q; log:\n%s", n, want, logs.String())
	}
	if !strings.Contains(logs.String(), `source="flag --spi-user-sessions-memory-in-process"`) {
		t.Errorf("the warning does not give its source:\n%s", logs.String())
	}
}
