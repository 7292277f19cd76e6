package stage1

import (
	"fmt"
	"path/filepath"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
)

// AppStats reads an app's cgroup statistics (CPU, memory, pids, I/O) while its container
// exists: a CRI server's container stats.
func AppStats(podDir, app string) (*cgroups.Stats, error) {
	c, err := libcontainer.Load(filepath.Join(podDir, libcontainerDir), app)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", app, err)
	}
	st, err := c.Stats()
	if err != nil {
		return nil, fmt.Errorf("app %s: stats: %w", app, err)
	}
	if st.CgroupStats == nil {
		return nil, fmt.Errorf("app %s: no cgroup statistics", app)
	}
	return st.CgroupStats, nil
}

// PodNetNS is the file that pins a pod's network namespace (none with --net=host).
func PodNetNS(podDir string) string { return filepath.Join(podDir, nsDir, "net") }
