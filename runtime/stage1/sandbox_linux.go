package stage1

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/mount"
	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/podapi"
)

// logsDir, in a sandbox's pod directory, holds its apps' logs unless an add names another
// path: <pod>/logs/<app>.log. It is apart from the apps' directories, which go with the app,
// so that a log outlives the app it tells of (a CRI server reads it after the container is
// gone), until the pod does.
const logsDir = "logs"

// sandbox is the supervisor of a pod whose apps come and go (rkt app sandbox): it made the
// pod's namespaces, cgroup and networks, and adds, starts, stops and removes apps when asked
// on its socket (runtime/podapi). It owns the apps' stdio. It is the only writer of the pod
// manifest, stage1's options and the apps' state records while it runs.
type sandbox struct {
	r   *Runner
	pod *pod.Pod
	// base is the pod's options as the supervisor found them: what no add or remove
	// changes (overlay, user namespace, seccomp), read without the lock.
	base *Options
	log  *slog.Logger
	out  outputSink
	// stopTimeout is the pod's --stop-timeout, for a stop or remove that names none.
	stopTimeout time.Duration
	// startMu makes libcontainer create and start one container at a time: parallel adds
	// would otherwise race to make the pod's cgroup in every hierarchy.
	startMu sync.Mutex

	mu sync.Mutex
	// plan is the pod's; its Volumes change with the apps. opts and man are the pod's
	// options and manifest as on disk, replaced (not changed) by adds and removes.
	plan    *PodPlan
	opts    *Options
	man     *schema.PodManifest
	apps    map[string]*sandboxApp // apps being added are here, not ready yet
	closing bool
}

// sandboxApp is one app of a sandbox.
type sandboxApp struct {
	name string
	// opMu lets one start, stop or remove act on the app at a time.
	opMu    sync.Mutex
	ready   bool // in the pod manifest (guarded by sandbox.mu)
	removed bool // guarded by opMu
	c       *app
	volumes []types.Volume // its own, made with it and removed with it
	io      *appIO
	exited  chan struct{} // closed once its process was reaped and its record written

	recMu sync.Mutex
	rec   pod.AppRecord
}

func (a *sandboxApp) record() pod.AppRecord {
	a.recMu.Lock()
	defer a.recMu.Unlock()
	return a.rec
}

// runSandbox runs a sandbox pod in the foreground: it makes the pod's namespaces, cgroup and
// networks as Run does, then serves its socket until ctx ends (SIGTERM), when it stops the
// apps (SIGTERM, SIGKILL after StopTimeout) and takes the pod down. It returns 0.
func (r *Runner) runSandbox(ctx context.Context, log *slog.Logger, man *schema.PodManifest, opts *Options) (int, error) {
	p := r.Pod
	dir := p.Path()
	// SIGUSR1 reopens the logs; its default action would end the supervisor.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, unix.SIGUSR1)
	defer signal.Stop(usr1)
	if len(man.Apps) > 0 {
		return ExitFailure, fmt.Errorf("pod %s: a sandbox starts with no apps, this one has %d", p.UUID, len(man.Apps))
	}
	if err := p.WritePID(os.Getpid()); err != nil {
		return ExitFailure, err
	}
	cg, err := setupCgroups(log, dir, p.UUID, opts.CgroupParent)
	if err != nil {
		return ExitFailure, err
	}
	defer func() {
		if cerr := CleanWithLog(context.WithoutCancel(ctx), dir, log); cerr != nil {
			log.Warn("pod cleanup incomplete; rkt gc will retry", "pod", p.UUID, "err", cerr)
		}
	}()
	plan, err := r.preparePod(dir, man, opts)
	if err != nil {
		return ExitFailure, err
	}
	plan.CgroupParent = cg.Parent
	sel, err := opts.Selection()
	if err != nil {
		return ExitFailure, err
	}
	// No app waits for the networks here: they are joined before the pod is ready, and
	// every app gets the resolv.conf their DNS answer makes.
	if _, err := r.networksJoined(plan, sel, opts, r.joinNetworks(ctx, plan, sel, opts)); err != nil {
		return ExitFailure, err
	}
	s := &sandbox{r: r, pod: p, plan: plan, base: opts, opts: opts, log: log, man: man, apps: map[string]*sandboxApp{},
		out: newOutputSink(r.Stdout, r.Stderr), stopTimeout: r.StopTimeout}
	ln, err := podapi.Listen(dir)
	if err != nil {
		return ExitFailure, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	defer func() {
		ln.Close()
		if err := podapi.RemoveSocket(dir); err != nil {
			log.Warn("remove supervisor socket", "pod", p.UUID, "err", err)
		}
	}()
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.serve(ln)
	}()
	if err := p.WriteTime(pod.StartedFile, time.Now()); err != nil {
		return ExitFailure, err
	}
	if err := p.MarkReady(); err != nil {
		return ExitFailure, err
	}
	if r.Ready != nil {
		if err := r.Ready(ctx, os.Getpid()); err != nil {
			log.Warn("readiness notification", "err", err)
		}
	}
	log.Debug("sandbox ready", "pod", p.UUID, "socket", podapi.SocketPath(dir))
	for ctx.Err() == nil {
		select {
		case <-usr1:
			_ = s.reopenLogs("") // logged there: a signal has nobody to answer
		case <-ctx.Done():
		}
	}
	log.Debug("stopping sandbox", "pod", p.UUID)
	ln.Close()
	<-served
	s.shutdown()
	return 0, nil
}

// get returns an app that is in the pod (added, not removed).
func (s *sandbox) get(name string) (*sandboxApp, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[name]
	if !ok || !a.ready {
		return nil, fmt.Errorf("app %s: %w", name, podapi.ErrNotFound)
	}
	return a, nil
}

// add prepares an app up to just before its exec and puts it into the pod manifest.
func (s *sandbox) add(req *podapi.AddRequest) (pod.AppRecord, error) {
	name := string(req.App.Name)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return pod.AppRecord{}, fmt.Errorf("pod %s is stopping: %w", s.pod.UUID, podapi.ErrState)
	}
	if _, ok := s.apps[name]; ok {
		s.mu.Unlock()
		return pod.AppRecord{}, fmt.Errorf("app %s: %w", name, podapi.ErrExists)
	}
	known := map[types.ACName]bool{}
	for _, v := range s.man.Volumes {
		known[v.Name] = true
	}
	for _, v := range req.Volumes {
		if known[v.Name] {
			s.mu.Unlock()
			return pod.AppRecord{}, fmt.Errorf("app %s: volume %s: %w", name, v.Name, podapi.ErrExists)
		}
		known[v.Name] = true
	}
	for _, m := range req.App.Mounts {
		if !known[m.Volume] {
			s.mu.Unlock()
			return pod.AppRecord{}, fmt.Errorf("app %s: mount of volume %s: %w: %w", name, m.Volume, ErrNoVolume, podapi.ErrInvalid)
		}
	}
	plan := *s.plan
	plan.Volumes = slices.Clone(s.plan.Volumes)
	a := &sandboxApp{name: name, exited: make(chan struct{})}
	s.apps[name] = a
	s.mu.Unlock()

	fail := func(err error) (pod.AppRecord, error) {
		s.discard(a)
		s.mu.Lock()
		delete(s.apps, name)
		s.mu.Unlock()
		return pod.AppRecord{}, fmt.Errorf("app %s: %w", name, err)
	}
	rec, err := s.create(a, req, plan)
	if err != nil {
		return fail(err)
	}
	if err := s.commit(a, req); err != nil {
		return fail(err)
	}
	s.log.Debug("app added", "pod", s.pod.UUID, "app", name)
	return rec, nil
}

// commit puts an app that create made into the pod manifest and stage1's options.
func (s *sandbox) commit(a *sandboxApp, req *podapi.AddRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return fmt.Errorf("pod %s is stopping: %w", s.pod.UUID, podapi.ErrState)
	}
	man := *s.man
	man.Apps = append(slices.Clone(s.man.Apps), req.App)
	man.Volumes = append(slices.Clone(s.man.Volumes), req.Volumes...)
	opts := *s.opts
	opts.Apps = append(slices.Clone(s.opts.Apps), a.c.image)
	if err := s.write(&man, &opts); err != nil {
		return err
	}
	s.plan.Volumes = append(s.plan.Volumes, a.volumes...)
	a.ready = true
	return nil
}

// write makes man and opts the pod's (options first: gc and image gc read the images there).
func (s *sandbox) write(man *schema.PodManifest, opts *Options) error {
	if err := opts.Write(s.pod.Path()); err != nil {
		return err
	}
	if err := s.pod.WriteManifest(man); err != nil {
		// Back to the options that match the manifest on disk.
		return errors.Join(err, s.opts.Write(s.pod.Path()))
	}
	s.man, s.opts = man, opts
	return nil
}

// create makes an added app: its volumes, root, stdio and container, started up to just
// before its exec, and its record. plan is a copy of the pod's, taken when the add began.
func (s *sandbox) create(a *sandboxApp, req *podapi.AddRequest, plan PodPlan) (pod.AppRecord, error) {
	dir := s.pod.Path()
	for _, v := range req.Volumes {
		mv, err := makeVolume(dir, v, s.base.PrivateUsers)
		if err != nil {
			return pod.AppRecord{}, err
		}
		a.volumes = append(a.volumes, mv)
	}
	plan.Volumes = append(plan.Volumes, a.volumes...)
	a.c = &app{name: a.name, runtime: req.App,
		image: AppImage{Name: a.name, ImageID: req.Image.ImageID, Layers: req.Image.Layers}}
	if err := s.r.mountApp(plan.Dir, plan.UUID, s.base, a.c); err != nil {
		return pod.AppRecord{}, err
	}
	a.c.plan.Linux = req.Linux
	devs, err := ResolveDevices(req.Linux)
	if err != nil {
		return pod.AppRecord{}, err
	}
	a.c.plan.Devices = devs
	stdin := req.Stdin
	if stdin == "" {
		stdin = podapi.StdinNull
	}
	a.c.plan.Terminal = stdin == podapi.StdinTTY
	logPath := req.LogPath
	if logPath == "" {
		logPath = filepath.Join(dir, logsDir, a.name+".log")
	}
	aio, err := newAppIO(a.name, stdin, logPath, s.out, s.log)
	if err != nil {
		return pod.AppRecord{}, err
	}
	a.io = aio
	s.startMu.Lock()
	err = s.startContainer(&plan, a, stdin)
	s.startMu.Unlock()
	if a.c.process == nil {
		return pod.AppRecord{}, err
	}
	// From here its process exists and is reaped by wait, which records its exit after the
	// record of its creation (the record is locked until that is written).
	rec := pod.AppRecord{Name: a.name, State: pod.AppCreated, ImageID: req.Image.ImageID,
		CreatedAt: time.Now().UTC(), LogPath: logPath, Stdin: string(stdin)}
	a.recMu.Lock()
	a.rec = rec
	go s.wait(a)
	if err == nil {
		if err = joinNestedUnified(dir, a.name, a.c.pid); err != nil {
			err = fmt.Errorf("unified cgroup: %w", err)
		}
	}
	if err == nil {
		err = s.pod.WriteAppRecord(rec)
	}
	a.recMu.Unlock()
	if err != nil {
		return pod.AppRecord{}, err
	}
	return rec, nil
}

// startContainer creates the app's container and starts its process up to just before the
// exec, on the app's stdio.
func (s *sandbox) startContainer(plan *PodPlan, a *sandboxApp, stdin podapi.StdinMode) error {
	proc, err := newContainer(s.log, plan, s.base, a.c)
	if err != nil {
		return err
	}
	var console *consoleRequest
	if a.c.plan.Terminal {
		if console, err = requestConsole(proc, nil, nil); err != nil {
			return err
		}
		// A terminal's size until an attached client gives its own (a pty made without
		// one is 0x0, which programs take for none).
		proc.ConsoleWidth, proc.ConsoleHeight = 80, 24
		defer console.close()
	} else if err := a.io.attach(proc, stdin); err != nil {
		return err
	}
	err = a.c.container.Start(proc)
	a.io.started()
	if console != nil {
		console.started()
	}
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	a.c.process = proc
	a.c.pid, _ = proc.Pid()
	if console != nil {
		master, err := console.receive()
		if err != nil {
			return err
		}
		a.io.attachTerminal(master)
	}
	return nil
}

// wait reaps the app's process and records how it ended.
func (s *sandbox) wait(a *sandboxApp) {
	e := waitExit(a.c.process)
	oom := s.oomKilled(a.name)
	a.recMu.Lock()
	a.rec.State = pod.AppExited
	a.rec.FinishedAt = e.FinishedAt
	a.rec.ExitCode, a.rec.Signal = e.ExitCode, e.Signal
	a.rec.Reason = pod.ExitReason(e.ExitCode, oom)
	a.rec.PID = 0
	rec := a.rec
	a.recMu.Unlock()
	if err := s.pod.WriteAppRecord(rec); err != nil {
		s.log.Warn("record app exit", "pod", s.pod.UUID, "app", a.name, "err", err)
	}
	s.log.Debug("app exited", "pod", s.pod.UUID, "app", a.name, "status", e.ExitCode, "reason", rec.Reason)
	close(a.exited)
}

// oomKilled says whether the kernel's OOM killer ended a process in the app's memory cgroup.
func (s *sandbox) oomKilled(app string) bool {
	rec, err := readCgroupRecord(s.pod.Path())
	if err != nil || rec == nil {
		return false
	}
	for k, file := range map[string]string{"memory": "memory.oom_control", "": "memory.events"} {
		base, ok := rec[k]
		if !ok {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(base, app, file)); err == nil && oomKills(string(b)) > 0 {
			return true
		}
	}
	return false
}

// start execs a created app.
func (s *sandbox) start(name string) (pod.AppRecord, error) {
	a, err := s.get(name)
	if err != nil {
		return pod.AppRecord{}, err
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.removed {
		return pod.AppRecord{}, fmt.Errorf("app %s: %w", name, podapi.ErrNotFound)
	}
	// The record stays locked through the exec, so that an app that exits at once is
	// recorded running before it is recorded exited.
	a.recMu.Lock()
	defer a.recMu.Unlock()
	step, err := planStep(opStart, a.rec.State)
	if err != nil || step == stepNone {
		if err != nil {
			err = fmt.Errorf("app %s: %w", name, err)
		}
		return a.rec, err
	}
	now := time.Now().UTC()
	if err := a.c.container.Exec(); err != nil {
		return a.rec, fmt.Errorf("app %s: exec: %w", name, err)
	}
	a.c.execd = true
	a.rec.State, a.rec.StartedAt, a.rec.PID = pod.AppRunning, now, a.c.pid
	if err := s.pod.WriteAppRecord(a.rec); err != nil {
		return a.rec, err
	}
	return a.rec, nil
}

// update replaces a created or running app's cgroup limits (the CRI's
// UpdateContainerResources): what r sets replaces the container's, the rest stays.
func (s *sandbox) update(name string, r *podapi.Resources) (pod.AppRecord, error) {
	a, err := s.get(name)
	if err != nil {
		return pod.AppRecord{}, err
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.removed || a.c.container == nil {
		return pod.AppRecord{}, fmt.Errorf("app %s: %w", name, podapi.ErrNotFound)
	}
	if st := a.record().State; st == pod.AppExited {
		return a.record(), fmt.Errorf("app %s: %w: it has exited", name, podapi.ErrState)
	}
	if err := setResources(a.c.container, r); err != nil {
		return a.record(), fmt.Errorf("app %s: %w", name, err)
	}
	return a.record(), nil
}

// stop stops a running app: SIGTERM, then SIGKILL after timeout.
func (s *sandbox) stop(name string, timeout time.Duration) (pod.AppRecord, error) {
	a, err := s.get(name)
	if err != nil {
		return pod.AppRecord{}, err
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.removed {
		return pod.AppRecord{}, fmt.Errorf("app %s: %w", name, podapi.ErrNotFound)
	}
	step, err := planStep(opStop, a.record().State)
	if err != nil {
		return a.record(), fmt.Errorf("app %s: %w", name, err)
	}
	if step == stepStop {
		if err := s.terminate(a, timeout); err != nil {
			return a.record(), err
		}
	}
	return a.record(), nil
}

// terminate sends the app SIGTERM and, if it has not exited after timeout, SIGKILL, and
// waits for it to have exited.
func (s *sandbox) terminate(a *sandboxApp, timeout time.Duration) error {
	if timeout > 0 {
		if err := a.c.signal(unix.SIGTERM); err != nil {
			return err
		}
		select {
		case <-a.exited:
			return nil
		case <-time.After(timeout):
		}
	}
	if err := a.c.signal(unix.SIGKILL); err != nil {
		return err
	}
	select {
	case <-a.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("app %s: still there 10s after SIGKILL", a.name)
	}
}

// remove stops the app if it runs and takes it out of the pod: container, root, mounts,
// directory, volumes and manifest entry. Its log file stays.
func (s *sandbox) remove(name string, timeout time.Duration) error {
	a, err := s.get(name)
	if err != nil {
		return err
	}
	a.opMu.Lock()
	defer a.opMu.Unlock()
	if a.removed {
		return fmt.Errorf("app %s: %w", name, podapi.ErrNotFound)
	}
	step, err := planStep(opRemove, a.record().State)
	if err != nil {
		return fmt.Errorf("app %s: %w", name, err)
	}
	switch step {
	case stepStop:
		err = s.terminate(a, timeout)
	case stepKill:
		err = s.terminate(a, 0)
	}
	if err != nil {
		return err
	}
	if err := s.takeDown(a); err != nil {
		return fmt.Errorf("app %s: %w", name, err)
	}
	s.mu.Lock()
	man := *s.man
	man.Apps = slices.DeleteFunc(slices.Clone(s.man.Apps), func(ra schema.RuntimeApp) bool { return string(ra.Name) == name })
	own := map[types.ACName]bool{}
	for _, v := range a.volumes {
		own[v.Name] = true
	}
	man.Volumes = slices.DeleteFunc(slices.Clone(s.man.Volumes), func(v types.Volume) bool { return own[v.Name] })
	opts := *s.opts
	opts.Apps = slices.DeleteFunc(slices.Clone(s.opts.Apps), func(i AppImage) bool { return i.Name == name })
	err = s.write(&man, &opts)
	if err == nil {
		s.plan.Volumes = slices.DeleteFunc(s.plan.Volumes, func(v types.Volume) bool { return own[v.Name] })
		delete(s.apps, name)
		a.removed = true
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("app %s: %w", name, err)
	}
	var errs []error
	if err := os.RemoveAll(filepath.Join(s.pod.Path(), appsDir, name)); err != nil {
		errs = append(errs, err)
	}
	for _, v := range a.volumes {
		if v.Kind == "empty" {
			if err := os.RemoveAll(v.Source); err != nil {
				errs = append(errs, err)
			}
		}
	}
	s.log.Debug("app removed", "pod", s.pod.UUID, "app", name)
	return errors.Join(errs...)
}

// takeDown undoes what create did outside the app's directory, once its process has been
// reaped: its stdio, container and cgroups, and the mounts beneath its directory.
func (s *sandbox) takeDown(a *sandboxApp) error {
	var errs []error
	if a.io != nil {
		if err := a.io.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if a.c != nil && a.c.container != nil {
		if err := a.c.container.Destroy(); err != nil {
			errs = append(errs, fmt.Errorf("remove container: %w", err))
		}
		a.c.container = nil
	}
	if rec, err := readCgroupRecord(s.pod.Path()); err == nil {
		if base, ok := rec[recordNested]; ok {
			if err := unix.Rmdir(filepath.Join(base, a.name)); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("unified cgroup: %w", err))
			}
		}
	}
	if s.base.PrivateUsers != nil {
		if err := unexposeRoot(s.pod.UUID, a.name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := mount.UnmountBeneath(filepath.Join(s.pod.Path(), appsDir, a.name)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// discard undoes a failed add: whatever of the app was made.
func (s *sandbox) discard(a *sandboxApp) {
	if a.c != nil && a.c.container != nil {
		if err := a.c.signal(unix.SIGKILL); err != nil {
			s.log.Warn("kill app of a failed add", "app", a.name, "err", err)
		}
		if a.c.process != nil { // wait reaps it
			<-a.exited
		}
	}
	if err := s.takeDown(a); err != nil {
		s.log.Warn("undo a failed add", "pod", s.pod.UUID, "app", a.name, "err", err)
	}
	if err := os.RemoveAll(filepath.Join(s.pod.Path(), appsDir, a.name)); err != nil {
		s.log.Warn("undo a failed add", "pod", s.pod.UUID, "app", a.name, "err", err)
	}
	for _, v := range a.volumes {
		if v.Kind == "empty" {
			_ = os.RemoveAll(v.Source)
		}
	}
}

// reopenLogs reopens one app's log file, or every app's.
func (s *sandbox) reopenLogs(name string) error {
	var apps []*sandboxApp
	if name != "" {
		a, err := s.get(name)
		if err != nil {
			return err
		}
		apps = append(apps, a)
	} else {
		s.mu.Lock()
		for _, a := range s.apps {
			if a.ready {
				apps = append(apps, a)
			}
		}
		s.mu.Unlock()
	}
	var errs []error
	for _, a := range apps {
		if err := a.io.reopenLog(); err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", a.name, err))
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		s.log.Warn("reopen logs", "pod", s.pod.UUID, "err", err)
	}
	return err
}

// status lists the apps in the pod, in manifest order.
func (s *sandbox) status() []podapi.AppStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]podapi.AppStatus, 0, len(s.man.Apps))
	for _, ra := range s.man.Apps {
		if a, ok := s.apps[string(ra.Name)]; ok {
			out = append(out, appStatus(a.record()))
		}
	}
	return out
}

// shutdown stops every app (SIGTERM, SIGKILL after the stop timeout) and closes their
// stdio, once no request is served any more; Clean takes the rest down.
func (s *sandbox) shutdown() {
	s.mu.Lock()
	s.closing = true
	var apps []*sandboxApp
	for _, a := range s.apps {
		if a.ready {
			apps = append(apps, a)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range apps {
		wg.Go(func() {
			a.opMu.Lock()
			defer a.opMu.Unlock()
			timeout := s.stopTimeout
			if a.record().State == pod.AppCreated {
				timeout = 0
			}
			if err := s.terminate(a, timeout); err != nil {
				s.log.Warn("stop app", "pod", s.pod.UUID, "app", a.name, "err", err)
			}
			if err := a.io.close(); err != nil {
				s.log.Warn("app output", "pod", s.pod.UUID, "app", a.name, "err", err)
			}
		})
	}
	wg.Wait()
}

// peerAllowed accepts a client running as root or as the supervisor's user: the socket's
// mode says as much; this holds even if its directory's mode changed.
func peerAllowed(conn *net.UnixConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Geteuid() {
		return fmt.Errorf("client uid %d: %w", cred.Uid, os.ErrPermission)
	}
	return nil
}
