package host

import (
	"context"
	"errors"
	"runtime"
)

var errStopped = errors.New("plugin host is stopped")

// spawner forks every plugin process of a Host from one OS thread.
//
// Plugins are started with SysProcAttr.Pdeathsig = SIGKILL so that none outlives sessiond,
// even when sessiond itself is SIGKILLed and cannot clean up. Linux sends that signal when
// the *thread* that forked the child exits, not when the process does. Go moves goroutines
// between threads and ends a thread whenever a goroutine that locked it returns, so a
// plugin forked from an arbitrary goroutine could be killed at a random moment, long before
// sessiond exits. Forking only from this goroutine, which locks its thread and lives as long
// as the Host, ties the plugins' lives to the Host's instead.
//
// go-plugin forks inside Client.Start, which also waits for the handshake, so starts are
// serialised here; Options.StartTimeout bounds how long one start can hold the others up.
type spawner struct {
	jobs chan func()
	quit chan struct{}
	done chan struct{}
}

func newSpawner() *spawner {
	s := &spawner{jobs: make(chan func()), quit: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *spawner) run() {
	defer close(s.done)
	// Never unlocked: when run returns, the runtime ends this thread, which sends Pdeathsig
	// to any plugin still alive. Stop has killed them all by then; this is the safety net.
	runtime.LockOSThread()
	for {
		select {
		case job := <-s.jobs:
			job()
		case <-s.quit:
			return
		}
	}
}

// do runs start on the spawner's thread and returns its error.
func (s *spawner) do(ctx context.Context, start func() error) error {
	res := make(chan error, 1)
	job := func() {
		if err := ctx.Err(); err != nil {
			res <- err
			return
		}
		res <- start()
	}
	select {
	case s.jobs <- job:
		return <-res
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return errStopped
	}
}

// stop ends the spawner once no start is in flight; the caller guarantees that.
func (s *spawner) stop() {
	close(s.quit)
	<-s.done
}
