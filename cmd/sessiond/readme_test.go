package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readmeBlock returns the shell block that follows the marker comment in README.md.
func readmeBlock(t *testing.T, readme, marker string) string {
	t.Helper()
	re := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(marker) + " -->\\s*```sh\\n(.*?)```")
	m := re.FindStringSubmatch(readme)
	if m == nil {
		t.Fatalf("README.md has no ```sh block after <!-- %s -->", marker)
	}
	return m[1]
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// TestReadmeQuickStart runs README.md's quick start as written: the certificate command,
// the server command (with the built binary for `go run ./cmd/sessiond`) and then the client
// commands with bash, over HTTPS. Only the port differs, so that the test never collides
// with a sessiond already on 8443, and the certificate's folder: a temporary one, where the
// client commands run too.
func TestReadmeQuickStart(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)
	port := freePort(t)
	work := t.TempDir()
	if out, err := bashIn(work, readmeBlock(t, readme, "quickstart:cert")); err != nil {
		t.Fatalf("quick-start certificate command failed: %v\n%s", err, out)
	}
	server := strings.TrimSpace(strings.ReplaceAll(readmeBlock(t, readme, "quickstart:server"), "\\\n", " "))
	client := readmeBlock(t, readme, "quickstart:client")
	client = strings.ReplaceAll(client, "127.0.0.1:8443", "127.0.0.1:"+port)

	args, ok := strings.CutPrefix(server, "go run ./cmd/sessiond ")
	if !ok {
		t.Fatalf("quick-start server command does not start with `go run ./cmd/sessiond`: %q", server)
	}
	fields := strings.Fields(args)
	if fields[0] != "start-dev" {
		t.Fatalf("quick-start server command is not start-dev: %q", server)
	}
	for i, f := range fields {
		for _, file := range []string{"cert.pem", "key.pem"} {
			if v, ok := strings.CutSuffix(f, "="+file); ok {
				fields[i] = v + "=" + filepath.Join(work, file)
			}
		}
	}
	// Run from the repository root, as the README says, so docs/quickstart-realm.json resolves.
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	// The embedded store's file goes to the test's directory, not the checkout's data/.
	store := "--spi-user-sessions-embedded-path=" + filepath.Join(t.TempDir(), "sessiond.db")
	d := startDaemonIn(t, root, append(fields[1:], "--https-port="+port, store)...)
	if !strings.HasPrefix(d.base, "https://") {
		t.Fatalf("the quick start serves %s, want https", d.base)
	}

	out, err := bashIn(work, client)
	if err != nil {
		t.Fatalf("quick-start client commands failed: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`"access_token":"[^"]+".*"refresh_token":"[^"]+"`), // the refresh answer
		regexp.MustCompile(`"active":true`),
		regexp.MustCompile(`"clientId":"shop"[^}]*"active":"1"`), // client-session-stats
		regexp.MustCompile(`"source":"client attribute client.session.idle.timeout`),
		regexp.MustCompile(`(?m)^204$`),
		regexp.MustCompile(`\{"active":false\}`),
	} {
		if !want.MatchString(text) {
			t.Errorf("quick-start output does not match %s:\n%s", want, text)
		}
	}
	if strings.Index(text, `"active":true`) > strings.Index(text, `{"active":false}`) {
		t.Errorf("introspection should be active before logout and inactive after:\n%s", text)
	}
	// Issue 19, point 11: the quick start leaves nothing in the folder but the certificate.
	left, _ := os.ReadDir(work)
	for _, f := range left {
		if f.Name() != "cert.pem" && f.Name() != "key.pem" {
			t.Errorf("the quick start left %s in the folder", f.Name())
		}
	}
}

// bashIn runs script with bash -euo pipefail in dir and returns its combined output.
func bashIn(dir, script string) ([]byte, error) {
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}
