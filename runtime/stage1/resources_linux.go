package stage1

import (
	"fmt"
	"maps"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"

	"github.com/cairn-os/cairn/runtime/podapi"
)

// setResources replaces the container's cgroup limits that r sets (zero values leave a
// limit as it is) and applies them to its cgroups.
func setResources(c *libcontainer.Container, r *podapi.Resources) error {
	cfg := c.Config()
	if cfg.Cgroups == nil || cfg.Cgroups.Resources == nil {
		return fmt.Errorf("container %s has no cgroup configuration", c.ID())
	}
	cg := *cfg.Cgroups
	res := *cg.Resources
	updateResources(&res, r)
	cg.Resources = &res
	cfg.Cgroups = &cg
	if err := c.Set(cfg); err != nil {
		return fmt.Errorf("set cgroup limits: %w", err)
	}
	return nil
}

// updateResources puts what r sets over res, as runc update does.
func updateResources(res *cgroups.Resources, r *podapi.Resources) {
	if r.MemoryLimit > 0 {
		res.Memory = r.MemoryLimit
	}
	if r.MemorySwap != 0 {
		res.MemorySwap = r.MemorySwap
	}
	if r.CPUShares > 0 {
		res.CpuShares = r.CPUShares
		res.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(r.CPUShares)
	}
	if r.CPUQuota != 0 {
		res.CpuQuota = r.CPUQuota
	}
	if r.CPUPeriod > 0 {
		res.CpuPeriod = r.CPUPeriod
	}
	if r.CPUSetCPUs != "" {
		res.CpusetCpus = r.CPUSetCPUs
	}
	if r.CPUSetMems != "" {
		res.CpusetMems = r.CPUSetMems
	}
	if r.PidsLimit != 0 {
		v := r.PidsLimit
		res.PidsLimit = &v
	}
	if len(r.Unified) > 0 {
		u := maps.Clone(res.Unified)
		if u == nil {
			u = map[string]string{}
		}
		maps.Copy(u, r.Unified)
		res.Unified = u
	}
}
