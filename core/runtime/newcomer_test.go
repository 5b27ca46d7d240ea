package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/conf"
	"github.com/sessiond/sessiond/internal/testlog"
	"github.com/sessiond/sessiond/spi/usersessions"
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
		`plugin-dir "/usr/lib/sessiond/plugins" (default)`, "/usr/lib/sessiond/plugins/missing-plugin", "no plugin binary there")
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

// Point 9: the push answer and the deliveries listing name the same target; a realm-wide
// admin action has a target in the event log; a sign-out of the realm writes one logout
// line per session it ended.
func TestPoint9_pushTargetsAndSignOutAllInTheEventLog(t *testing.T) {
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(rcv.Close)
	e := newEnv(t)
	realmJSON := fmt.Sprintf(`{"realm": %q, "clients": [
		{"clientId": %q, "secret": %q, "adminUrl": %q}
	]}`, testRealm, testClient, testSecret, rcv.URL+"/app")
	if err := os.WriteFile(e.realmFile, []byte(realmJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(e.dir, "events.jsonl")
	const adminToken = "admin-token-of-the-runtime-tests-0123456789"
	rt := e.start(Options{}, nil, "--admin-token="+adminToken, "--event-log-file="+events,
		"--spi-revocation-push-provider=webhook", "--spi-revocation-push-webhook-in-process=true",
		"--spi-revocation-push-webhook-url="+rcv.URL+"/hook", "--spi-revocation-push-webhook-secret=webhook-secret-of-the-tests")
	waitReady(t, rt, nil)

	t.Run("the push answer and the deliveries name the same target", func(t *testing.T) {
		rep, err := rt.Push().PushNotBefore(context.Background(), testRealm, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Succeeded) != 1 || rep.Succeeded[0] != rcv.URL+"/hook" {
			t.Fatalf("push answer %+v, want the webhook URL the provider posted to", rep)
		}
		ds, err := rt.Push().Deliveries(context.Background(), usersessions.DeliveryFilter{RealmID: testRealm})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].Target != rep.Succeeded[0] {
			t.Errorf("deliveries %+v, want one whose target is %s, as the push answer said", ds, rep.Succeeded[0])
		}
	})

	t.Run("a sign-out of the realm", func(t *testing.T) {
		var ids []string
		for _, u := range []string{"u1", "u2", "u3", "u4"} {
			ids = append(ids, login(t, rt, u, "192.0.2.1", false).sessionID)
		}
		req, _ := http.NewRequest(http.MethodPost, base(rt)+"/admin/realms/"+testRealm+"/logout-all", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if code, body := do(t, req); code != http.StatusOK {
			t.Fatalf("logout-all: %d %v", code, body)
		}
		var lines []map[string]any
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			lines = readJSONLines(t, events)
			if len(linesWhere(lines, "type", "logout")) >= len(ids) && len(linesWhere(lines, "action", "logout-all")) > 0 {
				break
			}
		}
		logouts := linesWhere(lines, "type", "logout")
		var ended []string
		for _, l := range logouts {
			if l["detail"] == "admin logout-all" {
				ended = append(ended, fmt.Sprint(l["session_id"]))
			}
		}
		slices.Sort(ended)
		slices.Sort(ids)
		if !slices.Equal(ended, ids) {
			t.Errorf("logout lines for sessions %v, want one for each of %v", ended, ids)
		}
		admins := linesWhere(lines, "action", "logout-all")
		if len(admins) != 1 || admins[0]["target"] != "realm/"+testRealm {
			t.Errorf("admin lines of logout-all %v, want one with target realm/%s", admins, testRealm)
		}
	})
}

func readJSONLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func linesWhere(lines []map[string]any, key, value string) []map[string]any {
	var out []map[string]any
	for _, l := range lines {
		if l[key] == value {
			out = append(out, l)
		}
	}
	return out
}

// Point 6: plugin-dir's default is no longer plugins/; a binary left there by an earlier
// setup is pointed to, with the flag that keeps it there.
func TestPoint6_binaryInTheOldDefaultFolderIsPointedTo(t *testing.T) {
	e := newEnv(t) // the working directory is e.dir
	if err := os.MkdirAll(filepath.Join(e.dir, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "plugins", "old-plugin"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := startErr(t, Options{}, append(e.args(),
		"--spi-user-sessions-provider=old", "--spi-user-sessions-old-command=old-plugin",
		"--spi-user-sessions-old-sha256="+strings.Repeat("ab", 32))...)
	wantAll(t, err, "/usr/lib/sessiond/plugins/old-plugin", "there is one at plugins/old-plugin", "set --plugin-dir=plugins")
}
