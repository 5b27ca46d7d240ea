// Package secretfile opens the files sessiond writes secrets or personal data to (signing
// keys in the embedded store, the event log) so that only sessiond's user can read them,
// whatever the folder they are in, the umask, or the mode an older file was left with.
package secretfile

import (
	"fmt"
	"io/fs"
	"os"
)

// Mode is the permission of every such file: read and write for its owner alone.
const Mode fs.FileMode = 0o600

// Open opens path with flag, creating it with Mode when flag has os.O_CREATE, and makes
// a regular file that group or others could use its owner's alone (Restrict). was is the
// permission the file had when Open changed it, 0 when it did not need to: the caller
// says so in its log.
func Open(path string, flag int) (f *os.File, was fs.FileMode, err error) {
	f, err = os.OpenFile(path, flag, Mode)
	if err != nil {
		return nil, 0, err
	}
	if was, err = Restrict(f); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, was, nil
}

// Restrict takes group's and others' permissions off the open regular file f (through
// the descriptor: no path to swap) and returns the permission it had, or 0 when there was
// nothing to take. Anything else (a terminal, a pipe) is left as it is.
func Restrict(f *os.File) (fs.FileMode, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	perm := fi.Mode().Perm()
	if !fi.Mode().IsRegular() || perm&0o077 == 0 {
		return 0, nil
	}
	if err := f.Chmod(perm &^ 0o077); err != nil {
		return 0, fmt.Errorf("%s is readable or writable by group or others (%v) and cannot be made private: %w", f.Name(), perm, err)
	}
	return perm, nil
}
