package podapi

import (
	"encoding/json"
	"path"
	"regexp"
	"strings"
)

// Linux is what an app's container gets beyond its appc app: the settings a CRI container
// has and appc has no field for (its security context, devices, mount propagation, exact
// cgroup resources). Nil fields leave stage1's defaults: runc's capabilities, masked and
// read-only paths, no-new-privileges, the default seccomp filter, the app's isolators.
type Linux struct {
	// Privileged gives the app every capability and host device, no seccomp filter, no
	// masked or read-only paths, and writable /sys and cgroup mounts.
	Privileged bool `json:"privileged,omitempty"`
	// Capabilities, when set, is the app's whole capability set (CAP_NAME), replacing what
	// its isolators say; empty is none.
	Capabilities *[]string `json:"capabilities,omitempty"`
	// AmbientCapabilities are kept across the exec of a non-root user's command.
	AmbientCapabilities []string `json:"ambientCapabilities,omitempty"`
	NoNewPrivileges     *bool    `json:"noNewPrivileges,omitempty"`
	// Seccomp is SeccompDefault (the isolators' filter, else stage1's), SeccompUnconfined,
	// or SeccompProfile with SeccompProfile holding an OCI runtime-spec LinuxSeccomp.
	Seccomp        string          `json:"seccomp,omitempty"`
	SeccompProfile json.RawMessage `json:"seccompProfile,omitempty"`
	MaskedPaths    *[]string       `json:"maskedPaths,omitempty"`
	ReadonlyPaths  *[]string       `json:"readonlyPaths,omitempty"`
	Devices        []Device        `json:"devices,omitempty"`
	// Propagation of the app's mounts, by their path in the app: rprivate (the default),
	// rslave or rshared.
	Propagation map[string]string `json:"propagation,omitempty"`
	// HostPID runs the app in the host's PID namespace instead of one of its own.
	HostPID     bool       `json:"hostPID,omitempty"`
	OOMScoreAdj *int       `json:"oomScoreAdj,omitempty"`
	Resources   *Resources `json:"resources,omitempty"`
	// Env are NAME=VALUE pairs set over the app's environment whose names appc's app cannot
	// hold: Kubernetes allows any printable character but '=' in a name (since v1.34), appc
	// only [A-Za-z_][A-Za-z0-9_.-]*.
	Env []string `json:"env,omitempty"`
}

// Seccomp modes of Linux.Seccomp.
const (
	SeccompDefault    = ""
	SeccompUnconfined = "unconfined"
	SeccompProfile    = "profile"
)

// Mount propagation modes.
const (
	PropagationPrivate = "rprivate"
	PropagationSlave   = "rslave"
	PropagationShared  = "rshared"
)

// Device is a host device node made available in the app at Path.
type Device struct {
	HostPath string `json:"hostPath"`
	Path     string `json:"path"`
	// Permissions are the device cgroup's: some of r, w, m.
	Permissions string `json:"permissions,omitempty"`
}

// Resources are an app's cgroup limits, exactly as a CRI server gives them; zero values
// are no limit (or the kernel's default). They replace what the app's isolators say.
type Resources struct {
	CPUShares   uint64 `json:"cpuShares,omitempty"`
	CPUQuota    int64  `json:"cpuQuota,omitempty"`
	CPUPeriod   uint64 `json:"cpuPeriod,omitempty"`
	MemoryLimit int64  `json:"memoryLimit,omitempty"`
	// MemorySwap is memory plus swap; -1 is unlimited swap.
	MemorySwap int64  `json:"memorySwap,omitempty"`
	CPUSetCPUs string `json:"cpusetCPUs,omitempty"`
	CPUSetMems string `json:"cpusetMems,omitempty"`
	PidsLimit  int64  `json:"pidsLimit,omitempty"`
	// Unified are cgroup v2 files and their values, written as given.
	Unified map[string]string `json:"unified,omitempty"`
}

var (
	capName = regexp.MustCompile(`^CAP_[A-Z_]+$`)
	cpuset  = regexp.MustCompile(`^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$`)
	permRE  = regexp.MustCompile(`^[rwm]{0,3}$`)
	// A unified key is a file of the app's own cgroup (cpu.max, memory.high), nothing below.
	unifiedKey = regexp.MustCompile(`^[a-z][a-z0-9_]*\.[a-z0-9_.]+$`)
)

// Validate checks the settings of app's container, as an add request carries them.
func (l *Linux) Validate(app string) error {
	checkCaps := func(what string, cs []string) error {
		for _, c := range cs {
			if !capName.MatchString(c) {
				return invalid("app %s: %s %q: want CAP_NAME", app, what, c)
			}
		}
		return nil
	}
	if l.Capabilities != nil {
		if err := checkCaps("capability", *l.Capabilities); err != nil {
			return err
		}
	}
	if err := checkCaps("ambient capability", l.AmbientCapabilities); err != nil {
		return err
	}
	switch l.Seccomp {
	case SeccompDefault, SeccompUnconfined:
		if len(l.SeccompProfile) > 0 {
			return invalid("app %s: a seccomp profile without seccomp %q", app, SeccompProfile)
		}
	case SeccompProfile:
		var p struct {
			DefaultAction string `json:"defaultAction"`
		}
		if err := json.Unmarshal(l.SeccompProfile, &p); err != nil || p.DefaultAction == "" {
			return invalid("app %s: seccomp profile: want a JSON object with a defaultAction", app)
		}
	default:
		return invalid("app %s: seccomp %q (want %q, %q or %q)", app, l.Seccomp, SeccompDefault, SeccompUnconfined, SeccompProfile)
	}
	for _, ps := range []*[]string{l.MaskedPaths, l.ReadonlyPaths} {
		if ps == nil {
			continue
		}
		for _, p := range *ps {
			if err := checkAppPath(app, "masked or read-only path", p); err != nil {
				return err
			}
		}
	}
	for _, d := range l.Devices {
		if err := checkPath("device", d.HostPath); err != nil {
			return err
		}
		if err := checkAppPath(app, "device", d.Path); err != nil {
			return err
		}
		if !permRE.MatchString(d.Permissions) {
			return invalid("app %s: device %s: permissions %q (want some of r, w, m)", app, d.Path, d.Permissions)
		}
	}
	for p, m := range l.Propagation {
		if err := checkAppPath(app, "mount", p); err != nil {
			return err
		}
		switch m {
		case PropagationPrivate, PropagationSlave, PropagationShared:
		default:
			return invalid("app %s: mount %s: propagation %q (want rprivate, rslave or rshared)", app, p, m)
		}
	}
	if l.OOMScoreAdj != nil && (*l.OOMScoreAdj < -1000 || *l.OOMScoreAdj > 1000) {
		return invalid("app %s: OOM score adjustment %d is not in -1000..1000", app, *l.OOMScoreAdj)
	}
	if l.Resources != nil {
		if err := l.Resources.Validate(app); err != nil {
			return err
		}
	}
	for _, kv := range l.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
			return invalid("app %s: environment variable %q: want NAME=VALUE, without NUL", app, kv)
		}
	}
	return nil
}

// checkAppPath accepts an absolute clean path inside the app.
func checkAppPath(app, what, p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsAny(p, "\n\x00") {
		return invalid("app %s: %s %q: want an absolute clean path", app, what, p)
	}
	return nil
}

// Validate checks the limits of app's container.
func (r *Resources) Validate(app string) error {
	switch {
	case r.CPUQuota < 0 && r.CPUQuota != -1:
		return invalid("app %s: CPU quota %d", app, r.CPUQuota)
	case r.CPUPeriod > 0 && (r.CPUPeriod < 1000 || r.CPUPeriod > 1000000):
		return invalid("app %s: CPU period %d µs is not in 1000..1000000", app, r.CPUPeriod)
	case r.MemoryLimit < 0:
		return invalid("app %s: memory limit %d", app, r.MemoryLimit)
	case r.MemorySwap < -1:
		return invalid("app %s: memory+swap limit %d", app, r.MemorySwap)
	case r.PidsLimit < -1:
		return invalid("app %s: pids limit %d", app, r.PidsLimit)
	case r.CPUSetCPUs != "" && !cpuset.MatchString(r.CPUSetCPUs):
		return invalid("app %s: cpuset CPUs %q", app, r.CPUSetCPUs)
	case r.CPUSetMems != "" && !cpuset.MatchString(r.CPUSetMems):
		return invalid("app %s: cpuset memory nodes %q", app, r.CPUSetMems)
	}
	for k, v := range r.Unified {
		if !unifiedKey.MatchString(k) || strings.ContainsAny(v, "\x00") {
			return invalid("app %s: cgroup file %q", app, k)
		}
	}
	return nil
}
