package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"github.com/hashicorp/go-plugin/runner"
)

// cmdRunner is the go-plugin runner of one plugin process. go-plugin's own runner execs
// Cmd.Path, which the host cannot let it do: the host starts the process from the binary
// it verified (executable.command) with the environment it chose (pluginEnv). It is what
// go-plugin's internal cmdrunner does with such a Cmd, named after the registered path.
type cmdRunner struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr io.ReadCloser
}

var _ runner.Runner = (*cmdRunner)(nil)

func newRunner(name string, cmd *exec.Cmd) (*cmdRunner, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	return &cmdRunner{name: name, cmd: cmd, stdout: stdout, stderr: stderr}, nil
}

func (r *cmdRunner) Start(context.Context) error { return r.cmd.Start() }

func (r *cmdRunner) Wait(context.Context) error { return r.cmd.Wait() }

func (r *cmdRunner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// ID is the pid, empty before the process started (go-plugin then has nothing to kill).
func (r *cmdRunner) ID() string {
	if r.cmd.Process == nil {
		return ""
	}
	return strconv.Itoa(r.cmd.Process.Pid)
}

func (r *cmdRunner) Name() string          { return r.name }
func (r *cmdRunner) Stdout() io.ReadCloser { return r.stdout }
func (r *cmdRunner) Stderr() io.ReadCloser { return r.stderr }

func (r *cmdRunner) Diagnose(context.Context) string {
	return fmt.Sprintf("%s is not a sessiond plugin, was built for another system, or failed before its handshake; sessiond's log shows what it wrote to stderr", r.name)
}

func (r *cmdRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *cmdRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
