// Package clustertest builds Kubernetes clusters the way kubeadm does, on Cairn's runtime,
// on one machine, for the root-tier tests, `make conformance` and the benchmarks: each node
// is a network namespace on flannel's test underlay (flannel/clustertest) plus a mount
// namespace of its own, in which kubeadm, kubelet, rktlet and flanneld see a host's layout
// (/etc/kubernetes, /var/lib/kubelet, /var/lib/etcd, /etc/cni/net.d, /run/flannel, ...)
// bound from the node's directory. The images kubeadm pulls are built here from the same
// sources as the binaries (kube/images) and served by a registry in the underlay
// namespace. Nothing is added to the machine's network namespace or mount table.
package clustertest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	fct "github.com/cairn-os/cairn/flannel/clustertest"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/kube/images"
)

const (
	// KubernetesVersion is the release built in tools/kube and run here.
	KubernetesVersion = "v1.37.2"
	// PodNetwork is the cluster's pod network (kubeadm's --pod-network-cidr, flannel's Network).
	PodNetwork = "10.244.0.0/16"
	// ServiceNetwork is the cluster's service range.
	ServiceNetwork = "10.96.0.0/12"
	// RegistryAddr is where the images are served, on the underlay bridge.
	RegistryAddr = fct.EtcdIP + ":5000"
)

// Cluster is a set of nodes on one underlay, with the registry kubeadm pulls from.
type Cluster struct {
	T     testenv.TB
	Net   *fct.Cluster
	Dir   string
	Kube  string // directory of kubeadm, kubelet, kubectl
	Cairn string // directory of rktlet, flanneld and the flannel CNI plugin

	// Kubeconfig is the admin kubeconfig kubeadm init wrote.
	Kubeconfig string

	root string // the module's root, where tools/ is

	mu          sync.Mutex
	nodes       []*Node
	init        *Node          // the node kubeadm init ran on
	endpoint    netip.AddrPort // the API server, as nodes and clients reach it
	token       string         // the bootstrap token nodes join with
	flannelRBAC bool
	pushTo      *net.TCPAddr // the registry's loopback address
	etcdTag     string       // the etcd image's tag
	lock        *os.File
}

// Runtime is the CRI runtime a node's kubelet runs pods with.
type Runtime string

const (
	// Rktlet is Cairn's.
	Rktlet Runtime = "rktlet"
	// Containerd is Debian's containerd with its CRI plugin and runc: the yardstick.
	Containerd Runtime = "containerd"
)

// criSocket is where a runtime serves the CRI on a node.
func (r Runtime) criSocket() string {
	if r == Containerd {
		return "/run/containerd/containerd.sock"
	}
	return "/run/rktlet/rktlet.sock"
}

// Node is one Kubernetes node: a host namespace of the underlay and a mount namespace.
type Node struct {
	C          *Cluster
	Name       string
	Runtime    Runtime
	Host       *fct.Host
	Dir        string
	CgroupRoot string // kubelet's --cgroup-root, in every cgroup v1 hierarchy
	Socket     string // the runtime's CRI socket, as the machine sees it

	holder                     *exec.Cmd // pins the mount namespace
	runtime, kubelet, flanneld *daemon
}

// Require checks what a cluster needs, skipping (or failing under CI) without it.
func Require(t testenv.TB) {
	t.Helper()
	fct.Require(t)
	testenv.RequireCommand(t, "nsenter")
	testenv.RequireCommand(t, "unshare")
	testenv.RequireCommand(t, "go")
	testenv.RequireFile(t, "/usr/lib/cni/bridge")
}

// New builds (or finds cached) Kubernetes' and Cairn's binaries and kubeadm's images, and
// starts the underlay with its registry. progress gets the builds' lines.
func New(t testenv.TB) *Cluster {
	t.Helper()
	Require(t)
	// A cluster keeps both cores busy while it starts and whenever it schedules: it takes
	// the machine's heavy-job lock, as qemu boots do, so that neither slows the other past
	// its timeouts.
	testenv.HeavyLock(t)
	root := repoRoot(t)
	c := &Cluster{T: t, Dir: t.TempDir(), root: root}
	ctx := t.Context()
	start := time.Now()
	src, err := images.Binaries(ctx, root, testWriter{t})
	if err != nil {
		t.Fatalf("build Kubernetes' binaries: %v", err)
	}
	c.Kube, c.etcdTag = src.Kube, src.EtcdTag()
	if d := testenv.Tool(t, "kube/build.sh", "kubeadm", "kubelet", "kubectl", "agnhost"); d != c.Kube {
		t.Fatalf("kubeadm in %s, the control plane's binaries in %s", d, c.Kube)
	}
	c.Cairn = cairnBin(t, root)
	imgs, err := images.Build(ctx, src)
	if err != nil {
		t.Fatalf("build kubeadm's images: %v", err)
	}
	t.Logf("binaries and images ready in %s", time.Since(start).Round(time.Second))

	flanneld := filepath.Join(c.Cairn, "flanneld")
	c.Net = fct.New(t, flanneld)
	var l net.Listener
	if err := fct.InNS(c.Net.UnderNS, func() error {
		var err error
		l, err = net.Listen("tcp", RegistryAddr)
		return err
	}); err != nil {
		t.Fatalf("registry listener: %v", err)
	}
	// One registry, served to the nodes on the underlay and to this process on loopback,
	// where the pushes go: a client's connections are not bound to the thread that was in
	// the namespace when it started.
	local, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.pushTo = local.Addr().(*net.TCPAddr)
	srv := &http.Server{Handler: registry.New(registry.Logger(discardLogger()))}
	// Serve returns when Close ends it at cleanup; a failure before shows in the pulls.
	go func() { _ = srv.Serve(l) }()
	go func() { _ = srv.Serve(local) }()
	t.Cleanup(func() { srv.Close() })
	start = time.Now()
	if err := images.Push(ctx, imgs, c.pushTo.String(), io.Discard); err != nil {
		t.Fatalf("push kubeadm's images: %v", err)
	}
	t.Logf("%d images pushed to %s in %s", len(imgs), RegistryAddr, time.Since(start).Round(time.Millisecond))
	c.holdClustersLock()
	t.Cleanup(c.cleanup)
	return c
}

// RegistryPort is the registry's port on this machine's loopback, where images are pushed,
// and where a qemu guest reaches it (as 10.0.2.2 and the same port).
func (c *Cluster) RegistryPort() int { return c.pushTo.Port }

// hostDirs are the paths a node has of its own, each bound from a directory of the node.
var hostDirs = []string{
	"/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/etc/cni/net.d", "/var/lib/cni",
	"/run/flannel", "/run/rktlet", "/var/log/pods", "/var/log/containers", "/var/lib/rkt",
	"/etc/rkt", "/etc/kube-flannel", "/run/containerd", "/var/lib/containerd", "/etc/containerd", "/opt/cni/bin",
}

// kernelDefaults are the values kubelet insists on (pkg/kubelet/cm's setupKernelTunables).
// A node shows them in its mount namespace, so kubelet with protectKernelDefaults finds
// them set and never writes the machine's sysctls, which are not the nodes' to change.
var kernelDefaults = map[string]string{
	"/proc/sys/vm/overcommit_memory":               "1",
	"/proc/sys/vm/panic_on_oom":                    "0",
	"/proc/sys/kernel/panic":                       "10",
	"/proc/sys/kernel/panic_on_oops":               "1",
	"/proc/sys/kernel/keys/root_maxkeys":           "1000000",
	"/proc/sys/kernel/keys/root_maxbytes":          "25000000",
	"/proc/sys/net/bridge/bridge-nf-call-iptables": "1",
}

// AddNode makes a node running pods on rktlet: its host namespace, its mount namespace
// with the host's paths bound, its cgroup root, and rktlet running. kubelet starts once
// kubeadm has configured it; flanneld with StartFlannel.
func (c *Cluster) AddNode() *Node { return c.AddNodeWith(Rktlet) }

// AddNodeWith is AddNode with the runtime given.
func (c *Cluster) AddNodeWith(rt Runtime) *Node {
	t := c.T
	t.Helper()
	h := c.Net.AddHost()
	c.mu.Lock()
	n := &Node{C: c, Host: h, Runtime: rt, Name: fmt.Sprintf("node-%d", len(c.nodes)+1)}
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	n.Dir = filepath.Join(c.Dir, n.Name)
	n.CgroupRoot = "/" + c.Net.ID + "-" + n.Name
	n.Socket = filepath.Join(n.Dir, rt.criSocket())
	fct.Run(t, "ip", "netns", "exec", h.NS, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")

	// The holder pins the node's mount namespace; it is a slave of the machine's, so
	// mounts made there (pods', kubelet's) never show on the machine.
	n.holder = exec.Command("nsenter", "--net=/run/netns/"+h.NS, "--", "unshare", "--mount", "--propagation", "slave", "--", "sleep", "infinity")
	n.holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.holder.Start(); err != nil {
		t.Fatalf("%s: mount namespace: %v", n.Name, err)
	}
	self, _ := os.Readlink("/proc/self/ns/mnt")
	fct.Eventually(t, 5*time.Second, n.Name+"'s mount namespace", func() error {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", n.holder.Process.Pid)); err != nil || ns == self {
			return fmt.Errorf("not yet unshared (%v)", err)
		}
		return nil
	})
	for _, d := range hostDirs {
		src := filepath.Join(n.Dir, d)
		if err := os.MkdirAll(src, 0o755); err != nil {
			t.Fatal(err)
		}
		c.mountpoint(d)
		n.MustExec("mount", "--bind", src, d)
	}
	for p, v := range kernelDefaults {
		if _, err := os.Stat(p); err != nil {
			continue // a module not loaded: nothing kubelet or kubeadm could read either
		}
		f := filepath.Join(n.Dir, "sysctl", strings.ReplaceAll(strings.TrimPrefix(p, "/proc/sys/"), "/", "."))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, f, v+"\n")
		n.MustExec("mount", "--bind", "-o", "ro", f, p)
	}
	makeCgroupRoot(t, n.CgroupRoot)
	writeFile(t, filepath.Join(n.Dir, "etc/cni/net.d/10-flannel.conflist"), `{
  "name": "cbr0",
  "cniVersion": "1.0.0",
  "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`)
	writeFile(t, filepath.Join(n.Dir, "etc/kube-flannel/net-conf.json"), `{"Network": "`+PodNetwork+`", "Backend": {"Type": "vxlan"}}`+"\n")

	n.runtime = n.runtimeDaemon()
	n.runtime.start()
	fct.Eventually(t, 30*time.Second, n.Name+"'s "+string(rt)+" socket", func() error {
		if !n.runtime.running() {
			t.Fatalf("%s: %s exited:\n%s", n.Name, rt, n.Log(string(rt), 30))
		}
		conn, err := net.Dial("unix", n.Socket)
		if err == nil {
			conn.Close()
		}
		return err
	})
	n.kubelet = &daemon{t: t, name: "kubelet", logPath: filepath.Join(n.Dir, "kubelet.log"), restart: true, argv: n.kubeletArgs}
	n.kubelet.start()
	return n
}

// runtimeDaemon is the node's CRI runtime: rktlet, or containerd configured as a kubeadm
// node's would be (cgroupfs, the cluster's registry as an insecure mirror, the pause image
// built here, flannel's CNI configuration).
func (n *Node) runtimeDaemon() *daemon {
	c := n.C
	d := &daemon{t: c.T, name: string(n.Runtime), logPath: filepath.Join(n.Dir, string(n.Runtime)+".log")}
	switch n.Runtime {
	case Containerd:
		// containerd 1.6 takes one CNI plugin directory: flannel's plugin beside the
		// distribution's.
		for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
			if err := os.Symlink("/usr/lib/cni/"+p, filepath.Join(n.Dir, "opt/cni/bin", p)); err != nil {
				c.T.Fatal(err)
			}
		}
		if err := os.Symlink(filepath.Join(c.Cairn, "flannel"), filepath.Join(n.Dir, "opt/cni/bin/flannel")); err != nil {
			c.T.Fatal(err)
		}
		// restrict_oom_score_adj: this machine's root cannot lower OOM scores (no
		// CAP_SYS_RESOURCE), and containerd's shims and pods would try.
		writeFile(c.T, filepath.Join(n.Dir, "etc/containerd/config.toml"), fmt.Sprintf(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%s/pause:%s"
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/opt/cni/bin"
  conf_dir = "/etc/cni/net.d"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors.%q]
  endpoint = ["http://%s"]
`, Containerd.criSocket(), RegistryAddr, images.PauseVersion, RegistryAddr, RegistryAddr))
		d.argv = func() ([]string, bool) { return n.in("containerd", "--config", "/etc/containerd/config.toml"), true }
	default:
		d.argv = func() ([]string, bool) {
			return n.in(filepath.Join(c.Cairn, "rktlet"), "--cni-bin-dir="+c.Cairn,
				"--registry-mirror="+RegistryAddr+"=http://"+RegistryAddr, "--log-level=debug"), true
		}
	}
	return d
}

// in is the command line that runs argv in the node's namespaces.
func (n *Node) in(argv ...string) []string {
	return append([]string{"nsenter", "-t", strconv.Itoa(n.holder.Process.Pid), "-m", "-n", "--"}, argv...)
}

// Exec runs a command in the node's namespaces.
func (n *Node) Exec(name string, args ...string) (string, error) {
	argv := n.in(append([]string{name}, args...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	// kubeadm finds kubelet (and the node's other commands) in PATH, as on a host.
	cmd.Env = append(os.Environ(), "PATH="+n.C.Kube+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %w\n%s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// MustExec is Exec, failing the test on error.
func (n *Node) MustExec(name string, args ...string) string {
	n.C.T.Helper()
	out, err := n.Exec(name, args...)
	if err != nil {
		n.C.T.Fatal(err)
	}
	return out
}

// kubeletArgs is kubelet's command line as kubeadm's systemd drop-in (10-kubeadm.conf)
// makes it: the kubeconfigs, the config file, and the flags kubeadm wrote to
// kubeadm-flags.env. Until kubeadm has written them, kubelet is not started.
func (n *Node) kubeletArgs() ([]string, bool) {
	cfg := filepath.Join(n.Dir, "var/lib/kubelet/config.yaml")
	env := filepath.Join(n.Dir, "var/lib/kubelet/kubeadm-flags.env")
	if _, err := os.Stat(cfg); err != nil {
		return nil, false
	}
	b, err := os.ReadFile(env)
	if err != nil {
		return nil, false
	}
	flags, err := kubeadmFlags(string(b))
	if err != nil {
		n.C.T.Errorf("%s: %v", n.Name, err)
		return nil, false
	}
	argv := []string{filepath.Join(n.C.Kube, "kubelet"), "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
		"--kubeconfig=/etc/kubernetes/kubelet.conf", "--config=/var/lib/kubelet/config.yaml"}
	return n.in(append(argv, flags...)...), true
}

// kubeadmFlags reads KUBELET_KUBEADM_ARGS from kubeadm-flags.env, which kubeadm writes as
// one double-quoted value of space-separated flags.
func kubeadmFlags(env string) ([]string, error) {
	for line := range strings.SplitSeq(env, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "KUBELET_KUBEADM_ARGS=")
		if !ok {
			continue
		}
		uq, err := strconv.Unquote(v)
		if err != nil {
			return nil, fmt.Errorf("kubeadm-flags.env: KUBELET_KUBEADM_ARGS=%s: %w", v, err)
		}
		return strings.Fields(uq), nil
	}
	return nil, errors.New("kubeadm-flags.env: no KUBELET_KUBEADM_ARGS")
}

// StartFlannel starts flanneld in the Kubernetes mode with the kubeconfig given.
func (n *Node) StartFlannel(kubeconfig string) {
	n.flanneld = &daemon{t: n.C.T, name: "flanneld", logPath: filepath.Join(n.Dir, "flanneld.log"),
		env: []string{"NODE_NAME=" + n.Name}, argv: func() ([]string, bool) {
			return n.in(filepath.Join(n.C.Cairn, "flanneld"), "-kube-subnet-mgr", "-kubeconfig-file", kubeconfig,
				"-iface", "eth0", "-log-level", "debug"), true
		}}
	n.flanneld.start()
}

// RestartRuntime stops the node's CRI runtime (SIGTERM) and starts it again.
func (n *Node) RestartRuntime() {
	n.runtime.stop(30 * time.Second)
	n.runtime.start()
}

// RestartKubelet stops kubelet and lets its restart loop start it again.
func (n *Node) RestartKubelet() {
	n.kubelet.stop(30 * time.Second)
	n.kubelet.start()
}

// Log returns the last lines of one of the node's daemons' logs.
func (n *Node) Log(name string, lines int) string {
	b, _ := os.ReadFile(filepath.Join(n.Dir, name+".log"))
	return tail(string(b), lines)
}

// Nodes returns the cluster's nodes.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Node(nil), c.nodes...)
}

// mountpoint makes a directory of the machine's tree for a node's bind mount; one the test
// made is removed at the end if empty.
func (c *Cluster) mountpoint(d string) {
	if _, err := os.Stat(d); err == nil {
		return
	}
	// The first missing ancestor is the one to remove.
	top := d
	for p := filepath.Dir(d); p != "/"; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		top = p
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		c.T.Fatal(err)
	}
	// Removed after the nodes by the last cluster to end (see removeMountpoints):
	// removing a directory that is a mount point in another namespace detaches that mount
	// there, and clusters of other test binaries may be running.
	f, err := os.OpenFile(madeDirsFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.T.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, top)
}

// The clusters of every test binary on the machine hold clustersLock shared while they
// run; madeDirsFile lists the mount points they made in the machine's tree.
const (
	clustersLock = "/run/lock/cairn-kube-clusters.lock"
	madeDirsFile = "/run/lock/cairn-kube-clusters.dirs"
)

// holdClustersLock takes clustersLock shared for the cluster's life.
func (c *Cluster) holdClustersLock() {
	f, err := os.OpenFile(clustersLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		c.T.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		c.T.Fatal(err)
	}
	c.lock = f
}

// removeMountpoints releases the cluster's hold and, when no other cluster holds on,
// removes the mount points clusters made (those still empty).
func (c *Cluster) removeMountpoints() {
	if c.lock == nil {
		return
	}
	defer c.lock.Close()
	if syscall.Flock(int(c.lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return // another cluster runs: the last one out removes them
	}
	b, _ := os.ReadFile(madeDirsFile)
	for d := range strings.FieldsSeq(string(b)) {
		removeEmptyTree(d)
	}
	os.Remove(madeDirsFile)
}

func removeEmptyTree(d string) {
	ents, _ := os.ReadDir(d)
	for _, e := range ents {
		if e.IsDir() {
			removeEmptyTree(filepath.Join(d, e.Name()))
		}
	}
	os.Remove(d)
}

// cleanup stops every node: kubelet first, then every sandbox through its runtime, then the runtime
// and flanneld, then whatever is left in the node's cgroups, then the mount namespace.
func (c *Cluster) cleanup() {
	t := c.T
	for _, n := range c.Nodes() {
		if n.kubelet != nil {
			n.kubelet.stop(10 * time.Second)
		}
		if n.runtime != nil && n.runtime.running() {
			if err := removeSandboxes(n.Socket); err != nil {
				t.Errorf("%s: remove sandboxes: %v", n.Name, err)
			}
			n.runtime.stop(30 * time.Second)
		}
		if n.flanneld != nil {
			n.flanneld.stop(10 * time.Second)
		}
		if t.Failed() {
			for _, d := range []string{"kubelet", string(n.Runtime), "flanneld"} {
				t.Logf("%s's %s log (its end):\n%s", n.Name, d, n.Log(d, 40))
			}
		}
		killCgroupTree(t, n.CgroupRoot)
		if n.holder != nil && n.holder.Process != nil {
			// What else lives in the node's mount namespace (containerd's shims, which
			// stay in containerd's cgroup) goes with it.
			killMountNS(n.holder.Process.Pid)
			n.holder.Process.Kill()
			n.holder.Wait()
		}
		removeCgroupTree(t, n.CgroupRoot)
	}
	c.removeMountpoints()
}

// killMountNS kills every process in the mount namespace of pid, but pid.
func killMountNS(pid int) {
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/ns/mnt")
	for _, p := range procs {
		other, err := strconv.Atoi(strings.Split(p, "/")[2])
		if err != nil || other == pid {
			continue
		}
		if l, err := os.Readlink(p); err == nil && l == ns {
			_ = syscall.Kill(other, syscall.SIGKILL) // gone already: nothing to kill
		}
	}
}

// removeSandboxes stops and removes every pod sandbox of a CRI endpoint.
func removeSandboxes(sock string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sandboxes maps the pod UIDs of a CRI endpoint's sandboxes to their IDs.
func sandboxes(sock string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	list, err := runtimeapi.NewRuntimeServiceClient(conn).ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, sb := range list.Items {
		m[sb.GetMetadata().GetUid()] = sb.Id
	}
	return m, nil
}

// cairnBin is $CAIRN_BIN when it has rktlet (make test builds it), else rktlet, rkt, rkt-fetch,
// flanneld and the flannel CNI plugin built for this test.
func cairnBin(t testenv.TB, root string) string {
	if d := os.Getenv("CAIRN_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "rktlet")); err == nil {
			return d
		}
	}
	d := filepath.Join(t.TempDir(), "bin")
	cmd := exec.Command("go", "build", "-tags", "seccomp", "-o", d+"/", "./runtime/cmd/rktlet", "./runtime/cmd/rkt", "./runtime/cmd/rkt-fetch", "./flannel/cmd/flanneld", "./flannel/cmd/flannel")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build rktlet rkt rkt-fetch flanneld flannel: %v\n%s", err, out)
	}
	return d
}

// repoRoot is the module's root, where tools/ is.
func repoRoot(t testenv.TB) string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func writeFile(t testenv.TB, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// testWriter writes each line to the test log.
type testWriter struct{ t testenv.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
