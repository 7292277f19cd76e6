package cgprime

import (
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// prime moves the process into the cgroup it is in.
func prime() {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return
	}
	var st unix.Statfs_t
	unified := unix.Statfs(mount, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
	if d := dir(string(b), unified); d != "" {
		_ = os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	}
}
