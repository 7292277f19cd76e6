// Package cgprime keeps the move that starts the kernel's wait for a cgroup migration early.
// Every migration (a write to cgroup.procs) takes the kernel's cgroup_threadgroup_rwsem for
// writing, and the first one after a quiet spell first waits for an RCU grace period (8-25 ms
// measured on a 2-CPU host); those within a grace period of the last one do not wait. rkt,
// about to start a container whose cgroups libcontainer joins some milliseconds later, moves
// itself into the cgroup it is in (which moves nothing) on a thread a constructor starts
// (runtime/cgprime/earlyprime), so that the wait passes while the pod is prepared instead of
// while its container starts, and hands that move here: code that moves rkt itself to
// another cgroup waits for it first.
package cgprime

import "sync"

// moved is the process's move: done is closed once it is over (nil: none started).
var moved struct {
	sync.Mutex
	done chan struct{}
}

// Started makes move, run in the background, the process's move, unless one was started
// already (then move is not run). move returns once the move is over.
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
