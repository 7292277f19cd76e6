// Package cgprime starts the kernel's wait for a cgroup migration early. Every migration (a
// write to cgroup.procs) takes the kernel's cgroup_threadgroup_rwsem for writing, and the
// first one after a quiet spell first waits for an RCU grace period (8-25 ms measured on a
// 2-CPU host); those within a grace period of the last one do not wait. A process about to
// start a container, whose cgroups libcontainer joins some milliseconds later, calls Start:
// a migration that moves nothing (the process into the cgroup it is in) runs in the
// background, and the wait passes while the pod is prepared instead of while its container
// starts. The package has few dependencies, so that rkt can start it before most of its
// packages are initialised (runtime/cmd/rkt/earlyprime).
package cgprime

import (
	"path"
	"strings"
	"sync"
)

// mount is where the cgroup hierarchies are mounted.
const mount = "/sys/fs/cgroup"

// moved is the process's move: done is closed once it is over (nil: none started).
var moved struct {
	sync.Mutex
	done chan struct{}
}

// Start starts the move in the background, once per process. It changes nothing; a failure
// (or a host without a cgroup it can write) only leaves the wait where it was.
func Start() { Started(prime) }

// Started makes move, run in the background, the process's move, unless one was started
// already: Wait waits for it, and Start does nothing more. rkt's constructor starts the move
// before the Go runtime is up, and hands Started a move that returns once that one is over.
func Started(move func()) {
	moved.Lock()
	defer moved.Unlock()
	if moved.done != nil {
		return
	}
	done := make(chan struct{})
	moved.done = done
	go func() {
		defer close(done)
		move()
	}()
}

// Wait returns once the process's move, if one was started, is over. Code that moves its own
// process to another cgroup waits first, so that the move that moves nothing cannot come
// after it and undo it.
func Wait() {
	moved.Lock()
	done := moved.done
	moved.Unlock()
	if done != nil {
		<-done
	}
}

// listed says whether the cgroup.procs text procs has the line pid.
func listed(procs, pid string) bool {
	for line := range strings.SplitSeq(procs, "\n") {
		if line == pid {
			return true
		}
	}
	return false
}

// dir is the cgroup directory the move writes to, from the process's /proc/self/cgroup
// text: its cgroup in the v1 pids hierarchy where it has one, else its cgroup in the unified
// hierarchy on a host that has only that one (unified), else "".
func dir(procCgroup string, unified bool) string {
	var pids, v2 string
	for line := range strings.SplitSeq(procCgroup, "\n") {
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(p, "/") {
			continue
		}
		switch {
		case id == "0" && ctrls == "":
			v2 = p
		case ctrls == "pids":
			pids = p
		}
	}
	switch {
	case pids != "":
		return path.Join(mount, "pids", pids)
	case unified && v2 != "":
		return path.Join(mount, v2)
	}
	return ""
}
