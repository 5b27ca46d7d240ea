package host_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/plugins/host"
	"github.com/sessiond/sessiond/plugins/wire"
	"github.com/sessiond/sessiond/providers/usersessions/memory"
	"github.com/sessiond/sessiond/spi"
)

// pluginDir returns a fresh plugin folder that only its owner can write, as sessiond
// wants one, whatever the umask.
func pluginDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeScript writes an executable shell script into dir.
func writeScript(t testing.TB, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// swapper puts a new name for target (os.Symlink or os.Link) at path's side and renames
// it over path, atomically: an attacker racing sessiond between its check of the plugin
// binary and its exec.
type swapper func(target, tmp string) error

func swap(link swapper, path, target string) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	if err := link(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// TestPluginSymlinkSwapCannotRunUnverifiedBinary races an attacker who swaps the registered
// plugin path between two binaries — the registered one and one that leaves a marker —
// while sessiond starts the plugin again and again. Whatever the timing, the unverified
// binary must never run: sessiond executes the very file it hashed.
func TestPluginSymlinkSwapCannotRunUnverifiedBinary(t *testing.T) {
	// Per way of swapping: 200 execs in all. Without the fix about half of them ran the
	// unverified binary.
	const tries = 100
	for _, tc := range []struct {
		name string
		swap swapper
	}{
		{"symlink swapped", os.Symlink},
		{"binary renamed over", os.Link}, // the path names another regular file
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := pluginDir(t)
			marker := filepath.Join(t.TempDir(), "unverified-binary-ran")
			// The registered binary fails its handshake at once, so each try is quick;
			// the unverified one leaves a mark and fails the same way.
			good := writeScript(t, dir, "good", "exit 1\n")
			evil := writeScript(t, dir, "evil", fmt.Sprintf("echo ran >> %q\nexit 1\n", marker))
			path := filepath.Join(dir, "plugin")
			if err := swap(tc.swap, path, good); err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var swapErr error
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					target := good
					if i%2 == 1 {
						target = evil
					}
					if err := swap(tc.swap, path, target); err != nil {
						swapErr = err
						return
					}
					// Pauses of 0 to 1.5 ms let some starts see one file throughout and
					// others see it change between their check and their exec.
					time.Sleep(time.Duration(i%4) * 500 * time.Microsecond)
				}
			})

			h, _ := newHost(t, host.Options{StartTimeout: 5 * time.Second})
			// A refusal takes microseconds, an exec milliseconds: count the starts that
			// executed something, so that each of the tries races an exec.
			refused, ran := 0, 0
			for ran < tries && refused < 100*tries {
				_, err := h.Start(context.Background(), host.Spec{
					SPI: spi.UserSessions, ID: "swapped", Command: path, SHA256: sha256Hex(t, good),
				})
				var ce *host.ChecksumError
				switch {
				case err == nil:
					t.Fatal("a plugin that fails its handshake started")
				case errors.As(err, &ce):
					refused++
				default:
					ran++ // a binary ran and failed its handshake
				}
			}
			cancel()
			wg.Wait()
			if swapErr != nil {
				t.Fatalf("swapping: %v", swapErr)
			}

			time.Sleep(100 * time.Millisecond) // what a script still running needs to leave its mark
			if b, err := os.ReadFile(marker); err == nil {
				t.Fatalf("the unverified binary ran %d times in %d starts that executed a binary (and %d refused by checksum)",
					len(b)/len("ran\n"), ran, refused)
			}
			// Both outcomes must have happened, or the race was never run.
			if refused == 0 || ran == 0 {
				t.Errorf("%d starts were refused and %d ran a binary: the swap never raced the start", refused, ran)
			}
			t.Logf("%d starts ran the registered binary, none the unverified one; %d were refused by checksum", ran, refused)
		})
	}
}

// thirdPartySpec runs the test binary in mode as a third-party plugin would run: a file in
// a plugin folder, registered by path and digest.
func thirdPartySpec(t testing.TB, mode string) host.Spec {
	t.Helper()
	spec := selfSpec(t, mode, spi.UserSessions, memory.ID)
	dir := pluginDir(t)
	path := filepath.Join(dir, "sessiond-memory")
	if err := os.Link(spec.Command, path); err != nil {
		copyFile(t, spec.Command, path)
	}
	spec.Command, spec.Dir, spec.Self = path, dir, false
	return spec
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPluginEnvironmentCarriesNoSecrets starts a real plugin, which reports the
// environment it got, with credentials in sessiond's: none of them reaches it, the
// machine's settings and what go-plugin needs do.
func TestPluginEnvironmentCarriesNoSecrets(t *testing.T) {
	secrets := map[string]string{
		"SESSIOND_ADMIN_TOKEN":                    "admin-secret-4e1f",
		"SESSIOND_FRONTEND_TOKEN":                 "frontend-secret-9a7c",
		"SESSIOND_SPI_USER_SESSIONS_POSTGRES_URL": "postgres://sessiond:db-password-77b2@db.internal/sessiond",
		"DATABASE_URL":                            "postgres://app:db-password-3c9d@db.internal/app",
		"AWS_SECRET_ACCESS_KEY":                   "aws-secret-51e0",
		"HTTPS_PROXY":                             "http://proxyuser:proxy-password-0d4e@proxy:3128",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	passes := map[string]string{"LANG": "C.UTF-8", "LC_TIME": "en_GB.UTF-8", "TZ": "Europe/Paris"}
	for k, v := range passes {
		t.Setenv(k, v)
	}
	for _, tc := range []struct {
		name string
		spec func(testing.TB, string) host.Spec
	}{
		{"built-in", func(t testing.TB, mode string) host.Spec { return selfSpec(t, mode, spi.UserSessions, memory.ID) }},
		{"third-party", thirdPartySpec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newHost(t, host.Options{})
			p, err := h.Start(context.Background(), tc.spec(t, "env"))
			if err != nil {
				t.Fatal(err)
			}
			env := map[string]string{}
			for _, kv := range strings.Split(p.Descriptor().Help, "\x00") {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			for k, v := range secrets {
				if _, ok := env[k]; ok {
					t.Errorf("the plugin's environment has sessiond's %s", k)
				}
				for ek, ev := range env {
					if strings.Contains(ev, v) {
						t.Errorf("the plugin's %s carries the value of sessiond's %s", ek, k)
					}
				}
			}
			for k, v := range passes {
				if env[k] != v {
					t.Errorf("the plugin's %s = %q, want sessiond's %q", k, env[k], v)
				}
			}
			if env["PATH"] != os.Getenv("PATH") {
				t.Errorf("the plugin's PATH = %q, want sessiond's", env["PATH"])
			}
			// What the host and go-plugin hand it (the plugin would not have started without
			// the handshake's).
			for _, k := range []string{"SESSIOND_PLUGIN_LOG_LEVEL", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_CLIENT_CERT", "PLUGIN_UNIX_SOCKET_DIR"} {
				if env[k] == "" {
					t.Errorf("the plugin's environment lacks %s", k)
				}
			}
			// Nothing else: the list, the spec's own (the test mode), the host's and go-plugin's.
			listed := []string{"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "SSL_CERT_FILE", "SSL_CERT_DIR",
				"SESSIOND_PLUGIN_LOG_LEVEL", wire.Handshake().MagicCookieKey, modeEnv, providerEnv}
			var unexpected []string
			for k := range env {
				if !slices.Contains(listed, k) && !strings.HasPrefix(k, "PLUGIN_") && !strings.HasPrefix(k, "LC_") && !strings.HasPrefix(k, "GO") {
					unexpected = append(unexpected, k)
				}
			}
			if len(unexpected) > 0 {
				t.Errorf("the plugin's environment has variables off the list: %q", unexpected)
			}
		})
	}
}

// layout is where a test put a plugin: the plugin folder and the registered path.
type layout struct{ dir, command string }

// startArranged writes a plugin that leaves a mark when it runs (and then fails its
// handshake) into a fresh plugin folder, lets arrange move things about, and starts it as
// the user-sessions/acme plugin registered in the folder arrange says. It reports whether
// the plugin ran.
func startArranged(t *testing.T, arrange func(t *testing.T, dir, plugin string) layout) (layout, bool, error) {
	t.Helper()
	dir := pluginDir(t)
	marker := filepath.Join(t.TempDir(), "ran")
	plugin := writeScript(t, dir, "plugin", fmt.Sprintf("touch %q\nexit 1\n", marker))
	sum := sha256Hex(t, plugin)
	l := arrange(t, dir, plugin)
	h, _ := newHost(t, host.Options{})
	_, err := h.Start(context.Background(), host.Spec{
		SPI: spi.UserSessions, ID: "acme", Command: l.command, Dir: l.dir, SHA256: sum,
	})
	_, statErr := os.Stat(marker)
	return l, statErr == nil, err
}

// TestPluginRefusesUnsafeFiles: a binary, or a folder it lies in, that anyone but root or
// sessiond's user could replace is refused before anything runs, and so is a symlink out of
// the plugin folder; the error names the file, the key and what to do.
func TestPluginRefusesUnsafeFiles(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir, plugin string) layout
		culprit func(l layout) string // the path the error must name
		want    []string
	}{
		{"world-writable binary",
			func(t *testing.T, dir, plugin string) layout { chmod(t, plugin, 0o757); return layout{dir, plugin} },
			func(l layout) string { return l.command },
			[]string{"writable by group or others", "chmod go-w"}},
		{"group-writable binary",
			func(t *testing.T, dir, plugin string) layout { chmod(t, plugin, 0o775); return layout{dir, plugin} },
			func(l layout) string { return l.command },
			[]string{"writable by group or others", "chmod go-w"}},
		{"world-writable plugin folder",
			func(t *testing.T, dir, plugin string) layout { chmod(t, dir, 0o777); return layout{dir, plugin} },
			func(l layout) string { return l.dir },
			[]string{"the folder", "writable by group or others", "chmod go-w"}},
		{"group-writable folder between plugin folder and binary",
			func(t *testing.T, dir, plugin string) layout { return layout{dir, moveInto(t, plugin, "acme", 0o775)} },
			func(l layout) string { return filepath.Dir(l.command) },
			[]string{"the folder", "writable by group or others", "chmod go-w"}},
		{"world-writable folder above the plugin folder",
			func(t *testing.T, dir, plugin string) layout {
				chmod(t, dir, 0o777)
				moved := moveInto(t, plugin, "plugins", 0o755)
				return layout{filepath.Dir(moved), moved}
			},
			func(l layout) string { return filepath.Dir(l.dir) },
			[]string{"the folder", "writable by group or others", "chmod go-w"}},
		{"symlink out of the plugin folder",
			func(t *testing.T, dir, plugin string) layout {
				inner := filepath.Join(dir, "plugins")
				mkdir(t, inner, 0o755)
				link := filepath.Join(inner, "plugin")
				if err := os.Symlink(plugin, link); err != nil {
					t.Fatal(err)
				}
				return layout{inner, link}
			},
			func(l layout) string { return l.command },
			[]string{"outside the plugin folder", "copy the binary into the plugin folder"}},
		{"not a regular file",
			func(t *testing.T, dir, plugin string) layout {
				fifo := filepath.Join(dir, "fifo")
				if err := syscall.Mkfifo(fifo, 0o755); err != nil {
					t.Fatal(err)
				}
				return layout{dir, fifo}
			},
			func(l layout) string { return l.command },
			[]string{"not a regular file"}},
		{"binary owned by another user",
			func(t *testing.T, dir, plugin string) layout {
				if os.Geteuid() != 0 {
					t.Skip("only root can give a file away")
				}
				if err := os.Chown(plugin, 65534, 65534); err != nil {
					t.Fatal(err)
				}
				return layout{dir, plugin}
			},
			func(l layout) string { return l.command },
			[]string{"owned by uid 65534", "chown 0 "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ran, err := startArranged(t, tt.setup)
			var ue *host.UnsafeError
			if !errors.As(err, &ue) {
				t.Fatalf("Start error = %v, want a *host.UnsafeError", err)
			}
			culprit := tt.culprit(l)
			if ue.Path != culprit {
				t.Errorf("UnsafeError.Path = %s, want %s", ue.Path, culprit)
			}
			for _, w := range append([]string{"user-sessions/acme", culprit, "spi-user-sessions-acme-command"}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if ran {
				t.Error("the refused plugin ran")
			}
		})
	}
}

// TestPluginAcceptsSafeLayouts: what the checks must not refuse. A binary that is a
// symlink within the plugin folder, a plugin folder that is itself a symlink, a sticky
// folder writable by all above the plugin folder (/tmp), and a binary registered by an
// absolute path outside plugin-dir, whose own folder is then the plugin folder.
func TestPluginAcceptsSafeLayouts(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir, plugin string) layout
	}{
		{"binary in the plugin folder", func(t *testing.T, dir, plugin string) layout { return layout{dir, plugin} }},
		{"symlink within the plugin folder", func(t *testing.T, dir, plugin string) layout {
			moveInto(t, plugin, "versions", 0o755)
			if err := os.Symlink("versions/plugin", plugin); err != nil {
				t.Fatal(err)
			}
			return layout{dir, plugin}
		}},
		{"plugin folder reached through a symlink", func(t *testing.T, dir, plugin string) layout {
			link := filepath.Join(t.TempDir(), "plugins")
			if err := os.Symlink(dir, link); err != nil {
				t.Fatal(err)
			}
			return layout{link, filepath.Join(link, "plugin")}
		}},
		{"sticky world-writable folder above", func(t *testing.T, dir, plugin string) layout {
			chmod(t, dir, 0o777|os.ModeSticky)
			moved := moveInto(t, plugin, "plugins", 0o755)
			return layout{filepath.Dir(moved), moved}
		}},
		{"absolute path outside plugin-dir", func(t *testing.T, dir, plugin string) layout {
			return layout{filepath.Join(t.TempDir(), "plugins"), plugin}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ran, err := startArranged(t, tt.setup)
			var ue *host.UnsafeError
			var ce *host.ChecksumError
			if errors.As(err, &ue) || errors.As(err, &ce) {
				t.Fatalf("Start refused a safe plugin: %v", err)
			}
			if !ran {
				t.Errorf("the plugin did not run (it fails its handshake on purpose: %v)", err)
			}
		})
	}
}

// TestSelfPluginRunsTheRunningExecutable: a built-in runs the file sessiond was started
// from, not whatever its path names now (an upgrade in progress, or a swap).
func TestSelfPluginRunsTheRunningExecutable(t *testing.T) {
	dir := pluginDir(t)
	marker := filepath.Join(t.TempDir(), "ran")
	spec := selfSpec(t, "serve", spi.UserSessions, memory.ID)
	spec.Command = writeScript(t, dir, "sessiond", fmt.Sprintf("touch %q\nexit 1\n", marker))
	h, _ := newHost(t, host.Options{})
	p, err := h.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if d := p.Descriptor(); d.SPI != spi.UserSessions || d.ID != memory.ID {
		t.Errorf("descriptor = %s/%s", d.SPI, d.ID)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file at the path ran instead of the running executable (marker: %v)", err)
	}
	if st := h.Status()[0]; st.Command != spec.Command || st.SHA256 != spec.SHA256 {
		t.Errorf("status = %+v, want the registered command and the executable's digest", st)
	}
}

// TestPluginSocketFolderIs0700: the folder the plugins' sockets are in, and each
// plugin's own within it, are sessiond's alone.
func TestPluginSocketFolderIs0700(t *testing.T) {
	base := t.TempDir()
	chmod(t, base, 0o755)
	h, _ := newHost(t, host.Options{SocketDir: base})
	startMemory(t, h, "serve", nil)
	var dirs []string
	err := filepath.WalkDir(base, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && path != base {
			dirs = append(dirs, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 2 {
		t.Fatalf("socket folders under %s: %q, want the host's and the plugin's", base, dirs)
	}
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o700 {
			t.Errorf("%s has mode %v, want 0700", d, perm)
		}
	}
}

func chmod(t testing.TB, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// moveInto moves file into a new folder sub beside it, made with mode, and returns its
// new path.
func moveInto(t testing.TB, file, sub string, mode os.FileMode) string {
	t.Helper()
	dir := filepath.Join(filepath.Dir(file), sub)
	mkdir(t, dir, mode)
	moved := filepath.Join(dir, filepath.Base(file))
	if err := os.Rename(file, moved); err != nil {
		t.Fatal(err)
	}
	return moved
}

func mkdir(t testing.TB, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, mode)
}

// TestBuiltinPluginsDefaultToOneP: a built-in provider's process runs with GOMAXPROCS=1
// unless the operator set GOMAXPROCS for sessiond, which then reaches it as before; a
// third-party plugin gets no default.
func TestBuiltinPluginsDefaultToOneP(t *testing.T) {
	for _, tc := range []struct {
		name     string
		spec     func(testing.TB, string) host.Spec
		operator string // sessiond's GOMAXPROCS, "" for unset
		want     string
	}{
		{"built-in", func(t testing.TB, mode string) host.Spec { return selfSpec(t, mode, spi.UserSessions, memory.ID) }, "", "1"},
		{"built-in, the operator's setting", func(t testing.TB, mode string) host.Spec { return selfSpec(t, mode, spi.UserSessions, memory.ID) }, "3", "3"},
		{"third-party", thirdPartySpec, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.operator != "" {
				t.Setenv("GOMAXPROCS", tc.operator)
			} else if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
				t.Setenv("GOMAXPROCS", v) // restored after the test
				os.Unsetenv("GOMAXPROCS")
			}
			h, _ := newHost(t, host.Options{})
			p, err := h.Start(context.Background(), tc.spec(t, "env"))
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, kv := range strings.Split(p.Descriptor().Help, "\x00") {
				if v, ok := strings.CutPrefix(kv, "GOMAXPROCS="); ok {
					got = v
				}
			}
			if got != tc.want {
				t.Errorf("the plugin's GOMAXPROCS = %q, want %q", got, tc.want)
			}
		})
	}
}
