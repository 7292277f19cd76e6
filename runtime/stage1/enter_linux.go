package stage1

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// EnterCommand is what Enter runs in an app's container.
type EnterCommand struct {
	Args []string
	// Env is added to (and overrides) the defaults; rkt enter passes the app's environment.
	Env []string
	// TTY runs the command on a new pty inside the container, attached to Stdin and Stdout
	// (its stderr goes to the pty too); a terminal Stdin is put in raw mode meanwhile, and the
	// pty follows its window size. Without TTY the command gets the three streams as they are.
	TTY    bool
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// UID, GID and AdditionalGroups run the command as that user (a CRI exec runs as the
	// container's process does); root by default. Cwd is where it starts, "/" by default.
	UID, GID         int
	AdditionalGroups []int
	Cwd              string
	// KillOnCancel sends SIGKILL, not SIGTERM, when ctx ends (a timed-out probe).
	KillOnCancel bool
	// Resize, with TTY, gives the pty the window sizes it receives (a remote client's
	// terminal, as a CRI exec's); the caller's own terminal is followed as well.
	Resize <-chan WindowSize
}

// WindowSize is a terminal's size in characters.
type WindowSize struct {
	Rows, Cols uint16
}

// Enter runs a command inside a running app's container, in all its namespaces and cgroups, as
// root with the app's capability set and seccomp filter (rkt enter). It returns the command's
// exit status once the command has exited and, with a pty, its output has been copied and the
// caller's terminal put back (a terminal left in raw mode is an error, with the status).
// Cancelling ctx (SIGINT, SIGTERM to rkt) sends the command SIGTERM.
func Enter(ctx context.Context, podDir, app string, cmd EnterCommand) (int, error) {
	c, err := libcontainer.Load(filepath.Join(podDir, libcontainerDir), app)
	if err != nil {
		return ExitFailure, fmt.Errorf("app %s: %w", app, err)
	}
	st, err := c.Status()
	if err != nil || st != libcontainer.Running {
		return ExitFailure, fmt.Errorf("app %s: %w (status %v)", app, errNotRunning, st)
	}
	cwd := cmd.Cwd
	if cwd == "" {
		cwd = "/"
	}
	proc := &libcontainer.Process{
		Args: cmd.Args,
		Env:  enterEnv(app, cmd.Env),
		Cwd:  cwd,
		UID:  cmd.UID, GID: cmd.GID, AdditionalGroups: cmd.AdditionalGroups,
		Init: false,
	}
	sig := unix.SIGTERM
	if cmd.KillOnCancel {
		sig = unix.SIGKILL
	}
	if !cmd.TTY {
		proc.Stdin, proc.Stdout, proc.Stderr = cmd.Stdin, cmd.Stdout, cmd.Stderr
		if err := c.Run(proc); err != nil {
			return ExitFailure, fmt.Errorf("app %s: enter: %w", app, err)
		}
		return wait(ctx, proc, sig), nil
	}
	req, err := requestConsole(proc, cmd.Stdin, cmd.Stdout)
	if err != nil {
		return ExitFailure, fmt.Errorf("app %s: enter: %w", app, err)
	}
	defer req.close()
	if err := c.Run(proc); err != nil {
		return ExitFailure, fmt.Errorf("app %s: enter: %w", app, err)
	}
	master, err := req.receive()
	if err != nil {
		abandon(proc)
		return ExitFailure, fmt.Errorf("app %s: enter: %w", app, err)
	}
	con, err := attachConsole(master, cmd.Stdin, cmd.Stdout)
	if err != nil {
		master.Close()
		abandon(proc)
		return ExitFailure, fmt.Errorf("app %s: enter: %w", app, err)
	}
	if cmd.Resize != nil {
		go con.follow(cmd.Resize)
	}
	code := wait(ctx, proc, sig)
	if err := con.Close(); err != nil {
		return code, fmt.Errorf("app %s: enter: %w", app, err)
	}
	return code, nil
}

// abandon kills and reaps a command that Enter gives up on. Neither can fail in a way that
// matters: the signal only when the command has exited already, the wait with the status
// of a command that was killed, and Enter returns the error that led here.
func abandon(proc *libcontainer.Process) {
	_ = proc.Signal(unix.SIGKILL)
	_, _ = proc.Wait()
}

// wait returns proc's exit status; if ctx ends first, proc gets sig.
func wait(ctx context.Context, proc *libcontainer.Process, sig unix.Signal) int {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			// It fails only when proc has just exited, which waitExit sees anyway.
			_ = proc.Signal(sig)
		case <-done:
		}
	}()
	return waitExit(proc).ExitCode
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
