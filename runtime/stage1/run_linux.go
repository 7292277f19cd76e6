package stage1

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	// Device cgroup rules (specconv.AllowedDevices) need the devices controller's implementation.
	_ "github.com/opencontainers/cgroups/devices"

	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/pod"
)

// Sentinel errors.
var (
	ErrExecNotFound = errors.New("app command not found in the image")
	ErrNoSeccomp    = errors.New("this rkt was built without seccomp support (build with -tags seccomp and libseccomp-dev), so it cannot apply the default seccomp filter; --insecure-options=seccomp runs apps without one")
)

// Runner runs a pod in the foreground: it is the pod's supervisor for its whole life.
type Runner struct {
	Pod    *pod.Pod // locked exclusively, in the run phase
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Log    *slog.Logger
	// StopTimeout is how long apps get between SIGTERM and SIGKILL when the pod is stopped.
	StopTimeout time.Duration
	// Ready is called once every app has started (sd_notify, machined registration).
	Ready func(ctx context.Context, leader int) error

	restore func() // puts the caller's terminal back after --interactive
}

type app struct {
	name      string
	container *libcontainer.Container
	process   *libcontainer.Process
	pid       int
	exit      pod.AppExit
	done      chan struct{}
}

// Run starts the pod's apps and waits until all of them have exited, or until ctx is
// cancelled (SIGTERM), when it stops them: SIGTERM, then SIGKILL after StopTimeout. It
// returns the first app's exit status, rkt's convention. Whatever happens, the pod's mounts,
// namespaces and cgroups are gone when it returns.
func (r *Runner) Run(ctx context.Context) (code int, err error) {
	p := r.Pod
	dir := p.Path()
	log := r.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if r.StopTimeout == 0 {
		r.StopTimeout = 10 * time.Second
	}
	man, err := p.Manifest()
	if err != nil {
		return 254, err
	}
	opts, err := ReadOptions(dir)
	if err != nil {
		return 254, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	if err := p.WritePID(os.Getpid()); err != nil {
		return 254, err
	}
	cg, err := setupCgroups(log, dir, p.UUID)
	if err != nil {
		return 254, err
	}
	defer func() {
		if cerr := Clean(context.WithoutCancel(ctx), dir); cerr != nil {
			log.Warn("pod cleanup incomplete; rkt gc will retry", "pod", p.UUID, "err", cerr)
		}
	}()

	defer func() {
		if r.restore != nil {
			r.restore()
		}
	}()
	plan, err := r.preparePod(ctx, dir, man, opts)
	if err != nil {
		return 254, err
	}
	plan.CgroupParent = cg.Parent
	apps := make([]*app, 0, len(man.Apps))
	defer func() {
		for _, a := range apps {
			if a.container != nil {
				a.container.Signal(unix.SIGKILL)
				if a.done != nil {
					<-a.done
				}
				a.container.Destroy()
			}
		}
	}()
	for i, ra := range man.Apps {
		a := &app{name: string(ra.Name)}
		apps = append(apps, a)
		if err := r.startApp(ctx, plan, ra, opts.Apps[i], opts, a); err != nil {
			return 254, fmt.Errorf("pod %s: app %s: %w", p.UUID, ra.Name, err)
		}
		a.done = make(chan struct{})
		go func() {
			defer close(a.done)
			a.exit = waitExit(a.process)
			if err := p.WriteExit(a.name, a.exit); err != nil {
				log.Warn("record app exit", "app", a.name, "err", err)
			}
			log.Debug("app exited", "app", a.name, "status", a.exit.ExitCode)
		}()
	}
	now := time.Now()
	if err := p.WriteTime(pod.StartedFile, now); err != nil {
		return 254, err
	}
	if err := p.MarkReady(); err != nil {
		return 254, err
	}
	if r.Ready != nil && len(apps) > 0 {
		if err := r.Ready(ctx, apps[0].pid); err != nil {
			log.Warn("readiness notification", "err", err)
		}
	}

	all := make(chan struct{})
	go func() {
		for _, a := range apps {
			<-a.done
		}
		close(all)
	}()
	select {
	case <-all:
	case <-ctx.Done():
		log.Debug("stopping pod", "pod", p.UUID)
		for _, a := range apps {
			a.container.Signal(unix.SIGTERM)
		}
		select {
		case <-all:
		case <-time.After(r.StopTimeout):
			for _, a := range apps {
				a.container.Signal(unix.SIGKILL)
			}
			<-all
		}
	}
	return apps[0].exit.ExitCode, nil
}

func waitExit(p *libcontainer.Process) pod.AppExit {
	st, err := p.Wait()
	e := pod.AppExit{FinishedAt: time.Now().UTC()}
	if st == nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			st = ee.ProcessState
		}
	}
	if st == nil {
		e.ExitCode = 255
		return e
	}
	ws, _ := st.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		e.ExitCode = 128 + int(ws.Signal())
		e.Signal = unix.SignalName(ws.Signal())
	default:
		e.ExitCode = ws.ExitStatus()
	}
	return e
}

// preparePod makes the pod-level pieces: sandbox namespaces, its networks, /etc files, empty
// volumes.
func (r *Runner) preparePod(ctx context.Context, dir string, man *schema.PodManifest, opts *Options) (*PodPlan, error) {
	hostname := opts.Hostname
	if hostname == "" {
		hostname = "rkt-" + r.Pod.UUID
	}
	sel, err := opts.Selection()
	if err != nil {
		return nil, err
	}
	ns, err := createSandbox(dir, hostname, sel.Mode != network.Host)
	if err != nil {
		return nil, err
	}
	plan := &PodPlan{
		UUID: r.Pod.UUID, Dir: dir, Hostname: hostname,
		NetNS: ns["net"], IPCNS: ns["ipc"], UTSNS: ns["uts"],
		Terminal: opts.Interactive,
	}
	// CNI networks join the sandbox's own namespace; Clean tears them down from the state
	// file, which is written before every plugin call.
	var cniDNS *cnitypes.DNS
	if sel.Mode == network.Contained && (sel.All || len(sel.Nets) > 0) {
		m := &network.Manager{ConfDirs: opts.NetConfDirs, PluginDirs: opts.NetPluginDirs, StateFile: filepath.Join(dir, NetStateFile), Log: r.Log}
		st, err := m.Attach(ctx, r.Pod.UUID, ns["net"], sel, opts.Ports)
		if err != nil {
			return nil, err
		}
		for _, a := range st.Nets {
			if a.DNS != nil && cniDNS == nil {
				cniDNS = a.DNS
			}
		}
	}
	etc := filepath.Join(dir, etcDir)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return nil, err
	}
	plan.EtcHosts = filepath.Join(etc, "hosts")
	if sel.Mode == network.Host || (len(opts.HostsEntries) == 1 && opts.HostsEntries[0] == "host") {
		plan.EtcHosts = "/etc/hosts"
	} else if err := os.WriteFile(plan.EtcHosts, HostsFile(hostname, opts.HostsEntries), 0o644); err != nil {
		return nil, err
	}
	switch {
	case len(opts.DNS) == 1 && opts.DNS[0] == "host", len(opts.DNS) == 0 && sel.Mode == network.Host:
		if _, err := os.Stat("/etc/resolv.conf"); err == nil {
			plan.ResolvConf = "/etc/resolv.conf"
		}
	default:
		if b := ResolvConf(opts, cniDNS); b != nil {
			plan.ResolvConf = filepath.Join(etc, "resolv.conf")
			if err := os.WriteFile(plan.ResolvConf, b, 0o644); err != nil {
				return nil, err
			}
		}
	}
	for _, v := range man.Volumes {
		switch v.Kind {
		case "empty":
			d := filepath.Join(dir, volumesDir, string(v.Name))
			mode := os.FileMode(0o755)
			if v.Mode != nil {
				if m, err := strconv.ParseUint(*v.Mode, 8, 32); err == nil {
					mode = os.FileMode(m)
				}
			}
			if err := os.MkdirAll(d, mode); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			os.Chmod(d, mode)
			uid, gid := 0, 0
			if v.UID != nil {
				uid = *v.UID
			}
			if v.GID != nil {
				gid = *v.GID
			}
			os.Chown(d, uid, gid)
			v.Source = d
		case "host":
			if _, err := os.Stat(v.Source); err != nil {
				return nil, fmt.Errorf("volume %s: host source: %w", v.Name, err)
			}
		default:
			return nil, fmt.Errorf("volume %s: unknown kind %q (want host or empty)", v.Name, v.Kind)
		}
		plan.Volumes = append(plan.Volumes, v)
	}
	return plan, nil
}

// startApp mounts an app's root, builds its container and starts it.
func (r *Runner) startApp(ctx context.Context, plan *PodPlan, ra schema.RuntimeApp, img AppImage, opts *Options, a *app) error {
	dir := plan.Dir
	base := filepath.Join(dir, appsDir, a.name)
	for _, d := range []string{"rootfs", "upper", "work"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			return err
		}
	}
	rootfs := AppRootfs(dir, a.name)
	if opts.NoOverlay {
		if err := copyLayers(img.Layers, rootfs); err != nil {
			return err
		}
		// A bind mount makes the root a mount point, as an overlay one would be.
		if err := (Mount{Source: rootfs, Target: rootfs, Flags: unix.MS_BIND | unix.MS_REC}).apply(); err != nil {
			return err
		}
	} else if err := OverlayMount(img.Layers, dir, a.name).apply(); err != nil {
		return err
	}
	ap := &AppPlan{App: ra, Rootfs: rootfs}
	if err := resolveUser(ap); err != nil {
		return err
	}
	if err := checkExec(ap); err != nil {
		return err
	}
	spec, err := Spec(plan, ap)
	if err != nil {
		return err
	}
	if opts.InsecureSeccomp {
		spec.Linux.Seccomp = nil
	} else if !seccomp.Enabled {
		return ErrNoSeccomp
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: a.name, Spec: spec})
	if err != nil {
		return fmt.Errorf("container config: %w", err)
	}
	c, err := libcontainer.Create(filepath.Join(dir, libcontainerDir), a.name, cfg)
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	a.container = c
	proc := processFromSpec(spec.Process, true)
	if spec.Process.Terminal {
		return r.startInteractive(ctx, dir, c, proc, a)
	}
	proc.Stdout, proc.Stderr = r.Stdout, r.Stderr
	// Start stops the app just before its exec, so it can change cgroups with nothing forked.
	if err := c.Start(proc); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	a.process = proc
	a.pid, _ = proc.Pid()
	if err := joinNestedUnified(dir, a.name, a.pid); err != nil {
		return fmt.Errorf("unified cgroup: %w", err)
	}
	if err := c.Exec(); err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	return nil
}

func processFromSpec(sp *specs.Process, init bool) *libcontainer.Process {
	var groups []int
	for _, g := range sp.User.AdditionalGids {
		groups = append(groups, int(g))
	}
	return &libcontainer.Process{
		Args: sp.Args, Env: sp.Env, Cwd: sp.Cwd,
		UID: int(sp.User.UID), GID: int(sp.User.GID), AdditionalGroups: groups,
		Init: init,
	}
}
