package stage1

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cairn-os/cairn/runtime/podapi"
)

// AllCapabilities are the capabilities this process may give (its bounding set, of those
// the kernel has), as CAP_NAME: what a privileged app gets. Root in a container of its
// own, or without CAP_SYS_RESOURCE, has fewer than every one.
func AllCapabilities() []string {
	var out []string
	c, err := capability.NewPid2(0)
	if err == nil {
		err = c.Load()
	}
	last, lerr := capability.LastCap()
	for _, k := range capability.ListKnown() {
		if lerr == nil && k > last {
			continue
		}
		if err == nil && !c.Get(capability.BOUNDING, k) {
			continue
		}
		out = append(out, "CAP_"+strings.ToUpper(k.String()))
	}
	slices.Sort(out)
	return out
}

// applyLinux puts what an app's container gets beyond its appc app (podapi.Linux: a CRI
// container's security context, devices, mount propagation, cgroup limits, environment
// variables appc cannot name) over the spec
// that Spec built from the app's isolators and stage1's defaults. devices are the host
// devices the app gets, resolved from l.Devices (and, privileged, every host device).
func applyLinux(s *specs.Spec, l *podapi.Linux, devices []specs.LinuxDevice) error {
	if l == nil {
		return nil
	}
	p, lx := s.Process, s.Linux
	for _, kv := range l.Env {
		k, v, _ := strings.Cut(kv, "=")
		p.Env = setEnv(p.Env, k, v)
	}
	if l.Capabilities != nil {
		caps := slices.Clone(*l.Capabilities)
		slices.Sort(caps)
		caps = slices.Compact(caps)
		p.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: slices.Clone(caps), Permitted: slices.Clone(caps)}
	}
	if l.Privileged {
		all := AllCapabilities()
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: slices.Clone(all), Permitted: slices.Clone(all)}
	}
	if len(l.AmbientCapabilities) > 0 {
		// The kernel keeps an ambient capability only if it is permitted and inheritable.
		amb := slices.Clone(l.AmbientCapabilities)
		p.Capabilities.Ambient = amb
		p.Capabilities.Inheritable = slices.Clone(amb)
		for _, c := range amb {
			if !slices.Contains(p.Capabilities.Permitted, c) {
				return fmt.Errorf("ambient capability %s is not in the app's capability set", c)
			}
		}
	}
	if l.NoNewPrivileges != nil {
		p.NoNewPrivileges = *l.NoNewPrivileges
	}
	switch l.Seccomp {
	case podapi.SeccompUnconfined:
		lx.Seccomp = nil
	case podapi.SeccompProfile:
		var sc specs.LinuxSeccomp
		if err := json.Unmarshal(l.SeccompProfile, &sc); err != nil {
			return fmt.Errorf("seccomp profile: %w", err)
		}
		lx.Seccomp = &sc
	}
	if l.MaskedPaths != nil {
		lx.MaskedPaths = slices.Clone(*l.MaskedPaths)
	}
	if l.ReadonlyPaths != nil {
		lx.ReadonlyPaths = slices.Clone(*l.ReadonlyPaths)
	}
	if l.HostPID {
		lx.Namespaces = slices.DeleteFunc(lx.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == specs.PIDNamespace })
	}
	if l.OOMScoreAdj != nil {
		v := *l.OOMScoreAdj
		p.OOMScoreAdj = &v
	}
	if err := applyPropagation(s, l.Propagation); err != nil {
		return err
	}
	lx.Devices = append(lx.Devices, devices...)
	for _, d := range devices {
		major, minor := d.Major, d.Minor
		lx.Resources.Devices = append(lx.Resources.Devices, specs.LinuxDeviceCgroup{
			Allow: true, Type: d.Type, Major: &major, Minor: &minor, Access: devicePermissions(l, d.Path)})
	}
	if l.Privileged {
		lx.Seccomp = nil
		lx.MaskedPaths, lx.ReadonlyPaths = nil, nil
		lx.Resources.Devices = append(lx.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"})
		for i, m := range s.Mounts {
			if m.Type == "sysfs" || m.Type == "cgroup" {
				s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
			}
		}
	}
	if l.Resources != nil {
		r := LinuxResources(l.Resources)
		lx.Resources.Memory, lx.Resources.CPU, lx.Resources.Pids, lx.Resources.Unified = r.Memory, r.CPU, r.Pids, r.Unified
	}
	return nil
}

// devicePermissions is the cgroup access a device the app asked for gets: its request's
// permissions (rwm when it names none); every access for one that only privilege brings.
func devicePermissions(l *podapi.Linux, path string) string {
	for _, d := range l.Devices {
		if d.Path == path {
			if d.Permissions == "" {
				return "rwm"
			}
			return d.Permissions
		}
	}
	return "rwm"
}

// applyPropagation gives the app's bind mounts their propagation. A shared or slave mount
// needs the app's root to propagate at least as much, or the kernel cuts the link at the
// root: the root becomes rshared if any mount is, rslave if any is (runc's default).
func applyPropagation(s *specs.Spec, prop map[string]string) error {
	if len(prop) == 0 {
		return nil
	}
	found := map[string]bool{}
	root := ""
	for i, m := range s.Mounts {
		mode, ok := prop[m.Destination]
		if !ok || m.Type != "bind" {
			continue
		}
		found[m.Destination] = true
		opts := slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool {
			return strings.HasSuffix(o, "private") || strings.HasSuffix(o, "slave") || strings.HasSuffix(o, "shared")
		})
		opts = append(opts, mode)
		s.Mounts[i].Options = opts
		switch {
		case mode == podapi.PropagationShared:
			root = podapi.PropagationShared
		case mode == podapi.PropagationSlave && root == "":
			root = podapi.PropagationSlave
		}
	}
	for p := range prop {
		if !found[p] {
			return fmt.Errorf("mount propagation for %s: the app mounts nothing there", p)
		}
	}
	if root != "" {
		s.Linux.RootfsPropagation = root
	}
	return nil
}

// LinuxResources are r as cgroup limits in the runtime spec's terms: zero values set nothing.
func LinuxResources(r *podapi.Resources) *specs.LinuxResources {
	out := &specs.LinuxResources{}
	if r.MemoryLimit > 0 || r.MemorySwap != 0 {
		out.Memory = &specs.LinuxMemory{}
		if r.MemoryLimit > 0 {
			v := r.MemoryLimit
			out.Memory.Limit = &v
		}
		if r.MemorySwap != 0 {
			v := r.MemorySwap
			out.Memory.Swap = &v
		}
	}
	if r.CPUShares > 0 || r.CPUQuota != 0 || r.CPUPeriod > 0 || r.CPUSetCPUs != "" || r.CPUSetMems != "" {
		out.CPU = &specs.LinuxCPU{Cpus: r.CPUSetCPUs, Mems: r.CPUSetMems}
		if r.CPUShares > 0 {
			v := r.CPUShares
			out.CPU.Shares = &v
		}
		if r.CPUQuota != 0 {
			v := r.CPUQuota
			out.CPU.Quota = &v
		}
		if r.CPUPeriod > 0 {
			v := r.CPUPeriod
			out.CPU.Period = &v
		}
	}
	if r.PidsLimit != 0 {
		v := r.PidsLimit
		out.Pids = &specs.LinuxPids{Limit: &v}
	}
	if len(r.Unified) > 0 {
		out.Unified = maps.Clone(r.Unified)
	}
	return out
}
