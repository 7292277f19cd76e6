package stage1

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// The terminal side of `rkt run --interactive` and `rkt enter`: libcontainer makes a pty inside
// the container and sends its master back over a socket; rkt puts its own terminal in raw mode,
// copies between that terminal and the master, and keeps the pty's window size equal to the
// terminal's.

// IsTerminal reports whether v (a stdin or stdout) is a terminal.
func IsTerminal(v any) bool { return terminalFile(v) != nil }

// terminalFile returns v as a file if it is a terminal, else nil.
func terminalFile(v any) *os.File {
	f, ok := v.(*os.File)
	if !ok || f == nil {
		return nil
	}
	isTerm := false
	if control(f, func(fd int) error { isTerm = term.IsTerminal(fd); return nil }) != nil || !isTerm {
		return nil
	}
	return f
}

// control runs fn on f's descriptor without changing the file's blocking mode (as f.Fd would).
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// sizingTerminal is the caller's terminal whose size the pty follows: stdin's, else stdout's.
func sizingTerminal(stdin io.Reader, stdout io.Writer) *os.File {
	if f := terminalFile(stdin); f != nil {
		return f
	}
	return terminalFile(stdout)
}

// winsize of the terminal t, or nil when there is none or it has no size.
func winsize(t *os.File) *unix.Winsize {
	if t == nil {
		return nil
	}
	var ws *unix.Winsize
	if control(t, func(fd int) (err error) { ws, err = unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); return err }) != nil ||
		ws.Row == 0 || ws.Col == 0 {
		return nil
	}
	return ws
}

// consoleRequest asks libcontainer for a pty: the process's ConsoleSocket gets one end of a
// socket pair, over which the container sends the master back.
type consoleRequest struct {
	parent, child *os.File
}

// requestConsole sets proc up to run on a new pty, with the caller's window size, which the
// pty has before the command runs.
func requestConsole(proc *libcontainer.Process, stdin io.Reader, stdout io.Writer) (*consoleRequest, error) {
	parent, child, err := utils.NewSockPair("console")
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	proc.ConsoleSocket = child
	if ws := winsize(sizingTerminal(stdin, stdout)); ws != nil {
		proc.ConsoleWidth, proc.ConsoleHeight = ws.Col, ws.Row
	}
	return &consoleRequest{parent: parent, child: child}, nil
}

// started closes rkt's copy of the container's end: once the container has sent the master
// (or died), receive does not wait for anything else.
func (r *consoleRequest) started() { r.child.Close() }

// close releases the sockets (safe after receive).
func (r *consoleRequest) close() {
	r.child.Close()
	r.parent.Close()
}

// receive returns the pty master, non-blocking so that the Go poller can interrupt reads.
func (r *consoleRequest) receive() (*os.File, error) {
	r.started()
	oob := make([]byte, unix.CmsgSpace(4))
	buf := make([]byte, 4096) // the pty's name
	var n, oobn int
	err := control(r.parent, func(fd int) error {
		for {
			var err error
			n, oobn, _, _, err = unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
			if err != unix.EINTR {
				return err
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	if n == 0 && oobn == 0 {
		return nil, errors.New("receive console: the container closed the socket without sending one")
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive console: bad control message (%d, %v)", len(msgs), err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive console: want one descriptor, got %d (%v)", len(fds), err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receive console: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), string(buf[:n])), nil
}

// console is a pty master attached to the caller's stdin and stdout.
type console struct {
	master  *os.File
	term    *os.File    // whose size the pty follows; nil when the caller has no terminal
	raw     *os.File    // stdin, put in raw mode
	saved   *term.State // stdin's mode before
	winch   chan os.Signal
	stop    chan struct{}
	outDone chan struct{}
	once    sync.Once
	err     error // Close's
}

// attachConsole copies stdin to the master and the master to stdout. A terminal stdin goes in
// raw mode (keys, ^C included, reach the container's pty, whose line discipline handles them),
// and the pty follows the caller's window size (SIGWINCH). Close undoes all of it.
func attachConsole(master *os.File, stdin io.Reader, stdout io.Writer) (*console, error) {
	c := &console{master: master, term: sizingTerminal(stdin, stdout), stop: make(chan struct{}), outDone: make(chan struct{})}
	if f := terminalFile(stdin); f != nil {
		if err := control(f, func(fd int) (err error) { c.saved, err = term.MakeRaw(fd); return err }); err != nil {
			return nil, fmt.Errorf("terminal raw mode: %w", err)
		}
		c.raw = f
	}
	if c.term != nil {
		c.winch = make(chan os.Signal, 1)
		signal.Notify(c.winch, unix.SIGWINCH)
		c.resize() // in case the size changed since the pty was made
		go func() {
			for {
				select {
				case <-c.winch:
					c.resize()
				case <-c.stop:
					return
				}
			}
		}()
	}
	go c.copyOut(stdout)
	if stdin != nil {
		// This goroutine can stay blocked reading stdin after Close; the next write fails,
		// which ends it: there is nobody left to tell.
		go func() { _, _ = io.Copy(master, stdin) }()
	}
	return c, nil
}

// resize gives the pty the caller's terminal size; the kernel sends SIGWINCH to the pty's
// foreground process group when it changes.
func (c *console) resize() {
	ws := winsize(c.term)
	if ws == nil {
		return
	}
	// Best effort: a pty that keeps its old size still works, and the next SIGWINCH retries.
	_ = control(c.master, func(fd int) error { return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) })
}

// follow gives the pty each size received until sizes is closed or the console is.
func (c *console) follow(sizes <-chan WindowSize) {
	for {
		select {
		case ws, ok := <-sizes:
			if !ok {
				return
			}
			if ws.Rows == 0 || ws.Cols == 0 {
				continue
			}
			// Best effort, as resize: a closed master or a refused size leaves the pty as it was.
			_ = control(c.master, func(fd int) error {
				return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Cols})
			})
		case <-c.outDone:
			return
		}
	}
}

// copyOut copies the pty's output until every slave descriptor is closed (EIO), or until
// Close, which ends a blocked read with a past deadline; what the pty still holds then is
// drained without blocking, so that nothing the command wrote before it exited is lost even
// when a child it left keeps the pty open.
func (c *console) copyOut(w io.Writer) {
	defer close(c.outDone)
	buf := make([]byte, 32<<10)
	out := func(b []byte) {
		if w != nil {
			if _, err := w.Write(b); err != nil {
				w = nil // keep reading, so the command never blocks on a full pty
			}
		}
	}
	for {
		n, err := c.master.Read(buf)
		if n > 0 {
			out(buf[:n])
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil {
			return
		}
	}
	// A non-blocking read of a pty master first flushes the kernel's pending input to it.
	// The drain ends with an error by design (EAGAIN once it is empty, EIO without slaves).
	_ = control(c.master, func(fd int) error {
		for total := 0; total < 16<<20; {
			n, err := unix.Read(fd, buf)
			if err == unix.EINTR {
				continue
			}
			if n <= 0 || err != nil {
				return err
			}
			out(buf[:n])
			total += n
		}
		return nil
	})
}

// Close is called once the command has exited: it copies what is left of its output, stops
// following the window size, restores the caller's terminal and closes the master. Its error
// says that the caller's terminal was left in raw mode.
func (c *console) Close() error {
	c.once.Do(func() {
		if c.master.SetReadDeadline(time.Now()) == nil {
			<-c.outDone
		}
		if c.winch != nil {
			signal.Stop(c.winch)
			close(c.stop)
		}
		if c.raw != nil {
			if err := control(c.raw, func(fd int) error { return term.Restore(fd, c.saved) }); err != nil {
				c.err = fmt.Errorf("restore terminal %s: %w", c.raw.Name(), err)
			}
		}
		c.master.Close()
	})
	return c.err
}
