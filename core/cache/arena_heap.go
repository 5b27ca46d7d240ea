//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package cache

import "errors"

// mapChunk returns n bytes from the Go heap where memory cannot be mapped directly (the
// collector frees them; it never scans them, they hold no pointers).
func mapChunk(n int) ([]byte, bool) { return make([]byte, n), false }

func unmapChunk([]byte) error { return errors.New("no mapped chunks on this platform") }
