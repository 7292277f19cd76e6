package stage0

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/podapi"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// SandboxConfig is a pod with no apps, whose apps are added and removed while it runs (rkt
// app sandbox): its namespaces, networks and cgroup, and rkt's pod-level settings.
type SandboxConfig struct {
	Network
	// Ports forward host ports to pod ports, in rkt's sandbox syntax
	// NAME:PROTO:PODPORT:HOSTIP:HOSTPORT (there is no image to declare them).
	Ports []string
	// Annotations are the pod manifest's (NAME=VALUE, NAME an appc identifier).
	Annotations     map[string]string
	UserAnnotations map[string]string
	UserLabels      map[string]string

	NoOverlay       bool
	PrivateUsers    bool
	InsecureSeccomp bool
	// CgroupParent is where the pod's cgroup goes (a CRI server's CgroupParent): absolute
	// from each hierarchy's root, or relative to the supervisor's cgroup; "" is beside the
	// supervisor, as for rkt run.
	CgroupParent string
	// HostIPC shares the host's IPC namespace with the pod (a CRI pod's ipc NODE).
	HostIPC bool
	// SharedPID puts the pod's apps in one PID namespace (a CRI pod's pid POD), held by
	// the supervisor's pause process.
	SharedPID bool
	// Sysctls are set in the pod's own namespaces: namespaced ones only.
	Sysctls      map[string]string
	UUIDFileSave string
}

// ErrNotSandbox says an app-level command was given a pod that rkt run runs.
var ErrNotSandbox = errors.New("not a sandbox (rkt app sandbox makes one)")

// ParseSandboxPort reads a sandbox's --port, rkt's NAME:PROTO:PODPORT:HOSTIP:HOSTPORT (e.g.
// http:tcp:8080:0.0.0.0:80; an IPv6 host address in brackets). A host IP of 0.0.0.0 or ::
// is every address.
func ParseSandboxPort(s string) (network.PortMapping, error) {
	parts := strings.SplitN(s, ":", 4)
	i := -1
	if len(parts) == 4 {
		i = strings.LastIndex(parts[3], ":")
	}
	if i < 0 {
		return network.PortMapping{}, fmt.Errorf("--port=%s: want NAME:PROTO:PODPORT:HOSTIP:HOSTPORT", s)
	}
	name, proto, podPort := parts[0], parts[1], parts[2]
	hostIP, hostPort := strings.TrimSuffix(strings.TrimPrefix(parts[3][:i], "["), "]"), parts[3][i+1:]
	if _, err := types.NewACName(name); err != nil {
		return network.PortMapping{}, fmt.Errorf("--port=%s: name %q: %w", s, name, err)
	}
	if proto != "tcp" && proto != "udp" {
		return network.PortMapping{}, fmt.Errorf("--port=%s: protocol %q (want tcp or udp)", s, proto)
	}
	pp, err := strconv.Atoi(podPort)
	if err != nil || pp < 1 || pp > 65535 {
		return network.PortMapping{}, fmt.Errorf("--port=%s: pod port %q is not 1-65535", s, podPort)
	}
	hp, err := strconv.Atoi(hostPort)
	if err != nil || hp < 1 || hp > 65535 {
		return network.PortMapping{}, fmt.Errorf("--port=%s: host port %q is not 1-65535", s, hostPort)
	}
	ip := net.ParseIP(hostIP)
	if ip == nil {
		return network.PortMapping{}, fmt.Errorf("--port=%s: host IP %q is not an address", s, hostIP)
	}
	pm := network.PortMapping{Name: name, HostPort: hp, ContainerPort: pp, Protocol: proto}
	if !ip.IsUnspecified() {
		pm.HostIP = ip.String()
	}
	return pm, nil
}

// sandboxPorts reads every --port, refusing two forwards of one host port or one name.
func sandboxPorts(flags []string) ([]network.PortMapping, error) {
	var out []network.PortMapping
	for _, f := range flags {
		pm, err := ParseSandboxPort(f)
		if err != nil {
			return nil, err
		}
		for _, o := range out {
			if o.Name == pm.Name {
				return nil, fmt.Errorf("--port=%s: a second port named %s", f, pm.Name)
			}
			if o.Protocol == pm.Protocol && o.HostPort == pm.HostPort && (o.HostIP == "" || pm.HostIP == "" || o.HostIP == pm.HostIP) {
				return nil, fmt.Errorf("--port=%s: host port %s/%d is already forwarded to %s", f, pm.Protocol, pm.HostPort, o.Name)
			}
		}
		out = append(out, pm)
	}
	return out, nil
}

// Validate checks what can be checked without the host.
func (c *SandboxConfig) Validate() error {
	if err := c.Network.Validate(); err != nil {
		return err
	}
	if _, err := sandboxPorts(c.Ports); err != nil {
		return err
	}
	for k := range c.Annotations {
		if _, err := types.NewACIdentifier(k); err != nil {
			return fmt.Errorf("--annotation %s: %w", k, err)
		}
	}
	if err := checkKeys("--user-annotation", c.UserAnnotations); err != nil {
		return err
	}
	if err := checkKeys("--user-label", c.UserLabels); err != nil {
		return err
	}
	if err := stage1.CheckCgroupParent(c.CgroupParent); err != nil {
		return fmt.Errorf("--cgroup-parent: %w", err)
	}
	return nil
}

// PrepareSandbox makes a sandbox pod (phase prepare, locked), checked as Prepare checks a
// pod before it exists: the values, the host's cgroups, the networks, where the UUID goes.
// The caller runs it with RunSandbox.
func (h *Host) PrepareSandbox(ctx context.Context, cfg *SandboxConfig) (*pod.Pod, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ports, err := sandboxPorts(cfg.Ports)
	if err != nil {
		return nil, err
	}
	opts := &stage1.Options{
		Net: cfg.netOption(), Hostname: cfg.Hostname, Ports: ports,
		DNS: cfg.DNS, DNSSearch: cfg.DNSSearch, DNSOpt: cfg.DNSOpt, DNSDomain: cfg.DNSDomain,
		HostsEntries: cfg.HostsEntries,
		NetConfDirs:  h.NetConfDirs, NetPluginDirs: h.NetPluginDirs,
		NoOverlay: cfg.NoOverlay, InsecureSeccomp: cfg.InsecureSeccomp,
		Sandbox: true, CgroupParent: cfg.CgroupParent, HostIPC: cfg.HostIPC, SharedPID: cfg.SharedPID, Sysctls: cfg.Sysctls,
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := checkHost(); err != nil {
		return nil, err
	}
	if err := checkNetworks(h.NetConfDirs, cfg.Net); err != nil {
		return nil, err
	}
	if cfg.UUIDFileSave != "" {
		if err := checkUUIDFile(cfg.UUIDFileSave); err != nil {
			return nil, err
		}
	}
	if cfg.PrivateUsers {
		if opts.PrivateUsers, err = stage1.NewPrivateUsers(h.Pods.Dir); err != nil {
			return nil, err
		}
	}
	man := schema.BlankPodManifest()
	for k, v := range cfg.Annotations {
		man.Annotations.Set(types.ACIdentifier(k), v)
	}
	if cfg.UserAnnotations != nil {
		man.UserAnnotations = types.UserAnnotations(cfg.UserAnnotations)
	}
	if cfg.UserLabels != nil {
		man.UserLabels = types.UserLabels(cfg.UserLabels)
	}
	for _, pm := range ports {
		ep := types.ExposedPort{Name: types.ACName(pm.Name), HostPort: uint(pm.HostPort),
			PodPort: &types.Port{Name: types.ACName(pm.Name), Protocol: pm.Protocol, Port: uint(pm.ContainerPort), Count: 1}}
		if pm.HostIP != "" {
			ep.HostIP = net.ParseIP(pm.HostIP)
		}
		man.Ports = append(man.Ports, ep)
	}
	return h.create(man, opts, cfg.UUIDFileSave)
}

// Sandbox finds a running sandbox pod by UUID (or prefix) and returns it with a client of
// its supervisor.
func Sandbox(ps *pod.Store, ref string) (*pod.Pod, *podapi.Client, error) {
	p, err := ps.Get(ref)
	if err != nil {
		return nil, nil, err
	}
	if st := p.State(); st != pod.Running {
		return nil, nil, fmt.Errorf("pod %s is %s, not running", p.UUID, st)
	}
	opts, err := stage1.ReadOptions(p.Path())
	if err != nil {
		return nil, nil, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	if !opts.Sandbox {
		return nil, nil, fmt.Errorf("pod %s is %w: its apps are rkt run's", p.UUID, ErrNotSandbox)
	}
	if p.Orphaned() {
		return nil, nil, fmt.Errorf("pod %s: its supervisor is gone (killed) while its apps run on: %w; rkt stop and rkt gc take them down", p.UUID, podapi.ErrNoSupervisor)
	}
	return p, &podapi.Client{PodDir: p.Path()}, nil
}

// AppConfig is an app to add to a running sandbox (rkt app add).
type AppConfig struct {
	App
	// Volumes come and go with the app (rkt's --mnt-volume, a mount and its volume in
	// one): each is mounted where one of App.Mounts names it.
	Volumes []types.Volume
	Stdin   podapi.StdinMode
	// LogPath is where the app's log goes; "" is <pod>/logs/<app>.log.
	LogPath string
	// Linux is what the app's container gets beyond its appc app (a CRI container's
	// security context, devices, mount propagation, cgroup limits); nil for stage1's defaults.
	Linux *podapi.Linux
}

// Validate checks the app's settings on their own.
func (c *AppConfig) Validate() error {
	if err := c.App.Validate(); err != nil {
		return err
	}
	switch c.Stdin {
	case "", podapi.StdinNull, podapi.StdinStream, podapi.StdinTTY:
	default:
		return fmt.Errorf("--stdin=%s: want null, stream or tty", c.Stdin)
	}
	if c.LogPath != "" && (!path.IsAbs(c.LogPath) || path.Clean(c.LogPath) != c.LogPath) {
		return fmt.Errorf("--log-path %q: want an absolute clean path", c.LogPath)
	}
	seen := map[types.ACName]bool{}
	for _, v := range c.Volumes {
		if seen[v.Name] {
			return fmt.Errorf("--mnt-volume %s given twice", v.Name)
		}
		seen[v.Name] = true
		switch v.Kind {
		case "empty":
		case "host":
			if !path.IsAbs(v.Source) {
				return fmt.Errorf("--mnt-volume %s: a host volume needs source=/ABSOLUTE/PATH, not %q", v.Name, v.Source)
			}
		default:
			return fmt.Errorf("--mnt-volume %s: unknown kind %q (want host or empty)", v.Name, v.Kind)
		}
	}
	return nil
}

// AddApp resolves an app's image and makes its entry in the sandbox's pod manifest as
// PrepareApp does for a pod being prepared (its name free in the pod, its mounts of the
// pod's volumes or its own, its command and user checked in the image), then has the
// sandbox's supervisor add it: its root mounted, its container started up to just before
// its exec. The app is then created; Start execs it.
func (h *Host) AddApp(ctx context.Context, ref string, cfg *AppConfig) (*podapi.AppStatus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, c, err := Sandbox(h.Pods, ref)
	if err != nil {
		return nil, err
	}
	man, err := p.Manifest()
	if err != nil {
		return nil, err
	}
	var vols []types.Volume
	for _, v := range cfg.Volumes {
		if hasVolume(man.Volumes, v.Name) {
			return nil, fmt.Errorf("--mnt-volume %s: the pod has a volume of that name", v.Name)
		}
		vols = append(vols, volumeDefaults(v))
	}
	if err := checkHostVolumes(vols); err != nil {
		return nil, err
	}
	m := *man
	m.Volumes = append(slices.Clone(man.Volumes), vols...)
	pa, err := h.PrepareApp(ctx, &Config{}, &m, &cfg.App)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	req := &podapi.AddRequest{
		App:     pa.Runtime,
		Image:   podapi.Image{Name: pa.Image.Name, ImageID: pa.Image.ImageID, Layers: pa.Image.Layers},
		Volumes: append(vols, pa.Volumes...),
		Stdin:   cfg.Stdin,
		LogPath: cfg.LogPath,
		Linux:   cfg.Linux,
	}
	st, err := c.Add(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	return st, nil
}

// AttachMode is what rkt attach --mode attaches to: an app's stdin, stdout and stderr, or
// its tty's input and output.
type AttachMode struct {
	Stdin, Stdout, Stderr bool
	TTYIn, TTYOut         bool
}

// ParseAttachMode reads rkt attach's --mode: auto (every endpoint the app has; auto is
// true), list (list is true), or endpoints among stdin, stdout, stderr, tty, tty-in, tty-out,
// comma-separated, streams and tty not together.
func ParseAttachMode(s string) (m AttachMode, auto, list bool, err error) {
	switch s {
	case "", "auto":
		return m, true, false, nil
	case "list":
		return m, false, true, nil
	}
	for e := range strings.SplitSeq(s, ",") {
		switch e {
		case "stdin":
			m.Stdin = true
		case "stdout":
			m.Stdout = true
		case "stderr":
			m.Stderr = true
		case "tty":
			m.TTYIn, m.TTYOut = true, true
		case "tty-in":
			m.TTYIn = true
		case "tty-out":
			m.TTYOut = true
		default:
			return m, false, false, fmt.Errorf("--mode=%s: unknown endpoint %q (want stdin, stdout, stderr, tty, tty-in, tty-out, or auto or list)", s, e)
		}
	}
	if (m.TTYIn || m.TTYOut) && (m.Stdin || m.Stdout || m.Stderr) {
		return m, false, false, fmt.Errorf("--mode=%s: a tty and streams cannot be attached together", s)
	}
	return m, false, false, nil
}

// Endpoints are what an app added with stdin mode has to attach to, as rkt attach
// --mode=list names them.
func Endpoints(stdin podapi.StdinMode) []string {
	switch stdin {
	case podapi.StdinTTY:
		return []string{"tty"}
	case podapi.StdinStream:
		return []string{"stdin", "stdout", "stderr"}
	}
	return []string{"stdout", "stderr"}
}

// ModeFor is the attach mode auto means for an app added with stdin mode: all it has.
func ModeFor(stdin podapi.StdinMode) AttachMode {
	switch stdin {
	case podapi.StdinTTY:
		return AttachMode{TTYIn: true, TTYOut: true}
	case podapi.StdinStream:
		return AttachMode{Stdin: true, Stdout: true, Stderr: true}
	}
	return AttachMode{Stdout: true, Stderr: true}
}

// Check says whether an app added with stdin mode has the endpoints m asks for.
func (m AttachMode) Check(stdin podapi.StdinMode) error {
	tty := stdin == podapi.StdinTTY
	switch {
	case (m.TTYIn || m.TTYOut) && !tty:
		return fmt.Errorf("the app has no tty (it was added with --stdin=%s): attach to stdin, stdout, stderr", stdin)
	case (m.Stdin || m.Stdout || m.Stderr) && tty:
		return errors.New("the app runs on a tty: attach with --mode=tty")
	case m.Stdin && stdin != podapi.StdinStream:
		return fmt.Errorf("the app has no stdin to attach to (it was added with --stdin=%s)", stdin)
	case !(m.Stdin || m.Stdout || m.Stderr || m.TTYIn || m.TTYOut):
		return errors.New("nothing to attach to")
	}
	return nil
}
