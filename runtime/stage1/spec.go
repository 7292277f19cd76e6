package stage1

import (
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cairn-os/cairn/runtime/podapi"
)

// DefaultCapabilities is runc's default set (runc spec): a process in a Cairn app starts with
// only these unless the app's isolators or --caps-retain/--caps-remove say otherwise.
var DefaultCapabilities = []string{"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"}

// MaskedPaths and ReadonlyPaths are runc's defaults.
var (
	MaskedPaths = []string{
		"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
		"/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware",
	}
	ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// PodPlan is what building an app's container needs to know about its pod.
type PodPlan struct {
	UUID     string
	Dir      string // the pod directory (in the run phase)
	Hostname string
	// Namespace files of the pod sandbox that every app joins. NetNS is empty with --net=host,
	// IPCNS with HostIPC.
	NetNS, IPCNS, UTSNS string
	Volumes             []types.Volume // pod volumes; an empty volume's Source is set to its host dir
	EtcHosts            string         // host path of the pod's /etc/hosts, if any
	ResolvConf          string         // host path of the pod's /etc/resolv.conf, if any
	Terminal            bool           // --interactive
	PrivateUsers        *PrivateUsers  // --private-users: the apps' user namespace, nil for none
	Sysfs               string         // with PrivateUsers, the pod's sysfs, mounted by stage1
	// CgroupParent is the pod's cgroup as libcontainer takes it (CgroupPlan.Parent); apps go
	// to CgroupParent/<app>. Empty means CgroupParent(UUID), relative.
	CgroupParent string
	// HostIPC: the apps share the host's IPC namespace.
	HostIPC bool
	// PIDNS, when set, is the PID namespace every app joins (a sandbox's shared one).
	PIDNS string
}

// CgroupParent is the name of the pod's cgroup, rkt-<uuid>. As a relative path (v1),
// libcontainer's fs manager puts it under the cgroup of the process running the pod, in every
// hierarchy; on v2 PlanCgroups makes it absolute.
func CgroupParent(uuid string) string { return "rkt-" + uuid }

func (p *PodPlan) cgroupParent() string {
	if p.CgroupParent != "" {
		return p.CgroupParent
	}
	return CgroupParent(p.UUID)
}

// AppPlan is one app, ready to become a container.
type AppPlan struct {
	App            schema.RuntimeApp
	Rootfs         string // host path of the app's mounted root
	UID, GID       uint32
	AdditionalGIDs []uint32
	// Terminal runs the app on a pty of its own (a sandbox's app added with a tty).
	Terminal bool
	// Linux is what the app's container gets beyond its appc app (a sandbox's app added by
	// a CRI server), with Devices the host devices it names, resolved (ResolveDevices).
	Linux   *podapi.Linux
	Devices []specs.LinuxDevice
}

// Spec builds the OCI runtime spec of one app: its own mount and PID namespaces and root, the
// pod's network/IPC/UTS namespaces, runc's default hardening (capabilities, masked and
// read-only /proc paths, no-new-privileges, a default seccomp deny list), resources from the
// app's isolators, and the pod's volumes where the app asks for them.
func Spec(pod *PodPlan, app *AppPlan) (*specs.Spec, error) {
	ra := app.App
	if ra.App == nil || len(ra.App.Exec) == 0 {
		return nil, fmt.Errorf("app %s: %w", ra.Name, ErrNoExec)
	}
	a := ra.App
	env := []string{"PATH=" + DefaultPath, "AC_APP_NAME=" + string(ra.Name)}
	terminal := pod.Terminal || app.Terminal
	if terminal {
		env = append(env, "TERM=xterm")
	}
	for _, ev := range a.Environment {
		env = setEnv(env, ev.Name, ev.Value)
	}
	cwd := a.WorkingDirectory
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("app %s: working directory %q is not absolute", ra.Name, cwd)
	}
	isos, err := decodedIsolators(a.Isolators)
	if err != nil {
		return nil, fmt.Errorf("app %s: isolators: %w", ra.Name, err)
	}
	caps, err := Capabilities(isos)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", ra.Name, err)
	}
	sc, err := SeccompSpec(isos)
	if err != nil {
		return nil, fmt.Errorf("app %s: seccomp: %w", ra.Name, err)
	}
	res, err := Resources(isos)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", ra.Name, err)
	}
	mounts, err := appMounts(pod, app)
	if err != nil {
		return nil, err
	}
	ns := []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace, Path: pod.PIDNS}}
	if !pod.HostIPC {
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: pod.IPCNS})
	}
	ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace, Path: pod.UTSNS})
	if pod.NetNS != "" {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: pod.NetNS})
	}
	hostname := pod.Hostname
	var uidMap []specs.LinuxIDMapping
	if u := pod.PrivateUsers; u != nil {
		// The apps' user namespace is made after they join the sandbox's namespaces, which
		// stay the host's: the sandbox set the host name, which the apps cannot.
		ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace})
		uidMap = []specs.LinuxIDMapping{{ContainerID: 0, HostID: u.Shift, Size: u.Count}}
		hostname = ""
	}
	s := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: app.Rootfs, Readonly: ra.ReadOnlyRootFS},
		Hostname: hostname,
		Process: &specs.Process{
			Terminal:        terminal,
			Args:            append([]string(nil), a.Exec...),
			Env:             env,
			Cwd:             cwd,
			User:            specs.User{UID: app.UID, GID: app.GID, AdditionalGids: app.AdditionalGIDs},
			NoNewPrivileges: true,
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: caps,
				Permitted: caps,
			},
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			CgroupsPath:   path.Join(pod.cgroupParent(), string(ra.Name)),
			Namespaces:    ns,
			MaskedPaths:   MaskedPaths,
			ReadonlyPaths: ReadonlyPaths,
			Seccomp:       sc,
			Resources:     res,
			UIDMappings:   uidMap,
			GIDMappings:   uidMap,
		},
	}
	if err := applyLinux(s, app.Linux, app.Devices); err != nil {
		return nil, fmt.Errorf("app %s: %w", ra.Name, err)
	}
	return s, nil
}

// decodedIsolators returns the isolators with their values decoded. appc's constructors
// (AsIsolator) leave the decoded value empty; only JSON decoding fills it.
func decodedIsolators(isos types.Isolators) (types.Isolators, error) {
	b, err := json.Marshal(isos)
	if err != nil {
		return nil, err
	}
	var out types.Isolators
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func setEnv(env []string, k, v string) []string {
	for i, kv := range env {
		if strings.HasPrefix(kv, k+"=") {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

// Capabilities is the app's capability set: runc's default, or its isolator's retain set, or
// the default minus its remove set.
func Capabilities(isos types.Isolators) ([]string, error) {
	caps := append([]string(nil), DefaultCapabilities...)
	for _, iso := range isos {
		switch v := iso.Value().(type) {
		case *types.LinuxCapabilitiesRetainSet:
			caps = caps[:0]
			for _, c := range v.Set() {
				caps = append(caps, string(c))
			}
		case *types.LinuxCapabilitiesRevokeSet:
			drop := map[string]bool{}
			for _, c := range v.Set() {
				drop[string(c)] = true
			}
			kept := caps[:0]
			for _, c := range caps {
				if !drop[c] {
					kept = append(kept, c)
				}
			}
			caps = kept
		}
	}
	for _, c := range caps {
		if !strings.HasPrefix(c, "CAP_") {
			return nil, fmt.Errorf("capability %q: want CAP_NAME", c)
		}
	}
	sort.Strings(caps)
	return caps, nil
}

// Resources maps the app's resource isolators onto cgroup limits: resource/memory's limit in
// bytes, resource/cpu's limit in millicores as a CFS quota over a 100 ms period, and
// os/linux/cpu-shares.
func Resources(isos types.Isolators) (*specs.LinuxResources, error) {
	r := &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}
	for _, iso := range isos {
		switch v := iso.Value().(type) {
		case *types.ResourceMemory:
			if l := v.Limit(); l != nil {
				b := l.Value()
				if b <= 0 {
					return nil, fmt.Errorf("memory limit %s: must be positive", l)
				}
				r.Memory = &specs.LinuxMemory{Limit: &b}
			}
		case *types.ResourceCPU:
			if l := v.Limit(); l != nil {
				milli := l.MilliValue()
				if milli <= 0 {
					return nil, fmt.Errorf("cpu limit %s: must be positive", l)
				}
				period := uint64(100000)
				quota := milli * 100
				if r.CPU == nil {
					r.CPU = &specs.LinuxCPU{}
				}
				r.CPU.Period, r.CPU.Quota = &period, &quota
			}
		case *types.LinuxCPUShares:
			sh := uint64(*v)
			if r.CPU == nil {
				r.CPU = &specs.LinuxCPU{}
			}
			r.CPU.Shares = &sh
		}
	}
	return r, nil
}

// baseMounts are runc's default kernel filesystems.
func baseMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// appMounts: kernel filesystems, the pod's /etc files, then volumes. An app mounts a volume
// where a --mount (pod manifest mount) says, and where the image declares a mount point of the
// volume's name, unless a mount is there already (rkt's rule).
func appMounts(pod *PodPlan, app *AppPlan) ([]specs.Mount, error) {
	ms := baseMounts()
	if pod.PrivateUsers != nil {
		// The IPC namespace is the sandbox's, owned by the host's user namespace: an app in
		// its own cannot mount its mqueue filesystem. The queues still work (mq_open needs no
		// mount); only listing them under /dev/mqueue does not.
		// Nor sysfs or cgroupfs, for the same reason with the network namespace: stage1 mounts
		// the pod's sysfs from the host side (PodPlan.Sysfs), and the cgroup tree is left out.
		ms = slices.DeleteFunc(ms, func(m specs.Mount) bool {
			return m.Type == "mqueue" || m.Type == "sysfs" || m.Type == "cgroup"
		})
		if pod.Sysfs != "" {
			ms = append(ms, specs.Mount{Destination: "/sys", Type: "bind", Source: pod.Sysfs, Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"}})
		}
	}
	if pod.EtcHosts != "" {
		ms = append(ms, specs.Mount{Destination: "/etc/hosts", Type: "bind", Source: pod.EtcHosts, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	if pod.ResolvConf != "" {
		ms = append(ms, specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: pod.ResolvConf, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	vols := map[types.ACName]types.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	type want struct {
		vol    types.ACName
		target string
		ro     bool
	}
	var wants []want
	done := map[string]bool{}
	for _, m := range app.App.Mounts {
		ro := false // a mount of a mount point's volume is read-only if the mount point is
		if app.App.App != nil {
			for _, mp := range app.App.App.MountPoints {
				if mp.Name == m.Volume {
					ro = mp.ReadOnly
					break
				}
			}
		}
		wants = append(wants, want{m.Volume, m.Path, ro})
		done[path.Clean(m.Path)] = true
	}
	if app.App.App != nil {
		for _, mp := range app.App.App.MountPoints {
			if done[path.Clean(mp.Path)] {
				continue
			}
			if _, ok := vols[mp.Name]; !ok {
				continue // rkt leaves an unfilled mount point as the image has it
			}
			wants = append(wants, want{mp.Name, mp.Path, mp.ReadOnly})
		}
	}
	for _, w := range wants {
		v, ok := vols[w.vol]
		if !ok {
			return nil, fmt.Errorf("app %s: mount of volume %q: %w", app.App.Name, w.vol, ErrNoVolume)
		}
		if !path.IsAbs(w.target) || strings.Contains(w.target, "..") && filepath.Clean(w.target) != w.target {
			return nil, fmt.Errorf("app %s: mount target %q: must be a clean absolute path", app.App.Name, w.target)
		}
		if v.Source == "" || !filepath.IsAbs(v.Source) {
			return nil, fmt.Errorf("volume %s: no host source", v.Name)
		}
		opts := []string{"rbind"}
		if w.ro || (v.ReadOnly != nil && *v.ReadOnly) {
			opts = append(opts, "ro")
		}
		if v.Recursive != nil && !*v.Recursive {
			opts[0] = "bind"
		}
		ms = append(ms, specs.Mount{Destination: filepath.Clean(w.target), Type: "bind", Source: v.Source, Options: opts})
	}
	return ms, nil
}
