package podapi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeSupervisor answers on the socket of dir: start of "web" works, anything else is not
// found; attach echoes stdin to stdout and says "bye" on stderr when its input ends.
func fakeSupervisor(t *testing.T, dir string) {
	ln, err := Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); RemoveSocket(dir) })
	go func() {
		for {
			conn, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				req, err := ReadRequest(br)
				if err != nil {
					WriteReply(conn, ErrorReply(err))
					return
				}
				if req.App != "web" && req.Method != MethodStatus {
					WriteReply(conn, ErrorReply(fmt.Errorf("app %s: %w", req.App, ErrNotFound)))
					return
				}
				switch req.Method {
				case MethodStart:
					WriteReply(conn, &Reply{App: &AppStatus{Name: "web", State: AppRunning}})
				case MethodStop:
					time.Sleep(time.Hour) // a stop that never ends: the client's context does
				case MethodAttach:
					WriteReply(conn, &Reply{})
					buf := make([]byte, 100)
					for {
						n, err := br.Read(buf)
						if n > 0 {
							WriteFrame(conn, Stdout, buf[:n])
						}
						if err != nil {
							WriteFrame(conn, Stderr, []byte("bye"))
							return
						}
					}
				default:
					WriteReply(conn, &Reply{Apps: []AppStatus{{Name: "web"}}})
				}
			}()
		}
	}()
}

func TestClient(t *testing.T) {
	// Deeper than a sockaddr holds: bind and connect go through the directory's descriptor.
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if len(SocketPath(dir)) <= maxSunPath {
		t.Fatalf("%s is short enough for a sockaddr: the test misses the long path", dir)
	}
	c := &Client{PodDir: dir}
	ctx := context.Background()
	if _, err := c.Start(ctx, "web"); !errors.Is(err, ErrNoSupervisor) {
		t.Fatalf("start with nobody listening: %v", err)
	}
	fakeSupervisor(t, dir)
	if fi, err := os.Stat(SocketPath(dir)); err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v", fi, err)
	}
	st, err := c.Start(ctx, "web")
	if err != nil || st.State != AppRunning {
		t.Fatalf("start: %v %+v", err, st)
	}
	if _, err := c.Start(ctx, "db"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "app db") {
		t.Fatalf("start of an unknown app: %v", err)
	}
	if _, err := c.Start(ctx, "../x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad name not refused by the client: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := c.Stop(tctx, "web", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stop past its context: %v", err)
	}
	a, err := c.Attach(ctx, "web", AttachOptions{Stdin: true, Stdout: true, Stderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	io.WriteString(a, "hello\n")
	a.CloseInput()
	var out, errs bytes.Buffer
	if err := a.Output(&out, &errs); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello\n" || errs.String() != "bye" {
		t.Fatalf("attach: out %q err %q", out.String(), errs.String())
	}
}

// The socket a killed supervisor left is replaced by the next Listen.
func TestListenReplacesStaleSocket(t *testing.T) {
	dir := t.TempDir()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: SocketPath(dir), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	ln, err := Listen(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if err := RemoveSocket(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(SocketPath(dir)); !os.IsNotExist(err) {
		t.Fatalf("socket left: %v", err)
	}
}
