package host

import (
	"fmt"
	"os"
	"strconv"
)

// childFD is where the open plugin binary lands in the child: ExtraFiles[0] becomes
// descriptor 3 whatever its number here, after os/exec has put stdin, stdout and stderr on
// 0 to 2, so nothing the fork does can land on it.
const childFD = 3

// startPath makes the child execute the open binary itself: execve of /proc/self/fd/3,
// resolved in the child, opens the file that descriptor holds, not whatever a path names
// by then. (os/exec has no fexecve; the kernel does the same for this path.) The
// descriptor stays open, read-only, in the plugin: a shell script run this way reads
// itself through it.
func startPath(exe *executable) (string, []*os.File, error) {
	// Checked here, where /proc/self is this process, for an error that says why.
	if _, err := os.Stat("/proc/self/fd/" + strconv.Itoa(int(exe.file.Fd()))); err != nil {
		return "", nil, fmt.Errorf("a plugin is executed from the file sessiond verified, through /proc, which is not mounted: %w", err)
	}
	return "/proc/self/fd/" + strconv.Itoa(childFD), []*os.File{exe.file}, nil
}

// ownExecutable is the file this process was started from, even after an upgrade
// replaced or removed the file at its path: a built-in restarted then runs the same code
// as the sessiond that serves it.
func ownExecutable() (string, error) { return "/proc/self/exe", nil }
