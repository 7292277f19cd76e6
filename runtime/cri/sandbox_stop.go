package cri

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/podapi"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// supervisorExit bounds the wait for a sandbox's supervisor to stop once told to: its
// apps are killed first, so what is left is its teardown (networks, mounts, cgroups).
const supervisorExit = 30 * time.Second

// StopPodSandbox stops a sandbox's containers and the sandbox: its containers are killed
// (kubelet has stopped them with their grace periods already), its supervisor told to
// stop, which tears down its networks, mounts and cgroups, and whatever is left is taken
// down. Stopping a stopped sandbox does the last step again, which finds nothing; stopping
// one that is gone is not an error (kubelet retries stops).
func (s *Server) StopPodSandbox(ctx context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	sb, err := s.idx.sandbox(req.GetPodSandboxId())
	if isNotFound(err) {
		return &runtimeapi.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if err := s.stopSandbox(ctx, sb); err != nil {
		return nil, fmt.Errorf("stop sandbox %s: %w", sb.id, err)
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

// stopSandbox takes a sandbox down, whatever state it is in; sb.mu is held.
func (s *Server) stopSandbox(ctx context.Context, sb *sandbox) error {
	p, err := s.pods.Get(sb.id)
	if errors.Is(err, pod.ErrNotFound) {
		return nil // removed behind rktlet's back (rkt rm): nothing left to stop
	}
	if err != nil {
		return err
	}
	running := p.State() == pod.Running
	switch {
	case running && p.Orphaned():
		// No supervisor to ask: its apps are killed here, as rkt stop does.
		if err := stage1.StopPod(ctx, p.Path(), 0); err != nil {
			return err
		}
	case running:
		s.killApps(ctx, p)
		if err := signalSupervisor(p, unix.SIGTERM); err != nil {
			return err
		}
		if !waitUnlocked(ctx, p) {
			s.log.Warn("sandbox supervisor did not stop; killing it", "sandbox", sb.id)
			if err := signalSupervisor(p, unix.SIGKILL); err != nil {
				return err
			}
			if err := stage1.StopPod(ctx, p.Path(), 0); err != nil {
				return err
			}
			waitUnlocked(ctx, p)
		}
	}
	s.noteStopped(sb)
	return s.clean(ctx, sb.id)
}

// killApps kills the running apps of a sandbox through its supervisor, all at once.
func (s *Server) killApps(ctx context.Context, p *pod.Pod) {
	apps, err := p.Apps()
	if err != nil {
		return
	}
	cl := &podapi.Client{PodDir: p.Path()}
	zero := time.Duration(0)
	var wg sync.WaitGroup
	for _, a := range apps {
		if a.State != pod.AppRunning {
			continue
		}
		wg.Go(func() {
			if _, err := cl.Stop(ctx, a.Name, &zero); err != nil {
				s.log.Debug("kill app", "sandbox", p.UUID, "app", a.Name, "err", err)
			}
		})
	}
	wg.Wait()
}

// clean takes down what a stopped sandbox left outside its directory (networks, mounts,
// cgroups), under its lock; a sandbox that something else holds (gc) is left to it.
func (s *Server) clean(ctx context.Context, id string) error {
	p, err := s.pods.Get(id)
	if errors.Is(err, pod.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := p.Lock(true, false); err != nil {
		if errors.Is(err, pod.ErrLocked) || errors.Is(err, pod.ErrNotFound) {
			return nil
		}
		return err
	}
	defer p.Close()
	if p.Orphaned() {
		return fmt.Errorf("sandbox %s: %w: its processes are still there", id, pod.ErrState)
	}
	return stage1.CleanWithLog(ctx, p.Path(), s.log)
}

// removePod stops and removes a sandbox pod and everything it made.
func (s *Server) removePod(ctx context.Context, id string) error {
	p, err := s.pods.Get(id)
	if errors.Is(err, pod.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if p.State() == pod.Running {
		if !p.Orphaned() {
			if err := signalSupervisor(p, unix.SIGTERM); err != nil {
				return err
			}
			if !waitUnlocked(ctx, p) {
				if err := signalSupervisor(p, unix.SIGKILL); err != nil {
					return err
				}
			}
		}
		if err := stage1.StopPod(ctx, p.Path(), 0); err != nil {
			return err
		}
		waitUnlocked(ctx, p)
	}
	err = s.pods.Remove(ctx, id, s.cleaner())
	if errors.Is(err, pod.ErrNotFound) {
		return nil
	}
	return err
}

// RemovePodSandbox removes a sandbox and its containers, stopping them if they run.
// Removing a sandbox that is gone is not an error.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	sb, err := s.idx.sandbox(req.GetPodSandboxId())
	if err != nil {
		if isNotFound(err) {
			return &runtimeapi.RemovePodSandboxResponse{}, nil
		}
		return nil, err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if err := s.stopSandbox(ctx, sb); err != nil {
		return nil, fmt.Errorf("remove sandbox %s: %w", sb.id, err)
	}
	if err := s.removePod(ctx, sb.id); err != nil {
		return nil, fmt.Errorf("remove sandbox %s: %w", sb.id, err)
	}
	for _, c := range s.idx.listContainers(sb.id) {
		s.publish(c, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
		s.forget(c.id)
	}
	s.idx.removeSandbox(sb.id)
	s.log.Info("sandbox removed", "sandbox", sb.id, "name", sb.fullName())
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}
