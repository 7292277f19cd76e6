package stage1

import (
	"fmt"
	"io"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Terminal is the caller's terminal while it is attached to a sandbox app's tty (rkt attach
// --mode=tty): in raw mode, so that keys reach the app's pty as typed, and followed in size.
type Terminal struct {
	in    *os.File // put in raw mode; nil if stdin is not a terminal
	size  *os.File // whose size the app's pty follows
	saved *term.State
}

// OpenTerminal returns the caller's terminal (stdin's, else stdout's for the size), or nil
// when neither is one.
func OpenTerminal(stdin io.Reader, stdout io.Writer) *Terminal {
	t := &Terminal{in: terminalFile(stdin), size: sizingTerminal(stdin, stdout)}
	if t.size == nil {
		return nil
	}
	return t
}

// MakeRaw puts stdin, if it is a terminal, in raw mode until Restore.
func (t *Terminal) MakeRaw() error {
	if t.in == nil {
		return nil
	}
	if err := control(t.in, func(fd int) (err error) { t.saved, err = term.MakeRaw(fd); return err }); err != nil {
		return fmt.Errorf("terminal raw mode: %w", err)
	}
	return nil
}

// Restore puts stdin back as it was before MakeRaw.
func (t *Terminal) Restore() error {
	if t.in == nil || t.saved == nil {
		return nil
	}
	if err := control(t.in, func(fd int) error { return term.Restore(fd, t.saved) }); err != nil {
		return fmt.Errorf("restore terminal %s: %w", t.in.Name(), err)
	}
	return nil
}

// Size is the terminal's window size; ok is false when it has none.
func (t *Terminal) Size() (rows, cols uint16, ok bool) {
	ws := winsize(t.size)
	if ws == nil {
		return 0, 0, false
	}
	return ws.Row, ws.Col, true
}

// WatchSize calls resize with the terminal's size now and whenever it changes (SIGWINCH),
// until stop is called.
func (t *Terminal) WatchSize(resize func(rows, cols uint16)) (stop func()) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	done := make(chan struct{})
	if rows, cols, ok := t.Size(); ok {
		resize(rows, cols)
	}
	go func() {
		for {
			select {
			case <-winch:
				if rows, cols, ok := t.Size(); ok {
					resize(rows, cols)
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
	}
}
