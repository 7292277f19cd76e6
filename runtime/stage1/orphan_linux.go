package stage1

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// A pod's processes outlive its supervisor when rkt run is killed: each app is the first
// process of its own PID namespace, reparented to the host's init, and nothing kills it
// until gc or stop does. The pod's cgroups still hold them, and a pid found there cannot be
// a stranger's that reused a number.

// PodAlive reports whether any process is left in the pod's cgroups.
func PodAlive(podDir string) bool {
	pids, err := PodProcesses(podDir)
	return err == nil && len(pids) > 0
}

// AppPID is the host pid of an app's process while its container runs: the pid libcontainer
// recorded, checked against the start time it recorded with it.
func AppPID(podDir, app string) (int, error) {
	c, err := libcontainer.Load(filepath.Join(podDir, libcontainerDir), app)
	if err != nil {
		return 0, fmt.Errorf("app %s: %w", app, err)
	}
	st, err := c.Status()
	if err != nil {
		return 0, fmt.Errorf("app %s: %w", app, err)
	}
	if st != libcontainer.Running && st != libcontainer.Paused {
		return 0, fmt.Errorf("app %s: %w (status %v)", app, errNotRunning, st)
	}
	s, err := c.State()
	if err != nil {
		return 0, fmt.Errorf("app %s: %w", app, err)
	}
	return s.InitProcessPid, nil
}

// StopPod stops what runs in the pod's cgroups without its supervisor: SIGTERM to every
// process, then SIGKILL to those left after timeout (or once ctx is done); no timeout means
// SIGKILL at once. It returns once the cgroups are empty.
func StopPod(ctx context.Context, podDir string, timeout time.Duration) error {
	sig := unix.SIGTERM
	if timeout <= 0 {
		sig = unix.SIGKILL
	}
	if err := KillPod(podDir, sig); err != nil {
		return err
	}
	killAt := time.Now().Add(timeout)
	giveUp := killAt.Add(10 * time.Second)
	for {
		pids, err := PodProcesses(podDir)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		now := time.Now()
		if now.After(giveUp) {
			return fmt.Errorf("pod cgroups: %d processes would not die", len(pids))
		}
		if now.After(killAt) || ctx.Err() != nil {
			if err := kill(pids, unix.SIGKILL); err != nil {
				return err
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}
