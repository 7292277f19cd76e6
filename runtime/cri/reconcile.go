package cri

import (
	"context"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/pod"
)

// reconcileEvery is how often the reconciler looks at the sandboxes.
const reconcileEvery = 2 * time.Second

// The reconciler is level-triggered: each pass compares what the pods' records say with
// what should be, and repairs the difference, so that a missed pass changes nothing.
//   - A sandbox whose supervisor is gone while its apps run on (it was killed) is
//     reported NOTREADY, its containers exited; the pass kills its processes and takes
//     down its networks, mounts and cgroups, as rkt gc would.
//   - A sandbox whose pod was removed behind rktlet's back (rkt rm) is forgotten.
//   - A container seen exited for the first time becomes a stopped event.
func (s *Server) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reconcile(ctx)
		}
	}
}

func (s *Server) reconcile(ctx context.Context) {
	for _, sb := range s.idx.listSandboxes() {
		if ctx.Err() != nil {
			return
		}
		// A sandbox being changed (stopped, removed, a container added) is left for the
		// next pass.
		if !sb.mu.TryLock() {
			continue
		}
		s.reconcileSandbox(ctx, sb)
		sb.mu.Unlock()
	}
}

func (s *Server) reconcileSandbox(ctx context.Context, sb *sandbox) {
	p, err := s.sandboxPod(sb)
	if err != nil {
		return
	}
	if p == nil {
		s.log.Warn("sandbox pod removed outside rktlet; forgetting it", "sandbox", sb.id)
		s.idx.removeSandbox(sb.id)
		return
	}
	state := p.State()
	if state == pod.Running && p.Orphaned() {
		s.log.Warn("sandbox supervisor is gone; stopping its containers", "sandbox", sb.id)
		s.noteStopped(sb)
		if err := s.stopSandbox(ctx, sb); err != nil {
			s.log.Warn("stop a sandbox whose supervisor is gone", "sandbox", sb.id, "err", err)
		}
		return
	}
	apps, orphaned := podApps(p)
	for _, c := range s.idx.listContainers(sb.id) {
		a, ok := apps[c.app]
		if !ok {
			continue
		}
		if st, _ := containerState(a, orphaned); st == runtimeapi.ContainerState_CONTAINER_EXITED {
			s.noteExit(c)
		}
	}
}
