package host

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// UnsafeError reports a plugin binary the host refuses to run because of where it lies or
// who could change it: a binary that someone other than root or sessiond's own user can
// replace would run as sessiond the next time the plugin starts, checksum or not, once
// that someone also controls the registration. The error names the file and what to do.
type UnsafeError struct {
	SPI, ID string
	Command string // as registered
	Path    string // the file or folder at fault
	Problem string
	Fix     string
}

func (e *UnsafeError) Error() string {
	return fmt.Sprintf("provider %s/%s: refusing to run %s (registered by spi-%s-%s-command): %s; %s",
		e.SPI, e.ID, e.Command, e.SPI, e.ID, e.Problem, e.Fix)
}

// executable is a plugin binary opened once. Its digest is checked on this descriptor and
// the process is started from it (see startPath), so what runs is what was checked, however
// the path is swapped meanwhile.
type executable struct {
	file *os.File
	name string // the path the plugin was registered with: its argv[0], its name in logs
}

// openExecutable opens the binary s names, checks where it lies and who could change it,
// and hashes it. For s.Self it opens the file this process runs (ownExecutable). The
// caller closes it once the process has started.
func openExecutable(s Spec) (*executable, error) {
	var path string
	var err error
	if s.Self {
		path, err = ownExecutable()
	} else {
		path, err = checkLocation(s)
	}
	if err != nil {
		return nil, err
	}
	// O_NOFOLLOW: checkLocation resolved every link, so a link now is a swap; /proc/self/exe
	// is a link by nature and is opened through it.
	flags := os.O_RDONLY | syscall.O_CLOEXEC
	if !s.Self {
		flags |= syscall.O_NOFOLLOW
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, err
	}
	exe := &executable{file: f, name: s.Command}
	if err := exe.checkFile(s); err != nil {
		f.Close()
		return nil, err
	}
	sum, err := digest(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if sum != s.SHA256 {
		f.Close()
		return nil, &ChecksumError{SPI: s.SPI, ID: s.ID, Path: path, Expected: s.SHA256, Actual: sum}
	}
	return exe, nil
}

// checkFile checks the open file itself: a regular file, and for a third-party plugin one
// that only root or sessiond's user can write.
func (exe *executable) checkFile(s Spec) error {
	fi, err := exe.file.Stat()
	if err != nil {
		return err
	}
	if err := checkRegular(s, exe.file.Name(), fi); err != nil {
		return err
	}
	if s.Self {
		return nil
	}
	return checkWriters(s, exe.file.Name(), fi, false)
}

// checkLocation resolves s.Command and checks the folders it lies in; it returns the
// resolved path, which the caller opens without following links.
//
// The plugin folder is s.Dir when s.Command lies in it, else the binary's own folder. The
// binary may be a symlink, but not to a file outside the plugin folder. Every folder from
// the plugin folder down to the binary must be writable by its owner alone, and owned by
// root or sessiond's user; the folders above it too, except that a sticky folder writable
// by all (/tmp) is fine, since no one else can rename or remove what is in it.
func checkLocation(s Spec) (string, error) {
	refuse := func(path, problem, fix string) (string, error) {
		return "", &UnsafeError{SPI: s.SPI, ID: s.ID, Command: s.Command, Path: path, Problem: problem, Fix: fix}
	}
	dir := filepath.Dir(s.Command)
	if s.Dir != "" {
		d, err := filepath.Abs(s.Dir)
		if err != nil {
			return "", err
		}
		if within(d, s.Command) {
			dir = d
		}
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(s.Command)
	if err != nil {
		return "", err
	}
	if !within(realDir, real) {
		return refuse(s.Command, fmt.Sprintf("it leads to %s, outside the plugin folder %s", real, realDir),
			"copy the binary into the plugin folder, or register its real path")
	}
	// Before opening it: opening a FIFO would block.
	fi, err := os.Lstat(real)
	if err != nil {
		return "", err
	}
	if err := checkRegular(s, real, fi); err != nil {
		return "", err
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		fi, err := os.Lstat(d)
		if err != nil {
			return "", err
		}
		if err := checkWriters(s, d, fi, !within(realDir, d)); err != nil {
			return "", err
		}
		if d == filepath.Dir(d) {
			return real, nil
		}
	}
}

// checkRegular refuses anything but a regular file: a device or a FIFO is no plugin.
func checkRegular(s Spec, path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	return &UnsafeError{SPI: s.SPI, ID: s.ID, Command: s.Command, Path: path,
		Problem: fmt.Sprintf("%s is not a regular file (%s)", path, fi.Mode().Type()),
		Fix:     "register the plugin's executable file itself"}
}

// checkWriters refuses path, described by fi, when anyone but its owner may write it or
// its owner is neither root nor sessiond's user. A folder above the plugin folder may be
// writable by all when it is sticky.
func checkWriters(s Spec, path string, fi fs.FileInfo, above bool) error {
	what := "the binary " + path
	if fi.IsDir() {
		what = "the folder " + path
	}
	sticky := above && fi.Mode()&fs.ModeSticky != 0
	if perm := fi.Mode().Perm(); perm&0o022 != 0 && !sticky {
		fix := "make it writable by its owner alone: chmod go-w " + path
		if above {
			fix += " (or make it sticky, as /tmp is: chmod +t " + path + ")"
		}
		return &UnsafeError{SPI: s.SPI, ID: s.ID, Command: s.Command, Path: path,
			Problem: fmt.Sprintf("%s is writable by group or others (%s), who could replace the plugin", what, fi.Mode()),
			Fix:     fix}
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil // no owner to check on this system
	}
	if me := os.Geteuid(); st.Uid != 0 && int(st.Uid) != me {
		return &UnsafeError{SPI: s.SPI, ID: s.ID, Command: s.Command, Path: path,
			Problem: fmt.Sprintf("%s is owned by uid %d, neither root nor sessiond's user (uid %d), who could replace the plugin", what, st.Uid, me),
			Fix:     fmt.Sprintf("give it to root or to uid %d: chown %d %s", me, me, path)}
	}
	return nil
}

// within reports whether path is dir or lies under it; both are clean absolute paths.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// command is the process that runs exe with args and env. The process starts from the
// open file (startPath); argv[0] is the registered path, as with any exec.
func (exe *executable) command(args, env []string) (*exec.Cmd, error) {
	path, extra, err := startPath(exe)
	if err != nil {
		return nil, err
	}
	return &exec.Cmd{
		Path:        path,
		Args:        append([]string{exe.name}, args...),
		Env:         env,
		ExtraFiles:  extra,
		SysProcAttr: procAttr(),
	}, nil
}

func (exe *executable) Close() error { return exe.file.Close() }
