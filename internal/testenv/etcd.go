package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// Etcd starts a single-node etcd of the test's own (Debian's etcd-server) on loopback, on
// free ports, with its data in a temporary directory, and returns its client URL. It is
// killed when the test ends. It runs the etcd binary rather than internal/etcdembed so that
// the test binaries importing testenv do not all link etcd's server.
func Etcd(t TB) string {
	t.Helper()
	SkipShort(t, "needs an etcd")
	bin := RequireCommand(t, "etcd")
	dir := t.TempDir()
	var log []byte
	// A free port can be taken by someone else before etcd binds it: try again on new ones.
	for try := range 3 {
		url, logs, err := startEtcd(t, bin, filepath.Join(dir, strconv.Itoa(try)))
		if err == nil {
			return url
		}
		log = fmt.Appendf(log, "try %d: %v\n%s\n", try+1, err, logs)
	}
	t.Fatalf("etcd did not start:\n%s", log)
	return ""
}

// startEtcd runs one etcd with its data and log in dir and waits until it serves clients.
// On failure the process is gone and the log is returned.
func startEtcd(t TB, bin, dir string) (string, []byte, error) {
	ports, err := freePorts(2)
	if err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("etcd dir: %w", err)
	}
	logPath := filepath.Join(dir, "etcd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return "", nil, fmt.Errorf("etcd log: %w", err)
	}
	defer logf.Close()
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	cmd := exec.Command(bin, "--name", "test", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "test="+peer,
		"--logger", "zap", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	killWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		cmd.Process.Kill()
		<-exited
	}
	if err := waitHealthy(client, exited); err != nil {
		stop()
		logs, _ := os.ReadFile(logPath)
		return "", logs, err
	}
	t.Cleanup(stop)
	return client, nil, nil
}

// waitHealthy polls etcd's /health until it reports a leader.
func waitHealthy(client string, exited <-chan struct{}) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := hc.Get(client + "/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`)) {
				return nil
			}
			err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
		}
		select {
		case <-exited:
			return fmt.Errorf("etcd on %s exited", client)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd on %s not healthy after 30s: %w", client, err)
		}
	}
}

// freePorts returns n loopback TCP ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
