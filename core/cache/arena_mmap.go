//go:build linux || darwin || freebsd || netbsd || openbsd

package cache

import (
	"golang.org/x/sys/unix"

	"github.com/sessiond/sessiond/internal/prefault"
)

// mapChunk returns n bytes of memory outside the Go heap, mapped in already (one call
// instead of a fault per page on first write), and whether unmapChunk must return them.
// Where the kernel refuses the mapping, the Go heap serves (counted against the
// collector's goal, but never scanned: the bytes hold no pointers).
func mapChunk(n int) ([]byte, bool) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n), false
	}
	prefault.Populate(b)
	return b, true
}

// unmapChunk returns b, mapped by mapChunk, to the OS.
func unmapChunk(b []byte) error { return unix.Munmap(b) }
