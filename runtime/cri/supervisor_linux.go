package cri

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// A sandbox's supervisor is a process of its own, so that it outlives rktlet (as
// containerd's shims do): rktlet starts it in a session of its own, hands it the pod's
// lock (fd 3) and a pipe (fd 4) on which it says it is ready, and forgets it once it is.
// Its log is the pod's supervisor.log. It stays in rktlet's cgroup, and puts the pod's
// cgroup where the sandbox's cgroup parent says; a rktlet unit has KillMode=process, so
// that stopping rktlet leaves supervisors and pods running.

// SupervisorLog is the supervisor's log, in the pod directory.
const SupervisorLog = "supervisor.log"

// supervisor is a started supervisor process.
type supervisor struct {
	cmd    *exec.Cmd
	ready  *os.File // the read end of its ready pipe
	exited chan struct{}
	err    error // its exit, once exited is closed
}

// startSupervisor starts the supervisor of a prepared sandbox pod p (locked), handing it
// p's lock: p's own handle is closed once the supervisor has its copy.
func (s *Server) startSupervisor(p *pod.Pod) (*supervisor, error) {
	// Close-on-exec: only the child's fd 3 (ExtraFiles) may hold the lock, not every
	// process rktlet starts meanwhile.
	lock, err := unix.FcntlInt(uintptr(p.LockFD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", p.UUID, err)
	}
	lockFile := os.NewFile(uintptr(lock), "pod-lock")
	defer lockFile.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", p.UUID, err)
	}
	defer w.Close()
	logFile, err := os.OpenFile(filepath.Join(p.Path(), SupervisorLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_CLOEXEC, 0o600)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("sandbox %s: supervisor log: %w", p.UUID, err)
	}
	defer logFile.Close()
	args := append(append([]string(nil), s.cfg.Supervisor[1:]...),
		"--dir="+s.cfg.Dir, "--log-level="+s.cfg.LogLevel, "--stop-timeout="+s.cfg.StopTimeout.String(), p.UUID)
	cmd := exec.Command(s.cfg.Supervisor[0], args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{lockFile, w}
	cmd.Env = supervisorEnv(os.Environ())
	// Its own session: no terminal's hangup or job control reaches it from rktlet's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		return nil, fmt.Errorf("sandbox %s: start supervisor %s: %w", p.UUID, s.cfg.Supervisor[0], err)
	}
	p.Close()
	sup := &supervisor{cmd: cmd, ready: r, exited: make(chan struct{})}
	go func() {
		sup.err = cmd.Wait()
		close(sup.exited)
	}()
	return sup, nil
}

// supervisorEnv is rktlet's environment without what is rktlet's alone: systemd's
// notification and socket-activation variables, and the journal stream (apps' output goes
// to their CRI logs only).
func supervisorEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// waitReady waits for the supervisor to say the sandbox is ready: its namespaces,
// networks and cgroup made, its socket listening. If it exits first, the error is the
// last error of its log.
func (sup *supervisor) waitReady(ctx context.Context, p *pod.Pod) error {
	defer sup.ready.Close()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(sup.ready).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if strings.TrimSpace(l) == "ready" {
			return nil
		}
		select {
		case <-sup.exited:
		case <-time.After(5 * time.Second):
		}
		_ = p.Refresh() // the supervisor moved it to the run phase
		return fmt.Errorf("its supervisor failed: %s", logTail(filepath.Join(p.Path(), SupervisorLog)))
	case <-ctx.Done():
		sup.kill()
		return fmt.Errorf("waiting for its supervisor: %w", ctx.Err())
	}
}

// kill ends a supervisor that did not get ready.
func (sup *supervisor) kill() {
	_ = sup.cmd.Process.Signal(unix.SIGKILL)
	<-sup.exited
}

// logTail is the last error a supervisor logged, or its last line.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for _, l := range slices.Backward(lines) {
		if strings.Contains(l, "level=ERROR") {
			return l
		}
	}
	if len(lines) == 0 || lines[len(lines)-1] == "" {
		return "(nothing logged)"
	}
	return lines[len(lines)-1]
}

// Supervise is rktlet's supervise mode: it runs the supervisor of the sandbox pod whose
// UUID is its argument, in this process, until ctx ends (SIGTERM), when it stops the
// pod's apps and takes the pod down. The pod's lock comes as fd 3, the ready pipe as fd 4.
func Supervise(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("supervise", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "/var/lib/rkt", "rkt's data directory")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	stopTimeout := fs.Duration("stop-timeout", 10*time.Second, "time apps get between SIGTERM and SIGKILL when the sandbox stops")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: rktlet supervise [--dir=DIR] [--log-level=L] [--stop-timeout=D] UUID (started by rktlet)")
		return 2
	}
	log, err := newLogger(stderr, *level)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	uuid := fs.Arg(0)
	log = log.With("sandbox", uuid)
	ready := os.NewFile(4, "ready")
	ps := pod.NewStore(*dir)
	ps.Alive = func(p *pod.Pod) bool { return stage1.PodAlive(p.Path()) }
	p, err := ps.Adopt(uuid, 3)
	if err != nil {
		log.Error("take over the sandbox pod", "err", err)
		return stage1.ExitFailure
	}
	defer p.Close()
	if err := p.MarkRunning(); err != nil {
		log.Error("run the sandbox pod", "err", err)
		return stage1.ExitFailure
	}
	register := stage1.SystemdReady(uuid, log)
	r := &stage1.Runner{Pod: p, Log: log, StopTimeout: *stopTimeout, PauseCommand: []string{"/proc/self/exe", "pause"},
		Ready: func(ctx context.Context, leader int) error {
			// machined's registration only: NOTIFY_SOCKET is rktlet's, not passed on.
			if err := register(ctx, leader); err != nil {
				log.Debug("readiness", "err", err)
			}
			_, err := ready.WriteString("ready\n")
			ready.Close()
			return err
		}}
	code, err := r.Run(ctx)
	if err != nil {
		log.Error("sandbox", "err", err)
		if code == 0 {
			code = stage1.ExitFailure
		}
	}
	log.Info("sandbox stopped", "code", code)
	return code
}

// newLogger is a text logger at the named level.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// signalSupervisor sends the pod's supervisor sig; one that is gone is not an error.
func signalSupervisor(p *pod.Pod, sig unix.Signal) error {
	pid, err := p.PID()
	if err != nil {
		return err
	}
	if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal supervisor %d: %w", pid, err)
	}
	return nil
}

// waitUnlocked waits until nobody holds the pod's lock (its supervisor has exited), for at
// most supervisorExit.
func waitUnlocked(ctx context.Context, p *pod.Pod) bool {
	deadline := time.Now().Add(supervisorExit)
	for {
		if err := p.Refresh(); err != nil {
			return true // gone
		}
		if st := p.State(); st != pod.Running && st != pod.Preparing {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pause is rktlet's pause mode: the first process of a sandbox's shared PID namespace,
// which holds it for the pod. It reaps whatever is orphaned there, as pid 1 must, and ends
// when ctx does (SIGTERM, or the pod's teardown, which kills it).
func Pause(ctx context.Context) int {
	chld := make(chan os.Signal, 16)
	signal.Notify(chld, unix.SIGCHLD)
	defer signal.Stop(chld)
	for {
		select {
		case <-ctx.Done():
			return 0
		case <-chld:
			for {
				var ws unix.WaitStatus
				if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}
