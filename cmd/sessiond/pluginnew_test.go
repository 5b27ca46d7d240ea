package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPluginNewToARunningProvider follows docs/plugin-author-guide.md's walk-through for
// each SPI, from an empty folder: `plugin new` writes the module, its conformance test
// passes through a real plugin process, the binary is built, registered by SHA-256, listed
// as verified by `plugins list`, and selected by a sessiond that reports it ready. The
// guide's commands are run as written, with only the SPI and the provider's name, the
// folders (bin/ and ../sessiond-my-lifespan become temporary ones) and the port changed.
// The four run at once and share the go build cache.
func TestPluginNewToARunningProvider(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "plugin-author-guide.md"))
	if err != nil {
		t.Fatal(err)
	}
	guide := string(raw)
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	bin := sessiondBinary(t)
	const guideSPI, guideName, guideDir = "cache-lifespan", "my-lifespan", "../sessiond-my-lifespan"

	newBlock := guideBlock(t, guide, "guide:new")
	const buildLine = "go build -o bin/sessiond ./cmd/sessiond\n"
	if !strings.HasPrefix(newBlock, buildLine) {
		t.Fatalf("guide:new does not start by building sessiond (%q), which TestPluginAuthorGuide runs:\n%s", buildLine, newBlock)
	}
	newBlock = strings.TrimPrefix(newBlock, buildLine) // sessiondBinary is that build, shared

	// All four at once: t.Parallel would run only -parallel (GOMAXPROCS) of them at a time,
	// and each spends most of its time in go and in processes it waits for.
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, tc := range []struct{ spi, name string }{
		{"user-sessions", "my-store"},
		{"offline-preload", "my-preload"},
		{"cache-lifespan", "my-lifespan"},
		{"revocation-push", "my-push"},
	} {
		wg.Go(func() {
			t.Run(tc.spi, func(t *testing.T) {
				work := t.TempDir() // where the guide's commands run: nothing of the checkout
				moduleDir := filepath.Join(t.TempDir(), "sessiond-"+tc.name)
				port := freePort(t)
				began := time.Now()
				step := func(what string) { t.Logf("%s: %s at %s", tc.spi, what, time.Since(began).Round(time.Millisecond)) }
				local := func(s string) string {
					s = strings.ReplaceAll(s, guideDir, moduleDir)
					s = strings.ReplaceAll(s, guideName, tc.name)
					s = strings.ReplaceAll(s, guideSPI, tc.spi)
					s = regexp.MustCompile(`(^|[\s=(])bin/sessiond\b`).ReplaceAllString(s, "${1}"+bin)
					return strings.ReplaceAll(s, "127.0.0.1:8080", "127.0.0.1:"+port)
				}
				// The generated module finds the checkout through --sessiond-source here, as
				// the guide's run from the repository root finds it on its own; the go
				// commands may complete go.mod (GOFLAGS=-mod=mod) and share the build cache.
				env := "export GOFLAGS=\"${GOFLAGS:-} -mod=mod\"\n"
				wrote := guideRun(t, work, env+strings.ReplaceAll(local(newBlock), "\n", " --sessiond-source="+root+"\n"))
				if !strings.Contains(wrote, "provider_test.go") || !strings.Contains(wrote, "replace directive") {
					t.Errorf("plugin new printed:\n%s", wrote)
				}
				step("written")
				mod, err := os.ReadFile(filepath.Join(moduleDir, "go.mod"))
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(mod), "replace github.com/sessiond/sessiond => "+root+"\n") {
					t.Errorf("go.mod does not replace the module with the checkout:\n%s", mod)
				}

				tested := guideRun(t, work, env+local(guideBlock(t, guide, "guide:new-test")))
				if !regexp.MustCompile(`(?m)^ok\s+example\.com/sessiond-` + tc.name + `\s`).MatchString(tested) {
					t.Errorf("the generated conformance test did not pass:\n%s", tested)
				}
				step("conformance test passed, binary built")
				sum := guideDigest(t, filepath.Join(moduleDir, "sessiond-"+tc.name))

				register := local(guideBlock(t, guide, "guide:new-register"))
				listed := guideRun(t, work, register+local(guideBlock(t, guide, "guide:new-list")))
				row := regexp.MustCompile(`(?m)^` + tc.spi + `\s+` + tc.name + `\s+0\.1\.0\s+1\s+plugin\s+\d+\s+running\s+` + sum + `\s+` + regexp.QuoteMeta(filepath.Join(moduleDir, "sessiond-"+tc.name)) + `$`)
				if !row.MatchString(listed) {
					t.Errorf("plugins list shows no running, verified %s/%s with digest %s:\n%s", tc.spi, tc.name, sum, listed)
				}

				// A digest that is not the binary's: sessiond refuses to run it, naming both.
				wrong := strings.Repeat("0", 64)
				cmd := exec.Command("bash", "-euo", "pipefail", "-c", "MY_SHA256="+wrong+"\n"+local(guideBlock(t, guide, "guide:new-list")))
				cmd.Dir = work
				if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "checksum mismatch: its sha256 is "+sum) || !strings.Contains(string(out), wrong) {
					t.Errorf("plugins list with a wrong digest: %v\n%s", err, out)
				}
				step("listed as verified")
				start := strings.TrimSpace(local(guideBlock(t, guide, "guide:new-start"))) + " --http-port=" + port
				d := guideDaemon(t, work, register+"exec "+start)
				step("sessiond serving")
				ready := guideRun(t, work, local(guideBlock(t, guide, "guide:new-try")))
				if want := `{"name":"provider ` + tc.spi + `/` + tc.name + `","status":"UP"`; !strings.Contains(ready, want) {
					t.Errorf("readiness does not report %s:\n%s\nsessiond log:\n%s", want, ready, d.log())
				}
			})
		})
	}
}

// TestPluginNewRefusals: a misspelt SPI gets a "did you mean", a built-in's id and a folder
// that is not empty are refused, each with exit status 2 and nothing written.
func TestPluginNewRefusals(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "keep.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cache-lifspan", "x"}, `unknown SPI "cache-lifspan"; did you mean "cache-lifespan"?`},
		{[]string{"revocation", "x"}, `unknown SPI "revocation"`},
		{[]string{"user-sessions", "memory"}, `"memory" is the id of a built-in user-sessions provider`},
		{[]string{"cache-lifespan", "Bad_Name"}, `provider name "Bad_Name"`},
		{[]string{"cache-lifespan", "x", "--dir", full}, "is not empty"},
		{[]string{"cache-lifespan"}, "Usage: sessiond plugin new <spi> <name>"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr strings.Builder
			args := append([]string{"plugin", "new", "--sessiond-source", root}, tc.args...)
			if code := run(args, &stdout, &stderr); code != 2 {
				t.Errorf("exit status %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
		})
	}
	if entries, _ := os.ReadDir(full); len(entries) != 1 {
		t.Errorf("the folder that was not empty now holds %d entries", len(entries))
	}
	var help strings.Builder
	if code := run([]string{"plugin", "new", "--help"}, &help, &strings.Builder{}); code != 0 || !strings.Contains(help.String(), "--sessiond-source S") {
		t.Errorf("sessiond plugin new --help: status %d, stdout %q", code, help.String())
	}
	var stderr strings.Builder
	if code := run([]string{"plugin", "nwe"}, &strings.Builder{}, &stderr); code != 2 || !strings.Contains(stderr.String(), `did you mean "new"?`) {
		t.Errorf("sessiond plugin nwe: status %d, stderr %q", code, stderr.String())
	}
}
