package stage1

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runc/libcontainer"
)

// Enter runs a command inside a running app's container, in all its namespaces and cgroups, as
// root with the app's capability set and seccomp filter (rkt enter). It returns the command's
// exit status.
// env is added to (and overrides) the defaults; rkt enter passes the app's environment.
func Enter(podDir, app string, args, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
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
		Env:    enterEnv(app, env),
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

func enterEnv(app string, extra []string) []string {
	env := []string{"PATH=" + DefaultPath, "AC_APP_NAME=" + app, "TERM=xterm"}
	for _, kv := range extra {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env = setEnv(env, k, v)
		}
	}
	return env
}
