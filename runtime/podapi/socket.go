package podapi

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
)

// maxSunPath is what fits in a sockaddr_un's sun_path (108 bytes with its terminating NUL).
const maxSunPath = 107

// SocketPath is the supervisor's socket of the pod in podDir.
func SocketPath(podDir string) string { return filepath.Join(podDir, SocketName) }

// inDir calls f with a name for the socket of podDir that fits a sockaddr: its path, or,
// when that is too long (a deep --dir), the path through a descriptor of the directory,
// /proc/self/fd/N/supervisor.sock, which bind and connect resolve like any other.
func inDir(podDir string, f func(addr string) error) error {
	p := SocketPath(podDir)
	if len(p) <= maxSunPath {
		return f(p)
	}
	d, err := os.Open(podDir)
	if err != nil {
		return err
	}
	defer d.Close()
	return f("/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + SocketName)
}

// Listen makes the supervisor's socket in podDir (a stale one from a killed supervisor is
// replaced), readable by its owner only. Closing the listener does not remove the file: its
// name may have been a path through a descriptor that is closed by then; RemoveSocket does.
func Listen(podDir string) (*net.UnixListener, error) {
	p := SocketPath(podDir)
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("supervisor socket: %w", err)
	}
	var ln *net.UnixListener
	err := inDir(podDir, func(addr string) (err error) {
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: addr, Net: "unix"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("supervisor socket %s: %w", p, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("supervisor socket %s: %w", p, err)
	}
	return ln, nil
}

// RemoveSocket removes the supervisor's socket file of podDir.
func RemoveSocket(podDir string) error {
	if err := os.Remove(SocketPath(podDir)); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// dial connects to the supervisor of the pod in podDir.
func dial(ctx context.Context, podDir string) (*net.UnixConn, error) {
	var conn net.Conn
	err := inDir(podDir, func(addr string) (err error) {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "unix", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoSupervisor, err)
	}
	return conn.(*net.UnixConn), nil
}
