package stage1

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/mount"
	"github.com/cairn-os/cairn/runtime/network"
)

// nsKinds are the namespaces a pod's apps share, with their clone flags.
var nsKinds = []struct {
	name string
	flag int
}{{"net", unix.CLONE_NEWNET}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS}}

// createSandbox makes the pod's shared namespaces and pins each one with a bind mount of its
// nsfs file under <pod>/ns, so that apps can join them and they outlive any one app. It runs
// on a locked thread that is never unlocked: the thread, now in other namespaces, exits with
// its goroutine instead of going back to the Go scheduler.
// The namespaced sysctls (Options.Sysctls) are written there, as the sandbox's own.
func createSandbox(podDir, hostname string, privateNet, privateIPC bool, sysctls map[string]string) (map[string]string, error) {
	dir := filepath.Join(podDir, nsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	paths := map[string]string{}
	flags := 0
	for _, k := range nsKinds {
		if k.name == "net" && !privateNet || k.name == "ipc" && !privateIPC {
			continue
		}
		flags |= k.flag
		p := filepath.Join(dir, k.name)
		if err := os.WriteFile(p, nil, 0o400); err != nil {
			return nil, err
		}
		paths[k.name] = p
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(flags); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if hostname != "" {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				errc <- fmt.Errorf("sethostname: %w", err)
				return
			}
		}
		if privateNet {
			lo, err := netlink.LinkByName("lo")
			if err == nil {
				err = netlink.LinkSetUp(lo)
			}
			if err != nil {
				errc <- fmt.Errorf("loopback up: %w", err)
				return
			}
			// ICMP echo sockets for every group, as Docker opens them in a container's own
			// network namespace: ping works without CAP_NET_RAW, which apps lack by default.
			// The sysctl is this thread's network namespace's.
			if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647"), 0); err != nil {
				errc <- fmt.Errorf("ping_group_range: %w", err)
				return
			}
		}
		for _, k := range slices.Sorted(maps.Keys(sysctls)) {
			// The thread's namespaces are the sandbox's; /proc/sys shows them.
			if err := os.WriteFile(SysctlPath(k), []byte(sysctls[k]), 0); err != nil {
				errc <- fmt.Errorf("sysctl %s=%s: %w", k, sysctls[k], err)
				return
			}
		}
		for name, p := range paths {
			m := mount.Mount{Source: "/proc/thread-self/ns/" + name, Target: p, Flags: unix.MS_BIND}
			if err := m.Apply(); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("pod sandbox: %w", err)
	}
	return paths, nil
}

func readCgroupRecord(podDir string) (cgroupRecord, error) {
	b, err := os.ReadFile(filepath.Join(podDir, CgroupsFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var rec cgroupRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", CgroupsFile, err)
	}
	for k, p := range rec {
		if !strings.HasPrefix(filepath.Clean(p), "/sys/fs/cgroup/") || !strings.Contains(filepath.Base(p), "rkt-") {
			return nil, fmt.Errorf("%s: %s path %q is not a pod cgroup", CgroupsFile, k, p)
		}
	}
	return rec, nil
}

// ownUnifiedCgroup is the calling process's cgroup in the hybrid layout's unified hierarchy
// (the one systemd tracks units by), when there is such a hierarchy.
func ownUnifiedCgroup() (string, bool) {
	if !cgroups.IsCgroup2HybridMode() {
		return "", false
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", false
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return filepath.Join("/sys/fs/cgroup/unified", p), true
		}
	}
	return "", false
}

// joinNestedUnified moves a process into the app's cgroup under the pod's nested unified
// cgroup (see recordCgroups).
func joinNestedUnified(podDir, app string, pid int) error {
	rec, err := readCgroupRecord(podDir)
	if err != nil {
		return err
	}
	base, ok := rec[recordNested]
	if !ok {
		return nil
	}
	dir := filepath.Join(base, app)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// cgroupDirs lists a cgroup and its descendants, deepest first. Cgroups that are gone, or go
// while they are listed, are left out.
func cgroupDirs(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return err
		case d.IsDir():
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list cgroups under %s: %w", root, err)
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	return dirs, nil
}

func cgroupPIDs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

// PodProcesses lists the processes in the pod's cgroups.
func PodProcesses(podDir string) ([]int, error) {
	rec, err := readCgroupRecord(podDir)
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	var out []int
	for _, p := range rec.podCgroups() {
		dirs, err := cgroupDirs(p)
		if err != nil {
			return nil, err
		}
		for _, d := range dirs {
			for _, pid := range cgroupPIDs(d) {
				if !seen[pid] {
					seen[pid] = true
					out = append(out, pid)
				}
			}
		}
	}
	sort.Ints(out)
	return out, nil
}

// KillPod sends sig to every process in the pod's cgroups.
func KillPod(podDir string, sig unix.Signal) error {
	pids, err := PodProcesses(podDir)
	if err != nil {
		return err
	}
	return kill(pids, sig)
}

// kill sends sig to every process of pids; one that has exited since it was listed is not
// an error.
func kill(pids []int, sig unix.Signal) error {
	var errs []error
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// removeEmptyCgroups removes each of cgroups that holds no process and has no child (the
// kernel refuses to remove one that does) and returns the others. A pod whose apps have exited
// and whose containers libcontainer destroyed costs one rmdir per cgroup, where listing them
// and reading their processes to find nothing costs several calls per v1 hierarchy.
func removeEmptyCgroups(cgroups []string) (left []string) {
	for _, p := range cgroups {
		if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.ENOENT) {
			left = append(left, p)
		}
	}
	return left
}

// emptyCgroups kills what is left in cgroups, the pod's that removeEmptyCgroups left, and
// removes them, deepest first, then rkt run's own leaf (rec's) if it is empty (v2).
func emptyCgroups(ctx context.Context, rec cgroupRecord, cgroups []string) error {
	deadline := time.Now().Add(10 * time.Second)
	for len(cgroups) > 0 {
		var pids []int
		for _, p := range cgroups {
			dirs, err := cgroupDirs(p)
			if err != nil {
				return err
			}
			for _, d := range dirs {
				pids = append(pids, cgroupPIDs(d)...)
			}
		}
		if len(pids) == 0 {
			break
		}
		kerr := kill(pids, unix.SIGKILL)
		if time.Now().After(deadline) || ctx.Err() != nil {
			return errors.Join(fmt.Errorf("pod cgroups: %d processes would not die", len(pids)), kerr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var errs []error
	for _, p := range cgroups {
		dirs, err := cgroupDirs(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, d := range dirs {
			var err error
			for range 50 { // rmdir is EBUSY for a moment after the last exit
				if err = unix.Rmdir(d); err == nil || errors.Is(err, unix.ENOENT) || !errors.Is(err, unix.EBUSY) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", d, err))
			}
		}
	}
	if err := removeStage1Cgroup(rec); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// teardownNetworks leaves the CNI networks recorded in the pod's state file (st, nil when the
// pod has none) and removes the file once that worked, so that a second Clean does nothing.
func teardownNetworks(ctx context.Context, podDir string, st *network.State, log *slog.Logger) error {
	if st == nil {
		return nil
	}
	// The pod directory moves between phases (run, exited-garbage, garbage): its namespaces
	// are where the pod is now, not where it was when the state was written.
	st.NetNS = filepath.Join(podDir, nsDir, "net")
	if st.HostNetNS != "" {
		st.HostNetNS = filepath.Join(podDir, hostNetnsFile)
	}
	if err := (&network.Manager{Log: log}).Teardown(ctx, st); err != nil {
		return err
	}
	return os.Remove(filepath.Join(podDir, NetStateFile))
}

// Clean undoes everything a pod's stage1 did outside its directory: it kills any process left
// in the pod's cgroups, leaves its CNI networks, unmounts the app roots and sandbox namespaces,
// and removes the cgroups.
// It is the gc entry point and also the end of every rkt run; it is safe to run any number of
// times, on a pod in any state of teardown.
func Clean(ctx context.Context, podDir string) error { return CleanWithLog(ctx, podDir, nil) }

// CleanWithLog is Clean, telling log (nil for none) what it finds on the way.
func CleanWithLog(ctx context.Context, podDir string, log *slog.Logger) error {
	rec, err := readCgroupRecord(podDir)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	// Kill first: processes pin the namespaces and mounts. At the end of a rkt run whose apps
	// have exited the pod's cgroups are empty, and go here.
	var left []string
	if rec != nil {
		left = removeEmptyCgroups(rec.podCgroups())
	}
	if len(left) > 0 {
		_ = KillPod(podDir, unix.SIGKILL)
	}
	// Leaving the networks runs plugin processes, the slow part, so the mounts and cgroups
	// are taken apart meanwhile. The network namespace's mount waits for it only when a
	// plugin needs the namespace for its DEL (to find the addresses whose masquerade rules it
	// removes, say); otherwise the namespace goes first, and the kernel takes the pod's side
	// of its links apart in its own time (teardown deletes their host side).
	netns := filepath.Join(podDir, nsDir, "net")
	// The pin of the namespace that holds the pod's host side stays until the networks are
	// left, and so does the pod's own when teardown needs it: a gc that retries must find them.
	hostNetns := filepath.Join(podDir, hostNetnsFile)
	st, err := network.LoadState(filepath.Join(podDir, NetStateFile))
	if err != nil {
		st = nil
		if !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if st != nil && !st.TeardownNeedsNetns() {
		if err := mount.UnmountBeneath(filepath.Join(podDir, nsDir)); err != nil {
			errs = append(errs, err)
		}
	}
	netErr := make(chan error, 1)
	go func() { netErr <- teardownNetworks(ctx, podDir, st, log) }()
	if err := mount.UnmountBeneath(podDir, netns, hostNetns); err != nil {
		errs = append(errs, err)
	}
	if rec != nil {
		if err := emptyCgroups(ctx, rec, left); err != nil {
			errs = append(errs, err)
		}
	}
	var keep []string
	if err := <-netErr; err != nil {
		errs = append(errs, err)
		if st != nil {
			keep = append(keep, hostNetns, netns)
		}
	}
	if err := cleanUsernsRoots(filepath.Base(podDir)); err != nil {
		errs = append(errs, err)
	}
	if err := mount.UnmountBeneath(podDir, keep...); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
