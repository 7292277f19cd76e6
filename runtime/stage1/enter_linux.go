package stage1

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/opencontainers/runc/libcontainer"
)

// Enter runs a command inside a running app's container, in all its namespaces and cgroups, as
// root with the app's capability set and seccomp filter (rkt enter). It returns the command's
// exit status.
func Enter(podDir, app string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	c, err := libcontainer.Load(filepath.Join(podDir, libcontainerDir), app)
	if err != nil {
		return 254, fmt.Errorf("app %s: %w", app, err)
	}
	st, err := c.Status()
	if err != nil || st != libcontainer.Running {
		return 254, fmt.Errorf("app %s: %w (status %v)", app, errNotRunning, st)
	}
	proc := &libcontainer.Process{
		Args:   args,
		Env:    []string{"PATH=" + DefaultPath, "AC_APP_NAME=" + app, "TERM=xterm"},
		Cwd:    "/",
		Stdin:  stdin,
		Stdout: stdout,
		Stderr: stderr,
		Init:   false,
	}
	if err := c.Run(proc); err != nil {
		return 254, fmt.Errorf("app %s: enter: %w", app, err)
	}
	return waitExit(proc).ExitCode, nil
}
