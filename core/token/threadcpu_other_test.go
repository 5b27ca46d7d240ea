//go:build !linux

package token

// threadCPU is not measured here: the benchmarks report ns/op alone.
func threadCPU() (int64, bool) { return 0, false }
