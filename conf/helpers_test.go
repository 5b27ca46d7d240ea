package conf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/spi"
)

// Built-in-like descriptors with the awkward cases: provider ids that are prefixes of
// each other ("log", "log-only"), hyphenated option names, aliases, a secret, an enum.
func testDescs() []spi.Descriptor {
	return []spi.Descriptor{
		{SPI: spi.UserSessions, ID: "memory", Help: "Sessions in memory.", Options: []spi.Option{
			{Name: "max-sessions", Type: spi.Int, Default: "0", Help: "Most sessions held; 0 is no limit."},
			{Name: "watch-buffer", Type: spi.Int, Default: "256", Help: "Change feed buffer."},
		}},
		{SPI: spi.UserSessions, ID: "postgres", Help: "Sessions in PostgreSQL.", Options: []spi.Option{
			{Name: "url", Type: spi.String, Secret: true, Help: "Where."},
		}},
		{SPI: spi.UserSessions, ID: "embedded", Help: "Sessions in a local file.", Options: []spi.Option{
			{Name: "path", Type: spi.String, Default: "data/sessiond.db", Help: "File."},
		}},
		{SPI: spi.OfflinePreload, ID: "lazy", Help: "Load on first use."},
		{SPI: spi.OfflinePreload, ID: "database", Help: "Stream at start.", Options: []spi.Option{
			{Name: "batch-size", Type: spi.Int, Default: "500", Help: "Sessions per page."},
			{Name: "all-at-start", Type: spi.Bool, Default: "false", Help: "Preload everything."},
		}},
		{SPI: spi.CacheLifespan, ID: "default", Help: "Own remaining lifetime."},
		{SPI: spi.CacheLifespan, ID: "override", Options: []spi.Option{
			{Name: "offline-session-lifespan", Type: spi.Duration, Help: "Fixed lifespan of imported offline sessions.",
				Aliases: []string{"spi-user-sessions-infinispan-offline-session-cache-entry-lifespan-override"}},
			{Name: "offline-client-session-lifespan", Type: spi.Duration, Help: "Fixed lifespan of imported offline client sessions.",
				Aliases: []string{"spi-user-sessions-infinispan-offline-client-session-cache-entry-lifespan-override"}},
		}},
		{SPI: spi.RevocationPush, ID: "log", Options: []spi.Option{
			{Name: "only-errors", Type: spi.Bool, Default: "false", Help: "Log failures only."},
			// Collides with log-only's max-retries in the Keycloak form.
			{Name: "only-max-retries", Type: spi.Int, Default: "1", Help: "Retries when logging only."},
		}},
		{SPI: spi.RevocationPush, ID: "log-only", Options: []spi.Option{
			{Name: "max-retries", Type: spi.Int, Default: "3", Help: "Retries per client."},
		}},
		{SPI: spi.RevocationPush, ID: "webhook", Options: []spi.Option{
			{Name: "secret", Type: spi.String, Secret: true, Help: "HMAC key."},
			{Name: "mode", Type: spi.Enum, Default: "async", Allowed: []string{"sync", "async"}, Help: "Delivery."},
			{Name: "timeout", Type: spi.Duration, Default: "5s", Help: "Per request."},
		}},
	}
}

// acmeDesc is what a third-party plugin registered as user-sessions/acme-db says of itself.
func acmeDesc() spi.Descriptor {
	return spi.Descriptor{SPI: spi.UserSessions, ID: "acme-db", Options: []spi.Option{
		{Name: "dsn", Type: spi.String, Secret: true, Help: "Where."},
		{Name: "pool-size", Type: spi.Int, Default: "4", Help: "Connections."},
		{Name: "legacy", Type: spi.Bool, Default: "false", Aliases: []string{"spi-connections-acme-legacy-mode"}},
	}}
}

const testSum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// inDir runs the test in a fresh working directory holding conf/sessiond.conf with
// content (none when content is ""), so the default file is what Load reads.
func inDir(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	if content != "" {
		writeFile(t, filepath.Join(dir, DefaultConfigFile), content)
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// resolve loads and resolves against descs, failing the test on error.
func resolve(t *testing.T, p Profile, args, environ []string, descs []spi.Descriptor) *Settings {
	t.Helper()
	l, err := Load(p, args, environ)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	s, err := l.Resolve(descs)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	return s
}

// loadResolve returns the first error of Load then Resolve.
func loadResolve(p Profile, args, environ []string, descs []spi.Descriptor) (*Settings, error) {
	l, err := Load(p, args, environ)
	if err != nil {
		return nil, err
	}
	return l.Resolve(descs)
}

// mustRefuse checks that args and environ are refused with exactly one problem, whose
// message holds every want.
func mustRefuse(t *testing.T, args, environ []string, want ...string) {
	t.Helper()
	inDir(t, "")
	_, err := loadResolve(ProfileStart, args, environ, testDescs())
	if err == nil {
		t.Fatal("no error")
	}
	if ps := problemsOf(t, err); len(ps) != 1 {
		t.Errorf("want one problem, got %d:\n%v", len(ps), err)
	}
	mustContainAll(t, err.Error(), want...)
}

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *conf.Error", err, err)
	}
	return ce.Problems
}

func entry(t *testing.T, s *Settings, key string) Entry {
	t.Helper()
	for _, e := range s.Effective() {
		if e.Key == key {
			return e
		}
	}
	t.Fatalf("show-config has no %s", key)
	return Entry{}
}

func mustContainAll(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%q\n  does not contain %q", got, w)
		}
	}
}
