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

// AppResources reads the cgroup limits an app's container has now, as it was made and as
// updates have changed them since: a CRI server's container status.
func AppResources(podDir, app string) (*cgroups.Resources, error) {
	c, err := libcontainer.Load(filepath.Join(podDir, libcontainerDir), app)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", app, err)
	}
	cfg := c.Config()
	if cfg.Cgroups == nil || cfg.Cgroups.Resources == nil {
		return nil, fmt.Errorf("app %s: no cgroup configuration", app)
	}
	return cfg.Cgroups.Resources, nil
}

// PodNetNS is the file that pins a pod's network namespace (none with --net=host).
func PodNetNS(podDir string) string { return filepath.Join(podDir, nsDir, "net") }
