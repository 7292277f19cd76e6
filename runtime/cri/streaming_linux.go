package cri

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// dialLoopback connects to port on localhost (127.0.0.1, else ::1) in the network
// namespace that the file netns pins, or in rktlet's own for "". A socket belongs to the
// namespace it was made in: the dial runs on an OS thread of its own that joins the
// namespace and is thrown away afterwards (it never runs another goroutine), so that no
// connection is ever made through the host's namespace by mistake.
func dialLoopback(ctx context.Context, netns string, port int) (net.Conn, error) {
	dial := func() (net.Conn, error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		conn, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return conn, nil
		}
		if conn6, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", strconv.Itoa(port))); err6 == nil {
			return conn6, nil
		}
		return nil, err
	}
	if netns == "" {
		return dial()
	}
	f, err := os.Open(netns)
	if err != nil {
		return nil, fmt.Errorf("network namespace: %w", err)
	}
	defer f.Close()
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, in the sandbox's namespace, ends with this goroutine.
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("join network namespace %s: %w", netns, err)}
			return
		}
		conn, err := dial()
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}
