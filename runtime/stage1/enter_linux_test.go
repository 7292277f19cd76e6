package stage1_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// openPty opens a pty pair, as a terminal emulator or sshd would for a login.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var n uint32
	if err := stage1.FDControl(master, func(fd int) (err error) {
		if err = unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return err
		}
		n, err = unix.IoctlGetUint32(fd, unix.TIOCGPTN)
		return err
	}); err != nil {
		t.Fatalf("unlockpt/ptsname: %v", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty's slave: %v", err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// onTerminal is rkt running on a pty of its own, as in an interactive login: the slave is its
// stdin, stdout, stderr and controlling terminal; the test is the terminal emulator.
type onTerminal struct {
	t       *testing.T
	master  *os.File
	slave   *os.File
	out     testenv.Buffer
	outDone chan struct{}
	cmd     *exec.Cmd
}

// startOnTerminal starts c on a new terminal of the given size. The terminal's output is read
// once gate is closed (nil: at once).
func startOnTerminal(t *testing.T, c *exec.Cmd, rows, cols uint16, gate <-chan struct{}) *onTerminal {
	t.Helper()
	master, slave := openPty(t)
	c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	o := &onTerminal{t: t, master: master, slave: slave, outDone: make(chan struct{}), cmd: c}
	o.resize(rows, cols)
	go func() {
		defer close(o.outDone)
		if gate != nil {
			<-gate
		}
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			o.out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	})
	return o
}

// resize gives the terminal a new size, as a terminal emulator does when its window changes.
func (o *onTerminal) resize(rows, cols uint16) {
	o.t.Helper()
	if err := stage1.FDControl(o.slave, func(fd int) error {
		return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}); err != nil {
		o.t.Fatal(err)
	}
}

// termios is the terminal's mode.
func (o *onTerminal) termios() *unix.Termios {
	o.t.Helper()
	var st *unix.Termios
	if err := stage1.FDControl(o.slave, func(fd int) (err error) { st, err = unix.IoctlGetTermios(fd, unix.TCGETS); return err }); err != nil {
		o.t.Fatal(err)
	}
	return st
}

// waitFor waits until the terminal shows s. The limit only keeps a broken rkt from hanging
// the test.
func (o *onTerminal) waitFor(s string) {
	o.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(o.out.String(), s) {
		if time.Now().After(deadline) {
			o.t.Fatalf("terminal never showed %q; it shows %q", s, o.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait waits for rkt to exit, checks that it gave the terminal its mode back, and returns
// rkt's exit code and everything the terminal showed.
func (o *onTerminal) wait() (int, string) {
	o.t.Helper()
	done := make(chan error, 1)
	go func() { done <- o.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		o.cmd.Process.Kill()
		o.t.Fatalf("rkt did not exit; the terminal shows %q", o.out.String())
	}
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		o.t.Fatal(err)
	}
	if st := o.termios(); st.Lflag&(unix.ICANON|unix.ECHO) != unix.ICANON|unix.ECHO || st.Oflag&unix.OPOST == 0 {
		o.t.Errorf("rkt left the terminal in raw mode (lflag %#x oflag %#x)", st.Lflag, st.Oflag)
	}
	// With the last slave descriptor closed, the master reads what is left, then EIO.
	o.slave.Close()
	select {
	case <-o.outDone:
	case <-time.After(30 * time.Second):
		// Only if a process in the container holds the terminal itself: rkt passed it in.
		o.master.SetReadDeadline(time.Now())
		<-o.outDone
		o.t.Errorf("the terminal is still open in another process after rkt exited")
	}
	return code, o.out.String()
}

// rkt enter on a terminal runs the command on a pty of its own in the container, with the
// terminal's size, passes keys in and output out, follows window size changes, and returns
// the command's exit code after all of its output. Without a terminal, plain streams.
func TestEnterTerminal(t *testing.T) {
	e := newEnv(t)
	id, _ := e.start("--net=none", e.aci, "--exec=/bin/sleep", "--", "100000")
	// Registered after start's cleanup, so it runs first: stop the pod, whatever happened.
	t.Cleanup(func() { e.run("stop", "--force", id) })

	t.Run("pty", func(t *testing.T) {
		o := startOnTerminal(t, e.cmd("enter", id, "/bin/sh", "-c", "tty; stty size; echo ready; read line; echo got-$line; exit 3"), 37, 101, nil)
		o.waitFor("ready")
		// rkt's terminal is raw while the command runs: the container's own pty does the line
		// editing and echo (a rkt that handed its terminal through would leave it cooked).
		if st := o.termios(); st.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 || st.Oflag&unix.OPOST != 0 {
			t.Errorf("rkt's terminal is not raw while the command runs (lflag %#x oflag %#x)", st.Lflag, st.Oflag)
		}
		// Enter, as a terminal sends it in raw mode: the container's pty turns it into \n.
		if _, err := o.master.Write([]byte("typed\r")); err != nil {
			t.Fatal(err)
		}
		code, out := o.wait()
		if code != 3 {
			t.Errorf("rkt enter: exit code %d, want 3; terminal shows %q", code, out)
		}
		for _, want := range []string{"/dev/pts/", "37 101\r\n", "got-typed\r\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("terminal shows %q, want %q in it", out, want)
			}
		}
	})

	t.Run("window size follows", func(t *testing.T) {
		o := startOnTerminal(t, e.cmd("enter", id, "/bin/sh", "-c", "trap 'stty size; exit 4' WINCH; echo ready; while :; do sleep 0.1; done"), 24, 80, nil)
		o.waitFor("ready")
		o.resize(50, 132)
		code, out := o.wait()
		if code != 4 || !strings.Contains(out, "50 132\r\n") {
			t.Errorf("after a resize to 50x132: exit code %d (want 4), terminal shows %q", code, out)
		}
	})

	t.Run("output after exit", func(t *testing.T) {
		// The command writes 29 KB to a terminal that buffers about 18 KB and is not
		// read until the command has exited: the rest is still in the container's pty (or in
		// rkt) then, and rkt must copy it before it returns.
		marker := filepath.Join(e.dir, "pods", "run", id, "apps", "busybox", "upper", "written")
		gate := make(chan struct{})
		o := startOnTerminal(t, e.cmd("enter", id, "/bin/sh", "-c", "seq 1 5000; echo last-line; echo > /written; exit 0"), 24, 80, gate)
		deadline := time.Now().Add(30 * time.Second)
		for !fileExists(marker) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		// Time for a rkt that does not wait for the output to exit; a correct one waits for
		// the terminal however long this takes.
		time.Sleep(time.Second)
		close(gate)
		code, out := o.wait()
		if code != 0 || !strings.HasPrefix(out, "1\r\n2\r\n") || !strings.HasSuffix(out, "\r\n4999\r\n5000\r\nlast-line\r\n") || len(out) != 28893+len("last-line\r\n") {
			t.Errorf("exit code %d, terminal shows %d bytes ending %q", code, len(out), out[max(0, len(out)-40):])
		}
	})

	t.Run("child keeps the pty", func(t *testing.T) {
		// rkt enter returns when the command exits, not when the last holder of the pty does.
		o := startOnTerminal(t, e.cmd("enter", id, "/bin/sh", "-c", "(sleep 100000 &); echo bye; exit 7"), 24, 80, nil)
		code, out := o.wait()
		if code != 7 || !strings.Contains(out, "bye\r\n") {
			t.Errorf("exit code %d (want 7), terminal shows %q", code, out)
		}
	})

	t.Run("no terminal", func(t *testing.T) {
		c := e.cmd("enter", id, "/bin/sh", "-c", "tty; read line; echo got-$line; exit 5")
		c.Stdin = strings.NewReader("piped\n")
		var out, errb testenv.Buffer
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 5 {
			t.Fatalf("rkt enter: %v, want exit code 5 (stderr %q)", err, errb.String())
		}
		if out.String() != "not a tty\ngot-piped\n" {
			t.Errorf("stdout %q, want %q", out.String(), "not a tty\ngot-piped\n")
		}
	})
}

// rkt run --interactive gives its app the terminal's window size too.
func TestInteractiveWindowSize(t *testing.T) {
	e := newEnv(t)
	o := startOnTerminal(t, e.cmd("run", "--interactive", "--net=none", e.aci, "--exec=/bin/sh", "--", "-c",
		"stty size; trap 'stty size; exit 6' WINCH; echo ready; while :; do sleep 0.1; done"), 33, 99, nil)
	o.waitFor("ready")
	o.resize(44, 111)
	code, out := o.wait()
	if code != 6 || !strings.Contains(out, "33 99\r\n") || !strings.Contains(out, "44 111\r\n") {
		t.Errorf("exit code %d (want 6), terminal shows %q (want 33 99, then 44 111)", code, out)
	}
}
