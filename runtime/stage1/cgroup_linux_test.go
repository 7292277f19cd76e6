package stage1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/testenv"
)

// The v2 move on a real cgroup2 hierarchy: a private cgroup2 mount, in a mount namespace of
// its own, of whatever unified hierarchy the machine has (on a hybrid host it has no
// controllers, but processes move and cgroups are made and removed as on a v2 host). The test
// process stands for rkt run in a unit: it moves into <tree>/unit first.
const cgroup2InnerEnv = "CAIRN_STAGE1_CGROUP2_INNER"

func TestCgroup2Move(t *testing.T) {
	testenv.RequireRoot(t)
	b, _ := os.ReadFile("/proc/filesystems")
	testenv.Require(t, strings.Contains(string(b), "\tcgroup2\n"), "needs a kernel with cgroup2")
	for _, name := range []string{"Delegated", "Shared", "CannotCreate"} {
		t.Run(name, func(t *testing.T) {
			t.Logf("%s", testenv.InPrivateHost(t, "TestCgroup2MoveInner", cgroup2InnerEnv+"="+name))
		})
	}
}

// TestCgroup2MoveInner is the inner half of TestCgroup2Move.
func TestCgroup2MoveInner(t *testing.T) {
	scenario := os.Getenv(cgroup2InnerEnv)
	if scenario == "" {
		t.Skip("runs only inside TestCgroup2Move's namespaces")
	}
	mnt := t.TempDir()
	if err := unix.Mount("cgroup2", mnt, "cgroup2", 0, ""); err != nil {
		t.Fatalf("mount cgroup2: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) }) // after the tree's cleanup below
	start := ownCgroup2(t)
	tree := filepath.Join(start, fmt.Sprintf("cairn-stage1-test-%d", os.Getpid()))
	unit := filepath.Join(tree, "unit.service")
	if err := os.MkdirAll(filepath.Join(mnt, unit), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Back where the test started, then the whole test tree goes.
		if err := writeProcs(filepath.Join(mnt, start), os.Getpid()); err != nil {
			t.Errorf("move back to %s: %v", start, err)
		}
		dirs, err := cgroupDirs(filepath.Join(mnt, tree))
		if err != nil {
			t.Error(err)
		}
		for _, d := range dirs {
			for _, pid := range cgroupPIDs(d) {
				unix.Kill(pid, unix.SIGKILL)
			}
			for i := range 100 {
				if err := unix.Rmdir(d); err == nil || errors.Is(err, unix.ENOENT) {
					break
				} else if i == 99 {
					t.Errorf("rmdir %s: %v", d, err)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	if err := writeProcs(filepath.Join(mnt, unit), os.Getpid()); err != nil {
		t.Fatalf("join %s: %v", unit, err)
	}
	if own := ownCgroup2(t); own != unit {
		t.Fatalf("own cgroup %s, want %s", own, unit)
	}
	plan, err := PlanCgroups(CgroupV2, unit, "u1")
	if err != nil {
		t.Fatal(err)
	}
	mv := cgroupMover{Mount: mnt, PID: os.Getpid()}
	switch scenario {
	case "Delegated":
		enabled, err := mv.enter(plan, unit)
		if err != nil {
			t.Fatalf("enter: %v", err)
		}
		// rkt run is in its leaf, the unit's cgroup has no process left and hands its
		// controllers down.
		if own := ownCgroup2(t); own != plan.Stage1 {
			t.Fatalf("own cgroup after the move %s, want %s", own, plan.Stage1)
		}
		if pids := cgroupPIDs(filepath.Join(mnt, unit)); len(pids) != 0 {
			t.Errorf("processes left in the unit's cgroup: %v", pids)
		}
		avail, _ := os.ReadFile(filepath.Join(mnt, unit, "cgroup.controllers"))
		if strings.TrimSpace(string(avail)) != enabled {
			t.Errorf("controllers enabled %q, want all of %q", enabled, avail)
		}
		t.Logf("controllers handed down: %q", enabled)
		// The pod's cgroup goes beside the leaf, inside the unit; an app in it is killed and
		// its cgroups removed by the same code as gc's, which leaves rkt run's busy leaf.
		app := filepath.Join(mnt, plan.Parent, "app")
		if err := os.MkdirAll(app, 0o755); err != nil {
			t.Fatal(err)
		}
		sleeper := exec.Command("sleep", "60")
		if err := sleeper.Start(); err != nil {
			t.Fatal(err)
		}
		reaped := make(chan error, 1)
		go func() { reaped <- sleeper.Wait() }() // a zombie would stay in its cgroup
		defer func() { sleeper.Process.Kill(); <-reaped }()
		if err := writeProcs(app, sleeper.Process.Pid); err != nil {
			t.Fatal(err)
		}
		rec := plan.unifiedRecord(mnt)
		if err := emptyCgroups(context.Background(), rec, removeEmptyCgroups(rec.podCgroups())); err != nil {
			t.Fatalf("emptyCgroups: %v", err)
		}
		if _, err := os.Stat(filepath.Join(mnt, plan.Parent)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("pod cgroup still there: %v", err)
		}
		if _, err := os.Stat(filepath.Join(mnt, plan.Stage1)); err != nil {
			t.Errorf("rkt run's leaf went while rkt run was in it: %v", err)
		}
		if own := ownCgroup2(t); own != plan.Stage1 {
			t.Errorf("own cgroup after cleaning %s", own)
		}
		// Once rkt run is gone (here: moved away), gc's pass removes the leaf.
		if err := writeProcs(filepath.Join(mnt, start), os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if err := emptyCgroups(context.Background(), rec, removeEmptyCgroups(rec.podCgroups())); err != nil {
			t.Fatalf("emptyCgroups again: %v", err)
		}
		if _, err := os.Stat(filepath.Join(mnt, plan.Stage1)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leaf left after gc: %v", err)
		}
	case "Shared":
		// Another process in the unit's cgroup (a shell, a wrapper script): the unit cannot
		// hand controllers down, so rkt run stays where it was and the plan falls back.
		other := exec.Command("sleep", "60")
		if err := other.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { other.Process.Kill(); other.Wait() }()
		// The child starts in our cgroup, the unit's.
		if _, err := mv.enter(plan, unit); !errors.Is(err, errSharedCgroup) || !strings.Contains(err.Error(), fmt.Sprint(other.Process.Pid)) {
			t.Fatalf("enter with another process in the unit: %v, want errSharedCgroup naming pid %d", err, other.Process.Pid)
		}
		if own := ownCgroup2(t); own != unit {
			t.Errorf("own cgroup after a refused move %s, want %s", own, unit)
		}
		if _, err := os.Stat(filepath.Join(mnt, plan.Stage1)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leaf left after a refused move: %v", err)
		}
	case "CannotCreate":
		// The unit may have no more cgroups below it (as when it is not delegated and a
		// manager limits it): the leaf cannot be made and nothing moves.
		if err := os.WriteFile(filepath.Join(mnt, unit, "cgroup.max.descendants"), []byte("0"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := mv.enter(plan, unit)
		if err == nil || !strings.Contains(err.Error(), "create ") {
			t.Fatalf("enter below a cgroup that allows no children: %v", err)
		}
		if own := ownCgroup2(t); own != unit {
			t.Errorf("own cgroup after a failed move %s, want %s", own, unit)
		}
	default:
		t.Fatalf("unknown scenario %q", scenario)
	}
}

func ownCgroup2(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := ParseProcCgroup(string(b))
	if err != nil || pc.Unified == "" {
		t.Fatalf("own cgroup2 path: %v %q", err, b)
	}
	return pc.Unified
}

// TestRemoveEmptyCgroups removes empty cgroups with one rmdir each, on a real hierarchy (v1's
// pids, or the unified one), and leaves one with a process or a child to the slow path.
func TestRemoveEmptyCgroups(t *testing.T) {
	testenv.RequireRoot(t)
	root := "/sys/fs/cgroup/pids"
	if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
		root = "/sys/fs/cgroup"
	}
	base := filepath.Join(root, fmt.Sprintf("cairn-stage1-test-%d", os.Getpid()))
	empty, busy, parent, gone := base+"-empty", base+"-busy", base+"-parent", base+"-gone"
	for _, d := range []string{empty, busy, filepath.Join(parent, "child")} {
		err := os.MkdirAll(d, 0o755)
		testenv.Require(t, err == nil, "no writable cgroup hierarchy at %s: %v", root, err)
	}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sleeper.Process.Kill()
		sleeper.Wait()
		if err := emptyCgroups(context.Background(), nil, []string{busy, parent, empty}); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := writeProcs(busy, sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	left := removeEmptyCgroups([]string{empty, busy, parent, gone})
	if !slices.Equal(left, []string{busy, parent}) {
		t.Errorf("left %v, want the busy cgroup and the parent", left)
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty cgroup still there: %v", err)
	}
	for _, d := range []string{busy, filepath.Join(parent, "child")} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	if pids := cgroupPIDs(busy); !slices.Equal(pids, []int{sleeper.Process.Pid}) {
		t.Errorf("busy cgroup holds %v, want the sleeper %d", pids, sleeper.Process.Pid)
	}
}
