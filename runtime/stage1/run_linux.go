package stage1

import (
	"bytes"
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
	"github.com/appc/spec/schema/types"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	// Device cgroup rules (specconv.AllowedDevices) need the devices controller's implementation.
	_ "github.com/opencontainers/cgroups/devices"

	"github.com/cairn-os/cairn/internal/mount"
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
	// PauseCommand starts the process that holds a sandbox's shared PID namespace
	// (Options.SharedPID): it must reap children and end on SIGTERM (rktlet pause).
	PauseCommand []string

	restore func() error // puts the caller's terminal back after --interactive
}

type app struct {
	name      string
	image     AppImage
	runtime   schema.RuntimeApp
	plan      *AppPlan // set once its root is mounted
	container *libcontainer.Container
	process   *libcontainer.Process
	pid       int
	execd     bool // the app's own command runs (or ran)
	exit      pod.AppExit
	done      chan struct{}
}

// signal sends sig to the app's container; an app that has exited already is not an error.
func (a *app) signal(sig unix.Signal) error {
	err := a.container.Signal(sig)
	if err == nil || errors.Is(err, libcontainer.ErrNotRunning) || errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return fmt.Errorf("app %s: %s: %w", a.name, unix.SignalName(sig), err)
}

// stop kills and removes the container of an app that has not exec'd yet; its root stays
// mounted, so that it can be started again.
func (a *app) stop() error {
	if a.container == nil {
		return nil
	}
	if err := a.signal(unix.SIGKILL); err != nil {
		return err
	}
	if a.process != nil {
		_, _ = a.process.Wait() // reaps it: killed by design, its status says nothing
	}
	if err := a.container.Destroy(); err != nil {
		return fmt.Errorf("app %s: remove container: %w", a.name, err)
	}
	a.container, a.process, a.pid = nil, nil, 0
	return nil
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
		log = slog.New(slog.DiscardHandler)
	}
	if r.StopTimeout == 0 {
		r.StopTimeout = 10 * time.Second
	}
	man, err := p.Manifest()
	if err != nil {
		return ExitFailure, err
	}
	opts, err := ReadOptions(dir)
	if err != nil {
		return ExitFailure, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	if opts.Sandbox {
		return r.runSandbox(ctx, log, man, opts)
	}
	if err := p.WritePID(os.Getpid()); err != nil {
		return ExitFailure, err
	}
	// Registered first: the steps below run at once, and any of them may leave something.
	defer func() {
		if cerr := CleanWithLog(context.WithoutCancel(ctx), dir, log); cerr != nil {
			log.Warn("pod cleanup incomplete; rkt gc will retry", "pod", p.UUID, "err", cerr)
		}
	}()

	defer func() {
		if r.restore != nil {
			if err := r.restore(); err != nil {
				log.Warn("terminal left in raw mode (the reset command restores it)", "pod", p.UUID, "err", err)
			}
		}
	}()
	apps := make([]*app, 0, len(man.Apps))
	for i, ra := range man.Apps {
		apps = append(apps, &app{name: string(ra.Name), image: opts.Apps[i], runtime: ra})
	}
	// The pod's namespaces and files do not depend on its cgroups and the apps' roots: the two
	// are made at once (about 1 ms each). The roots come after the cgroups: a root for
	// --private-users starts a process, which rkt's move into its leaf (v2) must not find
	// beside rkt in its cgroup.
	var (
		cg   CgroupPlan
		plan *PodPlan
	)
	var g errgroup.Group
	g.Go(func() (err error) {
		if cg, err = setupCgroups(log, dir, p.UUID, opts.CgroupParent); err != nil {
			return err
		}
		for _, a := range apps {
			if err := r.mountApp(dir, p.UUID, opts, a); err != nil {
				return fmt.Errorf("pod %s: app %s: %w", p.UUID, a.name, err)
			}
		}
		return nil
	})
	g.Go(func() (err error) {
		plan, err = r.preparePod(dir, man, opts)
		return err
	})
	if err := g.Wait(); err != nil {
		return ExitFailure, err
	}
	plan.CgroupParent = cg.Parent
	sel, err := opts.Selection()
	if err != nil {
		return ExitFailure, err
	}
	// The CNI plugins (and the iptables runs they make) take about as long as starting the
	// apps' containers, so the two go on at once: each container is started up to the point
	// just before its app's exec, and the apps exec only once the pod is on its networks.
	join := r.joinNetworks(ctx, plan, sel, opts)
	defer func() {
		// Before Clean, which reads the state the join writes. Its error is networksJoined's
		// to report; when Run fails before asking, Run's own error is the one that matters.
		_, _ = join.wait()
	}()
	defer func() {
		for _, a := range apps {
			if a.container == nil {
				continue
			}
			if err := a.signal(unix.SIGKILL); err != nil {
				log.Warn("kill app", "pod", p.UUID, "err", err)
			}
			if a.done != nil {
				<-a.done
			}
			if err := a.container.Destroy(); err != nil {
				log.Warn("remove app container", "pod", p.UUID, "app", a.name, "err", err)
			}
		}
	}()
	if opts.Interactive {
		// An interactive app execs as it starts (its terminal comes with the exec), so the
		// network must be there first.
		if _, err := r.networksJoined(plan, sel, opts, join); err != nil {
			return ExitFailure, err
		}
	}
	for _, a := range apps {
		if err := r.startApp(plan, opts, a); err != nil {
			return ExitFailure, fmt.Errorf("pod %s: app %s: %w", p.UUID, a.name, err)
		}
	}
	if !opts.Interactive {
		restart, err := r.networksJoined(plan, sel, opts, join)
		if err != nil {
			return ExitFailure, err
		}
		if restart {
			// A network answered with DNS servers, so the apps need the pod's resolv.conf
			// mounted: their containers, started without it and none of them past its exec
			// yet, are started again.
			log.Debug("restarting the apps' containers with the networks' resolv.conf", "pod", p.UUID)
			for _, a := range apps {
				if err := a.stop(); err != nil {
					return ExitFailure, fmt.Errorf("pod %s: %w", p.UUID, err)
				}
				if err := r.startApp(plan, opts, a); err != nil {
					return ExitFailure, fmt.Errorf("pod %s: app %s: %w", p.UUID, a.name, err)
				}
			}
		}
	}
	for _, a := range apps {
		if !a.execd {
			if err := a.container.Exec(); err != nil {
				return ExitFailure, fmt.Errorf("pod %s: app %s: exec: %w", p.UUID, a.name, err)
			}
			a.execd = true
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
		return ExitFailure, err
	}
	if err := p.MarkReady(); err != nil {
		return ExitFailure, err
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
			if err := a.signal(unix.SIGTERM); err != nil {
				log.Warn("stop app", "pod", p.UUID, "err", err)
			}
		}
		select {
		case <-all:
		case <-time.After(r.StopTimeout):
			for _, a := range apps {
				if err := a.signal(unix.SIGKILL); err != nil {
					log.Warn("kill app", "pod", p.UUID, "err", err)
				}
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
		if ee, ok := errors.AsType[*exec.ExitError](err); ok {
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
func (r *Runner) preparePod(dir string, man *schema.PodManifest, opts *Options) (*PodPlan, error) {
	hostname := opts.Hostname
	if hostname == "" {
		hostname = "rkt-" + r.Pod.UUID
	}
	sel, err := opts.Selection()
	if err != nil {
		return nil, err
	}
	ns, err := createSandbox(dir, hostname, sel.Mode != network.Host, !opts.HostIPC, opts.Sysctls)
	if err != nil {
		return nil, err
	}
	plan := &PodPlan{
		UUID: r.Pod.UUID, Dir: dir, Hostname: hostname,
		NetNS: ns["net"], IPCNS: ns["ipc"], UTSNS: ns["uts"], HostIPC: opts.HostIPC,
		Terminal: opts.Interactive, PrivateUsers: opts.PrivateUsers,
	}
	if opts.SharedPID {
		if !opts.Sandbox {
			return nil, fmt.Errorf("pod %s: a shared PID namespace is a sandbox's", r.Pod.UUID)
		}
		cmd, err := startPause(dir, r.PauseCommand)
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", r.Pod.UUID, err)
		}
		go func() { _ = cmd.Wait() }() // reaped when teardown kills it
		plan.PIDNS = "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/pid"
	}
	if plan.PrivateUsers != nil {
		plan.Sysfs = filepath.Join(dir, "sys")
		if err := mountSysfs(plan.NetNS, plan.Sysfs); err != nil {
			return nil, err
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
	// The CNI networks are joined later (joinNetworks); until then resolv.conf is what it is
	// without their DNS answer, and networksJoined revisits it.
	if _, err := setResolvConf(plan, opts, sel, nil); err != nil {
		return nil, err
	}
	for _, v := range man.Volumes {
		v, err := makeVolume(dir, v, opts.PrivateUsers)
		if err != nil {
			return nil, err
		}
		plan.Volumes = append(plan.Volumes, v)
	}
	return plan, nil
}

// makeVolume makes an empty volume's directory (its Source, in the returned copy) with its
// mode and owner, or checks that a host volume's source exists.
func makeVolume(podDir string, v types.Volume, pu *PrivateUsers) (types.Volume, error) {
	switch v.Kind {
	case "empty":
		d := filepath.Join(podDir, volumesDir, string(v.Name))
		mode := os.FileMode(0o755)
		if v.Mode != nil {
			if m, err := strconv.ParseUint(*v.Mode, 8, 32); err == nil {
				mode = os.FileMode(m)
			}
		}
		if err := os.MkdirAll(d, mode); err != nil {
			return v, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if err := os.Chmod(d, mode); err != nil { // MkdirAll's mode is under the umask
			return v, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		uid, gid := 0, 0
		if v.UID != nil {
			uid = *v.UID
		}
		if v.GID != nil {
			gid = *v.GID
		}
		if pu != nil {
			uid, gid = int(pu.hostID(uint32(uid))), int(pu.hostID(uint32(gid)))
		}
		// Under --private-users a volume left to the host's root is one the pod cannot write.
		if err := os.Chown(d, uid, gid); err != nil {
			return v, fmt.Errorf("volume %s: owner %d:%d: %w", v.Name, uid, gid, err)
		}
		v.Source = d
	case "host":
		if _, err := os.Stat(v.Source); err != nil {
			return v, fmt.Errorf("volume %s: host source: %w", v.Name, err)
		}
	default:
		return v, fmt.Errorf("volume %s: unknown kind %q (want host or empty)", v.Name, v.Kind)
	}
	return v, nil
}

// setResolvConf decides the pod's /etc/resolv.conf from the flags and the networks' DNS
// answer (nil before they are joined), writes it if it is generated, and reports whether that
// changed plan.ResolvConf's path or content.
func setResolvConf(plan *PodPlan, opts *Options, sel network.Selection, cniDNS *cnitypes.DNS) (changed bool, err error) {
	path, old := plan.ResolvConf, []byte(nil)
	if path != "" && path != "/etc/resolv.conf" {
		old, _ = os.ReadFile(path)
	}
	switch {
	case len(opts.DNS) == 1 && opts.DNS[0] == "host", len(opts.DNS) == 0 && sel.Mode == network.Host:
		if _, err := os.Stat("/etc/resolv.conf"); err == nil {
			plan.ResolvConf = "/etc/resolv.conf"
		}
		return plan.ResolvConf != path, nil
	}
	b := ResolvConf(opts, cniDNS)
	if b == nil {
		plan.ResolvConf = ""
		return path != "", nil
	}
	plan.ResolvConf = filepath.Join(plan.Dir, etcDir, "resolv.conf")
	if plan.ResolvConf == path && bytes.Equal(b, old) {
		return false, nil
	}
	return true, os.WriteFile(plan.ResolvConf, b, 0o644)
}

// netJoin is the pod's CNI networks being joined in the background.
type netJoin struct {
	done chan struct{}
	st   *network.State
	err  error
}

// wait returns the join's outcome; a nil join (no CNI network) has nothing to wait for.
func (j *netJoin) wait() (*network.State, error) {
	if j == nil {
		return nil, nil
	}
	<-j.done
	return j.st, j.err
}

// joinNetworks starts joining the sandbox's network namespace to the pod's CNI networks, if it
// has any. Clean tears them down from the state file, which is written before every plugin
// call.
func (r *Runner) joinNetworks(ctx context.Context, plan *PodPlan, sel network.Selection, opts *Options) *netJoin {
	if sel.Mode != network.Contained || !(sel.All || len(sel.Nets) > 0) {
		return nil
	}
	m := &network.Manager{ConfDirs: opts.NetConfDirs, PluginDirs: opts.NetPluginDirs, StateFile: filepath.Join(plan.Dir, NetStateFile),
		HostNetnsPin: filepath.Join(plan.Dir, hostNetnsFile), Log: r.Log}
	j := &netJoin{done: make(chan struct{})}
	go func() {
		defer close(j.done)
		j.st, j.err = m.Attach(ctx, r.Pod.UUID, plan.NetNS, sel, opts.Ports)
	}()
	return j
}

// networksJoined waits for the networks and applies their DNS answer to resolv.conf: restart
// says that it changed, so containers started before must be started again to get it.
func (r *Runner) networksJoined(plan *PodPlan, sel network.Selection, opts *Options, j *netJoin) (restart bool, err error) {
	st, err := j.wait()
	if err != nil || st == nil {
		return false, err
	}
	var cniDNS *cnitypes.DNS
	for _, a := range st.Nets {
		if a.DNS != nil {
			cniDNS = a.DNS
			break
		}
	}
	return setResolvConf(plan, opts, sel, cniDNS)
}

// mountApp makes the root of an app of pod uuid (whose directory is dir) and checks its user
// and command.
func (r *Runner) mountApp(dir, uuid string, opts *Options, a *app) error {
	img := a.image
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
		if u := opts.PrivateUsers; u != nil {
			if err := u.shiftTree(rootfs); err != nil {
				return fmt.Errorf("private users: %w", err)
			}
		}
		// A bind mount makes the root a mount point, as an overlay one would be.
		if err := (mount.Mount{Source: rootfs, Target: rootfs, Flags: unix.MS_BIND | unix.MS_REC}).Apply(); err != nil {
			return err
		}
	} else {
		layers := img.Layers
		if u := opts.PrivateUsers; u != nil {
			var err error
			if layers, err = u.idmapLayers(layers, filepath.Join(base, "idmap")); err != nil {
				return fmt.Errorf("private users: %w", err)
			}
			// The upper dir is not idmapped (overlayfs writes it as the host's root), so what
			// the pod writes keeps the pod's host IDs; its root gives "/" its owner.
			if err := u.shiftOwner(filepath.Join(base, "upper"), img.Layers[len(img.Layers)-1]); err != nil {
				return fmt.Errorf("private users: %w", err)
			}
		}
		if err := mountOverlayRoot(layers, dir, a.name); err != nil {
			return err
		}
	}
	if u := opts.PrivateUsers; u != nil {
		var err error
		if rootfs, err = u.exposeRoot(uuid, a.name, rootfs); err != nil {
			return fmt.Errorf("private users: %w", err)
		}
	}
	ap := &AppPlan{App: a.runtime, Rootfs: rootfs}
	if err := resolveUser(ap); err != nil {
		return err
	}
	if err := checkExec(ap); err != nil {
		return err
	}
	a.plan = ap
	return nil
}

// mountOverlayRoot mounts an app's overlay root, volatile where the kernel knows the option.
func mountOverlayRoot(layers []string, podDir, app string) error {
	return mountOverlay(layers, podDir, app, &volatileRefused, mount.Mount.Apply)
}

// newContainer creates an app's container (a.container) from its spec and returns the
// process that starts it, not started yet.
func newContainer(log *slog.Logger, plan *PodPlan, opts *Options, a *app) (*libcontainer.Process, error) {
	spec, err := Spec(plan, a.plan)
	if err != nil {
		return nil, err
	}
	if opts.InsecureSeccomp {
		spec.Linux.Seccomp = nil
	} else if spec.Linux.Seccomp != nil && !seccomp.Enabled {
		return nil, ErrNoSeccomp
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: a.name, Spec: spec})
	if err != nil {
		return nil, fmt.Errorf("container config: %w", err)
	}
	root := filepath.Join(plan.Dir, libcontainerDir)
	warnExeCopy(log, root)
	c, err := libcontainer.Create(root, a.name, cfg)
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	a.container = c
	return processFromSpec(spec.Process, true), nil
}

// startApp builds an app's container and starts it up to just before the app's exec, which
// the caller does with a.container.Exec (an interactive app is exec'd here).
func (r *Runner) startApp(plan *PodPlan, opts *Options, a *app) error {
	dir := plan.Dir
	proc, err := newContainer(r.Log, plan, opts, a)
	if err != nil {
		return err
	}
	c := a.container
	if plan.Terminal {
		return r.startInteractive(dir, c, proc, a)
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
