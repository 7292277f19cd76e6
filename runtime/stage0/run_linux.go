package stage0

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// RunOptions are what running a pod in the foreground needs from its caller.
type RunOptions struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Log    *slog.Logger
	// StopTimeout is how long apps get between SIGTERM and SIGKILL when the pod is stopped.
	StopTimeout time.Duration
}

// Run runs a prepared pod, locked, in the foreground: it moves the pod to the run phase and
// hands it to stage1, which returns once every app has exited (with the first app's exit
// status) and the pod is taken apart. Under systemd the pod is registered with machined and
// readiness is notified. The pod is closed when Run returns.
func Run(ctx context.Context, p *pod.Pod, o RunOptions) (int, error) {
	defer p.Close()
	if err := p.MarkRunning(); err != nil {
		return stage1.ExitFailure, err
	}
	r := &stage1.Runner{Pod: p, Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, Log: o.Log,
		StopTimeout: o.StopTimeout, Ready: stage1.SystemdReady(p.UUID, o.Log)}
	return r.Run(ctx)
}
