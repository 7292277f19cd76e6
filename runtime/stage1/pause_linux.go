package stage1

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// A sandbox whose apps share one PID namespace (a CRI pod's PID mode POD) needs a process
// that holds the namespace for the pod: a PID namespace whose first process has exited
// takes no new ones, and no app should be that first process (its exit would kill the
// others). The pause process is that first process: started by the supervisor with
// Runner.PauseCommand in a new PID namespace, it reaps what is orphaned there and sleeps.
// It lives in the pod's cgroups (pauseCgroup), so that teardown and gc kill it with the
// apps, and the pod stays alive, orphaned, if the supervisor dies.

// pauseCgroup is the pause process's cgroup under the pod's, in every hierarchy: not an
// app's name, since appc names have no '_'.
const pauseCgroup = "_pause"

// ErrNoPause says a sandbox wants a shared PID namespace but its supervisor has no pause
// command (rkt's sandboxes do not share one).
var ErrNoPause = errors.New("a shared PID namespace needs a pause command, which this supervisor has none of")

// startPause starts the pod's pause process in a PID namespace of its own, in the pod's
// cgroups, and returns it; the apps join /proc/PID/ns/pid.
func startPause(podDir string, argv []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, ErrNoPause
	}
	rec, err := readCgroupRecord(podDir)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID, Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pause process: %w", err)
	}
	for _, base := range rec.podCgroups() {
		dir := filepath.Join(base, pauseCgroup)
		err := os.MkdirAll(dir, 0o755)
		if err == nil {
			err = ensureCpuset(dir)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
		}
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("pause process: cgroup %s: %w", dir, err)
		}
	}
	return cmd, nil
}

// ensureCpuset gives a v1 cpuset cgroup, and its ancestors, the CPUs and memory nodes of
// their parents where they have none: a new one has none, and takes no process until it
// has (libcontainer does the same for its containers). Other hierarchies, and v2, where
// an empty cpuset inherits, are left as they are.
func ensureCpuset(dir string) error {
	parent := filepath.Dir(dir)
	if _, err := os.Stat(filepath.Join(dir, "cgroup.controllers")); err == nil {
		return nil // v2
	}
	if _, err := os.Stat(filepath.Join(parent, "cpuset.cpus")); err != nil {
		return nil // not cpuset, or dir is the hierarchy's root
	}
	if err := ensureCpuset(parent); err != nil {
		return err
	}
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(cur)) > 0 {
			continue
		}
		v, err := os.ReadFile(filepath.Join(parent, f))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
		}
	}
	return nil
}
