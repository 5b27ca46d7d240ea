package conf

import (
	"path/filepath"
	"strings"
	"testing"
)

// Every message names the key as it was written, where it was set, and what would fix it.
func TestProblemsNameKeySourceAndFix(t *testing.T) {
	cases := []struct {
		name      string
		file      string
		env, args []string
		want      []string
	}{
		{"typo in an spi key, flag", "", nil, []string{"--spi-user-sesions-provider=memory"},
			[]string{"flag --spi-user-sesions-provider:", "unknown option --spi-user-sesions-provider", "did you mean --spi-user-sessions-provider?"}},
		{"typo in an spi key, env", "", []string{"SESSIOND_SPI_USER_SESIONS_PROVIDER=memory"}, nil,
			[]string{"env SESSIOND_SPI_USER_SESIONS_PROVIDER:", "did you mean SESSIOND_SPI_USER_SESSIONS_PROVIDER?"}},
		{"typo in an spi key, file", "\n\nspi-user-sesions-provider=memory\n", nil, nil,
			[]string{DefaultConfigFile + ":3:", "unknown option spi-user-sesions-provider", "did you mean spi-user-sessions-provider?"}},
		{"typo in a server key", "", nil, []string{"--http-prot=1"},
			[]string{"flag --http-prot", "did you mean --http-port?"}},
		{"unknown spi lists the spis", "", nil, []string{"--spi-sessions-thing=1"},
			[]string{"--spi-sessions-thing", "the SPIs are user-sessions, offline-preload, cache-lifespan, revocation-push"}},
		{"unknown provider in an option key lists the providers", "", nil, []string{"--spi-offline-preload-eager-batch-size=1"},
			[]string{"--spi-offline-preload-eager-batch-size", "no offline-preload provider matches", "its providers are database, lazy"}},
		{"unknown provider in the -- form", "", nil, []string{"--spi-offline-preload--eager--batch-size=1"},
			[]string{`offline-preload has no provider "eager"`, "its providers are database, lazy"}},
		{"malformed -- form", "", nil, []string{"--spi-offline-preload--database--batch--size=1"},
			[]string{"spi-<spi>--<provider>--<option>"}},
		{"unknown option of a provider lists its options and suggests", "", nil, []string{"--spi-user-sessions-memory-max-sesions=1"},
			[]string{`user-sessions provider memory has no option "max-sesions"`, "in-process, max-sessions, watch-buffer", "did you mean --spi-user-sessions-memory-max-sessions?"}},
		{"unknown selected provider lists the known ones", "", nil, []string{"--spi-user-sessions-provider=nosuch"},
			[]string{"flag --spi-user-sessions-provider", `unknown user-sessions provider "nosuch"`, "its providers are embedded, memory, postgres", "spi-user-sessions-<id>-command"}},
		{"int", "", nil, []string{"--http-port=eighty"},
			[]string{"flag --http-port", `invalid value "eighty" for --http-port: want a whole number`}},
		{"port range", "", []string{"SESSIOND_HTTP_PORT=70000"}, nil,
			[]string{"env SESSIOND_HTTP_PORT", `"70000"`, "0 to 65535"}},
		{"bool", "spi-user-sessions-memory-in-process=yes\n", nil, nil,
			[]string{DefaultConfigFile + ":1", `invalid value "yes" for spi-user-sessions-memory-in-process: want true or false`}},
		{"duration", "", nil, []string{"--shutdown-timeout=soon"},
			[]string{"--shutdown-timeout", `"soon"`, "30s, 5m or 1h30m, or whole seconds"}},
		{"enum", "", nil, []string{"--spi-revocation-push-webhook-mode=later"},
			[]string{"--spi-revocation-push-webhook-mode", `"later"`, "one of sync, async"}},
		{"server enum", "", nil, []string{"--log-format=xml"},
			[]string{"--log-format", `"xml"`, "one of text, json"}},
		{"unknown feature lists the features", "", nil, []string{"--features=persistent-user-sessions,time-travel"},
			[]string{"flag --features", `unknown feature "time-travel"`, "persistent-user-sessions, transient-sessions"}},
		{"feature enabled and disabled", "features=transient-sessions\n", []string{"SESSIOND_FEATURES_DISABLED=transient-sessions"}, nil,
			[]string{`feature "transient-sessions" is both enabled (` + DefaultConfigFile + `:1) and disabled (env SESSIOND_FEATURES_DISABLED)`}},
		{"plugin without checksum", "", nil, []string{"--spi-user-sessions-acme-command=acme"},
			[]string{"--spi-user-sessions-acme-command is set but --spi-user-sessions-acme-sha256 is not"}},
		{"checksum without plugin", "", nil, []string{"--spi-user-sessions-acme-sha256=" + testSum},
			[]string{"--spi-user-sessions-acme-sha256 is set but --spi-user-sessions-acme-command is not"}},
		{"malformed checksum", "", nil, []string{"--spi-user-sessions-acme-command=acme", "--spi-user-sessions-acme-sha256=abc"},
			[]string{`invalid value "abc" for --spi-user-sessions-acme-sha256`, "64 hexadecimal digits"}},
		{"plugin in-process", "", nil, []string{"--spi-user-sessions-acme-command=acme", "--spi-user-sessions-acme-sha256=" + testSum, "--spi-user-sessions-acme-in-process=true"},
			[]string{"--spi-user-sessions-acme-in-process", "only built-in providers run in-process; acme is a plugin"}},
		{"socket dir too long", "", nil, []string{"--plugin-socket-dir=/" + strings.Repeat("d", 80)},
			[]string{"--plugin-socket-dir", "at most 70 bytes"}},
		{"positional argument", "", nil, []string{"serve"},
			[]string{`unexpected argument "serve"`}},
		{"single dash", "", nil, []string{"-p"},
			[]string{`unknown argument "-p"`, "--key=value"}},
		{"after --", "", nil, []string{"--http-port=1", "--", "extra"},
			[]string{`unexpected argument "extra"`}},
		{"missing explicit config file", "", nil, []string{"--config=/nonexistent/sessiond.conf"},
			[]string{"flag --config", "/nonexistent/sessiond.conf does not exist"}},
		{"missing config file from env", "", []string{"SESSIOND_CONFIG=missing.conf"}, nil,
			[]string{"env SESSIOND_CONFIG", "missing.conf does not exist"}},
		{"config inside the file", "config=other.conf\n", nil, nil,
			[]string{DefaultConfigFile + ":1", "config cannot be set inside the config file"}},
		{"two spellings in one layer", "", nil, []string{"--spi-user-sessions-memory-max-sessions=1", "--spi-user-sessions--memory--max-sessions=2"},
			[]string{"both set spi-user-sessions-memory-max-sessions"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inDir(t, tc.file)
			_, err := loadResolve(ProfileStart, tc.args, tc.env, testDescs())
			if err == nil {
				t.Fatal("no error")
			}
			ps := problemsOf(t, err)
			if len(ps) != 1 {
				t.Errorf("want one problem, got %d:\n%v", len(ps), err)
			}
			mustContainAll(t, err.Error(), tc.want...)
		})
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	inDir(t, "http-port=x\nspi-user-sessions-memory-max-sessions=many\n")
	args := []string{"--spi-user-sesions-provider=memory", "--log-level=loud", "--features=warp"}
	env := []string{"SESSIOND_SHUTDOWN_TIMEOUT=forever"}
	_, err := loadResolve(ProfileStart, args, env, testDescs())
	ps := problemsOf(t, err)
	var got []string
	for _, p := range ps {
		got = append(got, p.Source.String())
	}
	// Sorted by layer (file, env, flags) and position.
	want := []string{DefaultConfigFile + ":1", DefaultConfigFile + ":2", "env SESSIOND_SHUTDOWN_TIMEOUT",
		"flag --features", "flag --log-level", "flag --spi-user-sesions-provider"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("problem sources = %q\nwant %q\n%v", got, want, err)
	}
	mustContainAll(t, err.Error(), "configuration has 6 problems:")
}

func TestLoadReportsEveryBadLineOfTheFile(t *testing.T) {
	_, err := Load(ProfileStart, []string{"--config", filepath.Join("testdata", "bad.conf")}, nil)
	ps := problemsOf(t, err)
	want := map[int]string{
		3: "write keys without leading dashes in a file: http-host=",
		4: `expected key=value, got "just some words"`,
		5: `invalid key "http.port"`,
		6: "http-port is set again; it was first set on line 2",
		7: "environment variable UNSET_VARIABLE is not set and ${UNSET_VARIABLE} has no default",
		8: "unterminated ${",
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for _, p := range ps {
		if p.Source.Name != filepath.Join("testdata", "bad.conf") {
			t.Errorf("problem names file %q", p.Source.Name)
		}
		if w, ok := want[p.Source.Line]; !ok || !strings.Contains(p.Msg, w) {
			t.Errorf("line %d: %q, want it to contain %q", p.Source.Line, p.Msg, w)
		}
	}
}

func TestUnknownProfile(t *testing.T) {
	_, err := Load("prod", nil, nil)
	mustContainAll(t, errString(err), `unknown profile "prod"`, "start or start-dev")
}

func TestSuggestIgnoresFarKeys(t *testing.T) {
	inDir(t, "")
	_, err := loadResolve(ProfileStart, []string{"--completely-different=1"}, nil, testDescs())
	msg := errString(err)
	mustContainAll(t, msg, "unknown option --completely-different")
	if strings.Contains(msg, "did you mean") {
		t.Errorf("suggested something for a key nothing resembles: %s", msg)
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3},
		{"spi-user-sesions-provider", "spi-user-sessions-provider", 1}, {"flaw", "lawn", 2},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
