//go:build !linux

package host

import (
	"fmt"
	"os"
)

// startPath, without /proc/self/fd, executes the binary by the path it was opened at,
// once it has checked that the path still names the file that was hashed. This narrows
// the window between check and exec to the fork but does not close it: a swap within it
// runs an unverified binary. The folder checks, which keep anyone but root and sessiond's
// user from swapping, are what protect a plugin here.
func startPath(exe *executable) (string, []*os.File, error) {
	path := exe.file.Name()
	held, err := exe.file.Stat()
	if err != nil {
		return "", nil, err
	}
	now, err := os.Lstat(path)
	if err != nil {
		return "", nil, err
	}
	if !os.SameFile(held, now) {
		return "", nil, fmt.Errorf("%s was replaced after its checksum was verified; not running it", path)
	}
	return path, nil, nil
}

// ownExecutable: without /proc/self/exe, the path sessiond was started from.
func ownExecutable() (string, error) { return os.Executable() }
