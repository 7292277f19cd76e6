package cri

import (
	"context"
	"encoding/json"
	"strings"

	utilversion "k8s.io/apimachinery/pkg/util/version"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/cli"
)

// RuntimeName is what Version says the runtime is.
const RuntimeName = "rktlet"

// Version says which CRI and which runtime this is: CRI v1, rktlet, Cairn's version.
func (s *Server) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: RuntimeName, RuntimeVersion: semanticVersion(cli.Version), RuntimeApiVersion: "v1"}, nil
}

// semanticVersion is v as a semantic version, which is what kubelet shows (a node's
// containerRuntimeVersion; "Unknown" for anything else): v itself when it is one (a leading
// "v" dropped), else a pre-release of 0.0.0 named by v, as a build from a commit without a
// release tag ("94bc063-dirty") is.
func semanticVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	if _, err := utilversion.ParseSemantic(v); err == nil {
		return v
	}
	id := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '.' {
			return r
		}
		return '-'
	}, v)
	id = strings.Trim(strings.ReplaceAll(id, "..", "."), ".")
	if _, err := utilversion.ParseSemantic("0.0.0-" + id); id == "" || err != nil {
		return "0.0.0-unknown"
	}
	return "0.0.0-" + id
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
