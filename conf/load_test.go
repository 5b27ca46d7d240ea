package conf

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/spi"
)

// Whatever spelling each layer uses for an option, the higher layer wins.
func TestLayersOverrideInOrder(t *testing.T) {
	const retries = "spi-revocation-push-log-only-max-retries"
	cases := []struct {
		name      string
		file      string
		env, args []string
		key       string // as show-config prints it
		want      string
		source    string
	}{
		{"default", "", nil, nil, "http-port", "8080", "default"},
		{"file over default", "# c\nhttp-port=8081\n", nil, nil, "http-port", "8081", DefaultConfigFile + ":2"},
		{"env over file", "http-port=8081", []string{"SESSIOND_HTTP_PORT=8082"}, nil, "http-port", "8082", "env SESSIOND_HTTP_PORT"},
		{"flag over env", "http-port=8081", []string{"SESSIOND_HTTP_PORT=8082"}, []string{"--http-port=8083"}, "http-port", "8083", "flag --http-port"},
		{"flag with separate value", "", nil, []string{"--http-port", "8084"}, "http-port", "8084", "flag --http-port"},
		{"last flag wins", "", nil, []string{"--http-port=1", "--http-port=8085"}, "http-port", "8085", "flag --http-port"},
		{"file under env of another key", "http-port=8081", []string{"SESSIOND_HTTP_HOST=h"}, nil, "http-port", "8081", DefaultConfigFile + ":1"},
		{"descriptor default", "", nil, nil, retries, "3", "default"},
		{"provider option in file", retries + "=4", nil, nil, retries, "4", DefaultConfigFile + ":1"},
		{"env plain", "", []string{"SESSIOND_SPI_REVOCATION_PUSH_LOG_ONLY_MAX_RETRIES=7"}, nil, retries, "7", "env SESSIOND_SPI_REVOCATION_PUSH_LOG_ONLY_MAX_RETRIES"},
		{"env double underscore over file", retries + "=4", []string{"SESSIOND_SPI_REVOCATION_PUSH__LOG_ONLY__MAX_RETRIES=6"}, nil,
			retries, "6", "env SESSIOND_SPI_REVOCATION_PUSH__LOG_ONLY__MAX_RETRIES"},
		{"unambiguous flag over env plain", "", []string{"SESSIOND_SPI_REVOCATION_PUSH_LOG_ONLY_MAX_RETRIES=7"}, []string{"--spi-revocation-push--log-only--max-retries=5"},
			retries, "5", "flag --spi-revocation-push--log-only--max-retries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inDir(t, tc.file)
			s := resolve(t, ProfileStart, tc.args, tc.env, testDescs())
			if e := entry(t, s, tc.key); e.Value != tc.want || e.Source.String() != tc.source {
				t.Errorf("show-config %s = %q from %q, want %q from %q", tc.key, e.Value, e.Source, tc.want, tc.source)
			}
			typed := map[string]string{
				"http-port": strconv.Itoa(s.HTTPPort),
				retries:     s.SPIs[spi.RevocationPush].Providers["log-only"].Config["max-retries"],
			}
			if typed[tc.key] != tc.want {
				t.Errorf("settings hold %s = %q, want %q", tc.key, typed[tc.key], tc.want)
			}
		})
	}
}

func TestLongestMatchResolvesHyphens(t *testing.T) {
	inDir(t, "")
	args := []string{
		"--spi-revocation-push-log-only-max-retries=9", // log-only, not log + "only-max-retries"
		"--spi-revocation-push-log-only-errors=true",   // log + only-errors: log-only has no "errors"
		"--spi-cache-lifespan-override-offline-session-lifespan=90",
		"--spi-revocation-push-provider=log-only",
	}
	s := resolve(t, ProfileStart, args, nil, testDescs())
	rp := s.SPIs[spi.RevocationPush]
	if rp.Provider != "log-only" {
		t.Errorf("provider = %q", rp.Provider)
	}
	if got := rp.Providers["log-only"].Config["max-retries"]; got != "9" {
		t.Errorf("log-only max-retries = %q, want 9", got)
	}
	if got := rp.Providers["log"].Config["only-errors"]; got != "true" {
		t.Errorf("log only-errors = %q, want true", got)
	}
	// Where the Keycloak form collides, the longest provider wins and the "--" form
	// reaches the other; show-config prints that form.
	if got := rp.Providers["log"].Config["only-max-retries"]; got != "1" {
		t.Errorf("log only-max-retries = %q, want its default 1", got)
	}
	s2 := resolve(t, ProfileStart, []string{"--spi-revocation-push--log--only-max-retries=4"}, nil, testDescs())
	if got := s2.SPIs[spi.RevocationPush].Providers["log"].Config["only-max-retries"]; got != "4" {
		t.Errorf("log only-max-retries via -- form = %q, want 4", got)
	}
	if e := entry(t, s2, "spi-revocation-push--log--only-max-retries"); e.Value != "4" {
		t.Errorf("show-config = %+v", e)
	}
	if got := s.SPIs[spi.CacheLifespan].Providers["override"].Config["offline-session-lifespan"]; got != "1m30s" {
		t.Errorf("duration given in seconds = %q, want it normalised to 1m30s", got)
	}
}

func TestAliasesMapOntoTheirOption(t *testing.T) {
	inDir(t, "spi-user-sessions-infinispan-offline-session-cache-entry-lifespan-override=3600\n")
	env := []string{"SESSIOND_SPI_USER_SESSIONS_INFINISPAN_OFFLINE_CLIENT_SESSION_CACHE_ENTRY_LIFESPAN_OVERRIDE=600"}
	s := resolve(t, ProfileStart, nil, env, testDescs())
	override := s.SPIs[spi.CacheLifespan].Providers["override"].Config
	if got := override["offline-session-lifespan"]; got != "1h0m0s" {
		t.Errorf("offline-session-lifespan via file alias = %q", got)
	}
	if got := override["offline-client-session-lifespan"]; got != "10m0s" {
		t.Errorf("offline-client-session-lifespan via env alias = %q", got)
	}
	e := entry(t, s, "spi-cache-lifespan-override-offline-session-lifespan")
	if e.Source.String() != DefaultConfigFile+":1" {
		t.Errorf("alias source = %q", e.Source)
	}
	// The alias and the option's own key in one layer contradict each other.
	_, err := loadResolve(ProfileStart, []string{"--spi-cache-lifespan-override-offline-session-lifespan=60"}, nil, testDescs())
	if err != nil {
		t.Fatalf("flag over file alias: %v", err)
	}
	_, err = loadResolve(ProfileStart, []string{
		"--spi-cache-lifespan-override-offline-session-lifespan=60",
		"--spi-user-sessions-infinispan-offline-session-cache-entry-lifespan-override=3600",
	}, nil, testDescs())
	ps := problemsOf(t, err)
	if len(ps) != 1 {
		t.Fatalf("problems = %v", ps)
	}
	mustContainAll(t, ps[0].Error(), "--spi-user-sessions-infinispan-offline-session-cache-entry-lifespan-override", "--spi-cache-lifespan-override-offline-session-lifespan", "keep one")
}

// The seed's --spi-user-sessions-infinispan-preload-offline-sessions-from-database is a
// boolean that picks the offline-preload provider, not an option of one: true selects
// database, false lazy.
func TestSelectionAliasPicksTheProvider(t *testing.T) {
	const alias = "spi-user-sessions-infinispan-preload-offline-sessions-from-database"
	selected := func(t *testing.T, args, environ []string) string {
		t.Helper()
		return resolve(t, ProfileStart, args, environ, testDescs()).SPIs[spi.OfflinePreload].Provider
	}
	t.Run("file true selects database, with its source", func(t *testing.T) {
		inDir(t, alias+"=true\n")
		s := resolve(t, ProfileStart, nil, nil, testDescs())
		if got := s.SPIs[spi.OfflinePreload].Provider; got != "database" {
			t.Errorf("provider = %q, want database", got)
		}
		if e := entry(t, s, "spi-offline-preload-provider"); e.Value != "database" || e.Source.String() != DefaultConfigFile+":1" {
			t.Errorf("show-config entry = %+v", e)
		}
	})
	t.Run("env false over file true selects lazy", func(t *testing.T) {
		inDir(t, alias+"=true\n")
		if got := selected(t, nil, []string{EnvVar(alias) + "=FALSE"}); got != "lazy" {
			t.Errorf("provider = %q, want lazy", got)
		}
	})
	t.Run("bare flag means true", func(t *testing.T) {
		inDir(t, "")
		if got := selected(t, []string{"--" + alias}, nil); got != "database" {
			t.Errorf("provider = %q, want database", got)
		}
	})
	t.Run("the selection key in a higher layer wins", func(t *testing.T) {
		inDir(t, alias+"=true\n")
		if got := selected(t, []string{"--spi-offline-preload-provider=lazy"}, nil); got != "lazy" {
			t.Errorf("provider = %q, want lazy", got)
		}
	})
	t.Run("registrations see it before any provider is described", func(t *testing.T) {
		inDir(t, "")
		l, err := Load(ProfileStart, []string{"--" + alias + "=true"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		regs, err := l.Registrations()
		if err != nil {
			t.Fatal(err)
		}
		if got := regs.Selected[spi.OfflinePreload]; got != "database" {
			t.Errorf("Registrations().Selected = %q, want database", got)
		}
	})
	t.Run("not a boolean", func(t *testing.T) {
		inDir(t, "")
		_, err := loadResolve(ProfileStart, []string{"--" + alias + "=yes"}, nil, testDescs())
		ps := problemsOf(t, err)
		if len(ps) != 1 {
			t.Fatalf("problems = %v", ps)
		}
		mustContainAll(t, ps[0].Error(), `"yes"`, "--"+alias, "true", "database", "false", "lazy")
	})
	t.Run("with the selection key in one layer", func(t *testing.T) {
		inDir(t, "")
		_, err := loadResolve(ProfileStart, []string{"--" + alias + "=true", "--spi-offline-preload-provider=lazy"}, nil, testDescs())
		ps := problemsOf(t, err)
		if len(ps) != 1 {
			t.Fatalf("problems = %v", ps)
		}
		mustContainAll(t, ps[0].Error(), "--"+alias, "--spi-offline-preload-provider", "keep one")
	})
	t.Run("a provider may not claim it as an option alias", func(t *testing.T) {
		inDir(t, "")
		descs := append(testDescs(), spi.Descriptor{SPI: spi.OfflinePreload, ID: "eager", Options: []spi.Option{
			{Name: "on", Type: spi.Bool, Help: "On.", Aliases: []string{alias}},
		}})
		_, err := loadResolve(ProfileStart, nil, nil, descs)
		ps := problemsOf(t, err)
		if len(ps) != 1 {
			t.Fatalf("problems = %v", ps)
		}
		mustContainAll(t, ps[0].Error(), "eager", alias, "reserves")
	})
}

func TestFileFormatInLayers(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "layers.conf"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(inDir(t, ""), "layers.conf")
	writeFile(t, path, string(b))
	s := resolve(t, ProfileDev, []string{"--config", path}, []string{"NODE_NAME=node-7"}, testDescs())
	if s.HTTPPort != 8081 || s.LogLevel != "debug" || s.NodeID != "node-7" {
		t.Errorf("port %d level %q node %q", s.HTTPPort, s.LogLevel, s.NodeID)
	}
	if want := []string{"realms/a.json", "realms/b.json"}; !slices.Equal(s.RealmFiles, want) {
		t.Errorf("realm files = %q, want %q", s.RealmFiles, want)
	}
	if got := s.SPIs[spi.OfflinePreload].Providers["database"].Config["batch-size"]; got != "250" {
		t.Errorf("batch-size = %q", got)
	}
	if got := s.SPIs[spi.RevocationPush].Providers["webhook"].Config["secret"]; got != "${not-expanded}" {
		t.Errorf("escaped value = %q", got)
	}
	for key, line := range map[string]int{"http-port": 3, "node-id": 5, "spi-user-sessions-memory-max-sessions": 7, "spi-offline-preload-database-batch-size": 8} {
		if got := entry(t, s, key).Source; got.Kind != FromFile || got.Line != line || got.Name != path {
			t.Errorf("%s source = %+v, want %s:%d", key, got, path, line)
		}
	}
	if e := entry(t, s, "config"); e.Value != path || e.Source.String() != "flag --config" {
		t.Errorf("config entry = %+v", e)
	}
}

func TestProfilesDifferInDefaults(t *testing.T) {
	inDir(t, "")
	start := resolve(t, ProfileStart, nil, nil, testDescs())
	if start.HTTPHost != "0.0.0.0" {
		t.Errorf("start http-host = %q", start.HTTPHost)
	}
	if got := start.SPIs[spi.UserSessions].Provider; got != "postgres" {
		t.Errorf("start user-sessions provider = %q, want postgres", got)
	}
	dev := resolve(t, ProfileDev, nil, nil, testDescs())
	if dev.HTTPHost != "127.0.0.1" {
		t.Errorf("start-dev http-host = %q", dev.HTTPHost)
	}
	if dev.ShutdownTimeout != 10*time.Second || dev.PluginRestartBackoff != 100*time.Millisecond ||
		dev.PluginDir != "bin/plugins" || dev.PluginSocketDir != "/tmp" || dev.LogFormat != "text" {
		t.Errorf("defaults: %+v", dev)
	}
	if !regexp.MustCompile(`-` + strconv.Itoa(os.Getpid()) + `$`).MatchString(dev.NodeID) {
		t.Errorf("default node-id %q is not <hostname>-<pid>", dev.NodeID)
	}
	want := map[string]string{spi.UserSessions: "embedded", spi.OfflinePreload: "lazy", spi.CacheLifespan: "default", spi.RevocationPush: "log-only"}
	for name, id := range want {
		if got := dev.SPIs[name].Provider; got != id {
			t.Errorf("%s provider = %q, want %q", name, got, id)
		}
	}
}

func TestBareFlags(t *testing.T) {
	inDir(t, "")
	s := resolve(t, ProfileStart, []string{"--spi-user-sessions-memory-in-process", "--http-port", "81"}, nil, testDescs())
	if !s.SPIs[spi.UserSessions].Providers["memory"].InProcess || s.HTTPPort != 81 {
		t.Errorf("bare bool flag: in-process %v, port %d", s.SPIs[spi.UserSessions].Providers["memory"].InProcess, s.HTTPPort)
	}
	_, err := loadResolve(ProfileStart, []string{"--http-port", "--log-level=info"}, nil, testDescs())
	mustContainAll(t, errString(err), "flag --http-port", "needs a value", "--http-port=<value>")
}

func TestPeek(t *testing.T) {
	inDir(t, "log-level=debug\nlog-format=json\nbroken line\n")
	got := Peek([]string{"--log-level=warn", "positional"}, []string{"SESSIOND_LOG_FORMAT=text"}, "log-level", "log-format", "http-port")
	// The broken file is skipped, problems ignored; unset keys are left out.
	want := []Entry{
		{Key: "log-level", Value: "warn", Source: Source{Kind: FromFlag, Name: "--log-level"}},
		{Key: "log-format", Value: "text", Source: Source{Kind: FromEnv, Name: "SESSIOND_LOG_FORMAT"}},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Peek = %+v, want %+v", got, want)
	}
}

func TestPluginCookieIsNotConfiguration(t *testing.T) {
	inDir(t, "")
	resolve(t, ProfileStart, nil, []string{"SESSIOND_PLUGIN=cookie", "PATH=/bin", "OTHER_HTTP_PORT=1"}, testDescs())
}

// The test suite's variables stay set in the shell that runs sessiond binaries: they must
// neither fail loading nor become options, whatever follows the prefix; a variable that
// merely looks like one (no underscore after TEST) is still an unknown option.
func TestTestSuiteVariablesAreNotConfiguration(t *testing.T) {
	inDir(t, "")
	reserved := []string{
		"SESSIOND_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/sessiond_test",
		"SESSIOND_TEST_REDIS_URL=redis://127.0.0.1:6379",
		"SESSIOND_TEST_NATS_URL=nats://127.0.0.1:4222",
		"SESSIOND_TEST_=empty-rest",
		"SESSIOND_TEST_WITH-HYPHEN=not a valid key either",
	}
	s := resolve(t, ProfileStart, nil, append([]string{"SESSIOND_HTTP_PORT=8081"}, reserved...), testDescs())
	for _, e := range s.Effective() {
		if strings.HasPrefix(e.Source.Name, "SESSIOND_TEST") || strings.HasPrefix(e.Key, "test") {
			t.Errorf("a test-suite variable became option %s = %q (%s)", e.Key, e.Value, e.Source)
		}
	}
	if got := Peek(nil, reserved, "test-postgres-url"); len(got) != 0 {
		t.Errorf("Peek sees a test-suite variable as an option: %+v", got)
	}
	for _, o := range ServerOptions() {
		if strings.HasPrefix(o.Name, "test-") {
			t.Errorf("server option %s has the env variable %s, which the test suite's prefix %s hides", o.Name, EnvVar(o.Name), testPrefix)
		}
	}
	_, err := loadResolve(ProfileStart, nil, []string{"SESSIOND_TESTPOSTGRES_URL=x"}, testDescs())
	if err == nil || !strings.Contains(err.Error(), "unknown option") || !strings.Contains(err.Error(), "SESSIOND_TESTPOSTGRES_URL") {
		t.Errorf("SESSIOND_TESTPOSTGRES_URL: %v, want an unknown option naming the variable", err)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestConsoleOIDCNeedsItsClientAndRole(t *testing.T) {
	inDir(t, "")
	for _, tc := range []struct {
		args []string
		want []string // "" when it resolves
	}{
		{[]string{"--admin-console-oidc-realm=ops"}, []string{"--admin-console-oidc-realm needs admin-console-oidc-client too", "needs admin-console-oidc-role too"}},
		{[]string{"--admin-console-oidc-realm=ops", "--admin-console-oidc-client=console"}, []string{"needs admin-console-oidc-role too"}},
		{[]string{"--admin-console-oidc-realm=ops", "--admin-console-oidc-client=console", "--admin-console-oidc-role=admin"}, nil},
		// No silent no-ops: the other keys do nothing without the realm, and none does
		// anything with the console off.
		{[]string{"--admin-console-oidc-client=console", "--admin-console-oidc-role=admin"}, []string{
			"--admin-console-oidc-client has no effect without admin-console-oidc-realm", "--admin-console-oidc-role has no effect without admin-console-oidc-realm"}},
		{[]string{"--admin-console-oidc-viewer-role=viewer", "--admin-console-oidc-role-claim=groups"}, []string{
			"--admin-console-oidc-viewer-role has no effect without", "--admin-console-oidc-role-claim has no effect without"}},
		{[]string{"--admin-console-enabled=false", "--admin-console-oidc-realm=ops", "--admin-console-oidc-client=console", "--admin-console-oidc-role=admin"}, []string{
			"--admin-console-oidc-realm has no effect: admin-console-enabled is false"}},
	} {
		s, err := loadResolve(ProfileStart, tc.args, nil, testDescs())
		if tc.want == nil {
			if err != nil || s.ConsoleOIDC != (ConsoleOIDC{Realm: "ops", Client: "console", RoleClaim: "roles", AdminRole: "admin"}) {
				t.Errorf("%v: %+v, %v", tc.args, s.ConsoleOIDC, err)
			}
			continue
		}
		mustContainAll(t, errString(err), tc.want...)
	}
}
