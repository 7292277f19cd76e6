package cri

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// sandboxState is READY while the sandbox's supervisor runs, NOTREADY otherwise (stopped,
// or its supervisor gone while its apps run on: kubelet then makes a new sandbox).
func sandboxState(p *pod.Pod) runtimeapi.PodSandboxState {
	if p != nil && p.State() == pod.Running && !p.Orphaned() {
		return runtimeapi.PodSandboxState_SANDBOX_READY
	}
	return runtimeapi.PodSandboxState_SANDBOX_NOTREADY
}

// sandboxStatus is a sandbox as the CRI shows it; p is nil for a sandbox whose pod is gone.
func (s *Server) sandboxStatus(sb *sandbox, p *pod.Pod) *runtimeapi.PodSandboxStatus {
	st := &runtimeapi.PodSandboxStatus{
		Id:             sb.id,
		Metadata:       sb.meta,
		State:          sandboxState(p),
		CreatedAt:      sb.createdAt.UnixNano(),
		Labels:         maps.Clone(sb.labels),
		Annotations:    maps.Clone(sb.annotations),
		RuntimeHandler: sb.runtimeHandler,
		Linux: &runtimeapi.LinuxPodSandboxStatus{Namespaces: &runtimeapi.Namespace{
			Options: &runtimeapi.NamespaceOption{Network: sb.namespaces.GetNetwork(), Pid: sb.namespaces.GetPid(), Ipc: sb.namespaces.GetIpc()}}},
	}
	if p != nil && sb.namespaces.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		ips := sandboxIPs(p)
		if len(ips) > 0 {
			st.Network = &runtimeapi.PodSandboxNetworkStatus{Ip: ips[0]}
			for _, ip := range ips[1:] {
				st.Network.AdditionalIps = append(st.Network.AdditionalIps, &runtimeapi.PodIP{Ip: ip})
			}
		}
	}
	return st
}

// sandboxIPs are the pod's addresses on its networks, IPv4 first.
func sandboxIPs(p *pod.Pod) []string {
	st, err := network.LoadState(filepath.Join(p.Path(), stage1.NetStateFile))
	if err != nil {
		return nil
	}
	var v4, v6 []string
	for _, a := range st.Nets {
		for _, cidr := range a.IPs {
			pfx, err := netip.ParsePrefix(cidr)
			if err != nil {
				continue
			}
			if pfx.Addr().Is4() {
				v4 = append(v4, pfx.Addr().String())
			} else {
				v6 = append(v6, pfx.Addr().String())
			}
		}
	}
	return append(v4, v6...)
}

// sandboxPod is a sandbox's pod, nil when it is gone.
func (s *Server) sandboxPod(sb *sandbox) (*pod.Pod, error) {
	p, err := s.pods.Get(sb.id)
	if errors.Is(err, pod.ErrNotFound) {
		return nil, nil
	}
	return p, err
}

// PodSandboxStatus says what a sandbox is: its state, addresses, namespaces, metadata,
// and its containers' statuses; verbose, details of its pod as JSON.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	sb, err := s.idx.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	p, err := s.sandboxPod(sb)
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: s.sandboxStatus(sb, p), Timestamp: time.Now().UnixNano()}
	resp.ContainersStatuses = s.containerStatuses(sb, p)
	if req.GetVerbose() {
		info := map[string]any{"uuid": sb.id, "runtimeHandler": sb.runtimeHandler}
		if p != nil {
			info["podDir"] = p.Path()
			info["state"] = p.State()
			info["supervisorLog"] = filepath.Join(p.Path(), SupervisorLog)
			if pid, err := p.PID(); err == nil {
				info["pid"] = pid
			}
			if opts, err := stage1.ReadOptions(p.Path()); err == nil {
				info["options"] = opts
			}
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(b)}
	}
	return resp, nil
}

// ListPodSandbox lists the sandboxes that pass the filter: an ID or its prefix, a state,
// labels that must all match.
func (s *Server) ListPodSandbox(ctx context.Context, req *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	var out []*runtimeapi.PodSandbox
	for _, sb := range s.idx.listSandboxes() {
		if f.GetId() != "" && !strings.HasPrefix(sb.id, f.GetId()) {
			continue
		}
		if !labelsMatch(sb.labels, f.GetLabelSelector()) {
			continue
		}
		p, err := s.sandboxPod(sb)
		if err != nil {
			return nil, err
		}
		state := sandboxState(p)
		if f.GetState() != nil && f.GetState().GetState() != state {
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{Id: sb.id, Metadata: sb.meta, State: state, CreatedAt: sb.createdAt.UnixNano(),
			Labels: maps.Clone(sb.labels), Annotations: maps.Clone(sb.annotations), RuntimeHandler: sb.runtimeHandler})
	}
	return &runtimeapi.ListPodSandboxResponse{Items: out}, nil
}

func labelsMatch(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
