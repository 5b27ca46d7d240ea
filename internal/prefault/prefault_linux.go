package prefault

import "golang.org/x/sys/unix"

func populate(b []byte) bool {
	return unix.Madvise(b, unix.MADV_POPULATE_WRITE) == nil
}
