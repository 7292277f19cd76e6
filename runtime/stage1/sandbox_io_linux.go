package stage1

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/runtime/podapi"
)

// outputSink is where a sandbox's apps' output goes besides their logs: the journal, under
// systemd, else the supervisor's own stdout and stderr.
type outputSink interface {
	line(app string, s podapi.Stream, line []byte, partial bool)
}

// newOutputSink is the journal when the supervisor's output goes to it (systemd sets
// JOURNAL_STREAM then) and journald answers, else stdout and stderr.
func newOutputSink(stdout, stderr io.Writer) outputSink {
	if os.Getenv("JOURNAL_STREAM") != "" && journal.Enabled() {
		return journalSink{}
	}
	return &streamSink{stdout: stdout, stderr: stderr}
}

// journalSink sends each line as an entry of its own, under the app's name; journald takes
// the unit from the supervisor's cgroup.
type journalSink struct{}

func (journalSink) line(app string, s podapi.Stream, line []byte, _ bool) {
	prio := journal.PriInfo
	if s == podapi.Stderr {
		prio = journal.PriErr
	}
	// Best effort, as a full journal must not stop the app: the log file has the line.
	_ = journal.Send(string(line), prio, map[string]string{"SYSLOG_IDENTIFIER": app})
}

// streamSink writes lines as the apps wrote them, unprefixed, as rkt run's apps do on its
// stdout and stderr.
type streamSink struct {
	mu             sync.Mutex
	stdout, stderr io.Writer
}

func (o *streamSink) line(_ string, s podapi.Stream, line []byte, partial bool) {
	w := o.stdout
	if s == podapi.Stderr {
		w = o.stderr
	}
	if w == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	b := line
	if !partial {
		b = append(slices.Clip(b), '\n')
	}
	_, _ = w.Write(b) // a closed stdout must not stop the app
}

// appIO is an app's stdio, owned by the supervisor: pipes (or a pty) whose output goes to
// the app's log, the output sink and attached clients, and whose input comes from attached
// clients.
type appIO struct {
	app  string
	tty  bool
	log  *logFile
	out  outputSink
	slog *slog.Logger

	// The container's ends, closed once it has started.
	child []*os.File
	// stdin is the write end of the app's stdin pipe, or the pty master; nil for /dev/null.
	stdinMu sync.Mutex
	stdin   *os.File
	master  *os.File
	readers []*os.File

	hubMu   sync.Mutex
	subs    map[*subscriber]struct{}
	closed  bool // the output ended
	reading sync.WaitGroup
	done    chan struct{}
}

// subscriber is an attached client's live copy of the app's output.
type subscriber struct {
	stdout, stderr bool
	ch             chan chunk
}

type chunk struct {
	stream podapi.Stream
	data   []byte
}

// subscriberQueue is how many reads of output an attached client may be behind before it
// is dropped: a client that does not read must not stop the app.
const subscriberQueue = 1024

func newAppIO(app string, stdin podapi.StdinMode, logPath string, out outputSink, log *slog.Logger) (*appIO, error) {
	l, err := openLogFile(logPath)
	if err != nil {
		return nil, err
	}
	a := &appIO{app: app, tty: stdin == podapi.StdinTTY, log: l, out: out, slog: log,
		subs: map[*subscriber]struct{}{}, done: make(chan struct{})}
	return a, nil
}

// attach gives proc the app's pipes: stdout, stderr, and stdin unless it is /dev/null.
func (a *appIO) attach(proc *libcontainer.Process, stdin podapi.StdinMode) error {
	var files []*os.File
	pipe := func() (r, w *os.File, err error) {
		if r, w, err = os.Pipe(); err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, nil, fmt.Errorf("app %s: pipe: %w", a.app, err)
		}
		files = append(files, r, w)
		return r, w, nil
	}
	outR, outW, err := pipe()
	if err != nil {
		return err
	}
	errR, errW, err := pipe()
	if err != nil {
		return err
	}
	if stdin == podapi.StdinStream {
		inR, inW, err := pipe()
		if err != nil {
			return err
		}
		proc.Stdin = inR
		a.child = append(a.child, inR)
		a.stdin = inW
	}
	proc.Stdout, proc.Stderr = outW, errW
	a.child = append(a.child, outW, errW)
	a.readers = []*os.File{outR, errR}
	a.reading.Add(2)
	go a.read(podapi.Stdout, outR)
	go a.read(podapi.Stderr, errR)
	go a.closeWhenRead()
	return nil
}

// attachTerminal takes the pty master of a tty app: its output is the app's stdout.
func (a *appIO) attachTerminal(master *os.File) {
	a.master, a.stdin = master, master
	a.reading.Add(1)
	go a.read(podapi.Stdout, master)
	go a.closeWhenRead()
}

// started closes the supervisor's copies of the container's ends, so that the output
// ends when the app's last process closes its own.
func (a *appIO) started() {
	for _, f := range a.child {
		f.Close()
	}
	a.child = nil
}

// read copies one output stream to the log, the sink and the subscribers until it ends.
func (a *appIO) read(s podapi.Stream, f *os.File) {
	defer a.reading.Done()
	name := s.String()
	sp := &lineSplitter{max: maxLogLine, emit: func(line []byte, partial bool) {
		if err := a.log.write(name, partial, line); err != nil {
			a.slog.Warn("app log", "app", a.app, "err", err)
		}
		a.out.line(a.app, s, line, partial)
	}}
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			a.publish(s, buf[:n])
			sp.write(buf[:n])
		}
		if err != nil {
			break // EOF on a pipe, EIO on a pty whose app is gone, or closed by close
		}
	}
	sp.flush()
}

// closeWhenRead ends the subscriptions once every output stream has ended.
func (a *appIO) closeWhenRead() {
	a.reading.Wait()
	a.hubMu.Lock()
	a.closed = true
	for sub := range a.subs {
		close(sub.ch)
		delete(a.subs, sub)
	}
	a.hubMu.Unlock()
	close(a.done)
}

func (a *appIO) publish(s podapi.Stream, data []byte) {
	a.hubMu.Lock()
	defer a.hubMu.Unlock()
	if len(a.subs) == 0 {
		return
	}
	c := chunk{stream: s, data: append([]byte(nil), data...)}
	for sub := range a.subs {
		if s == podapi.Stdout && !sub.stdout || s == podapi.Stderr && !sub.stderr {
			continue
		}
		select {
		case sub.ch <- c:
		default:
			close(sub.ch)
			delete(a.subs, sub)
			a.slog.Warn("attached client too slow; detached", "app", a.app)
		}
	}
}

// subscribe returns a live copy of the app's output streams asked for (a tty's output is
// stdout), or nil once the output has ended.
func (a *appIO) subscribe(stdout, stderr bool) *subscriber {
	a.hubMu.Lock()
	defer a.hubMu.Unlock()
	if a.closed {
		return nil
	}
	sub := &subscriber{stdout: stdout || a.tty && stderr, stderr: stderr, ch: make(chan chunk, subscriberQueue)}
	a.subs[sub] = struct{}{}
	return sub
}

func (a *appIO) unsubscribe(sub *subscriber) {
	a.hubMu.Lock()
	defer a.hubMu.Unlock()
	if _, ok := a.subs[sub]; ok {
		close(sub.ch)
		delete(a.subs, sub)
	}
}

// hasStdin says whether the app reads input that attach can send.
func (a *appIO) hasStdin() bool {
	a.stdinMu.Lock()
	defer a.stdinMu.Unlock()
	return a.stdin != nil
}

// writeStdin sends input to the app.
func (a *appIO) writeStdin(p []byte) error {
	a.stdinMu.Lock()
	defer a.stdinMu.Unlock()
	if a.stdin == nil {
		return os.ErrClosed
	}
	_, err := a.stdin.Write(p)
	return err
}

// closeStdin closes the app's stdin pipe: it reads EOF. A tty's input is not closed (the
// terminal is its output too); its EOF is a ^D the client sends.
func (a *appIO) closeStdin() error {
	a.stdinMu.Lock()
	defer a.stdinMu.Unlock()
	if a.tty || a.stdin == nil {
		return nil
	}
	err := a.stdin.Close()
	a.stdin = nil
	return err
}

// resize sets a tty app's window size.
func (a *appIO) resize(rows, cols uint16) error {
	if a.master == nil {
		return fmt.Errorf("app %s has no terminal: %w", a.app, podapi.ErrState)
	}
	ws := &unix.Winsize{Row: rows, Col: cols}
	return control(a.master, func(fd int) error { return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) })
}

func (a *appIO) reopenLog() error { return a.log.reopen() }

// ioDrainTimeout is how long close waits for an exited app's output to end: a process it
// left outside its PID namespace's reach cannot exist, but a stuck read must not hang a
// remove.
const ioDrainTimeout = 5 * time.Second

// close ends the app's stdio once its process has exited: what it wrote is read to the end
// (logged, sent), then the files are closed.
func (a *appIO) close() error {
	a.started()
	if a.readers == nil && a.master == nil {
		// Its output was never read (the container did not start): nothing ends it.
		a.hubMu.Lock()
		a.closed = true
		a.hubMu.Unlock()
	} else {
		select {
		case <-a.done:
		case <-time.After(ioDrainTimeout):
			// Unblocks the readers: their files are pollable, so Close interrupts a Read.
			for _, f := range a.readers {
				f.Close()
			}
			if a.master != nil {
				a.master.Close()
			}
			<-a.done
		}
	}
	var errs []error
	for _, f := range a.readers {
		if err := f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
	}
	a.stdinMu.Lock()
	if a.stdin != nil {
		if err := a.stdin.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			errs = append(errs, err)
		}
		a.stdin = nil
	}
	a.stdinMu.Unlock()
	if err := a.log.close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
