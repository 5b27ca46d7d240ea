package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/conf"
)

// TestOperatorGuideStart runs docs/operator-guide.md's `start` example as written: the
// self-signed certificate, the random credentials, `sessiond start` with a hostname and TLS
// on PostgreSQL (a random schema of the test database), and the requests over TLS. Only the
// ports (free ones for 8443 and 9000), the database URL, the certificate's folder and the
// binary's path differ.
func TestOperatorGuideStart(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "operator-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(raw)
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	work := t.TempDir()
	bin := sessiondBinary(t)
	port, mport := freePort(t), freePort(t)
	local := func(s string) string {
		s = strings.ReplaceAll(s, "./sessiond ", bin+" ")
		s = strings.ReplaceAll(s, "localhost:8443", "localhost:"+port)
		return strings.ReplaceAll(s, "localhost:9000", "localhost:"+mport)
	}

	guideRun(t, work, guideBlock(t, guide, "guide:start-cert"))
	// What the block exports, for the server and for the shell that tries it.
	creds := guideRun(t, work, guideBlock(t, guide, "guide:start-credentials")+"\nexport -p | grep '^declare -x SESSIOND_'\n")
	if !strings.Contains(creds, "SESSIOND_FRONTEND_TOKEN=") || !strings.Contains(creds, "SESSIOND_ADMIN_TOKEN=") {
		t.Fatalf("the credentials block exports no credentials:\n%s", creds)
	}

	start := local(guideBlock(t, guide, "guide:start"))
	for _, f := range []string{"cert.pem", "key.pem"} {
		start = strings.ReplaceAll(start, "="+f, "="+filepath.Join(work, f))
	}
	if !strings.Contains(start, "postgres://sessiond:secret@db.example.com:5432/sessiond") {
		t.Fatalf("the guide's start example has no database URL to replace:\n%s", start)
	}
	start = strings.ReplaceAll(start, "postgres://sessiond:secret@db.example.com:5432/sessiond", pgSchema(t))
	start = strings.TrimSpace(start) + " --https-port=" + port + " --http-management-port=" + mport
	d := guideDaemon(t, root, creds+"exec "+start)
	if !strings.Contains(d.log(), "address=https://") || !strings.Contains(d.log(), "management interface") {
		t.Errorf("sessiond start does not serve HTTPS and a management interface:\n%s", d.log())
	}

	tried := guideRun(t, work, creds+local(guideBlock(t, guide, "guide:start-try")))
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`"status":"UP"`),
		regexp.MustCompile(`(?m)^404$`), // health is not on the public port
		regexp.MustCompile(`"issuer":"https://localhost:` + port + `/realms/quickstart"`),
		regexp.MustCompile(`(?m)^CLIENT\s+ID\s+ACTIVE\s+OFFLINE`),
	} {
		if !want.MatchString(tried) {
			t.Errorf("the guide's requests printed no match of %s:\n%s", want, tried)
		}
	}
}

// TestStartRefusesWithoutTLSOrHostname runs `sessiond start` with nothing set: it exits
// before starting anything, saying at once everything there is to set.
func TestStartRefusesWithoutTLSOrHostname(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(sessiondBinary(t), "start", "--frontend-token=fe-dev-token")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("start ran:\n%s", out)
	}
	for _, want := range []string{
		"configuration has 4 problems",
		"start needs a key-encryption key",
		"start needs TLS: set https-certificate-file and https-certificate-key-file, or http-enabled=true behind a TLS-terminating proxy",
		"start needs hostname",
		`flag --frontend-token: --frontend-token is the development credential "fe-dev-token"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// Issue 19, point 4: the guide's show-config and plugins list commands, as written, work
// in an empty folder of a machine with no database (PostgreSQL here is pointed at a port
// where nothing listens): a profile is a positional word for both, start by default.
func TestPoint4_guideConfigAndPluginCommandsRunOnAFreshMachine(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "operator-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(raw)
	bin := sessiondBinary(t)
	noDatabase := "export SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL=postgres://nobody@127.0.0.1:1/none\n"
	for _, tc := range []struct {
		marker string
		want   []*regexp.Regexp
	}{
		{"guide:show-config", []*regexp.Regexp{
			regexp.MustCompile(`(?m)^http-port\s+9090\s+flag --http-port`),
			regexp.MustCompile(`(?m)^hostname\s+\S*sso\.example\.com\s+flag --hostname`),
		}},
		{"guide:plugins-list", []*regexp.Regexp{
			regexp.MustCompile(`(?m)^user-sessions\s+postgres\s.*running`),
			regexp.MustCompile(`(?m)^user-sessions\s+embedded\s.*running`),
			regexp.MustCompile(`(?m)^revocation-push\s+log-only\s.*running`),
		}},
	} {
		t.Run(tc.marker, func(t *testing.T) {
			t.Parallel()
			block := guideBlock(t, guide, tc.marker)
			if !strings.Contains(block, "./sessiond ") {
				t.Fatalf("the block runs no ./sessiond:\n%s", block)
			}
			out := guideRun(t, t.TempDir(), noDatabase+strings.ReplaceAll(block, "./sessiond ", bin+" "))
			for _, want := range tc.want {
				if !want.MatchString(out) {
					t.Errorf("the guide's commands printed no match of %s:\n%s", want, out)
				}
			}
		})
	}
}

// Issue 19, point 6: the operator guide and the plugin author guide say the same about
// where plugin binaries live, and what they say is the code's default.
func TestPoint6_guidesAgreeOnWherePluginBinariesLive(t *testing.T) {
	t.Parallel()
	var said []string
	for _, name := range []string{"operator-guide.md", "plugin-author-guide.md"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", "docs", name))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?s)Plugin binaries live in .*?\(a start that finds a binary only there says so\)\.`).FindString(string(raw))
		if m == "" {
			t.Fatalf("docs/%s does not say where plugin binaries live", name)
		}
		said = append(said, strings.Join(strings.Fields(m), " "))
	}
	if said[0] != said[1] {
		t.Errorf("the guides disagree:\n%s\n%s", said[0], said[1])
	}
	for _, dir := range []string{conf.DefaultPluginDir, conf.DefaultDevPluginDir} {
		if !strings.Contains(said[0], "`"+dir+"`") {
			t.Errorf("the guides do not name the default %s:\n%s", dir, said[0])
		}
	}
}

// Issue 19, point 3: show-config says on stderr what start would warn about.
func TestPoint3_showConfigWarnsAboutOptionsOfProvidersNotSelected(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(sessiondBinary(t), "show-config", "start-dev", "--spi-user-sessions-memory-in-process=true")
	cmd.Dir = t.TempDir()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("show-config: %v\n%s", err, stderr.String())
	}
	want := `warning: --spi-user-sessions-memory-in-process has no effect: it is an option of user-sessions provider "memory", and spi-user-sessions-provider is "embedded" (default)`
	if !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), "(set by flag --spi-user-sessions-memory-in-process)") {
		t.Errorf("show-config stderr %q, want %q and the source", stderr.String(), want)
	}
	if strings.Contains(stdout.String(), "warning") {
		t.Errorf("the warning went into the table:\n%s", stdout.String())
	}
}
