package cri

import (
	"context"
	"errors"
	"fmt"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/podapi"
)

// UpdateContainerResources replaces a created or running container's cgroup limits
// (libcontainer's Set, in its supervisor). A container that no longer runs has nothing to
// update. Its OOM score stays what it started with.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtimeapi.UpdateContainerResourcesRequest) (*runtimeapi.UpdateContainerResourcesResponse, error) {
	c, _, _, cl, err := s.containerApp(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if req.GetLinux() == nil {
		return &runtimeapi.UpdateContainerResourcesResponse{}, nil
	}
	res, err := podResources(req.GetLinux(), s.hostEnv())
	if err != nil {
		return nil, err
	}
	if cl == nil {
		return &runtimeapi.UpdateContainerResourcesResponse{}, nil
	}
	if _, err := cl.Update(ctx, c.app, res); err != nil {
		if errors.Is(err, podapi.ErrState) {
			return &runtimeapi.UpdateContainerResourcesResponse{}, nil
		}
		return nil, fmt.Errorf("update container %s: %w", c.id, err)
	}
	return &runtimeapi.UpdateContainerResourcesResponse{}, nil
}

// ReopenContainerLog has a running container's supervisor reopen its log file, after
// kubelet has moved it away to rotate it.
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	c, _, p, cl, err := s.containerApp(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	apps, orphaned := podApps(p)
	if a, ok := apps[c.app]; cl == nil || !ok || orphaned || a.State != "running" {
		return nil, preconditionf("container %s is not running", c.id)
	}
	if err := cl.ReopenLogs(ctx, c.app); err != nil {
		return nil, fmt.Errorf("reopen the log of container %s: %w", c.id, err)
	}
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}
