package stage1

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"
)

// Where a pod's cgroups go, so that whoever runs `rkt run` (a systemd unit, a scope) owns the
// pod: its journal gets the apps' output and stopping it kills them.
//
// cgroup v1 (legacy or hybrid): libcontainer gets the relative path rkt-<uuid>/<app> and puts it
// under the caller's cgroup in every hierarchy; nothing moves.
//
// cgroup v2 (unified): libcontainer would put a relative path under the PARENT of the caller's
// cgroup (a cgroup with processes in it cannot hand controllers down), i.e. outside the unit.
// So rkt run first moves itself into a leaf of its own cgroup, <own>/rkt-<uuid>-stage1, which
// leaves <own> without processes, enables <own>'s controllers for its children, and gives
// libcontainer the absolute path <own>/rkt-<uuid>/<app>. This is systemd-nspawn --keep-unit's
// layout for a delegated unit (Delegate=yes). When rkt run cannot move (no permission, a cgroup
// shared with other processes), the pod goes where libcontainer would have put it,
// <parent of own>/rkt-<uuid>, with a warning.

// CgroupMode is the host's cgroup layout, as libcontainer tells them apart.
type CgroupMode int

const (
	// CgroupV1 is one hierarchy per controller, with or without cgroup2 at
	// /sys/fs/cgroup/unified beside them (hybrid).
	CgroupV1 CgroupMode = iota
	// CgroupV2 is the unified hierarchy alone, mounted at /sys/fs/cgroup.
	CgroupV2
)

func (m CgroupMode) String() string {
	if m == CgroupV2 {
		return "v2"
	}
	return "v1"
}

// unifiedMount is where a v2 host mounts its one hierarchy (libcontainer's fs2.UnifiedMountpoint).
const unifiedMount = "/sys/fs/cgroup"

// stage1CgroupSuffix names rkt run's own leaf beside the pod's cgroup on v2: rkt-<uuid>-stage1.
const stage1CgroupSuffix = "-stage1"

// ErrNoCgroupFS says /sys/fs/cgroup holds no cgroup filesystem, so a pod has nowhere to put
// its cgroups.
var ErrNoCgroupFS = errors.New("no cgroup filesystem under /sys/fs/cgroup")

// Filesystem types (statfs f_type) that /sys/fs/cgroup may be.
const (
	fsCgroup2 = 0x63677270 // the unified hierarchy (v2)
	fsTmpfs   = 0x01021994 // the directory of v1 hierarchies (v1, hybrid)
	fsCgroup1 = 0x0027e0eb // one v1 hierarchy mounted there directly
	fsSysfs   = 0x62656572 // nothing mounted: sysfs's own empty directory
)

// checkCgroupFS says whether a filesystem of type fsType at /sys/fs/cgroup can hold the pod's
// cgroups (exists false: the directory is missing). The usual reason it cannot is
// `ip netns exec`, which mounts a fresh sysfs over /sys in a mount namespace of its own (so
// that /sys/class/net shows the namespace's devices), hiding the cgroup mounts beneath it.
func checkCgroupFS(fsType int64, exists bool) error {
	if exists {
		switch fsType {
		case fsCgroup2, fsTmpfs, fsCgroup1:
			return nil
		}
	}
	var found string
	switch {
	case !exists:
		found = "no such directory"
	case fsType == fsSysfs:
		found = "an empty sysfs directory"
	default:
		found = fmt.Sprintf("a filesystem of type %#x", fsType)
	}
	return fmt.Errorf("%w (%s): is this `ip netns exec`, which mounts a new /sys? "+
		"Enter the network namespace with `nsenter --net=/var/run/netns/NAME rkt ...` instead, "+
		"or mount the cgroup hierarchies at /sys/fs/cgroup", ErrNoCgroupFS, found)
}

// ErrBadProcCgroup is returned for /proc/PID/cgroup text that is not "ID:CONTROLLERS:PATH" lines.
var ErrBadProcCgroup = errors.New("malformed /proc/PID/cgroup")

// ProcCgroup is a process's cgroup membership, as /proc/PID/cgroup lists it.
type ProcCgroup struct {
	// Unified is the path of the "0::PATH" line (the cgroup2 hierarchy), "" if there is none.
	Unified string
	// V1 maps each v1 hierarchy, by its controller list ("cpu,cpuacct", "name=systemd"), to the
	// process's path in it.
	V1 map[string]string
}

// ParseProcCgroup parses the text of /proc/PID/cgroup.
func ParseProcCgroup(text string) (ProcCgroup, error) {
	var pc ProcCgroup
	for line := range strings.SplitSeq(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":") // the path may itself contain ':'
		if !ok1 || !ok2 || id == "" || !strings.HasPrefix(p, "/") {
			return ProcCgroup{}, fmt.Errorf("%w: line %q", ErrBadProcCgroup, line)
		}
		if id == "0" && ctrls == "" {
			pc.Unified = p
			continue
		}
		if pc.V1 == nil {
			pc.V1 = map[string]string{}
		}
		pc.V1[ctrls] = p
	}
	if pc.Unified == "" && pc.V1 == nil {
		return ProcCgroup{}, fmt.Errorf("%w: no cgroup lines", ErrBadProcCgroup)
	}
	return pc, nil
}

// CgroupPlan says where a pod's cgroups go, as data: PlanCgroups computes it, stage1 applies
// it (moving rkt run if Stage1 is set) and records it in the pod's cgroups.json.
type CgroupPlan struct {
	Mode CgroupMode
	// Parent is the pod's cgroup as libcontainer takes it (apps go to Parent/<app>): relative
	// on v1, absolute in the unified hierarchy on v2.
	Parent string
	// Stage1, on v2, is the leaf of the caller's cgroup that rkt run moves itself into before
	// the pod's cgroup is made. Empty: rkt run stays where it is.
	Stage1 string
	// Fallback, on v2, is the pod's cgroup if rkt run cannot move: beside the caller's cgroup,
	// where libcontainer itself would put a relative path.
	Fallback string
}

// PlanCgroups places pod uuid's cgroups for a caller whose cgroup2 path (the "0::" line of
// /proc/self/cgroup) is own; own is not used on v1.
func PlanCgroups(mode CgroupMode, own, uuid string) (CgroupPlan, error) {
	return PlanCgroupsIn(mode, own, uuid, "")
}

// ErrBadCgroupParent says a cgroup parent is not a clean cgroup path.
var ErrBadCgroupParent = errors.New("cgroup parent must be a clean path without '..'")

// CheckCgroupParent checks a cgroup parent (rkt app sandbox --cgroup-parent).
func CheckCgroupParent(parent string) error {
	if parent == "" {
		return nil
	}
	if path.Clean(parent) != parent || parent == "/" || parent == "." || strings.Contains(parent, "..") ||
		strings.ContainsAny(parent, "\n\x00") {
		return fmt.Errorf("%q: %w", parent, ErrBadCgroupParent)
	}
	return nil
}

// PlanCgroupsIn is PlanCgroups for a pod whose cgroup goes under parent (a CRI server's
// CgroupParent): <parent>/rkt-<uuid>, its apps below it. An absolute parent is a path from
// the root of each hierarchy, and the caller stays in its own cgroup; a relative one is
// taken as libcontainer takes a relative path on v1, from the caller's own cgroup (on v2 too,
// where the caller moves into its leaf as for a pod without a parent). "" is PlanCgroups.
func PlanCgroupsIn(mode CgroupMode, own, uuid, parent string) (CgroupPlan, error) {
	if err := CheckCgroupParent(parent); err != nil {
		return CgroupPlan{}, err
	}
	name := path.Join(parent, CgroupParent(uuid))
	if path.IsAbs(parent) {
		return CgroupPlan{Mode: mode, Parent: name, Fallback: name}, nil
	}
	if mode != CgroupV2 {
		return CgroupPlan{Mode: mode, Parent: name}, nil
	}
	if !path.IsAbs(own) || path.Clean(own) != own {
		return CgroupPlan{}, fmt.Errorf("own cgroup %q: %w", own, ErrBadProcCgroup)
	}
	if own == "/" {
		// The root (of the hierarchy or of a cgroup namespace): libcontainer's choice too.
		p := "/" + name
		return CgroupPlan{Mode: mode, Parent: p, Fallback: p}, nil
	}
	return CgroupPlan{
		Mode:     mode,
		Parent:   path.Join(own, name),
		Stage1:   path.Join(own, CgroupParent(uuid)+stage1CgroupSuffix),
		Fallback: path.Join(path.Dir(own), name),
	}, nil
}

// fallBack is the plan when rkt run could not move into Stage1.
func (p CgroupPlan) fallBack() CgroupPlan {
	return CgroupPlan{Mode: p.Mode, Parent: p.Fallback, Fallback: p.Fallback}
}

// cgroupRecord is the pod cgroup's path in each hierarchy (keyed by libcontainer's subsystem
// names; "" is the unified hierarchy), saved before any app starts so that stop, gc and rm can
// find and empty it even if rkt run was killed. Two keys are not pod cgroups of libcontainer's:
// recordNested (hybrid: the pod's cgroup under the caller's unified cgroup, see joinNestedUnified)
// and recordStage1 (v2: rkt run's own leaf, removed but never killed).
type cgroupRecord map[string]string

const (
	recordNested = "unified-nested"
	recordStage1 = "stage1"
)

// addNested records, on a hybrid host, the pod's cgroup under own (the caller's cgroup in the
// unified hierarchy, as a path under its mount) for a pod cgroup parent relative to it.
// libcontainer's fs manager puts the hybrid unified cgroup under the hierarchy's root (r[""]),
// not under the caller's; startApp moves apps to the nested one, where systemd still counts
// them as the caller's unit's. An absolute parent is where it is meant, and a caller at the
// hierarchy's root makes the two the same: then there is nothing to record, and no app to
// move (a move is a cgroup migration, which can wait an RCU grace period).
func (r cgroupRecord) addNested(own, parent string) {
	if filepath.IsAbs(parent) {
		return
	}
	if nested := filepath.Join(own, parent); nested != r[""] {
		r[recordNested] = nested
	}
}

// unifiedRecord is a v2 plan's record, in the hierarchy mounted at mount.
func (p CgroupPlan) unifiedRecord(mount string) cgroupRecord {
	rec := cgroupRecord{"": filepath.Join(mount, p.Parent)}
	if p.Stage1 != "" {
		rec[recordStage1] = filepath.Join(mount, p.Stage1)
	}
	return rec
}

// podCgroups are the recorded cgroups that hold the pod's processes, without rkt run's own.
func (r cgroupRecord) podCgroups() []string {
	var out []string
	for k, p := range r {
		if k != recordStage1 {
			out = append(out, p)
		}
	}
	return out
}

// controllersToEnable is what to write to a cgroup's cgroup.subtree_control so that its
// children get every controller it has (the content of its cgroup.controllers).
func controllersToEnable(available string) string {
	f := strings.Fields(available)
	if len(f) == 0 {
		return ""
	}
	return "+" + strings.Join(f, " +")
}
