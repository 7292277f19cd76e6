package stage1

import (
	"fmt"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/podapi"
)

// A sandbox's app goes created -> running -> exited, never back: an app that exited is
// removed and added again (rkt's app-level API, and the CRI's container lifecycle).

// appStep is what a request does to an app's process.
type appStep int

const (
	stepNone appStep = iota // nothing: the app is where the request would take it
	stepExec                // exec the created app's command
	stepStop                // SIGTERM, SIGKILL after the timeout, until it exited
	stepKill                // SIGKILL the process that waits before its exec
)

// appOp is a request on one app.
type appOp string

const (
	opStart  appOp = "start"
	opStop   appOp = "stop"
	opRemove appOp = "remove"
)

// planStep says what op does to an app in state s, or why it cannot. Stopping an app that
// never started leaves it created (nothing of it runs), as containerd has it; removing one
// kills the process that waits to exec it.
func planStep(op appOp, s pod.AppState) (appStep, error) {
	switch op {
	case opStart:
		switch s {
		case pod.AppCreated:
			return stepExec, nil
		case pod.AppRunning:
			return stepNone, nil
		case pod.AppExited:
			return stepNone, fmt.Errorf("%w: it has exited; remove it and add it again", podapi.ErrState)
		}
	case opStop:
		if s == pod.AppRunning {
			return stepStop, nil
		}
		return stepNone, nil
	case opRemove:
		switch s {
		case pod.AppCreated:
			return stepKill, nil
		case pod.AppRunning:
			return stepStop, nil
		case pod.AppExited:
			return stepNone, nil
		}
	}
	return stepNone, fmt.Errorf("%w: %s of an app that is %s", podapi.ErrState, op, s)
}

// appStatus is a record as the protocol carries it.
func appStatus(r pod.AppRecord) podapi.AppStatus {
	return podapi.AppStatus{
		Name: r.Name, State: podapi.AppState(r.State), ImageID: r.ImageID,
		CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
		ExitCode: r.ExitCode, Signal: r.Signal, Reason: r.Reason, PID: r.PID,
		LogPath: r.LogPath, Stdin: podapi.StdinMode(r.Stdin),
	}
}
