package cgprime

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// prime moves the process into the cgroup it is in. It writes only to a cgroup that lists the
// process already: where /sys/fs/cgroup is not the view /proc/self/cgroup's paths are relative
// to (a cgroup namespace with the host's hierarchy mounted), the path names another cgroup,
// and the write would be a real move.
func prime() {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return
	}
	var st unix.Statfs_t
	unified := unix.Statfs(mount, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
	d := dir(string(b), unified)
	if d == "" {
		return
	}
	procs := filepath.Join(d, "cgroup.procs")
	pid := strconv.Itoa(os.Getpid())
	if in, err := os.ReadFile(procs); err != nil || !listed(string(in), pid) {
		return
	}
	_ = os.WriteFile(procs, []byte(pid), 0o644)
}
