// Package clustertest builds flannel clusters on one machine for the root-tier tests and
// benchmarks: network namespaces as hosts, joined by veth pairs to a bridge that lives in
// an "underlay" namespace together with a real etcd (Debian's etcd-server). Nothing is
// added to the root network namespace; everything is removed in t.Cleanup, also on failure.
package clustertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/cairn-os/cairn/flannel/subnetenv"
	"github.com/cairn-os/cairn/internal/testenv"
)

// Underlay addressing inside every cluster (each cluster has its own namespaces, so
// clusters running in parallel do not collide).
const (
	UnderlayPrefix = "192.168.100."
	EtcdIP         = UnderlayPrefix + "1"
	Prefix         = "/coreos.com/network"
)

// Cluster is an underlay namespace with a bridge and an etcd, and the hosts on it.
type Cluster struct {
	T        testenv.TB
	ID       string
	Dir      string
	Flanneld string // binary
	UnderNS  string
	EtcdURL  string

	mu    sync.Mutex
	etcd  *exec.Cmd
	hosts []*Host
	cli   *clientv3.Client
}

// Host is one namespace running flanneld.
type Host struct {
	C          *Cluster
	Index      int
	NS         string
	IP         netip.Addr
	SubnetFile string
	LogFile    string
	Args       []string
	Env        []string // extra environment for flanneld
	Bin        string   // flanneld binary to run instead of the cluster's (a stock flanneld)

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Require checks what a cluster needs, skipping (or failing under CI) without it.
func Require(t testenv.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip")
	testenv.RequireCommand(t, "etcd")
	testenv.RequireCommand(t, "ping")
}

// Run runs a command and fails the test on error.
func Run(t testenv.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// New creates the underlay namespace, its bridge and etcd.
func New(t testenv.TB, flanneld string) *Cluster {
	t.Helper()
	Require(t)
	var b [3]byte
	rand.Read(b[:])
	c := &Cluster{T: t, ID: "fl" + hex.EncodeToString(b[:]), Dir: t.TempDir(), Flanneld: flanneld}
	c.UnderNS = c.ID + "u"
	c.EtcdURL = "http://" + EtcdIP + ":2379"
	Run(t, "ip", "netns", "add", c.UnderNS)
	t.Cleanup(c.cleanup)
	Run(t, "ip", "-n", c.UnderNS, "link", "set", "lo", "up")
	Run(t, "ip", "-n", c.UnderNS, "link", "add", "br0", "type", "bridge")
	Run(t, "ip", "-n", c.UnderNS, "addr", "add", EtcdIP+"/24", "dev", "br0")
	Run(t, "ip", "-n", c.UnderNS, "link", "set", "br0", "up")
	c.StartEtcd()
	return c
}

// StartEtcd starts (or restarts, with the same data) the cluster's etcd.
func (c *Cluster) StartEtcd() {
	t := c.T
	t.Helper()
	log, err := os.OpenFile(filepath.Join(c.Dir, "etcd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("ip", "netns", "exec", c.UnderNS, "etcd", "--name", "e0", "--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", c.EtcdURL, "--advertise-client-urls", c.EtcdURL,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "e0=http://127.0.0.1:2380", "--log-level", "warn", "--logger", "zap")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	c.mu.Lock()
	c.etcd = cmd
	c.mu.Unlock()
	// Wait for the port first: gRPC backs off for seconds after a refused connection.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := DialInNS(ctx, c.UnderNS, EtcdIP+":2379")
		cancel()
		if err == nil {
			conn.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cli := c.Client()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not ready: %v\n%s", err, c.read("etcd.log"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// StopEtcd kills etcd (its data stays for StartEtcd).
func (c *Cluster) StopEtcd() {
	c.mu.Lock()
	cmd := c.etcd
	c.etcd = nil
	c.mu.Unlock()
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
}

func (c *Cluster) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, name))
	return string(b)
}

// Client is an etcd client whose connections are opened inside the underlay namespace.
func (c *Cluster) Client() *clientv3.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cli != nil {
		return c.cli
	}
	ns := c.UnderNS
	dial := func(ctx context.Context, addr string) (net.Conn, error) { return DialInNS(ctx, ns, addr) }
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{EtcdIP + ":2379"}, DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)}, Logger: zap.NewNop()})
	if err != nil {
		c.T.Fatal(err)
	}
	c.cli = cli
	return cli
}

// DialInNS opens a TCP connection from inside the named network namespace. The socket
// keeps its namespace for life.
func DialInNS(ctx context.Context, ns, addr string) (net.Conn, error) {
	var conn net.Conn
	err := InNS(ns, func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return conn, err
}

// InNS runs f on an OS thread switched into the named network namespace; sockets it opens
// and processes it starts live there. The thread is switched back afterwards. It must not
// simply exit: children started with Pdeathsig are killed when the thread that forked
// them ends, and Go may have forked any of them on this thread.
func InNS(ns string, f func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			ch <- err
			return // the thread stays locked and is discarded
		}
		defer orig.Close()
		h, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			ch <- err
			return
		}
		ferr := f()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		ch <- ferr
	}()
	return <-ch
}

// SetConfig writes the network config.
func (c *Cluster) SetConfig(doc string) {
	c.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Client().Put(ctx, Prefix+"/config", doc); err != nil {
		c.T.Fatal(err)
	}
}

// AddHost creates host namespace number i (1-based) on the underlay; it does not start flanneld.
func (c *Cluster) AddHost(extraArgs ...string) *Host {
	t := c.T
	t.Helper()
	c.mu.Lock()
	i := len(c.hosts) + 1
	h := &Host{C: c, Index: i, NS: fmt.Sprintf("%sh%d", c.ID, i), IP: netip.MustParseAddr(fmt.Sprintf("%s%d", UnderlayPrefix, 10+i))}
	c.hosts = append(c.hosts, h)
	c.mu.Unlock()
	dir := filepath.Join(c.Dir, fmt.Sprintf("h%d", i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.SubnetFile = filepath.Join(dir, "subnet.env")
	h.LogFile = filepath.Join(dir, "flanneld.log")
	iface := "eth0"
	if i%2 == 0 {
		iface = h.IP.String() // -iface takes a name or an address; exercise both
	}
	h.Args = append([]string{"-etcd-endpoints", c.EtcdURL, "-iface", iface, "-subnet-file", h.SubnetFile, "-log-level", "debug"}, extraArgs...)
	Run(t, "ip", "netns", "add", h.NS)
	Run(t, "ip", "link", "add", "name", fmt.Sprintf("vh%d", i), "netns", c.UnderNS, "type", "veth", "peer", "name", "eth0", "netns", h.NS)
	Run(t, "ip", "-n", c.UnderNS, "link", "set", fmt.Sprintf("vh%d", i), "master", "br0", "up")
	Run(t, "ip", "-n", h.NS, "addr", "add", h.IP.String()+"/24", "dev", "eth0")
	Run(t, "ip", "-n", h.NS, "link", "set", "eth0", "up")
	Run(t, "ip", "-n", h.NS, "link", "set", "lo", "up")
	return h
}

// Start starts flanneld in the host's namespace.
func (h *Host) Start() {
	t := h.C.T
	t.Helper()
	log, err := os.OpenFile(h.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	bin := h.C.Flanneld
	if h.Bin != "" {
		bin = h.Bin
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, bin}, h.Args...)...)
	cmd.Env = append(os.Environ(), h.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start flanneld on %s: %v", h.NS, err)
	}
	h.mu.Lock()
	h.cmd = cmd
	h.mu.Unlock()
}

// Stop sends SIGTERM to flanneld and waits for it (SIGKILL after 10 s), returning its error.
func (h *Host) Stop() error {
	h.mu.Lock()
	cmd := h.cmd
	h.cmd = nil
	h.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		return <-done
	}
}

// Kill kills flanneld without letting it shut down.
func (h *Host) Kill() {
	h.mu.Lock()
	cmd := h.cmd
	h.cmd = nil
	h.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// Wait waits for flanneld to exit by itself and returns its error.
func (h *Host) Wait(timeout time.Duration) (error, bool) {
	h.mu.Lock()
	cmd := h.cmd
	h.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		h.mu.Lock()
		h.cmd = nil
		h.mu.Unlock()
		return err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// WaitLog waits until flanneld's log contains s at least n times.
func (h *Host) WaitLog(s string, n int, timeout time.Duration) {
	h.C.T.Helper()
	Eventually(h.C.T, timeout, fmt.Sprintf("%s: %d× %q in the flanneld log", h.NS, n, s), func() error {
		if got := strings.Count(h.Log(), s); got < n {
			return fmt.Errorf("seen %d times", got)
		}
		return nil
	})
}

// Log returns flanneld's output so far.
func (h *Host) Log() string {
	b, _ := os.ReadFile(h.LogFile)
	return string(b)
}

// WaitEnv waits for subnet.env and returns it.
func (h *Host) WaitEnv(timeout time.Duration) subnetenv.Env {
	t := h.C.T
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if e, err := subnetenv.Read(h.SubnetFile); err == nil {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no subnet.env after %s; flanneld log:\n%s", h.NS, timeout, h.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Exec runs a command inside the host's namespace.
func (h *Host) Exec(name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...).CombinedOutput()
	return string(out), err
}

// MustExec runs a command inside the host's namespace and fails the test on error.
func (h *Host) MustExec(name string, args ...string) string {
	h.C.T.Helper()
	out, err := h.Exec(name, args...)
	if err != nil {
		h.C.T.Fatalf("%s: %s %s: %v\n%s", h.NS, name, strings.Join(args, " "), err, out)
	}
	return out
}

// AddEndpoint puts the first address of the host's subnet on a dummy device, standing in
// for a pod, and returns it.
func (h *Host) AddEndpoint(env subnetenv.Env) netip.Addr {
	ip := env.Gateway()
	h.MustExec("ip", "link", "add", "ep0", "type", "bridge") // stands in for cni0; this kernel has no dummy driver
	h.MustExec("ip", "addr", "add", netip.PrefixFrom(ip, env.Subnet.Bits()).String(), "dev", "ep0")
	h.MustExec("ip", "link", "set", "ep0", "up")
	return ip
}

// Ping sends count pings from src to dst inside the host and reports whether all came back.
func (h *Host) Ping(src, dst netip.Addr, count int, interval string) (string, error) {
	return h.Exec("ping", "-n", "-q", "-c", fmt.Sprint(count), "-i", interval, "-W", "1", "-I", src.String(), dst.String())
}

// Eventually polls f every 100 ms until it returns nil or timeout passes.
func Eventually(t testenv.TB, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = f(); err == nil {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
	return 0
}

func (c *Cluster) cleanup() {
	c.mu.Lock()
	hosts := c.hosts
	cli := c.cli
	c.mu.Unlock()
	for _, h := range hosts {
		h.Kill()
		if c.T.Failed() {
			c.T.Logf("flanneld log of %s:\n%s", h.NS, tail(h.Log(), 60))
		}
	}
	if cli != nil {
		cli.Close()
	}
	c.StopEtcd()
	for _, h := range hosts {
		c.delNS(h.NS)
	}
	c.delNS(c.UnderNS)
}

// delNS deletes a network namespace of the cluster; one left behind fails the test.
func (c *Cluster) delNS(ns string) {
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); errors.Is(err, fs.ErrNotExist) {
		return // never made: its test stopped before
	}
	if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
		c.T.Errorf("ip netns del %s: %v\n%s", ns, err, out)
	}
}

func tail(s string, n int) string {
	lines := bytes.Split([]byte(s), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Hosts returns the cluster's hosts.
func (c *Cluster) Hosts() []*Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Host(nil), c.hosts...)
}

// BuildFlanneld returns $CAIRN_BIN/flanneld, or builds it into dir.
func BuildFlanneld(dir string) (string, error) {
	if b := os.Getenv("CAIRN_BIN"); b != "" {
		p := filepath.Join(b, "flanneld")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p := filepath.Join(dir, "flanneld")
	out, err := exec.Command("go", "build", "-o", p, "github.com/cairn-os/cairn/flannel/cmd/flanneld").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build flanneld: %v\n%s", err, out)
	}
	return p, nil
}
