package host

import "syscall"

// procAttr makes the kernel SIGKILL the plugin when the thread that forked it dies (see
// spawner), so a plugin never outlives a sessiond that was killed without cleaning up.
// Its own process group keeps a terminal's Ctrl-C, or a supervisor signalling sessiond's
// group, from reaching the plugin behind the host's back: the host alone ends it, after
// the requests in flight are done.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
