package cri

import (
	"context"
	"encoding/json"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/cli"
)

// RuntimeName is what Version says the runtime is.
const RuntimeName = "rktlet"

// Version says which CRI and which runtime this is: CRI v1, rktlet, Cairn's version.
func (s *Server) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: RuntimeName, RuntimeVersion: cli.Version, RuntimeApiVersion: "v1"}, nil
}

// Status says the runtime is ready, and the network once a CNI network is configured
// (kubelet starts no pod on the pod network before).
func (s *Server) Status(ctx context.Context, req *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	netCond := &runtimeapi.RuntimeCondition{Type: runtimeapi.NetworkReady, Status: true}
	name, reason := s.network()
	if name == "" {
		netCond.Status, netCond.Reason, netCond.Message = false, "NetworkPluginNotReady", "no CNI network: "+reason
	}
	resp := &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true}, netCond,
		}},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{}}},
		Features:        &runtimeapi.RuntimeFeatures{},
	}
	if req.GetVerbose() {
		s.netMu.Lock()
		cidr := s.podCIDR
		s.netMu.Unlock()
		b, err := json.Marshal(map[string]any{"dir": s.cfg.Dir, "cniConfDir": s.cfg.CNIConfDir, "cniBinDirs": s.host.NetPluginDirs,
			"network": name, "podCIDR": cidr, "streamAddress": s.StreamAddr().String(), "cgroup2": s.cgroup2, "oomScoreFloor": s.oomFloor})
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"config": string(b)}
	}
	return resp, nil
}

// RuntimeConfig says how the runtime places cgroups: cgroupfs paths, which is what
// kubelet's cgroupDriver must say too.
func (s *Server) RuntimeConfig(ctx context.Context, req *runtimeapi.RuntimeConfigRequest) (*runtimeapi.RuntimeConfigResponse, error) {
	return &runtimeapi.RuntimeConfigResponse{Linux: &runtimeapi.LinuxRuntimeConfiguration{CgroupDriver: runtimeapi.CgroupDriver_CGROUPFS}}, nil
}

// UpdateRuntimeConfig takes the node's pod CIDR; the CNI config in use already says the
// addresses, so it is only kept for Status.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtimeapi.UpdateRuntimeConfigRequest) (*runtimeapi.UpdateRuntimeConfigResponse, error) {
	s.netMu.Lock()
	s.podCIDR = req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	s.netMu.Unlock()
	return &runtimeapi.UpdateRuntimeConfigResponse{}, nil
}
