package stage1

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/opencontainers/cgroups"
	cgmanager "github.com/opencontainers/cgroups/manager"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/runtime/cgprime"
	"github.com/cairn-os/cairn/runtime/pod"
)

// errSharedCgroup: other processes share the caller's cgroup, so it cannot hand controllers
// down to the pod (cgroup v2 has no controllers in a cgroup with processes).
var errSharedCgroup = errors.New("other processes share it")

// CheckCgroups fails with ErrNoCgroupFS, saying why and what to do, when /sys/fs/cgroup holds
// no cgroup filesystem (a pod could not be given cgroups).
func CheckCgroups() error {
	var st unix.Statfs_t
	if err := unix.Statfs(unifiedMount, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return checkCgroupFS(0, false)
		}
		return fmt.Errorf("pod cgroup: statfs %s: %w", unifiedMount, err)
	}
	return checkCgroupFS(st.Type, true)
}

// setupCgroups places the pod's cgroups (see PlanCgroupsIn) under parent ("" for the
// caller's own cgroup), moving rkt run into its leaf on v2, records them in the pod
// directory, and returns where libcontainer puts the apps.
func setupCgroups(log *slog.Logger, podDir, uuid, parent string) (CgroupPlan, error) {
	if err := CheckCgroups(); err != nil {
		return CgroupPlan{}, err
	}
	mode := CgroupV1
	if cgroups.IsCgroup2UnifiedMode() {
		mode = CgroupV2
	}
	own := ""
	if mode == CgroupV2 {
		b, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return CgroupPlan{}, fmt.Errorf("pod cgroup: %w", err)
		}
		pc, err := ParseProcCgroup(string(b))
		if err != nil {
			return CgroupPlan{}, fmt.Errorf("pod cgroup: %w", err)
		}
		own = pc.Unified
	}
	plan, err := PlanCgroupsIn(mode, own, uuid, parent)
	if err != nil {
		return CgroupPlan{}, fmt.Errorf("pod cgroup: %w", err)
	}
	if mode == CgroupV1 {
		_, err := recordCgroups(podDir, plan.Parent)
		return plan, err
	}
	// Recorded before the move, so that gc finds the leaf if rkt run dies right after it.
	if err := writeCgroupRecord(podDir, plan.unifiedRecord(unifiedMount)); err != nil {
		return CgroupPlan{}, err
	}
	if plan.Stage1 != "" {
		mv := cgroupMover{Mount: unifiedMount, PID: os.Getpid()}
		enabled, err := mv.enter(plan, own)
		if err != nil {
			plan = plan.fallBack()
			log.Warn("pod cgroup placed beside rkt's own cgroup, not inside it: the unit or scope running rkt does not own the pod "+
				"(its journal misses the apps' output, stopping it leaves them); run rkt from a unit with Delegate=yes",
				"own", own, "pod", plan.Parent, "err", err)
			if err := writeCgroupRecord(podDir, plan.unifiedRecord(unifiedMount)); err != nil {
				return CgroupPlan{}, err
			}
		} else {
			log.Debug("rkt moved into its leaf cgroup", "stage1", plan.Stage1, "pod", plan.Parent, "controllers", enabled)
		}
	}
	return plan, nil
}

// cgroupMover moves a process inside a cgroup2 hierarchy. Mount is where the hierarchy is
// mounted (/sys/fs/cgroup on a v2 host; tests use a private mount).
type cgroupMover struct {
	Mount string
	PID   int
}

// enter moves PID from own into plan.Stage1 and enables own's controllers for its children,
// the pod's cgroup among them. It fails, leaving PID in own, when the leaf cannot be made or
// joined, or when other processes are in own; it returns the controllers it enabled.
func (m cgroupMover) enter(plan CgroupPlan, own string) (string, error) {
	ownDir := filepath.Join(m.Mount, own)
	leaf := filepath.Join(m.Mount, plan.Stage1)
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("create %s: %w", leaf, err)
	}
	if m.PID == os.Getpid() {
		cgprime.Wait()
	}
	if err := writeProcs(leaf, m.PID); err != nil {
		return "", removeLeaf(leaf, fmt.Errorf("move pid %d into %s: %w", m.PID, leaf, err))
	}
	// Checked after the move, so that a process that arrives in between is seen too.
	if others := cgroupPIDs(ownDir); len(others) > 0 {
		err := fmt.Errorf("cgroup %s: %w (pids %v)", own, errSharedCgroup, others)
		if berr := writeProcs(ownDir, m.PID); berr != nil {
			return "", errors.Join(err, fmt.Errorf("move pid %d back into %s: %w", m.PID, ownDir, berr))
		}
		return "", removeLeaf(leaf, err)
	}
	return enableControllers(ownDir), nil
}

// removeLeaf removes the leaf that a failed move made, adding to err if that fails too.
func removeLeaf(leaf string, err error) error {
	if rerr := unix.Rmdir(leaf); rerr != nil {
		return errors.Join(err, fmt.Errorf("remove %s: %w", leaf, rerr))
	}
	return err
}

func writeProcs(dir string, pid int) error {
	return os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// enableControllers hands every controller of dir down to its children, as libcontainer does
// on the way to a container's cgroup: all at once, else one by one. A controller that cannot
// be enabled is left out; libcontainer fails later if the pod needs it. It returns the
// controllers enabled.
func enableControllers(dir string) string {
	avail, _ := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	want := controllersToEnable(string(avail))
	if want == "" {
		return ""
	}
	ctl := filepath.Join(dir, "cgroup.subtree_control")
	if os.WriteFile(ctl, []byte(want), 0o644) != nil {
		for c := range strings.FieldsSeq(want) {
			// One that fails is left out; what was enabled is read back below.
			_ = os.WriteFile(ctl, []byte(c), 0o644)
		}
	}
	got, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	return strings.TrimSpace(string(got))
}

// recordCgroups records the v1 pod cgroup: libcontainer's paths for parent (the plan's), in
// every hierarchy.
func recordCgroups(podDir, parent string) (cgroupRecord, error) {
	m, err := cgmanager.New(&cgroups.Cgroup{Path: parent, Resources: &cgroups.Resources{}})
	if err != nil {
		return nil, fmt.Errorf("pod cgroup: %w", err)
	}
	rec := cgroupRecord(m.GetPaths())
	if u, ok := ownUnifiedCgroup(); ok {
		rec.addNested(u, parent)
	}
	return rec, writeCgroupRecord(podDir, rec)
}

func writeCgroupRecord(podDir string, rec cgroupRecord) error {
	b, _ := json.Marshal(rec)
	return pod.WriteStateFile(filepath.Join(podDir, CgroupsFile), b, 0o644)
}

// removeStage1Cgroup removes rkt run's leaf (v2) once it is empty. While rkt run is alive it is
// busy, so the end of rkt run leaves it to gc (or to systemd, which removes a stopped unit's
// cgroup tree).
func removeStage1Cgroup(rec cgroupRecord) error {
	leaf, ok := rec[recordStage1]
	if !ok {
		return nil
	}
	if err := unix.Rmdir(leaf); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("rmdir %s: %w", leaf, err)
	}
	return nil
}
