package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/appc/spec/schema"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/internal/mount"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/podapi"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// The container lifecycle: start, stop, remove. A container is an app of its sandbox's
// pod, and each call is its supervisor's (podapi); a sandbox whose supervisor is gone has
// only exited containers.

// containerApp finds a container, its sandbox, and a client of the sandbox's supervisor
// (nil when the sandbox does not run).
func (s *Server) containerApp(id string) (*container, *sandbox, *pod.Pod, *podapi.Client, error) {
	c, err := s.idx.container(id)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	sb, err := s.idx.sandbox(c.sandboxID)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	p, err := s.sandboxPod(sb)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if sandboxState(p) != runtimeapi.PodSandboxState_SANDBOX_READY {
		return c, sb, p, nil, nil
	}
	return c, sb, p, &podapi.Client{PodDir: p.Path()}, nil
}

// StartContainer execs a created container's command.
func (s *Server) StartContainer(ctx context.Context, req *runtimeapi.StartContainerRequest) (*runtimeapi.StartContainerResponse, error) {
	c, sb, _, cl, err := s.containerApp(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if cl == nil {
		return nil, preconditionf("container %s: its sandbox %s is not ready", c.id, sb.id)
	}
	if _, err := cl.Start(ctx, c.app); err != nil {
		return nil, fmt.Errorf("start container %s: %w", c.id, err)
	}
	s.publish(c, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return &runtimeapi.StartContainerResponse{}, nil
}

// StopContainer stops a running container: SIGTERM, SIGKILL after the timeout (seconds),
// and returns once it has exited. A container that does not run, or is gone, is stopped
// already.
func (s *Server) StopContainer(ctx context.Context, req *runtimeapi.StopContainerRequest) (*runtimeapi.StopContainerResponse, error) {
	c, _, _, cl, err := s.containerApp(req.GetContainerId())
	if isNotFound(err) {
		return &runtimeapi.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if req.GetTimeout() < 0 {
		return nil, invalidf("negative timeout %d", req.GetTimeout())
	}
	if cl == nil {
		return &runtimeapi.StopContainerResponse{}, nil
	}
	timeout := time.Duration(req.GetTimeout()) * time.Second
	st, err := cl.Stop(ctx, c.app, &timeout)
	if err != nil && !errors.Is(err, podapi.ErrNotFound) {
		return nil, fmt.Errorf("stop container %s: %w", c.id, err)
	}
	if st != nil && st.State == podapi.AppExited {
		s.noteExit(c)
	}
	return &runtimeapi.StopContainerResponse{}, nil
}

// RemoveContainer removes a container, killing it if it runs: its app leaves the pod
// (container, root, volumes, manifest entry); its log stays for kubelet to remove. In a
// sandbox that no longer runs, the app is taken out of the pod manifest directly.
func (s *Server) RemoveContainer(ctx context.Context, req *runtimeapi.RemoveContainerRequest) (*runtimeapi.RemoveContainerResponse, error) {
	c, err := s.idx.container(req.GetContainerId())
	if isNotFound(err) {
		return &runtimeapi.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	sb, err := s.idx.sandbox(c.sandboxID)
	if err != nil {
		return nil, err
	}
	sb.mu.Lock()
	defer sb.mu.Unlock()
	p, err := s.sandboxPod(sb)
	if err != nil {
		return nil, err
	}
	switch {
	case p == nil:
	case sandboxState(p) == runtimeapi.PodSandboxState_SANDBOX_READY:
		zero := time.Duration(0)
		err := (&podapi.Client{PodDir: p.Path()}).Remove(ctx, c.app, &zero)
		if err != nil && !errors.Is(err, podapi.ErrNotFound) {
			return nil, fmt.Errorf("remove container %s: %w", c.id, err)
		}
	default:
		if err := removeStoppedApp(p, c.app); err != nil {
			return nil, fmt.Errorf("remove container %s: %w", c.id, err)
		}
	}
	if p != nil {
		// Its image volumes, unmounted with its app.
		if err := os.RemoveAll(p.File(imageVolumesDir, c.id)); err != nil {
			s.log.Warn("removing a container's image volumes", "container", c.id, "err", err)
		}
	}
	s.publish(c, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	s.idx.removeContainer(c.id)
	s.forget(c.id)
	return &runtimeapi.RemoveContainerResponse{}, nil
}

// removeStoppedApp takes an app out of a pod that no longer runs, as its supervisor
// would have: out of the pod manifest and stage1's options, its directory gone (its
// mounts went with the pod's teardown). The pod's lock is taken for it; a pod that
// something else holds is left, and the error says so.
func removeStoppedApp(p *pod.Pod, app string) error {
	if err := p.Lock(true, false); err != nil {
		if errors.Is(err, pod.ErrNotFound) {
			return nil
		}
		return err
	}
	defer p.Close()
	if p.Orphaned() {
		return fmt.Errorf("pod %s: %w: its processes are still there", p.UUID, pod.ErrState)
	}
	m, err := p.Manifest()
	if err != nil {
		return err
	}
	man := *m
	man.Apps = slices.DeleteFunc(slices.Clone(m.Apps), func(ra schema.RuntimeApp) bool { return string(ra.Name) == app })
	if len(man.Apps) == len(m.Apps) {
		return nil
	}
	if opts, err := stage1.ReadOptions(p.Path()); err == nil {
		opts.Apps = slices.DeleteFunc(opts.Apps, func(a stage1.AppImage) bool { return a.Name == app })
		if err := opts.Write(p.Path()); err != nil {
			return err
		}
	}
	if err := p.WriteManifest(&man); err != nil {
		return err
	}
	dir := filepath.Join(p.Path(), pod.AppsDir, app)
	// Nothing should be mounted there after the pod's teardown; if something is, the
	// removal must not reach through it.
	if err := mount.UnmountBeneath(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}
