package cri

import (
	"fmt"
	"os"
	"strings"

	"github.com/moby/sys/capability"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// hasCapSysResource says whether this process may lower OOM scores below its own.
func hasCapSysResource() bool {
	c, err := capability.NewPid2(0)
	if err != nil || c.Load() != nil {
		return false
	}
	return c.Get(capability.EFFECTIVE, capability.CAP_SYS_RESOURCE)
}

// cgroupFeatures says whether the host's cgroups are v2 only, and whether memory+swap
// can be limited.
func cgroupFeatures() (cgroup2, swap bool) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		_, err := os.Stat("/sys/fs/cgroup/memory.swap.max")
		return true, err == nil || hasChildSwap()
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return false, err == nil
}

// hasChildSwap looks for memory.swap.max in a child of the v2 root (the root has none).
func hasChildSwap() bool {
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.IsDir() {
			if _, err := os.Stat("/sys/fs/cgroup/" + e.Name() + "/memory.swap.max"); err == nil {
				return true
			}
		}
	}
	return false
}

// checkPropagation checks that a mount the container shares with the host (bidirectional)
// is on a shared host mount, and one it receives from the host on a shared or slave one,
// as containerd does: otherwise nothing would propagate.
func checkPropagation(hostPath string, p runtimeapi.MountPropagation) error {
	if p == runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
		return nil
	}
	mi, err := mountOf(hostPath)
	if err != nil {
		return fmt.Errorf("mount %s: %w", hostPath, err)
	}
	shared := strings.Contains(mi.Optional, "shared:")
	slave := strings.Contains(mi.Optional, "master:")
	switch {
	case p == runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL && !shared:
		return invalidf("mount %s: bidirectional propagation needs a shared mount, and %s is not one (mount --make-shared %s)", hostPath, mi.Mountpoint, mi.Mountpoint)
	case p == runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER && !shared && !slave:
		return invalidf("mount %s: host-to-container propagation needs a shared or slave mount, and %s is neither", hostPath, mi.Mountpoint)
	}
	return nil
}

// mountOf is the mount that path is on: the deepest mount point above it.
func mountOf(path string) (*mountinfo.Info, error) {
	ms, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, err
	}
	var best *mountinfo.Info
	for _, m := range ms {
		if path == m.Mountpoint || strings.HasPrefix(path, strings.TrimSuffix(m.Mountpoint, "/")+"/") {
			if best == nil || len(m.Mountpoint) >= len(best.Mountpoint) {
				best = m
			}
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no mount holds %s", path)
	}
	return best, nil
}

// statBlocks is a file's inode number and the 512-byte blocks it takes.
func statBlocks(path string) (ino, blocks uint64, ok bool) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, 0, false
	}
	return st.Ino, uint64(st.Blocks), true
}
