package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"

	"github.com/cairn-os/cairn/runtime/podapi"
	"github.com/cairn-os/cairn/runtime/stage1"
)

// Streaming: Exec, Attach and PortForward answer with the URL of a session on rktlet's
// streaming server (k8s.io/cri-streaming, kubelet's own), which the client (kubelet's
// proxy, crictl) then opens with SPDY or websockets. The server calls back into
// streamRuntime: an exec is stage1.Enter, as ExecSync's; an attach is the sandbox
// supervisor's (podapi); a port-forward dials the port inside the sandbox's network
// namespace.

// DefaultStreamAddress is where the streaming server listens unless told otherwise:
// loopback, on a port the kernel picks, as containerd's.
const DefaultStreamAddress = "127.0.0.1"

// streamServer is the streaming server and the HTTP server it runs in.
type streamServer struct {
	streaming.Server
	http *http.Server
	ln   net.Listener
	// conns are the connections open, sessions included: the HTTP server forgets a
	// connection once it is hijacked (as every session's is), so close ends them itself.
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// startStreaming listens on addr:port ("0" for any) and serves streaming sessions.
func (s *Server) startStreaming(addr, port string) (*streamServer, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, port))
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = ln.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr}
	ss, err := streaming.NewServer(cfg, streamRuntime{s})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	srv := &streamServer{Server: ss, ln: ln, conns: map[net.Conn]struct{}{}}
	srv.http = &http.Server{Handler: ss, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		if err := srv.http.Serve(trackedListener{Listener: ln, s: srv}); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("streaming server", "err", err)
		}
	}()
	return srv, nil
}

// close stops serving and closes every connection, sessions included; what a session
// runs sees its streams fail.
func (ss *streamServer) close() error {
	err := ss.http.Close()
	ss.mu.Lock()
	conns := make([]net.Conn, 0, len(ss.conns))
	for c := range ss.conns {
		conns = append(conns, c)
	}
	ss.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	return err
}

// trackedListener records the connections it accepts in s.conns until they are closed.
type trackedListener struct {
	net.Listener
	s *streamServer
}

func (l trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.conns[tc] = struct{}{}
	l.s.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	s    *streamServer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// StreamAddr is the address the streaming server listens on.
func (s *Server) StreamAddr() net.Addr { return s.stream.ln.Addr() }

// Exec returns the URL of an exec session in a running container.
func (s *Server) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	if _, _, _, err := s.runningApp(req.GetContainerId()); err != nil {
		return nil, err
	}
	if len(req.GetCmd()) == 0 || req.GetCmd()[0] == "" {
		return nil, invalidf("no command to run")
	}
	return s.stream.GetExec(req)
}

// Attach returns the URL of an attach session to a running container's stdio.
func (s *Server) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	c, _, _, err := s.runningApp(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if req.GetStdin() && !req.GetStdout() && !req.GetStderr() && !c.stdin && !c.tty {
		return nil, invalidf("attach to container %s: it was created without stdin, and no output was asked for", c.id)
	}
	return s.stream.GetAttach(req)
}

// PortForward returns the URL of a port-forward session into a ready sandbox's network.
func (s *Server) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	if _, err := s.readySandbox(req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, invalidf("port %d: want 1 to 65535", p)
		}
	}
	return s.stream.GetPortForward(req)
}

// readySandbox finds a sandbox whose supervisor runs: NotFound for an unknown one,
// FailedPrecondition for one that is not ready.
func (s *Server) readySandbox(id string) (*sandbox, error) {
	sb, err := s.idx.sandbox(id)
	if err != nil {
		return nil, err
	}
	p, err := s.sandboxPod(sb)
	if err != nil {
		return nil, err
	}
	if sandboxState(p) != runtimeapi.PodSandboxState_SANDBOX_READY {
		return nil, preconditionf("sandbox %s is not ready", sb.id)
	}
	return sb, nil
}

// streamRuntime is what the streaming server's sessions run.
type streamRuntime struct{ s *Server }

// Exec runs cmd in a running container as ExecSync does, on the session's streams; a
// non-zero exit status is an exit error, which the client reports as the command's.
func (r streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	c, p, a, err := r.s.runningApp(id)
	if err != nil {
		return err
	}
	ec := enterCommand(c, a, cmd)
	ec.TTY = tty
	if out != nil {
		ec.Stdout = out
	}
	if errw != nil && !tty {
		ec.Stderr = errw
	}
	if in != nil {
		if tty {
			ec.Stdin = in
		} else {
			// A pipe of rktlet's, not the session's reader, so that the command's end does
			// not wait for the client to close its input.
			pr, pw, err := os.Pipe()
			if err != nil {
				return fmt.Errorf("exec in container %s: stdin: %w", c.id, err)
			}
			defer pr.Close()
			defer pw.Close()
			go func() {
				// Its error is the client's input ending or the command's: either way stdin is done.
				_, _ = io.Copy(pw, in)
				pw.Close()
			}()
			ec.Stdin = pr
		}
	}
	if tty && resize != nil {
		sizes := make(chan stage1.WindowSize)
		done := make(chan struct{})
		defer close(done)
		go forwardSizes(resize, sizes, done)
		ec.Resize = sizes
	}
	code, err := stage1.Enter(ctx, p.Path(), c.app, ec)
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", c.id, err)
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command %q exited with status %d", cmd, code), Code: code}
	}
	return nil
}

// forwardSizes passes terminal sizes on until either side is done.
func forwardSizes(in <-chan remotecommand.TerminalSize, out chan<- stage1.WindowSize, done <-chan struct{}) {
	for {
		select {
		case sz, ok := <-in:
			if !ok {
				return
			}
			select {
			case out <- stage1.WindowSize{Rows: sz.Height, Cols: sz.Width}:
			case <-done:
				return
			}
		case <-done:
			return
		}
	}
}

// Attach connects the session's streams to a running container's stdio, held by its
// sandbox's supervisor: its output from now on, its input if it was created with stdin,
// its window size with a tty. It returns when the container's output ends or, as
// containerd's attach does, when the client's input ends, except with stdin_once and no
// tty: then the container's stdin is closed and its output goes on until it exits.
func (r streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	c, _, _, err := r.s.runningApp(id)
	if err != nil {
		return err
	}
	_, _, _, cl, err := r.s.containerApp(id)
	if err != nil {
		return err
	}
	if cl == nil {
		return preconditionf("container %s: its sandbox is not ready", c.id)
	}
	closeStdin := c.stdinOnce && !c.tty
	o := podapi.AttachOptions{Stdin: in != nil && (c.stdin || c.tty), Stdout: out != nil, Stderr: errw != nil && !c.tty, CloseStdin: closeStdin}
	if !o.Stdin && !o.Stdout && !o.Stderr {
		return invalidf("attach to container %s: none of its streams asked for (it has no stdin)", c.id)
	}
	att, err := cl.Attach(ctx, c.app, o)
	if err != nil {
		return fmt.Errorf("attach to container %s: %w", c.id, err)
	}
	defer att.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		att.Close()
	}()
	if att.TTY && resize != nil {
		go func() {
			for sz := range resize {
				if sz.Width == 0 || sz.Height == 0 {
					continue
				}
				if err := cl.Resize(ctx, c.app, sz.Height, sz.Width); err != nil {
					r.s.log.Debug("attach: resize", "container", c.id, "err", err)
				}
			}
		}()
	}
	if o.Stdin {
		go func() {
			// Its error is the client's input ending or the attachment's: both end the input.
			_, _ = io.Copy(att, in)
			if closeStdin {
				_ = att.CloseInput()
				return
			}
			// The client detached or went away; the container's stdin stays open for the
			// next attach.
			cancel()
		}()
	}
	var stdout, stderr io.Writer
	if out != nil {
		stdout = out
	}
	if errw != nil {
		stderr = errw
	}
	if err := att.Output(stdout, stderr); err != nil && ctx.Err() == nil {
		return fmt.Errorf("attach to container %s: %w", c.id, err)
	}
	return nil
}

// PortForward connects stream to the port on the sandbox's loopback: in its network
// namespace, or the host's for a sandbox on the host's network. It returns when both
// directions are done (or one failed, or a second after one of them ended).
func (r streamRuntime) PortForward(ctx context.Context, id string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	sb, err := r.s.readySandbox(id)
	if err != nil {
		return err
	}
	netns := ""
	if sb.namespaces.GetNetwork() != runtimeapi.NamespaceMode_NODE {
		p, err := r.s.sandboxPod(sb)
		if err != nil {
			return fmt.Errorf("port-forward to sandbox %s: %w", sb.id, err)
		}
		if p == nil {
			return preconditionf("sandbox %s is gone", sb.id)
		}
		netns = stage1.PodNetNS(p.Path())
	}
	conn, err := dialLoopback(ctx, netns, int(port))
	if err != nil {
		return fmt.Errorf("port-forward to sandbox %s port %d: %w", sb.id, port, err)
	}
	defer conn.Close()
	errc := make(chan error, 2)
	go func() {
		_, err := io.Copy(conn, stream)
		// The client's end of input is the port's: the server may still answer.
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		errc <- err
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		errc <- err
	}()
	var first error
	select {
	case first = <-errc:
	case <-ctx.Done():
		return nil
	}
	select {
	case err := <-errc:
		if first == nil {
			first = err
		}
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	if first != nil {
		return fmt.Errorf("port-forward to sandbox %s port %d: %w", sb.id, port, first)
	}
	return nil
}
