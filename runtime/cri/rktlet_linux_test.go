package cri

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cairn-os/cairn/internal/testenv"
)

// rktlet as systemd runs it: on the socket systemd passes (LISTEN_FDS), saying READY=1
// once it serves and STOPPING=1 on SIGTERM, after which it exits 0.
func TestRktletUnderSystemd(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "rktlet.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ul := ln.(*net.UnixListener)
	lf, err := ul.File()
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false) // the socket is systemd's: it stays for the service
	ul.Close()
	notify := filepath.Join(dir, "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// systemd sets LISTEN_PID to the service's own pid: the shell's, which exec keeps.
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, os.Args[0], rktletMain,
		"--dir="+filepath.Join(dir, "rkt"), "--cni-conf-dir="+filepath.Join(dir, "net.d"), "--listen=unix:///nonexistent/never.sock", "--log-level=debug")
	cmd.ExtraFiles = []*os.File{lf}
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify)
	var stderr testenv.Buffer // written by rktlet while the test reads it
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	buf := make([]byte, 256)
	nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, _, err := nc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "READY=1" {
		t.Fatalf("notification %q %v; stderr %s", buf[:n], err, stderr.String())
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := runtimeapi.NewRuntimeServiceClient(conn).Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil || v.RuntimeName != "rktlet" {
		t.Fatalf("version over systemd's socket: %v %v", v, err)
	}
	if _, err := runtimeapi.NewImageServiceClient(conn).ListImages(ctx, &runtimeapi.ListImagesRequest{}); err != nil {
		t.Fatalf("images: %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n, _, err = nc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "STOPPING=1" {
		t.Fatalf("notification %q %v", buf[:n], err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("rktlet after SIGTERM: %v; stderr %s", err, stderr.String())
	}
}

// Without systemd rktlet listens where --listen says, 0600, replacing a stale socket but
// not one that a server answers on; a second rktlet on the same data directory is refused.
func TestRktletListen(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "run", "rktlet.sock")
	os.MkdirAll(filepath.Dir(sock), 0o700)
	os.WriteFile(sock, nil, 0o644) // stale
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testenv.Buffer // written by rktlet while the test reads it
	done := make(chan int, 1)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	streamAddr := free.Addr().String()
	free.Close()
	_, streamPort, _ := net.SplitHostPort(streamAddr)
	args := []string{"--dir=" + filepath.Join(dir, "rkt"), "--cni-conf-dir=" + filepath.Join(dir, "net.d"), "--listen=unix://" + sock,
		"--stream-address=127.0.0.1", "--stream-port=" + streamPort}
	go func() { done <- Run(ctx, args, os.Stdout, &stderr) }()
	exited := false
	defer func() { // a failed check stops rktlet before its directory is removed
		if !exited {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
			}
		}
	}()
	// The socket listens before the server is made (a second rktlet is refused first by the
	// socket), and the streaming server's port once it is: wait for both.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			if c, err = net.Dial("tcp", streamAddr); err == nil {
				c.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket or no streaming server on %s: %v; %s", streamAddr, err, stderr.String())
		}
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v", fi.Mode(), err)
	}
	var second bytes.Buffer
	if code := Run(context.Background(), args, os.Stdout, &second); code == 0 || !strings.Contains(second.String(), "another server answers") {
		t.Fatalf("a second rktlet on the same socket: %d %s", code, second.String())
	}
	other := []string{args[0], args[1], "--listen=unix://" + filepath.Join(dir, "other.sock")}
	second.Reset()
	if code := Run(context.Background(), other, os.Stdout, &second); code == 0 || !strings.Contains(second.String(), "another one runs") {
		t.Fatalf("a second rktlet on the same data directory: %d %s", code, second.String())
	}
	cancel()
	exited = true
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, bad := range [][]string{{"--listen=tcp://0.0.0.0:1"}, {"extra"}, {"--log-level=loud"}, {"--registry-mirror=x"}, {"--stream-port=none"}} {
		var out bytes.Buffer
		if code := Run(context.Background(), append([]string{"--dir=" + filepath.Join(dir, "rkt2")}, bad...), &out, &out); code == 0 {
			t.Errorf("%v accepted", bad)
		}
	}
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"--version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "rktlet ") {
		t.Fatalf("--version: %d %q", code, out.String())
	}
}
