package cri

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// Stats come from each app's cgroup (libcontainer's, as runc reads them): CPU time, memory
// usage and working set, page faults; a container's writable layer is its app's overlay
// upper directory. A sandbox's CPU and memory are its containers' summed, its processes
// its pod cgroups', its network its pod's interfaces as its network namespace counts them.

// cpuSample is a container's CPU time at a moment, for usage_nano_cores.
type cpuSample struct {
	at    time.Time
	total uint64
}

// containerStats reads a container's stats; nil when its app has no container (exited
// and taken down, or its sandbox stopped).
func (s *Server) containerStats(c *container, p *pod.Pod) *runtimeapi.ContainerStats {
	attrs := &runtimeapi.ContainerAttributes{Id: c.id, Metadata: c.meta, Labels: maps.Clone(c.labels), Annotations: maps.Clone(c.annotations)}
	if p == nil {
		return nil
	}
	st, err := stage1.AppStats(p.Path(), c.app)
	if err != nil {
		return nil
	}
	now := time.Now()
	ts := now.UnixNano()
	out := &runtimeapi.ContainerStats{Attributes: attrs}
	total := st.CpuStats.CpuUsage.TotalUsage
	out.Cpu = &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: total}}
	s.statsMu.Lock()
	if prev, ok := s.cpuSamples[c.id]; ok && total >= prev.total && now.After(prev.at) {
		cores := float64(total-prev.total) / now.Sub(prev.at).Seconds()
		out.Cpu.UsageNanoCores = &runtimeapi.UInt64Value{Value: uint64(cores)}
	}
	s.cpuSamples[c.id] = cpuSample{at: now, total: total}
	s.statsMu.Unlock()
	out.Memory = memoryUsage(&st.MemoryStats, ts)
	if bytes, inodes, err := usage(context.Background(), filepath.Join(p.Path(), pod.AppsDir, c.app, "upper")); err == nil {
		out.WritableLayer = &runtimeapi.FilesystemUsage{Timestamp: ts, FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: s.pods.Dir},
			UsedBytes: &runtimeapi.UInt64Value{Value: bytes}, InodesUsed: &runtimeapi.UInt64Value{Value: inodes}}
	}
	return out
}

// memoryUsage is a cgroup's memory as kubelet counts it: the working set is the usage
// less the inactive file cache (v1's total_inactive_file, v2's inactive_file).
func memoryUsage(m *cgroups.MemoryStats, ts int64) *runtimeapi.MemoryUsage {
	usage := m.Usage.Usage
	inactive := m.Stats["total_inactive_file"]
	if _, ok := m.Stats["inactive_file"]; ok && inactive == 0 {
		inactive = m.Stats["inactive_file"]
	}
	ws := usage
	if inactive < ws {
		ws -= inactive
	} else {
		ws = 0
	}
	out := &runtimeapi.MemoryUsage{Timestamp: ts, UsageBytes: &runtimeapi.UInt64Value{Value: usage}, WorkingSetBytes: &runtimeapi.UInt64Value{Value: ws}}
	pick := func(keys ...string) *runtimeapi.UInt64Value {
		for _, k := range keys {
			if v, ok := m.Stats[k]; ok {
				return &runtimeapi.UInt64Value{Value: v}
			}
		}
		return nil
	}
	out.RssBytes = pick("total_rss", "anon")
	out.PageFaults = pick("total_pgfault", "pgfault")
	out.MajorPageFaults = pick("total_pgmajfault", "pgmajfault")
	if l := m.Usage.Limit; l > 0 && l < 1<<62 && l > ws {
		out.AvailableBytes = &runtimeapi.UInt64Value{Value: l - ws}
	}
	return out
}

// ContainerStats says what a container uses.
func (s *Server) ContainerStats(ctx context.Context, req *runtimeapi.ContainerStatsRequest) (*runtimeapi.ContainerStatsResponse, error) {
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
	st := s.containerStats(c, p)
	if st == nil {
		st = &runtimeapi.ContainerStats{Attributes: &runtimeapi.ContainerAttributes{Id: c.id, Metadata: c.meta, Labels: c.labels, Annotations: c.annotations}}
	}
	return &runtimeapi.ContainerStatsResponse{Stats: st}, nil
}

// ListContainerStats lists the stats of the containers that pass the filter (an ID or its
// prefix, a sandbox ID or its prefix, labels) and have a container to read them from.
func (s *Server) ListContainerStats(ctx context.Context, req *runtimeapi.ListContainerStatsRequest) (*runtimeapi.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	var out []*runtimeapi.ContainerStats
	for _, sb := range s.idx.listSandboxes() {
		if f.GetPodSandboxId() != "" && !strings.HasPrefix(sb.id, f.GetPodSandboxId()) {
			continue
		}
		var p *pod.Pod
		read := false
		for _, c := range s.idx.listContainers(sb.id) {
			if f.GetId() != "" && !strings.HasPrefix(c.id, f.GetId()) || !labelsMatch(c.labels, f.GetLabelSelector()) {
				continue
			}
			if !read {
				var err error
				if p, err = s.sandboxPod(sb); err != nil {
					return nil, err
				}
				read = true
			}
			if st := s.containerStats(c, p); st != nil {
				out = append(out, st)
			}
		}
	}
	return &runtimeapi.ListContainerStatsResponse{Stats: out}, nil
}

// sandboxStats says what a sandbox uses: its containers' CPU and memory summed, its
// processes, its network interfaces.
func (s *Server) sandboxStats(sb *sandbox, p *pod.Pod) *runtimeapi.PodSandboxStats {
	now := time.Now().UnixNano()
	out := &runtimeapi.PodSandboxStats{
		Attributes: &runtimeapi.PodSandboxAttributes{Id: sb.id, Metadata: sb.meta, Labels: maps.Clone(sb.labels), Annotations: maps.Clone(sb.annotations)},
		Linux:      &runtimeapi.LinuxPodSandboxStats{},
	}
	if p == nil {
		return out
	}
	lx := out.Linux
	var cpu, cpuNano, mem, ws uint64
	withNano := false
	for _, c := range s.idx.listContainers(sb.id) {
		st := s.containerStats(c, p)
		if st == nil {
			continue
		}
		lx.Containers = append(lx.Containers, st)
		cpu += st.Cpu.GetUsageCoreNanoSeconds().GetValue()
		if st.Cpu.GetUsageNanoCores() != nil {
			cpuNano += st.Cpu.GetUsageNanoCores().GetValue()
			withNano = true
		}
		mem += st.Memory.GetUsageBytes().GetValue()
		ws += st.Memory.GetWorkingSetBytes().GetValue()
	}
	lx.Cpu = &runtimeapi.CpuUsage{Timestamp: now, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: cpu}}
	if withNano {
		lx.Cpu.UsageNanoCores = &runtimeapi.UInt64Value{Value: cpuNano}
	}
	lx.Memory = &runtimeapi.MemoryUsage{Timestamp: now, UsageBytes: &runtimeapi.UInt64Value{Value: mem}, WorkingSetBytes: &runtimeapi.UInt64Value{Value: ws}}
	pids, err := stage1.PodProcesses(p.Path())
	if err == nil {
		lx.Process = &runtimeapi.ProcessUsage{Timestamp: now, ProcessCount: &runtimeapi.UInt64Value{Value: uint64(len(pids))}}
	}
	if sb.namespaces.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		if pid, ok := inNetNS(pids, stage1.PodNetNS(p.Path())); ok {
			lx.Network = networkUsage(pid, now)
		}
	}
	return out
}

// inNetNS finds a process in the network namespace that file pins (a pod's process that
// is not in it is a command entering the pod, not yet there).
func inNetNS(pids []int, file string) (int, bool) {
	var want unix.Stat_t
	if err := unix.Stat(file, &want); err != nil {
		return 0, false
	}
	for _, pid := range pids {
		var st unix.Stat_t
		if unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			return pid, true
		}
	}
	return 0, false
}

// networkUsage reads the interfaces of a process's network namespace (its
// /proc/PID/net/dev), loopback left out; eth0 is the default one.
func networkUsage(pid int, ts int64) *runtimeapi.NetworkUsage {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return nil
	}
	out := &runtimeapi.NetworkUsage{Timestamp: ts}
	for _, line := range strings.Split(string(b), "\n")[2:] {
		name, rest, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if !ok || name == "lo" || len(f) < 11 {
			continue
		}
		n := func(i int) *runtimeapi.UInt64Value {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			return &runtimeapi.UInt64Value{Value: v}
		}
		iface := &runtimeapi.NetworkInterfaceUsage{Name: name, RxBytes: n(0), RxErrors: n(2), TxBytes: n(8), TxErrors: n(10)}
		out.Interfaces = append(out.Interfaces, iface)
		if name == "eth0" {
			out.DefaultInterface = iface
		}
	}
	return out
}

// PodSandboxStats says what a sandbox uses.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtimeapi.PodSandboxStatsRequest) (*runtimeapi.PodSandboxStatsResponse, error) {
	sb, err := s.idx.sandbox(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	p, err := s.sandboxPod(sb)
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatsResponse{Stats: s.sandboxStats(sb, p)}, nil
}

// ListPodSandboxStats lists the stats of the sandboxes that pass the filter.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtimeapi.ListPodSandboxStatsRequest) (*runtimeapi.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	var out []*runtimeapi.PodSandboxStats
	for _, sb := range s.idx.listSandboxes() {
		if f.GetId() != "" && !strings.HasPrefix(sb.id, f.GetId()) || !labelsMatch(sb.labels, f.GetLabelSelector()) {
			continue
		}
		p, err := s.sandboxPod(sb)
		if err != nil {
			return nil, err
		}
		if sandboxState(p) != runtimeapi.PodSandboxState_SANDBOX_READY {
			continue
		}
		out = append(out, s.sandboxStats(sb, p))
	}
	return &runtimeapi.ListPodSandboxStatsResponse{Stats: out}, nil
}
