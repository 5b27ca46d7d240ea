//go:build !linux

package host

import "syscall"

// procAttr: only Linux has a parent-death signal; elsewhere the plugin SDK's parent
// watch is what ends an orphaned plugin.
func procAttr() *syscall.SysProcAttr { return nil }
