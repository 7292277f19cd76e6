package cri

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/podapi"
	"github.com/cairn-os/cairn/runtime/stage0"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// DefaultCapabilities are a CRI container's capabilities unless its security context
// says otherwise: containerd's (and Docker's) default set, which Kubernetes workloads
// expect (chown, setuid, raw sockets...), wider than a rkt app's.
var DefaultCapabilities = []string{
	"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_MKNOD",
	"CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT",
}

// maxProfile bounds a seccomp profile file.
const maxProfile = 1 << 20

// hostEnv is what mapping a container's config needs from the host, injected so that the
// mapping runs (and is fuzzed) anywhere.
type hostEnv struct {
	// readFile reads a Localhost seccomp profile.
	readFile func(path string) ([]byte, error)
	// oomFloor is the lowest OOM score adjustment rktlet may give.
	oomFloor int
	// cgroup2 says the host's cgroups are v2 (the CRI's unified resources apply); swap,
	// that memory+swap limits can be set.
	cgroup2, swap bool
}

// containerConfig maps a CRI container config onto an app of the sandbox's pod, as
// containerd maps it onto an OCI spec: the image's entrypoint and cmd replaced by the
// CRI's command and args, its environment, working directory and user, mounts (each a
// host volume of the app's own) with their propagation, devices, security context
// (capabilities, privileged, seccomp, masked and read-only paths, no-new-privileges,
// read-only root), resources, stdio and log path. id and app are the container's ID and
// its app's name in the pod. Errors are InvalidArgument statuses.
func containerConfig(cfg *runtimeapi.ContainerConfig, sb *sandbox, img *image.Image, id, app string, env hostEnv) (*stage0.AppConfig, *container, error) {
	md := cfg.GetMetadata()
	if md.GetName() == "" {
		return nil, nil, invalidf("container metadata needs a name")
	}
	exec, err := commandLine(cfg, img)
	if err != nil {
		return nil, nil, err
	}
	a := stage0.App{
		Image: img.ID, Name: app, Exec: exec[0], Args: exec[1:],
		WorkingDir: cfg.GetWorkingDir(),
	}
	if a.WorkingDir != "" {
		if !path.IsAbs(a.WorkingDir) {
			return nil, nil, invalidf("working directory %q is not absolute", a.WorkingDir)
		}
		a.WorkingDir = path.Clean(a.WorkingDir)
	}
	var relaxedEnv []string
	for _, kv := range cfg.GetEnvs() {
		if kv.GetKey() == "" || strings.ContainsAny(kv.GetKey(), "=\x00") || bytes.ContainsRune(kv.GetValue(), 0) {
			return nil, nil, invalidf("environment variable %q: want a name without '='", kv.GetKey())
		}
		// A name appc's app cannot hold ("1-data", "$_-data", which Kubernetes allows) is
		// set by stage1 from podapi.Linux.
		if !appcEnvName.MatchString(kv.GetKey()) {
			relaxedEnv = append(relaxedEnv, kv.GetKey()+"="+string(kv.GetValue()))
			continue
		}
		a.Env = append(a.Env, kv.GetKey()+"="+string(kv.GetValue()))
	}
	c := &container{
		id: id, sandboxID: sb.id, app: app,
		meta:   &runtimeapi.ContainerMetadata{Name: md.GetName(), Attempt: md.GetAttempt()},
		image:  cfg.GetImage().GetImage(),
		labels: maps.Clone(cfg.GetLabels()), annotations: maps.Clone(cfg.GetAnnotations()),
		logPath: cfg.GetLogPath(),
		stdin:   cfg.GetStdin(), stdinOnce: cfg.GetStdinOnce(), tty: cfg.GetTty(),
		imageRef: img.ID,
		env:      relaxedEnv,
	}
	out := &stage0.AppConfig{Stdin: podapi.StdinNull}
	switch {
	case cfg.GetTty():
		out.Stdin = podapi.StdinTTY
	case cfg.GetStdin():
		out.Stdin = podapi.StdinStream
	}
	if sb.logDir != "" && cfg.GetLogPath() != "" {
		lp := filepath.Join(sb.logDir, cfg.GetLogPath())
		if !strings.HasPrefix(lp, sb.logDir+"/") || strings.ContainsAny(lp, ":,\n\x00") {
			return nil, nil, invalidf("log path %q: want a path below the sandbox's log directory, without ':' or ','", cfg.GetLogPath())
		}
		out.LogPath = lp
	}
	l := &podapi.Linux{Propagation: map[string]string{}, Env: relaxedEnv}
	if err := mounts(cfg.GetMounts(), app, &a, out, l, c); err != nil {
		return nil, nil, err
	}
	for _, d := range cfg.GetDevices() {
		if !path.IsAbs(d.GetHostPath()) || !path.IsAbs(d.GetContainerPath()) {
			return nil, nil, invalidf("device %q -> %q: want absolute paths", d.GetHostPath(), d.GetContainerPath())
		}
		l.Devices = append(l.Devices, podapi.Device{HostPath: path.Clean(d.GetHostPath()), Path: path.Clean(d.GetContainerPath()), Permissions: d.GetPermissions()})
	}
	if err := security(cfg.GetLinux().GetSecurityContext(), sb, img, &a, l, env); err != nil {
		return nil, nil, err
	}
	if err := resources(cfg.GetLinux().GetResources(), l, env); err != nil {
		return nil, nil, err
	}
	if len(l.Propagation) == 0 {
		l.Propagation = nil
	}
	out.Linux = l
	a.UserLabels = maps.Clone(cfg.GetLabels())
	a.UserAnnotations = maps.Clone(cfg.GetAnnotations())
	if a.UserLabels == nil {
		a.UserLabels = map[string]string{}
	}
	if a.UserAnnotations == nil {
		a.UserAnnotations = map[string]string{}
	}
	if a.Annotations, err = containerAnnotations(c); err != nil {
		return nil, nil, err
	}
	out.App = a
	if err := out.Validate(); err != nil {
		return nil, nil, invalidf("container %s: %v", md.GetName(), err)
	}
	if err := l.Validate(app); err != nil {
		return nil, nil, invalidf("container %s: %v", md.GetName(), err)
	}
	return out, c, nil
}

// commandLine is what the container runs, as containerd decides it: the CRI's command
// replaces the image's entrypoint, its args the image's cmd (and, with a command given,
// the image's cmd goes). An ACI's exec is its entrypoint: args are appended to it.
func commandLine(cfg *runtimeapi.ContainerConfig, img *image.Image) ([]string, error) {
	command, args := cfg.GetCommand(), cfg.GetArgs()
	if len(command) == 0 {
		var entrypoint, cmd []string
		switch {
		case img.OCIConfig != nil:
			entrypoint, cmd = img.OCIConfig.Config.Entrypoint, img.OCIConfig.Config.Cmd
			if len(entrypoint) == 1 && entrypoint[0] == "" {
				entrypoint = nil
			}
		case img.ACIManifest != nil && img.ACIManifest.App != nil:
			entrypoint = img.ACIManifest.App.Exec
		}
		if len(args) == 0 {
			args = cmd
		}
		command = entrypoint
	}
	argv := append(slices.Clone(command), args...)
	if len(argv) == 0 || argv[0] == "" {
		return nil, invalidf("no command: neither the container config nor the image says what to run")
	}
	for _, s := range argv {
		if strings.ContainsRune(s, 0) {
			return nil, invalidf("command %q: a NUL byte", argv)
		}
	}
	return argv, nil
}

// mounts makes each CRI mount a host volume of the app's own, mounted where the CRI says,
// read-only if it says, with its propagation.
func mounts(ms []*runtimeapi.Mount, app string, a *stage0.App, out *stage0.AppConfig, l *podapi.Linux, c *container) error {
	seen := map[string]bool{}
	for i, m := range ms {
		host, dest := m.GetHostPath(), m.GetContainerPath()
		switch {
		case m.GetImage().GetImage() != "":
			// CreateContainer makes an image volume a host path first (imageVolumes).
			return invalidf("mount %s: an image volume that was not rendered", dest)
		case len(m.GetUidMappings()) > 0 || len(m.GetGidMappings()) > 0:
			return invalidf("mount %s: ID-mapped mounts are not supported by rktlet", dest)
		case m.GetRecursiveReadOnly():
			return invalidf("mount %s: recursive read-only mounts are not supported by rktlet", dest)
		case !path.IsAbs(host) || !path.IsAbs(dest):
			return invalidf("mount %q -> %q: want absolute paths", host, dest)
		case strings.ContainsAny(host, ":,\n\x00") || strings.ContainsAny(dest, "\n\x00"):
			return invalidf("mount %q -> %q: the host path may not hold ':', ',' or newlines", host, dest)
		}
		host, dest = path.Clean(host), path.Clean(dest)
		if seen[dest] {
			return invalidf("two mounts at %s", dest)
		}
		seen[dest] = true
		ro := m.GetReadonly()
		vol := types.ACName(fmt.Sprintf("%s-mount-%d", app, i))
		out.Volumes = append(out.Volumes, types.Volume{Name: vol, Kind: "host", Source: host, ReadOnly: &ro})
		a.Mounts = append(a.Mounts, schema.Mount{Volume: vol, Path: dest})
		switch m.GetPropagation() {
		case runtimeapi.MountPropagation_PROPAGATION_PRIVATE:
		case runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
			l.Propagation[dest] = podapi.PropagationSlave
		case runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL:
			l.Propagation[dest] = podapi.PropagationShared
		default:
			return invalidf("mount %s: unknown propagation %s", dest, m.GetPropagation())
		}
		c.mounts = append(c.mounts, &runtimeapi.Mount{ContainerPath: dest, HostPath: host, Readonly: ro, Propagation: m.GetPropagation()})
	}
	return nil
}

// security maps a container's security context.
func security(sc *runtimeapi.LinuxContainerSecurityContext, sb *sandbox, img *image.Image, a *stage0.App, l *podapi.Linux, env hostEnv) error {
	if sc.GetPrivileged() && !sb.privileged {
		return invalidf("a privileged container needs a privileged sandbox")
	}
	l.Privileged = sc.GetPrivileged()
	caps, err := capabilities(sc.GetCapabilities())
	if err != nil {
		return err
	}
	l.Capabilities = &caps
	for _, c := range sc.GetCapabilities().GetAddAmbientCapabilities() {
		name := capName(c)
		if !slices.Contains(caps, name) && !l.Privileged {
			return invalidf("ambient capability %s is not among the container's capabilities", name)
		}
		l.AmbientCapabilities = append(l.AmbientCapabilities, name)
	}
	nnp := sc.GetNoNewPrivs()
	l.NoNewPrivileges = &nnp
	if ps := sc.GetMaskedPaths(); len(ps) > 0 {
		if err := absPaths("masked path", ps); err != nil {
			return err
		}
		l.MaskedPaths = &ps
	}
	if ps := sc.GetReadonlyPaths(); len(ps) > 0 {
		if err := absPaths("read-only path", ps); err != nil {
			return err
		}
		l.ReadonlyPaths = &ps
	}
	if err := seccomp(sc, l, env); err != nil {
		return err
	}
	switch sc.GetNamespaceOptions().GetPid() {
	case runtimeapi.NamespaceMode_NODE:
		l.HostPID = true
	case runtimeapi.NamespaceMode_CONTAINER, runtimeapi.NamespaceMode_POD, runtimeapi.NamespaceMode_TARGET:
		// POD: the sandbox's shared one when it has one (its supervisor's pause holds it),
		// else the container's own; a targeted one is not supported, and is the container's own.
	default:
		return invalidf("PID namespace mode %s", sc.GetNamespaceOptions().GetPid())
	}
	if sc.GetReadonlyRootfs() {
		yes := true
		a.ReadOnlyRootFS = &yes
	}
	for _, g := range sc.GetSupplementalGroups() {
		if g < 0 || g > 1<<32-2 {
			return invalidf("supplemental group %d", g)
		}
		a.SupplementaryGIDs = append(a.SupplementaryGIDs, int(g))
	}
	return user(sc, img, a)
}

// user is who the container runs as: the CRI's user (a number or a name) and group, the
// user's primary group from the image's /etc/passwd when no group is given (root's
// otherwise), or the image's own user.
func user(sc *runtimeapi.LinuxContainerSecurityContext, img *image.Image, a *stage0.App) error {
	group := ""
	if g := sc.GetRunAsGroup(); g != nil {
		if g.GetValue() < 0 || g.GetValue() > 1<<32-2 {
			return invalidf("run as group %d", g.GetValue())
		}
		group = strconv.FormatInt(g.GetValue(), 10)
	}
	switch {
	case sc.GetRunAsUser() != nil:
		uid := sc.GetRunAsUser().GetValue()
		if uid < 0 || uid > 1<<32-2 {
			return invalidf("run as user %d", uid)
		}
		a.User = strconv.FormatInt(uid, 10)
	case sc.GetRunAsUsername() != "":
		name := sc.GetRunAsUsername()
		if strings.ContainsAny(name, ":\n\x00") {
			return invalidf("run as user name %q", name)
		}
		a.User = name
	default:
		if group != "" {
			return invalidf("run as group needs run as user or a user name")
		}
		return nil
	}
	if group == "" {
		group = "0"
		if _, gid, ok := passwdEntry(img, a.User); ok {
			group = strconv.Itoa(gid)
		}
	}
	a.Group = group
	return nil
}

// passwdEntry finds user (a name or a number) in the image's /etc/passwd, read from its
// topmost tree that has one.
func passwdEntry(img *image.Image, user string) (uid, gid int, ok bool) {
	for _, l := range slices.Backward(img.Layers) {
		f, err := os.Open(filepath.Join(l, "etc", "passwd"))
		if err != nil {
			continue
		}
		defer f.Close()
		sc := bufio.NewScanner(io.LimitReader(f, 4<<20))
		for sc.Scan() {
			fs := strings.Split(sc.Text(), ":")
			if len(fs) < 4 || (fs[0] != user && fs[2] != user) {
				continue
			}
			u, err1 := strconv.Atoi(fs[2])
			g, err2 := strconv.Atoi(fs[3])
			if err1 == nil && err2 == nil {
				return u, g, true
			}
		}
		return 0, 0, false
	}
	return 0, 0, false
}

func absPaths(what string, ps []string) error {
	for _, p := range ps {
		if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsAny(p, "\n\x00") {
			return invalidf("%s %q: want an absolute clean path", what, p)
		}
	}
	return nil
}

// capName is a CRI capability name as libcontainer takes it: CAP_NAME.
func capName(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// capabilities applies the CRI's adds and drops to the default set, as containerd does:
// ALL first (add ALL: every capability; drop ALL: none), then each named one.
func capabilities(cc *runtimeapi.Capability) ([]string, error) {
	caps := slices.Clone(DefaultCapabilities)
	if slices.ContainsFunc(cc.GetAddCapabilities(), isAll) {
		caps = stage1.AllCapabilities()
	}
	if slices.ContainsFunc(cc.GetDropCapabilities(), isAll) {
		caps = nil
	}
	check := func(c string) (string, error) {
		n := capName(c)
		if !knownCapability(n) {
			return "", invalidf("capability %q is not one Linux has", c)
		}
		return n, nil
	}
	for _, c := range cc.GetAddCapabilities() {
		if isAll(c) {
			continue
		}
		n, err := check(c)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(caps, n) {
			caps = append(caps, n)
		}
	}
	for _, c := range cc.GetDropCapabilities() {
		if isAll(c) {
			continue
		}
		n, err := check(c)
		if err != nil {
			return nil, err
		}
		caps = slices.DeleteFunc(caps, func(x string) bool { return x == n })
	}
	slices.Sort(caps)
	if caps == nil {
		caps = []string{}
	}
	return caps, nil
}

// knownCapability says whether Linux defines the capability named CAP_NAME.
func knownCapability(name string) bool {
	for _, c := range capability.ListKnown() {
		if "CAP_"+strings.ToUpper(c.String()) == name {
			return true
		}
	}
	return false
}

func isAll(c string) bool { return strings.EqualFold(strings.TrimSpace(c), "ALL") }

// seccomp maps the CRI's seccomp profile: RuntimeDefault is stage1's default filter,
// Unconfined or none given no filter (containerd's default), Localhost an OCI or Docker
// profile from a file. (The deprecated profile path, which kubelet no longer sends, is
// not read.)
func seccomp(sc *runtimeapi.LinuxContainerSecurityContext, l *podapi.Linux, env hostEnv) error {
	typ, ref := runtimeapi.SecurityProfile_Unconfined, ""
	if p := sc.GetSeccomp(); p != nil {
		typ, ref = p.GetProfileType(), p.GetLocalhostRef()
	}
	switch typ {
	case runtimeapi.SecurityProfile_Unconfined:
		l.Seccomp = podapi.SeccompUnconfined
	case runtimeapi.SecurityProfile_RuntimeDefault:
		l.Seccomp = podapi.SeccompDefault
	case runtimeapi.SecurityProfile_Localhost:
		if !path.IsAbs(ref) {
			return invalidf("seccomp profile %q: want an absolute path", ref)
		}
		b, err := env.readFile(ref)
		if err != nil {
			return invalidf("seccomp profile: %v", err)
		}
		prof, err := SeccompProfile(b)
		if err != nil {
			return invalidf("seccomp profile %s: %v", ref, err)
		}
		l.Seccomp, l.SeccompProfile = podapi.SeccompProfile, prof
	default:
		return invalidf("seccomp profile type %s", typ)
	}
	if l.Privileged {
		l.Seccomp, l.SeccompProfile = podapi.SeccompUnconfined, nil
	}
	return nil
}

// SeccompProfile reads a seccomp profile as Kubernetes' Localhost profiles are written
// (Docker's format, which the OCI runtime spec's LinuxSeccomp grew from: "names" or
// Docker's older "name", "archMap"), checks its actions and syscalls, and returns it as an
// OCI LinuxSeccomp in JSON.
func SeccompProfile(b []byte) (json.RawMessage, error) {
	if len(b) > maxProfile {
		return nil, fmt.Errorf("%d bytes, more than %d", len(b), maxProfile)
	}
	var p struct {
		DefaultAction   specs.LinuxSeccompAction `json:"defaultAction"`
		DefaultErrnoRet *uint                    `json:"defaultErrnoRet"`
		Architectures   []specs.Arch             `json:"architectures"`
		ArchMap         []struct {
			Arch      specs.Arch   `json:"architecture"`
			SubArches []specs.Arch `json:"subArchitectures"`
		} `json:"archMap"`
		Flags    []specs.LinuxSeccompFlag `json:"flags"`
		Syscalls []struct {
			Name     string                   `json:"name"`
			Names    []string                 `json:"names"`
			Action   specs.LinuxSeccompAction `json:"action"`
			ErrnoRet *uint                    `json:"errnoRet"`
			Args     []specs.LinuxSeccompArg  `json:"args"`
		} `json:"syscalls"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if !knownAction(p.DefaultAction) {
		return nil, fmt.Errorf("default action %q", p.DefaultAction)
	}
	out := specs.LinuxSeccomp{DefaultAction: p.DefaultAction, DefaultErrnoRet: p.DefaultErrnoRet, Flags: p.Flags,
		Architectures: slices.Clone(p.Architectures)}
	for _, am := range p.ArchMap {
		out.Architectures = append(out.Architectures, am.Arch)
		out.Architectures = append(out.Architectures, am.SubArches...)
	}
	for i, sc := range p.Syscalls {
		names := slices.Clone(sc.Names)
		if sc.Name != "" {
			names = append(names, sc.Name)
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("syscall rule %d names no syscall", i)
		}
		if !knownAction(sc.Action) {
			return nil, fmt.Errorf("syscall rule %d: action %q", i, sc.Action)
		}
		for _, n := range names {
			if n == "" || strings.ContainsAny(n, " \n\x00") {
				return nil, fmt.Errorf("syscall rule %d: name %q", i, n)
			}
		}
		out.Syscalls = append(out.Syscalls, specs.LinuxSyscall{Names: names, Action: sc.Action, ErrnoRet: sc.ErrnoRet, Args: sc.Args})
	}
	return json.Marshal(out)
}

func knownAction(a specs.LinuxSeccompAction) bool {
	switch a {
	case specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap, specs.ActErrno,
		specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify:
		return true
	}
	return false
}

// resources maps the CRI's cgroup limits; hugepage limits are ignored (this runtime does
// not set hugetlb limits), and v2's unified files apply on a v2 host only.
func resources(r *runtimeapi.LinuxContainerResources, l *podapi.Linux, env hostEnv) error {
	if r == nil {
		return nil
	}
	res, err := podResources(r, env)
	if err != nil {
		return err
	}
	l.Resources = res
	if adj := r.GetOomScoreAdj(); adj != 0 {
		v := clampOOM(adj, env.oomFloor)
		l.OOMScoreAdj = &v
	}
	return nil
}

// podResources is the CRI's limits in podapi's terms.
func podResources(r *runtimeapi.LinuxContainerResources, env hostEnv) (*podapi.Resources, error) {
	switch {
	case r.GetCpuShares() < 0, r.GetCpuPeriod() < 0, r.GetMemoryLimitInBytes() < 0, r.GetCpuQuota() < -1:
		return nil, invalidf("negative CPU or memory limits: %v", r)
	case r.GetCpuPeriod() > 0 && (r.GetCpuPeriod() < 1000 || r.GetCpuPeriod() > 1000000):
		return nil, invalidf("CPU period %d µs is not in 1000..1000000", r.GetCpuPeriod())
	}
	res := &podapi.Resources{
		CPUShares: uint64(r.GetCpuShares()), CPUQuota: r.GetCpuQuota(), CPUPeriod: uint64(r.GetCpuPeriod()),
		MemoryLimit: r.GetMemoryLimitInBytes(),
		CPUSetCPUs:  r.GetCpusetCpus(), CPUSetMems: r.GetCpusetMems(),
	}
	if env.swap && res.MemoryLimit > 0 && r.GetMemorySwapLimitInBytes() != 0 {
		if v := r.GetMemorySwapLimitInBytes(); v < -1 || (v > 0 && v < res.MemoryLimit) {
			return nil, invalidf("memory+swap limit %d below the memory limit %d", v, res.MemoryLimit)
		}
		res.MemorySwap = r.GetMemorySwapLimitInBytes()
	}
	if env.cgroup2 && len(r.GetUnified()) > 0 {
		res.Unified = maps.Clone(r.GetUnified())
	}
	return res, nil
}

// clampOOM keeps an OOM score adjustment within the kernel's range and above what this
// process may set (without CAP_SYS_RESOURCE, no lower than its own): a CRI server clamps
// rather than fail, as containerd's restrict_oom_score_adj does.
func clampOOM(v int64, floor int) int {
	return int(max(min(v, 1000), int64(floor), -1000))
}

// appcEnvName is what appc's app takes as an environment variable's name
// (types.EnvironmentVariable).
var appcEnvName = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9.-]*$`)

// errNoImage is what CreateContainer says of an image that is not in the store.
var errNoImage = errors.New("image not in the store; pull it first")
