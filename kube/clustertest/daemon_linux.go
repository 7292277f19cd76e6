package clustertest

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
)

// daemon is a long-running program of a node, started inside the node's namespaces; with
// restart set it is started again a second after it exits, as systemd's Restart=always
// does for kubelet's unit.
type daemon struct {
	t       testenv.TB
	name    string
	logPath string
	argv    func() ([]string, bool) // the command line; false: not yet (a restarting daemon waits)
	env     []string
	restart bool

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
	starts  int
	loopEnd chan struct{}
}

// start starts the daemon (and, if it restarts, the loop that keeps it running).
func (d *daemon) start() {
	d.mu.Lock()
	d.stopped = false
	d.mu.Unlock()
	if !d.restart {
		if err := d.run(); err != nil {
			d.t.Fatalf("start %s: %v", d.name, err)
		}
		return
	}
	d.loopEnd = make(chan struct{})
	go func() {
		defer close(d.loopEnd)
		for {
			d.mu.Lock()
			stopped := d.stopped
			d.mu.Unlock()
			if stopped {
				return
			}
			if err := d.run(); err != nil {
				time.Sleep(time.Second)
				continue
			}
			d.mu.Lock()
			exited := d.exited
			d.mu.Unlock()
			<-exited
			time.Sleep(time.Second)
		}
	}()
}

// run starts the program once; an argv that is not ready yet is an error.
func (d *daemon) run() error {
	argv, ok := d.argv()
	if !ok {
		return errNotReady
	}
	log, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), d.env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	d.mu.Lock()
	d.cmd, d.exited = cmd, exited
	d.starts++
	d.mu.Unlock()
	return nil
}

type notReady struct{}

func (notReady) Error() string { return "not ready" }

var errNotReady error = notReady{}

// running reports whether the daemon's process is alive.
func (d *daemon) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exited == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// stop ends the restart loop and the program: SIGTERM, SIGKILL after grace.
func (d *daemon) stop(grace time.Duration) {
	d.mu.Lock()
	d.stopped = true
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(grace):
			cmd.Process.Kill()
			<-exited
		}
	}
	if d.loopEnd != nil {
		<-d.loopEnd
		d.loopEnd = nil
	}
}
