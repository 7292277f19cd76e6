package cri

import (
	"context"
	"encoding/json"
	"maps"
	"strings"

	"github.com/opencontainers/cgroups"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// unknownExit is the exit code of a container whose end nobody recorded: its sandbox's
// supervisor was gone (killed) when it ended, or it was running when the supervisor died.
const unknownExit = 255

// containerState reads a container's state from its app's record: created, running,
// exited. In a sandbox whose supervisor is gone, a running or created app is reported
// exited (its processes are killed by the reconciler), with no exit code known.
func containerState(a *pod.App, orphaned bool) (runtimeapi.ContainerState, *pod.App) {
	out := *a
	if orphaned && (a.State == pod.AppRunning || a.State == pod.AppCreated) {
		out.State, out.ExitKnown, out.PID = pod.AppExited, false, 0
	}
	switch out.State {
	case pod.AppCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED, &out
	case pod.AppRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING, &out
	case pod.AppExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED, &out
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN, &out
}

// containerStatus is a container as the CRI shows it, from its app a.
func containerStatus(c *container, a *pod.App, orphaned bool) *runtimeapi.ContainerStatus {
	state, a := containerState(a, orphaned)
	st := &runtimeapi.ContainerStatus{
		Id: c.id, Metadata: c.meta, State: state,
		Image:    &runtimeapi.ImageSpec{Image: c.image},
		ImageRef: c.imageRef, ImageId: c.imageRef,
		Labels: maps.Clone(c.labels), Annotations: maps.Clone(c.annotations),
		Mounts:  c.mounts,
		LogPath: a.LogPath,
	}
	if !a.CreatedAt.IsZero() {
		st.CreatedAt = a.CreatedAt.UnixNano()
	}
	if !a.StartedAt.IsZero() {
		st.StartedAt = a.StartedAt.UnixNano()
	}
	if state == runtimeapi.ContainerState_CONTAINER_EXITED {
		if !a.FinishedAt.IsZero() {
			st.FinishedAt = a.FinishedAt.UnixNano()
		}
		st.ExitCode, st.Reason = int32(a.ExitCode), a.Reason
		if !a.ExitKnown {
			st.ExitCode, st.Reason = unknownExit, pod.ReasonError
			st.Message = "the sandbox's supervisor ended before the container did: its exit was not recorded"
		}
	}
	return st
}

// podApps reads a sandbox pod's apps by name, and whether its supervisor is gone while
// its apps run on.
func podApps(p *pod.Pod) (map[string]*pod.App, bool) {
	out := map[string]*pod.App{}
	if p == nil {
		return out, false
	}
	state := p.State()
	apps, err := p.AppsIn(state)
	if err != nil {
		return out, false
	}
	for i := range apps {
		out[apps[i].Name] = &apps[i]
	}
	return out, state == pod.Running && p.Orphaned()
}

// containerStatuses are the statuses of a sandbox's containers.
func (s *Server) containerStatuses(sb *sandbox, p *pod.Pod) []*runtimeapi.ContainerStatus {
	apps, orphaned := podApps(p)
	var out []*runtimeapi.ContainerStatus
	for _, c := range s.idx.listContainers(sb.id) {
		if a, ok := apps[c.app]; ok {
			out = append(out, containerStatus(c, a, orphaned))
		}
	}
	return out
}

// ContainerStatus says what a container is: its state, times, exit code and reason, image,
// mounts and log; verbose, its app and pod as JSON.
func (s *Server) ContainerStatus(ctx context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	c, err := s.idx.container(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	sb, err := s.idx.sandbox(c.sandboxID)
	if err != nil {
		return nil, err
	}
	p, err := s.sandboxPod(sb)
	if err != nil {
		return nil, err
	}
	apps, orphaned := podApps(p)
	a, ok := apps[c.app]
	if !ok {
		return nil, notFoundf("container %s: its app %s is no longer in sandbox %s", c.id, c.app, sb.id)
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: containerStatus(c, a, orphaned)}
	if st := resp.Status.State; p != nil && (st == runtimeapi.ContainerState_CONTAINER_CREATED || st == runtimeapi.ContainerState_CONTAINER_RUNNING) {
		// The limits in force, which kubelet compares with what it asked for (in-place
		// resize); none once the container is gone.
		if r, err := stage1.AppResources(p.Path(), c.app); err == nil {
			resp.Status.Resources = containerResources(r)
		}
	}
	if req.GetVerbose() {
		info := map[string]any{"sandboxID": sb.id, "app": c.app, "pid": a.PID, "stdin": c.stdin, "stdinOnce": c.stdinOnce,
			"tty": c.tty, "runtimeApp": a.Runtime}
		if p != nil {
			info["podDir"] = p.Path()
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// ListContainers lists the containers that pass the filter: an ID or its prefix, a
// sandbox ID or its prefix, a state, labels that must all match.
func (s *Server) ListContainers(ctx context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f := req.GetFilter()
	var out []*runtimeapi.Container
	for _, sb := range s.idx.listSandboxes() {
		if f.GetPodSandboxId() != "" && !strings.HasPrefix(sb.id, f.GetPodSandboxId()) {
			continue
		}
		var apps map[string]*pod.App
		var orphaned, read bool
		for _, c := range s.idx.listContainers(sb.id) {
			if f.GetId() != "" && !strings.HasPrefix(c.id, f.GetId()) {
				continue
			}
			if !labelsMatch(c.labels, f.GetLabelSelector()) {
				continue
			}
			if !read {
				p, err := s.sandboxPod(sb)
				if err != nil {
					return nil, err
				}
				apps, orphaned = podApps(p)
				read = true
			}
			a, ok := apps[c.app]
			if !ok {
				continue
			}
			st := containerStatus(c, a, orphaned)
			if f.GetState() != nil && f.GetState().GetState() != st.State {
				continue
			}
			out = append(out, &runtimeapi.Container{Id: c.id, PodSandboxId: sb.id, Metadata: c.meta, Image: st.Image,
				ImageRef: c.imageRef, ImageId: c.imageRef, State: st.State, CreatedAt: st.CreatedAt, Labels: st.Labels, Annotations: st.Annotations})
		}
	}
	return &runtimeapi.ListContainersResponse{Containers: out}, nil
}

// containerResources is a container's cgroup limits as the CRI reports them.
func containerResources(r *cgroups.Resources) *runtimeapi.ContainerResources {
	return &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{
		CpuPeriod: int64(r.CpuPeriod), CpuQuota: r.CpuQuota, CpuShares: int64(r.CpuShares),
		MemoryLimitInBytes: r.Memory, MemorySwapLimitInBytes: r.MemorySwap,
		CpusetCpus: r.CpusetCpus, CpusetMems: r.CpusetMems, Unified: maps.Clone(r.Unified),
	}}
}
