package podapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// ErrNoSupervisor says nothing answers on the pod's socket: the pod is not a sandbox, or its
// supervisor has exited (or was killed).
var ErrNoSupervisor = errors.New("no supervisor answers for the pod")

// Client talks to the supervisor of one sandbox pod. Each call is a connection of its own,
// so a Client may be used from several goroutines.
type Client struct {
	// PodDir is the pod's directory (in the run phase), where the socket is.
	PodDir string
}

// call sends req and reads its reply. The connection is returned for attach, which goes on
// using it; it is closed otherwise. Cancelling ctx ends a call that waits (a stop).
func (c *Client) call(ctx context.Context, req *Request, keep bool) (*Reply, *net.UnixConn, *bufio.Reader, error) {
	line, err := EncodeRequest(req)
	if err != nil {
		return nil, nil, nil, err
	}
	conn, err := dial(ctx, c.PodDir)
	if err != nil {
		return nil, nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*Reply, *net.UnixConn, *bufio.Reader, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, nil, nil, err
	}
	if _, err := conn.Write(line); err != nil {
		return fail(fmt.Errorf("send %s: %w", req.Method, err))
	}
	br := bufio.NewReader(conn)
	rep, err := ReadReply(br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%w: it closed the connection", ErrNoSupervisor)
		}
		return fail(fmt.Errorf("%s: %w", req.Method, err))
	}
	if err := rep.Err(); err != nil {
		return fail(err)
	}
	if !keep {
		stop()
		conn.Close()
		return rep, nil, nil, nil
	}
	if !stop() {
		conn.Close()
		return nil, nil, nil, ctx.Err()
	}
	return rep, conn, br, nil
}

func (c *Client) app(ctx context.Context, req *Request) (*AppStatus, error) {
	rep, _, _, err := c.call(ctx, req, false)
	if err != nil {
		return nil, err
	}
	if rep.App == nil {
		return nil, fmt.Errorf("%s: the supervisor's reply has no app", req.Method)
	}
	return rep.App, nil
}

// Add adds an app, prepared up to just before its exec: its root mounted, its container
// created, its process waiting. The app is then in the pod manifest, created.
func (c *Client) Add(ctx context.Context, a *AddRequest) (*AppStatus, error) {
	return c.app(ctx, &Request{Method: MethodAdd, Add: a})
}

// Start execs a created app's command; starting a running app does nothing.
func (c *Client) Start(ctx context.Context, app string) (*AppStatus, error) {
	return c.app(ctx, &Request{Method: MethodStart, App: app})
}

// Stop sends a running app SIGTERM, and SIGKILL after timeout (nil: the pod's stop
// timeout), and returns once it has exited. Stopping an app that does not run does nothing.
func (c *Client) Stop(ctx context.Context, app string, timeout *time.Duration) (*AppStatus, error) {
	return c.app(ctx, &Request{Method: MethodStop, App: app, Timeout: timeout})
}

// Remove stops the app if it runs (as Stop), and takes it out of the pod: its container,
// root, mounts, directory and manifest entry. Its log file stays.
func (c *Client) Remove(ctx context.Context, app string, timeout *time.Duration) error {
	_, _, _, err := c.call(ctx, &Request{Method: MethodRemove, App: app, Timeout: timeout}, false)
	return err
}

// Update replaces a created or running app's cgroup limits.
func (c *Client) Update(ctx context.Context, app string, r *Resources) (*AppStatus, error) {
	return c.app(ctx, &Request{Method: MethodUpdate, App: app, Resources: r})
}

// Resize sets a tty app's window size.
func (c *Client) Resize(ctx context.Context, app string, rows, cols uint16) error {
	_, _, _, err := c.call(ctx, &Request{Method: MethodResize, App: app, Rows: rows, Cols: cols}, false)
	return err
}

// ReopenLogs reopens the app's log file (every app's, for ""), after a log rotation moved
// it: what the app writes next goes to a new file at the log path.
func (c *Client) ReopenLogs(ctx context.Context, app string) error {
	_, _, _, err := c.call(ctx, &Request{Method: MethodReopenLogs, App: app}, false)
	return err
}

// Status returns the supervisor's view of its apps.
func (c *Client) Status(ctx context.Context) ([]AppStatus, error) {
	rep, _, _, err := c.call(ctx, &Request{Method: MethodStatus}, false)
	if err != nil {
		return nil, err
	}
	return rep.Apps, nil
}

// AttachOptions say which of an app's streams to attach to.
type AttachOptions struct {
	Stdin, Stdout, Stderr bool
	// CloseStdin closes the app's stdin when the attachment's input is closed.
	CloseStdin bool
}

// Attach connects to an app's stdio: its output from now on (no history: that is in its
// log), and its input.
func (c *Client) Attach(ctx context.Context, app string, o AttachOptions) (*Attachment, error) {
	rep, conn, br, err := c.call(ctx, &Request{Method: MethodAttach, App: app,
		Stdin: o.Stdin, Stdout: o.Stdout, Stderr: o.Stderr, CloseStdin: o.CloseStdin}, true)
	if err != nil {
		return nil, err
	}
	return &Attachment{TTY: rep.TTY, conn: conn, r: br}, nil
}

// Attachment is an attach connection to an app.
type Attachment struct {
	// TTY says the app runs on a terminal: Output copies its raw bytes (stdout and stderr
	// are one), and input goes to the terminal.
	TTY  bool
	conn *net.UnixConn
	r    *bufio.Reader
}

// Write sends input to the app.
func (a *Attachment) Write(p []byte) (int, error) { return a.conn.Write(p) }

// CloseInput says the input has ended (half-closes the connection): the app's stdin is
// closed if the attach asked for it (CloseStdin); output goes on.
func (a *Attachment) CloseInput() error { return a.conn.CloseWrite() }

// Output copies the app's output to stdout and stderr until it ends: the app has exited
// (and its output was read), or it was removed. On a tty everything goes to stdout.
func (a *Attachment) Output(stdout, stderr io.Writer) error {
	if a.TTY {
		if stdout == nil {
			stdout = io.Discard
		}
		_, err := io.Copy(stdout, a.r)
		return err
	}
	return Demux(a.r, stdout, stderr)
}

// Close ends the attachment; the app goes on.
func (a *Attachment) Close() error { return a.conn.Close() }
