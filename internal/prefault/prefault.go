// Package prefault has the kernel map memory in before it is first written. Each first
// write to a page otherwise traps into the kernel, and in some virtual machines a trap
// costs several times the page's own work (13 µs a page on the 2-vCPU VM bench/preload
// ran on, against about 4 µs a page mapped in by one call; BenchmarkFirstWrite).
package prefault

import (
	"runtime"
)

// Populate has the kernel map in b's pages now, writable, in one call (MADV_POPULATE_WRITE,
// Linux 5.14 and later). Elsewhere, or where the kernel cannot, it does nothing: the pages
// fault in on first write, as usual. It reports whether the pages were mapped in.
func Populate(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	return populate(b)
}

// Heap grows the Go heap by about n bytes whose pages are mapped in already, and hands
// them to the allocator: what the process allocates next takes them instead of new pages
// that fault in one by one. It costs a collection (to free the block it grew the heap
// with), so it is for a process about to allocate a lot at once, such as a preload. It
// reports whether it did: it does nothing where Populate cannot.
//
// The pages stay with the process while its heap goal is above them; a collector paced
// lower returns what the heap does not use to the OS, a little at a time.
func Heap(n int) bool {
	if n <= 0 {
		return false
	}
	if !Populate(make([]byte, n)) {
		return false
	}
	runtime.GC() // frees the block: its pages go to the allocator, mapped in
	return true
}
