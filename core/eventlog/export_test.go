package eventlog

import "time"

// SetWriteErrorEvery sets the spacing of write-error reports until the returned function
// restores it.
func SetWriteErrorEvery(d time.Duration) (restore func()) {
	old := writeErrorEvery
	writeErrorEvery = d
	return func() { writeErrorEvery = old }
}
