package clustertest

import (
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
)

const cgroupFS = "/sys/fs/cgroup"

// hierarchies are the mounted cgroup hierarchies (v1 controllers, systemd's named one and
// the unified one of a hybrid layout).
func hierarchies() []string {
	ents, _ := os.ReadDir(cgroupFS)
	var hs []string
	for _, e := range ents {
		p := filepath.Join(cgroupFS, e.Name())
		if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
			hs = append(hs, p)
		}
	}
	return hs
}

// makeCgroupRoot makes kubelet's --cgroup-root in every hierarchy (kubelet requires it to
// exist); a cpuset cgroup gets its parent's CPUs and memory nodes, as v1 leaves them empty.
// The cluster's cleanup removes it, once the node's processes are gone.
func makeCgroupRoot(t testenv.TB, root string) {
	t.Helper()
	for _, h := range hierarchies() {
		d := filepath.Join(h, root)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("cgroup root: %v", err)
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				b, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(d, f), b, 0o644); err != nil {
					t.Fatalf("cgroup root %s: %v", f, err)
				}
			}
		}
	}
}

// killCgroupTree kills every process in the cgroups under root.
func killCgroupTree(t testenv.TB, root string) {
	for range 20 {
		any := false
		for _, h := range hierarchies() {
			_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				for f := range strings.FieldsSeq(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						_ = syscall.Kill(pid, syscall.SIGKILL) // gone already: nothing to kill
						any = true
					}
				}
				return nil
			})
		}
		if !any {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("processes left in cgroup %s after SIGKILL", root)
}

// removeCgroupTree removes the cgroups under root in every hierarchy, deepest first.
func removeCgroupTree(t testenv.TB, root string) {
	for _, h := range hierarchies() {
		testenv.RemoveCgroupTree(t, filepath.Join(h, root))
	}
}

func discardLogger() *log.Logger { return log.New(discard{}, "", 0) }

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
