package cri

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
	"google.golang.org/grpc/codes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// streamingSessions: exec, attach and port-forward through rktlet's streaming server,
// with kubelet's and crictl's own clients (client-go's remotecommand and portforward
// over SPDY).
func streamingSessions(t *testing.T, e *criEnv) {
	pcfg := e.podConfig("streams")
	sb := e.runPod(pcfg)
	ctr := e.run(sb, pcfg, ctrConfig("shell", "exec sleep 3600", func(c *runtimeapi.ContainerConfig) {
		c.Envs = []*runtimeapi.KeyValue{{Key: "GREETING", Value: []byte("hi there")}}
		c.WorkingDir = "/tmp"
	}))
	ctx := e.ctx()

	// exec
	{
		var out, errOut bytes.Buffer
		err := e.execStream(ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"sh", "-c", "echo out; echo err >&2; pwd; echo $GREETING; exit 3"}, Stdout: true, Stderr: true},
			remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
		if code := exitCode(err); code != 3 || out.String() != "out\n/tmp\nhi there\n" || errOut.String() != "err\n" {
			t.Fatalf("exec: code %d (%v), stdout %q, stderr %q", code, err, out.String(), errOut.String())
		}
		out.Reset()
		err = e.execStream(ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"sh", "-c", "cat; echo read all"}, Stdin: true, Stdout: true},
			remotecommand.StreamOptions{Stdin: strings.NewReader("line one\nline two\n"), Stdout: &out})
		if err != nil || out.String() != "line one\nline two\nread all\n" {
			t.Fatalf("exec with stdin: %v, stdout %q", err, out.String())
		}
		// A command that ends before its input does not wait for it.
		out.Reset()
		pr, pw := io.Pipe()
		defer pw.Close()
		err = e.execStream(ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"echo", "done"}, Stdin: true, Stdout: true},
			remotecommand.StreamOptions{Stdin: pr, Stdout: &out})
		if err != nil || out.String() != "done\n" {
			t.Fatalf("exec with open stdin: %v, stdout %q", err, out.String())
		}
	}

	// exec tty
	{
		var out bytes.Buffer
		sizes := &sizeQueue{sizes: []remotecommand.TerminalSize{{Width: 100, Height: 40}}}
		// The shell waits for the size the client sent, then says what it is: a terminal.
		script := `while [ "$(stty size 2>/dev/null)" != "40 100" ]; do sleep 0.05; done; stty size; [ -t 0 ] && [ -t 1 ] && echo on a tty; exit 7`
		err := e.execStream(ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"sh", "-c", script}, Tty: true, Stdout: true},
			remotecommand.StreamOptions{Stdout: &out, Tty: true, TerminalSizeQueue: sizes})
		if code := exitCode(err); code != 7 || out.String() != "40 100\r\non a tty\r\n" {
			t.Fatalf("exec with a tty: code %d (%v), output %q", code, err, out.String())
		}
		// Input typed on the terminal reaches the command.
		out.Reset()
		err = e.execStream(ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"sh", "-c", "read l; echo got $l"}, Tty: true, Stdin: true, Stdout: true},
			remotecommand.StreamOptions{Stdin: strings.NewReader("typed\n"), Stdout: &out, Tty: true})
		if err != nil || !strings.HasSuffix(out.String(), "got typed\r\n") {
			t.Fatalf("exec with a tty and stdin: %v, output %q", err, out.String())
		}
	}

	// attach tty
	{
		tty := e.run(sb, pcfg, ctrConfig("tty", "", func(c *runtimeapi.ContainerConfig) {
			c.Command = []string{"/bin/sh"}
			c.Stdin, c.Tty = true, true
		}))
		in, typed := io.Pipe()
		out := &syncBuffer{}
		sizes := &sizeQueue{sizes: []remotecommand.TerminalSize{{Width: 90, Height: 30}}}
		done := make(chan error, 1)
		go func() {
			done <- e.attachStream(ctx, &runtimeapi.AttachRequest{ContainerId: tty, Stdin: true, Stdout: true, Tty: true},
				remotecommand.StreamOptions{Stdin: in, Stdout: out, Tty: true, TerminalSizeQueue: sizes})
		}()
		fmt.Fprintf(typed, "while [ \"$(stty size 2>/dev/null)\" != \"30 90\" ]; do sleep 0.05; done; echo size-$(stty size | tr ' ' x)\n")
		out.waitFor(t, "size-30x90")
		fmt.Fprintf(typed, "echo sum-$((6*7)); exit 5\n")
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("attach: %v (output %q)", err, out.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("attach did not end with the shell (output %q)", out.String())
		}
		typed.Close()
		if !strings.Contains(out.String(), "sum-42") {
			t.Fatalf("attach output %q", out.String())
		}
		if s := e.waitExited(tty); s.ExitCode != 5 {
			t.Fatalf("attached shell: %v", s)
		}
	}

	// attach
	{
		// stdin_once: the end of the attached input closes the container's stdin.
		cat := e.run(sb, pcfg, ctrConfig("cat", "cat; echo stdin closed >&2", func(c *runtimeapi.ContainerConfig) {
			c.Stdin, c.StdinOnce = true, true
		}))
		var out, errOut bytes.Buffer
		err := e.attachStream(ctx, &runtimeapi.AttachRequest{ContainerId: cat, Stdin: true, Stdout: true, Stderr: true},
			remotecommand.StreamOptions{Stdin: strings.NewReader("ping\n"), Stdout: &out, Stderr: &errOut})
		if err != nil || out.String() != "ping\n" || errOut.String() != "stdin closed\n" {
			t.Fatalf("attach: %v, stdout %q, stderr %q", err, out.String(), errOut.String())
		}
		if s := e.waitExited(cat); s.ExitCode != 0 {
			t.Fatalf("attached cat: %v", s)
		}
		// Without stdin_once, the end of the client's input ends the attach, and the
		// container's stdin stays open for the next one.
		cat = e.run(sb, pcfg, ctrConfig("cat2", "cat", func(c *runtimeapi.ContainerConfig) { c.Stdin = true }))
		for _, word := range []string{"first", "second"} {
			in, typed := io.Pipe()
			out := &syncBuffer{}
			done := make(chan error, 1)
			go func() {
				done <- e.attachStream(ctx, &runtimeapi.AttachRequest{ContainerId: cat, Stdin: true, Stdout: true},
					remotecommand.StreamOptions{Stdin: in, Stdout: out})
			}()
			fmt.Fprintln(typed, word)
			out.waitFor(t, word+"\n")
			typed.Close()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("attach %s: %v", word, err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("attach %s did not end with its input", word)
			}
		}
		if s := e.status(cat); s.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("cat after two attaches: %v", s)
		}
	}

	// port-forward
	{
		// The host's loopback answers on the same port: a forward that went through the
		// host's namespace would get this.
		host := serveText(t, "127.0.0.1:18090", "the host\n")
		netpod := e.podConfig("fwd")
		fsb := e.runPod(netpod)
		web := e.run(fsb, netpod, ctrConfig("web", "mkdir /www; echo the pod > /www/index.html; exec httpd -f -p 127.0.0.1:18090 -h /www"))
		// A forward to a port where nothing listens yet ends the client's forwarding, as
		// kubectl port-forward's does.
		e.exec(web, "sh", "-c", "until wget -q -O /dev/null http://127.0.0.1:18090/; do sleep 0.05; done")
		if body := e.forwardGet(ctx, fsb, 18090); body != "the pod\n" {
			t.Fatalf("port-forward into the pod's namespace: %q", body)
		}
		// A sandbox on the host's network reaches the host's loopback.
		hostPod := e.podConfig("fwdhost", func(c *runtimeapi.PodSandboxConfig) {
			c.Linux.SecurityContext.NamespaceOptions.Network = runtimeapi.NamespaceMode_NODE
		})
		hsb := e.runPod(hostPod)
		if body := e.forwardGet(ctx, hsb, 18090); body != "the host\n" {
			t.Fatalf("port-forward to a sandbox on the host's network: %q", body)
		}
		host.Close()
		for _, id := range []string{fsb, hsb} {
			if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// rktlet's stop ends the sessions open (the containers go on).
	{
		in, typed := io.Pipe()
		defer typed.Close()
		out := &syncBuffer{}
		done := make(chan error, 1)
		go func() {
			done <- e.execStream(ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"sh", "-c", "echo ready; cat"}, Stdin: true, Stdout: true},
				remotecommand.StreamOptions{Stdin: in, Stdout: out})
		}()
		out.waitFor(t, "ready\n")
		e.stop()
		select {
		case <-done:
			// Its input still open, cat ends only with the connection; the client may see
			// that as an error or as an end without a status.
		case <-time.After(10 * time.Second):
			t.Fatal("exec session still open after rktlet stopped")
		}
		e.start()
	}

	// errors
	{
		_, err := e.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: "ffffffff", Cmd: []string{"true"}, Stdout: true})
		wantCode(t, "exec in an unknown container", err, codes.NotFound)
		_, err = e.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"true"}})
		wantCode(t, "exec without a stream", err, codes.InvalidArgument)
		_, err = e.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"true"}, Tty: true, Stdout: true, Stderr: true})
		wantCode(t, "exec with a tty and stderr", err, codes.InvalidArgument)
		_, err = e.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Stdout: true})
		wantCode(t, "exec without a command", err, codes.InvalidArgument)
		_, err = e.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: "ffffffff", Stdout: true})
		wantCode(t, "attach to an unknown container", err, codes.NotFound)
		_, err = e.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: ctr})
		wantCode(t, "attach without a stream", err, codes.InvalidArgument)
		_, err = e.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: ctr, Stdin: true})
		wantCode(t, "attach to the stdin of a container without one", err, codes.InvalidArgument)
		_, err = e.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: "ffffffff", Port: []int32{80}})
		wantCode(t, "port-forward to an unknown sandbox", err, codes.NotFound)
		_, err = e.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sb, Port: []int32{70000}})
		wantCode(t, "port-forward to port 70000", err, codes.InvalidArgument)
		if _, err := e.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: ctr, Timeout: 0}); err != nil {
			t.Fatal(err)
		}
		_, err = e.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: ctr, Cmd: []string{"true"}, Stdout: true})
		wantCode(t, "exec in a stopped container", err, codes.FailedPrecondition)
		_, err = e.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: ctr, Stdout: true})
		wantCode(t, "attach to a stopped container", err, codes.FailedPrecondition)
		if _, err := e.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb}); err != nil {
			t.Fatal(err)
		}
		_, err = e.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sb, Port: []int32{80}})
		wantCode(t, "port-forward to a stopped sandbox", err, codes.FailedPrecondition)
	}
	if _, err := e.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb}); err != nil {
		t.Fatal(err)
	}
}

// execStream asks for an exec session and runs it with client-go's SPDY executor.
func (e *criEnv) execStream(ctx context.Context, req *runtimeapi.ExecRequest, o remotecommand.StreamOptions) error {
	r, err := e.rt.Exec(ctx, req)
	if err != nil {
		return fmt.Errorf("exec %q: %w", req.Cmd, err)
	}
	return streamSession(ctx, r.Url, o)
}

// attachStream asks for an attach session and runs it.
func (e *criEnv) attachStream(ctx context.Context, req *runtimeapi.AttachRequest, o remotecommand.StreamOptions) error {
	r, err := e.rt.Attach(ctx, req)
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	return streamSession(ctx, r.Url, o)
}

func streamSession(ctx context.Context, rawURL string, o remotecommand.StreamOptions) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewSPDYExecutor(&restclient.Config{}, http.MethodPost, u)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return ex.StreamWithContext(ctx, o)
}

// forwardGet forwards a local port to port in the sandbox, as kubectl port-forward does,
// and GETs / through it.
func (e *criEnv) forwardGet(ctx context.Context, sb string, port int32) string {
	e.t.Helper()
	r, err := e.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sb, Port: []int32{port}})
	if err != nil {
		e.t.Fatalf("port-forward: %v", err)
	}
	u, err := url.Parse(r.Url)
	if err != nil {
		e.t.Fatal(err)
	}
	transport, upgrader, err := spdy.RoundTripperFor(&restclient.Config{})
	if err != nil {
		e.t.Fatal(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	var log syncBuffer
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, &log, &log)
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	defer func() {
		close(stop)
		<-done
	}()
	select {
	case <-ready:
	case err := <-done:
		e.t.Fatalf("port-forward: %v (%s)", err, log.String())
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		e.t.Fatalf("forwarded ports %v %v", ports, err)
	}
	body, err := testenv.HTTPGet(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/", ports[0].Local))
	if err != nil {
		e.t.Fatalf("GET through the port-forward: %v (%s)", err, log.String())
	}
	return body
}

// serveText answers every request on addr with text.
func serveText(t *testing.T, addr, text string) *http.Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, text) }), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv
}

// exitCode is the exit status a session's error reports, 0 for none and -1 for another
// error.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee utilexec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitStatus()
	}
	return -1
}

// sizeQueue hands the client terminal sizes, then says there are no more.
type sizeQueue struct {
	mu    sync.Mutex
	sizes []remotecommand.TerminalSize
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sizes) == 0 {
		return nil
	}
	sz := q.sizes[0]
	q.sizes = q.sizes[1:]
	return &sz
}

// syncBuffer is a buffer that a session writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer holds text.
func (b *syncBuffer) waitFor(t *testing.T, text string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(b.String(), text); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in %q", text, b.String())
		}
	}
}
