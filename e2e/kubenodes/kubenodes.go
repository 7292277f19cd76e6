// Package kubenodes is the Kubernetes tier on Cairn hosts, run by e2e's TestKubernetesNodes
// and by cairn-demo: a kubeadm control plane in a network namespace of this machine
// (kube/clustertest), two Cairn VMs with the Kubernetes extension that join it as nodes, a
// Deployment under a PodDisruptionBudget answering through both VMs' NodePorts to a client
// in front of them, and an OS update rolled through the nodes, each drained by locksmithd's
// kubernetes strategy. Its steps take a testenv.TB: a test's, or a testenv.Script's in a
// program.
//
// The addresses: the control plane runs on node-1 of clustertest's underlay
// (192.168.100.0/24, the registry on its bridge, 192.168.100.1:5000); the VMs reach this
// machine only through qemu's user-mode network, at fleet.HostGateway (10.0.2.2: the host's
// 127.0.0.1), and each other over their cable (fleet.ClusterLinkIP: 192.168.76.11 and .12).
//
//   - The API server's endpoint is 10.0.2.2:P for everyone, P a port free on this machine's
//     loopback: kubeadm's controlPlaneEndpoint and advertise address, so it is on the
//     server's certificate and in the kubernetes Service's endpoints. Node-1 has 10.0.2.2 on
//     its loopback and the API server listens on P there; the underlay namespace routes
//     10.0.2.2 to node-1 (kubectl there); on this machine a proxy on 127.0.0.1:P dials
//     node-1 in the underlay, which is where the guests' 10.0.2.2:P lands.
//   - The registry also serves on 127.0.0.1:R (clustertest pushes there): the guests' rktlet
//     sends 192.168.100.1:5000's requests to http://10.0.2.2:R (-registry-mirror).
//   - kubelet and flanneld on each VM use its cable address (--node-ip, -iface): pod traffic
//     between the VMs is VXLAN over the cable. Pods reach 10.0.2.2 masqueraded (-ip-masq).
//   - The Service's NodePort 30080 is forwarded from 127.0.0.1:<port> to each VM (hostfwd):
//     kube-proxy serves NodePorts on every address (nodePortAddresses 0.0.0.0/0), since the
//     forward arrives on the VM's user-mode address, not its node IP.
//   - The extension images are served from 127.0.0.1 too (guests: 10.0.2.2:E/VERSION/NAME.raw).
package kubenodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/cairn-os/cairn/console/cluster"
	"github.com/cairn-os/cairn/e2e/fleet"
	fct "github.com/cairn-os/cairn/flannel/clustertest"
	"github.com/cairn-os/cairn/image/sysext"
	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/kube/clustertest"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// NodePort is the web Service's port on every node.
const NodePort = 30080

// web is clustertest.WebDeployment (two replicas of agnhost's netexec, one per node), its
// budget that keeps one of them up, and a NodePort Service in front of them.
var web = clustertest.WebDeployment + "---\n" + clustertest.WebBudget + `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: ` + strconv.Itoa(NodePort) + `}]
`

// Options are a Start's: where its state goes, who hears of the VMs, what else their
// first-boot configs carry.
type Options struct {
	Dir string    // the VMs' disks and consoles, the extensions served
	Out io.Writer // the VMs' and the update's notes, step by step
	// Configure, when set, adds to host n's (1 or 2) first-boot config.
	Configure func(n int, cfg *fleet.Config)
}

// Nodes is the control plane and the two Cairn VMs that are its nodes.
type Nodes struct {
	C      *clustertest.Cluster
	Fleet  *fleet.Fleet
	VMs    *fleet.Cluster // the VMs as hosts of the fleet (Overlay, Follow)
	Hosts  []*fleet.Host
	Names  []string                     // the hosts' Node names
	Exts   map[string]payload.Extension // the Kubernetes extension of each release
	Stages *Stages

	t       testenv.TB
	dir     string
	images  *fleet.Images
	lbPorts []int     // this machine's ports forwarded to each VM's NodePort
	lb      *balancer // the client, once ServeWeb started it
	stopLB  func()
}

// Start brings up the control plane (kubeadm init on node-1 of a clustertest underlay), builds
// the Kubernetes extension for the old and new releases (served to the guests from f), and
// makes the two VMs with their join configs, not booted yet. Each VM stops when t ends, its
// console and journal logged if t failed.
func Start(t testenv.TB, ctx context.Context, f *fleet.Fleet, im *fleet.Images, o Options) *Nodes {
	t.Helper()
	dir, out := o.Dir, o.Out
	c := clustertest.New(t)
	n := &Nodes{C: c, Fleet: f, t: t, dir: dir, images: im, Exts: map[string]payload.Extension{},
		Stages: &Stages{t: t, start: time.Now()}}

	// The control plane, on node-1 of the underlay.
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close() })
	apiPort := uint16(api.Addr().(*net.TCPAddr).Port)
	n1 := c.AddNode()
	go fleet.Forward(api, func(ctx context.Context) (net.Conn, error) {
		return fct.DialInNS(ctx, c.Net.UnderNS, netip.AddrPortFrom(n1.Host.IP, apiPort).String())
	})
	endpoint := netip.AddrPortFrom(netip.MustParseAddr(fleet.HostGateway), apiPort)
	c.PushAgnhost(t)
	c.InitWith(n1, clustertest.InitOptions{Endpoint: endpoint, NodePortAddresses: []string{"0.0.0.0/0"}})
	c.StartFlannelOn(n1)
	n.Stages.Done("control plane (kubeadm init on node-1, a namespace of this machine)")

	// The fleet's console shows the nodes beside the machines. The admin kubeconfig names the
	// API server as the guests reach it, 10.0.2.2:P (on its certificate); from here that is
	// the proxy on 127.0.0.1:P.
	kc, err := cluster.LoadKubeconfig(c.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := kc.HTTP.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("the console's Kubernetes client has a %T, not an *http.Transport", kc.HTTP.Transport)
	}
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, api.Addr().String())
	}
	f.Console.Cluster.SetKube(kc)

	// The extension for each release, served to the guests.
	served := filepath.Join(dir, "extensions")
	extPort, err := f.Serve(http.FileServer(http.Dir(served)))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{fleet.Old, fleet.New} {
		name := "kubernetes-" + sysext.KubernetesVersion
		url := fmt.Sprintf("%s/%s/%s.raw", fleet.GuestURL(extPort), v, name)
		raw, x, err := im.KubeExtension(ctx, v, c.Kube, url, out)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(served, v), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(raw, filepath.Join(served, v, name+".raw")); err != nil {
			t.Fatal(err)
		}
		n.Exts[v] = x
	}
	n.Stages.Done("Kubernetes extensions for " + fleet.Old + " and " + fleet.New)

	// The nodes' credentials: kubeadm join's discovery, flannel's and locksmithd's tokens.
	k := fleet.KubeNode{APIServer: endpoint.String(), Token: c.BootstrapToken(), CAHash: c.CAHash(),
		FlannelKubeconfig:    c.FlannelKubeconfig(),
		LocksmithdKubeconfig: c.LocksmithdKubeconfig(),
		Extension:            n.Exts[fleet.Old], PodNetwork: clustertest.PodNetwork,
		RegistryMirrors: []string{clustertest.RegistryAddr + "=" + fleet.GuestURL(c.RegistryPort())}}
	links, err := fleet.ClusterLinks()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		name := fleet.KubeNodeName(i + 1)
		cfg := f.KubeConfig(i+1, k)
		if o.Configure != nil {
			o.Configure(i+1, cfg)
		}
		h, err := f.NewHost(name, filepath.Join(dir, name), cfg, links[i])
		if err != nil {
			t.Fatal(err)
		}
		// Room for two versions' extensions, the images and kubelet's eviction threshold
		// (the cluster's: 1 GiB free): ROOT grows to the disk's end on the first boot.
		if out, err := exec.Command("qemu-img", "resize", "-q", h.Machine.Disk, "+3G").CombinedOutput(); err != nil {
			t.Fatalf("qemu-img resize: %v: %s", err, out)
		}
		h.Machine.MemoryMB = 2048
		p, err := fleet.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		h.Machine.Forward = append(h.Machine.Forward, fmt.Sprintf("tcp:127.0.0.1:%d-:%d", p, NodePort))
		n.lbPorts = append(n.lbPorts, p)
		h.Notes = out
		t.Cleanup(func() {
			if vm := h.VM(); t.Failed() && vm != nil && !vm.Exited() {
				jctx, jcancel := context.WithTimeout(context.Background(), time.Minute)
				defer jcancel()
				// kubelet says every second that there is no static pod directory on a node.
				out, _ := h.Run(jctx, "journalctl --no-pager -o short-precise -u kubeadm -u kubelet -u kubernetes-sysext -u flanneld -u rktlet -u locksmithd -u update-engine | grep -v 'Unable to read config path' | tail -n 80")
				t.Logf("%s's journal (its end):\n%s", h.Name, out)
			}
			if t.Failed() && h.VM() != nil {
				t.Logf("%s console, boot %d (last 4000 bytes; every boot's is in %s):\n%s", h.Name, h.Boots(), h.Machine.VarsDir, h.Tail(4000))
			}
			h.Stop()
		})
		n.Hosts = append(n.Hosts, h)
		n.Names = append(n.Names, name)
	}
	n.VMs = fleet.ClusterOf(f, [2]*fleet.Host{n.Hosts[0], n.Hosts[1]}, out)
	t.Cleanup(func() {
		if n.stopLB != nil {
			n.stopLB()
		}
	})
	return n
}

// Join boots both VMs on the old release and waits until they have joined and are Ready:
// cgroup v2 under systemd, the extension of their version merged.
func (n *Nodes) Join(ctx context.Context) {
	t := n.t
	t.Helper()
	for _, h := range n.Hosts {
		if err := h.Boot(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range n.Hosts {
		if _, took, err := h.WaitFor(ctx, fleet.BootMarker(fleet.Old, "A")); err != nil {
			t.Fatal(err)
		} else {
			t.Logf("%s up on Cairn %s in %v", h.Name, fleet.Old, took.Round(time.Second))
		}
	}
	n.Stages.Done("both VMs booted")
	for _, h := range n.Hosts {
		n.joined(ctx, h)
	}
	n.Stages.Done("kubeadm join done on both VMs")
	n.C.WaitNodes(t, within(ctx, 30*time.Minute), n.Names, clustertest.NodeReady)
	n.Stages.Done("both VMs joined and Ready")
	n.consoleShowsNodes(ctx)

	// What the nodes are, for real: cgroup v2 under systemd, kubelet from the extension of
	// their version.
	for _, h := range n.Hosts {
		if got := n.run(ctx, h, "stat -fc %T /sys/fs/cgroup; cat /proc/1/comm"); got != "cgroup2fs\nsystemd\n" {
			t.Errorf("%s: cgroup file system and PID 1: %q", h.Name, got)
		}
		if got := n.run(ctx, h, "cat /usr/lib/extension-release.d/extension-release.kubernetes-"+sysext.KubernetesVersion); !strings.Contains(got, "VERSION_ID="+fleet.Old) {
			t.Errorf("%s: the merged extension's release: %q", h.Name, got)
		}
	}
}

// ServeWeb deploys web (one pod per VM, run by rktlet) and starts the client in front of the
// VMs' NodePorts once both answer; it fails t if a request of the client's first 20 s fails.
func (n *Nodes) ServeWeb(ctx context.Context) {
	t, c := n.t, n.C
	t.Helper()
	c.MustKubectl(web, "apply", "-f", "-")
	c.MustKubectl("", "rollout", "status", "deployment/web", "--timeout=15m")
	where := webPods(c)
	if len(where) != 2 || where[0] == where[1] {
		t.Errorf("web's pods are on %v; want one on each VM", where)
	}
	n.Stages.Done("web Deployment Ready, one pod per VM")
	// kube-proxy starts on a VM as web's pod does (both images pulled at once) and writes the
	// NodePort's rules in its first sync after that: the client starts once both VMs serve it.
	c.MustKubectl("", "-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=10m")
	n.lb = &balancer{ports: n.lbPorts}
	if err := n.lb.serving(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	n.Stages.Done("kube-proxy on both VMs, the NodePort answering on each")
	lctx, lcancel := context.WithCancel(ctx)
	lbDone := make(chan struct{})
	go func() { n.lb.run(lctx); close(lbDone) }()
	n.stopLB = sync.OnceFunc(func() {
		lcancel()
		<-lbDone
	})
	for _, h := range n.Hosts {
		if got := n.run(ctx, h, "rkt list --no-legend | grep -c running || true"); strings.TrimSpace(got) == "0" {
			t.Errorf("%s: rkt lists no running pod", h.Name)
		}
	}
	time.Sleep(20 * time.Second)
	if st := n.lb.stats(); st.OK == 0 || st.Failed > 0 {
		t.Fatalf("the Service through the VMs' NodePorts: %s; the last errors: %s\nweb's pods' events:\n%s", st,
			strings.Join(st.LastErrors, "; "), webEvents(c))
	} else {
		t.Logf("the Service answers through both VMs' NodePorts: %s", st)
	}
}

// ClientStats is what the client in front of the NodePorts has seen so far.
func (n *Nodes) ClientStats() ClientStats { return n.lb.stats() }

// Cordon is when a node was cordoned, from when it went down into the update to when it
// was back up, relative to the update's offer.
type Cordon struct {
	Node      string
	From, For time.Duration
	Down, Up  time.Duration
}

// UpdateResult is what Update saw.
type UpdateResult struct {
	Offered time.Time
	Took    time.Duration // offer to both nodes back Ready and uncordoned
	Cordons []Cordon
	// NoEndpoints are the intervals the Service had no ready endpoint.
	NoEndpoints []Cordon
	Client      ClientStats
}

// Update offers the new release (its payload naming the extension built for it) and follows
// both nodes through their drained reboots until they are back Ready, uncordoned, on the new
// release with its extension merged; the client keeps requesting throughout. It fails t if a
// node was never seen cordoned, both were at once, or a request failed on both VMs.
func (n *Nodes) Update(ctx context.Context) *UpdateResult {
	t, c, f := n.t, n.C, n.Fleet
	t.Helper()
	pl := filepath.Join(n.dir, "update-with-extensions.payload")
	if err := n.images.ExtensionPayload(pl, []payload.Extension{n.Exts[fleet.New]}); err != nil {
		t.Fatal(err)
	}
	watcher := &nodeWatch{}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go watcher.run(wctx, c, n.Names)
	if err := f.Offer(pl, fleet.New); err != nil {
		t.Fatal(err)
	}
	offered := time.Now()
	t.Logf("offering Cairn %s at %s", fleet.New, offered.Format("15:04:05"))
	for _, h := range n.Hosts {
		n.run(ctx, h, "update_engine_client -check_for_update")
	}
	for _, h := range n.Hosts {
		n.VMs.Follow(wctx, h, offered)
	}
	var wg sync.WaitGroup
	reboots := make([]reboot, len(n.Hosts))
	for i, h := range n.Hosts {
		wg.Go(func() {
			rb := &reboots[i]
			rb.err = func() error {
				if err := h.WaitExit(ctx); err != nil {
					return err
				}
				rb.down = time.Now()
				t.Logf("%s: rebooting into %s (+%v)", h.Name, fleet.New, rb.down.Sub(offered).Round(time.Second))
				if err := h.Boot(ctx); err != nil {
					return err
				}
				if _, _, err := h.WaitFor(ctx, fleet.BootMarker(fleet.New, "B")); err != nil {
					return err
				}
				rb.up = time.Now()
				t.Logf("%s: up on %s (+%v)", h.Name, fleet.New, rb.up.Sub(offered).Round(time.Second))
				return nil
			}()
		})
	}
	wg.Wait()
	for _, rb := range reboots {
		if rb.err != nil {
			t.Fatal(rb.err)
		}
	}
	// Back in service: Ready and uncordoned (locksmithd uncordons once the new slot is good).
	c.WaitNodes(t, within(ctx, 20*time.Minute), n.Names, func(n *corev1.Node) error {
		if err := clustertest.NodeReady(n); err != nil {
			return err
		}
		if n.Spec.Unschedulable {
			return errors.New("cordoned")
		}
		return nil
	})
	r := &UpdateResult{Offered: offered, Took: time.Since(offered)}
	n.Stages.Done("both nodes updated, Ready and uncordoned")
	time.Sleep(10 * time.Second)
	n.stopLB()

	for i, h := range n.Hosts {
		if got := n.run(ctx, h, ". /etc/os-release; echo $VERSION_ID"); strings.TrimSpace(got) != fleet.New {
			t.Errorf("%s: /etc/os-release says %q", h.Name, got)
		}
		if got := n.run(ctx, h, "cat /usr/lib/extension-release.d/extension-release.kubernetes-"+sysext.KubernetesVersion); !strings.Contains(got, "VERSION_ID="+fleet.New) {
			t.Errorf("%s: the merged extension's release after the update: %q", h.Name, got)
		}
		gctx, gcancel := context.WithTimeout(ctx, 3*time.Minute)
		if _, err := fleet.WaitGood(gctx, h, disklayout.SlotB); err != nil {
			t.Errorf("%v", err)
		}
		gcancel()
		cord := watcher.cordoned(n.Names[i])
		if len(cord) == 0 {
			t.Errorf("%s was never seen cordoned", n.Names[i])
		}
		for _, iv := range cord {
			r.Cordons = append(r.Cordons, Cordon{Node: n.Names[i], From: iv.from.Sub(offered), For: iv.to.Sub(iv.from),
				Down: reboots[i].down.Sub(offered), Up: reboots[i].up.Sub(offered)})
		}
	}
	// One at a time: the second node went down after the first was back in service.
	a, b := watcher.cordoned(n.Names[0]), watcher.cordoned(n.Names[1])
	if len(a) > 0 && len(b) > 0 {
		first, second := a[0], b[0]
		if second.from.Before(first.from) {
			first, second = second, first
		}
		if second.from.Before(first.to) {
			t.Errorf("both nodes were cordoned at once: %v-%v and %v-%v", first.from, first.to, second.from, second.to)
		}
	}
	for _, iv := range watcher.cordoned(noEndpoints) {
		r.NoEndpoints = append(r.NoEndpoints, Cordon{Node: noEndpoints, From: iv.from.Sub(offered), For: iv.to.Sub(iv.from)})
	}
	r.Client = n.lb.stats()
	if r.Client.Failed > 0 {
		t.Errorf("%d of %d requests failed on both VMs; the last errors: %s\nweb's pods' events:\n%s", r.Client.Failed, r.Client.Total,
			strings.Join(r.Client.LastErrors, "; "), webEvents(c))
	}
	return r
}

// String is one line a cordon.
func (c Cordon) String() string {
	r := func(d time.Duration) time.Duration { return d.Round(time.Second) }
	if c.Down == 0 && c.Up == 0 {
		return fmt.Sprintf("%s from +%v for %v", c.Node, r(c.From), r(c.For))
	}
	return fmt.Sprintf("%s: cordoned from +%v for %v (down +%v, up +%v)", c.Node, r(c.From), r(c.For), r(c.Down), r(c.Up))
}

// consoleShowsNodes checks that the fleet's console reads both VMs as Ready nodes, each
// with its machine ID (which ties a node to the console's instance).
func (n *Nodes) consoleShowsNodes(ctx context.Context) {
	t := n.t
	t.Helper()
	s := n.Fleet.Console.Cluster.Poll(ctx)
	if s.Kubernetes == nil || s.Kubernetes.Error != "" {
		t.Errorf("the console's Kubernetes nodes: %+v", s.Kubernetes)
		return
	}
	for _, name := range n.Names {
		i := slices.IndexFunc(s.Kubernetes.Items, func(x cluster.Node) bool { return x.Name == name })
		if i < 0 {
			t.Errorf("the console does not show node %s: %+v", name, s.Kubernetes.Items)
			continue
		}
		if x := s.Kubernetes.Items[i]; x.Ready != "True" || x.MachineID == "" {
			t.Errorf("the console shows node %s as %+v; want Ready, with its machine ID", name, x)
		}
	}
}

// run is h.Run that fails t.
func (n *Nodes) run(ctx context.Context, h *fleet.Host, cmd string) string {
	n.t.Helper()
	out, err := h.Run(ctx, cmd)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// joined waits until h's kubeadm join has run, and fails t at once with the journal when it
// or the extension's fetch failed: the node would never register.
func (n *Nodes) joined(ctx context.Context, h *fleet.Host) {
	t := n.t
	t.Helper()
	jctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	out, err := fleet.Eventually(jctx, h, "systemctl show -p ActiveState --value "+strings.Join(joinUnits, " "), func(s string) bool {
		done, _ := joinDone(s)
		return done
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, failed := joinDone(out); failed != "" {
		j, _ := h.Run(ctx, "journalctl --no-pager -o cat -u kubernetes-sysext -u kubeadm | tail -n 80")
		t.Fatalf("%s: %s failed:\n%s", h.Name, failed, j)
	}
}

// Stages times the tier's stages, a line each in t's log as each ends.
type Stages struct {
	t     testenv.TB
	start time.Time
	last  time.Time
	lines []string
}

// Done ends the stage named what.
func (s *Stages) Done(what string) {
	s.t.Helper()
	now := time.Now()
	prev := s.last
	if prev.IsZero() {
		prev = s.start
	}
	s.last = now
	line := fmt.Sprintf("%-70s %8v (at +%v)", what, now.Sub(prev).Round(time.Second), now.Sub(s.start).Round(time.Second))
	s.lines = append(s.lines, line)
	s.t.Log("stage: " + line)
}

// Report is every stage's line.
func (s *Stages) Report() string { return strings.Join(s.lines, "\n") }

type reboot struct {
	down, up time.Time
	err      error
}

// joinUnits fetch the extension and run kubeadm join, in that order.
var joinUnits = []string{"kubernetes-sysext.service", "kubeadm.service"}

// joinDone reads the ActiveState of joinUnits, one a line (systemctl show puts an empty line
// between units): done once kubeadm's unit is active or either unit failed, naming the one
// that failed. kubeadm's unit requires the fetch's: when the fetch fails, kubeadm's unit is
// never started and stays inactive, so its own state would never say so.
func joinDone(out string) (done bool, failed string) {
	states := strings.Fields(out)
	if len(states) != len(joinUnits) {
		return false, ""
	}
	for i, s := range states {
		if s == "failed" {
			return true, joinUnits[i]
		}
	}
	return states[len(states)-1] == "active", ""
}

// within is d, or what is left before ctx's deadline when that is sooner.
func within(ctx context.Context, d time.Duration) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl))
	}
	return d
}

// webPods are the nodes web's pods run on.
func webPods(c *clustertest.Cluster) []string {
	out := c.MustKubectl("", "get", "pods", "-l", "app=web", "-o", "jsonpath={range .items[*]}{.spec.nodeName}{\"\\n\"}{end}")
	nodes := strings.Fields(out)
	slices.Sort(nodes)
	return nodes
}

// nodeWatch records when each node was cordoned and uncordoned, and when the Service web
// had no ready endpoint.
type nodeWatch struct {
	mu   sync.Mutex
	open map[string]time.Time
	ivs  map[string][]interval
}

// noEndpoints is the node-like key under which nodeWatch keeps the Service's outages.
const noEndpoints = "service web without a ready endpoint"

// readyEndpoints counts the ready endpoints of the Service web.
func readyEndpoints(c *clustertest.Cluster) (int, error) {
	out, err := c.Kubectl("", "get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "json")
	if err != nil {
		return 0, err
	}
	var list struct {
		Items []struct {
			Endpoints []struct {
				Conditions struct{ Ready *bool }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return 0, fmt.Errorf("endpointslices: %w", err)
	}
	n := 0
	for _, it := range list.Items {
		for _, e := range it.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				n++
			}
		}
	}
	return n, nil
}

// webEvents are the events of web's pods (probe failures, evictions, kills), one a line.
func webEvents(c *clustertest.Cluster) string {
	out, err := c.Kubectl("", "get", "events", "--sort-by=.lastTimestamp", "-o",
		`jsonpath={range .items[?(@.involvedObject.kind=="Pod")]}{.lastTimestamp} {.involvedObject.name} {.reason} x{.count}: {.message}{"\n"}{end}`)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.Contains(l, " web-") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

type interval struct{ from, to time.Time }

func (w *nodeWatch) run(ctx context.Context, c *clustertest.Cluster, names []string) {
	w.mu.Lock()
	w.open, w.ivs = map[string]time.Time{}, map[string][]interval{}
	w.mu.Unlock()
	for ctx.Err() == nil {
		if nodes, err := c.ListNodes(); err == nil {
			now := time.Now()
			for _, name := range names {
				n, ok := nodes[name]
				if ok {
					w.set(name, n.Spec.Unschedulable, now)
				}
			}
		}
		if n, err := readyEndpoints(c); err == nil {
			w.set(noEndpoints, n == 0, time.Now())
		}
		select {
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
	}
}

// set records whether key's condition holds at now.
func (w *nodeWatch) set(key string, on bool, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	from, open := w.open[key]
	switch {
	case on && !open:
		w.open[key] = now
	case !on && open:
		w.ivs[key] = append(w.ivs[key], interval{from, now})
		delete(w.open, key)
	}
}

// cordoned are the intervals name was seen cordoned, one still open ending now.
func (w *nodeWatch) cordoned(name string) []interval {
	w.mu.Lock()
	defer w.mu.Unlock()
	ivs := slices.Clone(w.ivs[name])
	if from, ok := w.open[name]; ok {
		ivs = append(ivs, interval{from, time.Now()})
	}
	return ivs
}

// balancer is a client that requests the Service's NodePort through the VMs as a load
// balancer in front of them would: each request goes to one VM, and to the other when it
// fails, for up to three rounds 0.3 s apart; it fails when every try did.
type balancer struct {
	ports []int

	mu      sync.Mutex
	total   int
	failed  int
	retried int
	byPod   map[string]int
	errs    []string
}

// ClientStats counts the client's requests: answered (some after a retry on the other VM),
// failed on both VMs, the answers by the pod that gave them, the last errors.
type ClientStats struct {
	Total, OK, Failed, Retried int
	ByPod                      map[string]int
	LastErrors                 []string
}

func (s ClientStats) String() string {
	return fmt.Sprintf("%d requests, %d answered (%d after a retry), %d failed; answers by pod %v", s.Total, s.OK, s.Retried, s.Failed, s.ByPod)
}

func (b *balancer) stats() ClientStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return ClientStats{Total: b.total, OK: b.total - b.failed, Failed: b.failed, Retried: b.retried, ByPod: maps.Clone(b.byPod),
		LastErrors: slices.Clone(b.errs)}
}

// newClient is the balancer's HTTP client: a connection per request, short timeouts.
func newClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}}
}

// serving waits until each VM's NodePort has answered once, for up to timeout.
func (b *balancer) serving(ctx context.Context, timeout time.Duration) error {
	client := newClient()
	deadline := time.Now().Add(timeout)
	for i, port := range b.ports {
		for {
			_, err := get(ctx, client, fmt.Sprintf("http://127.0.0.1:%d/hostname", port))
			if err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("VM %d's NodePort (127.0.0.1:%d) not answering within %v: %w", i+1, port, timeout, err)
			}
			time.Sleep(time.Second)
		}
	}
	return nil
}

func (b *balancer) run(ctx context.Context) {
	client := newClient()
	for i := 0; ctx.Err() == nil; i++ {
		pod, tries, err := b.request(ctx, client, i)
		if ctx.Err() != nil {
			return // cut short by the test's end, not the Service
		}
		b.mu.Lock()
		b.total++
		if b.byPod == nil {
			b.byPod = map[string]int{}
		}
		switch {
		case err != nil:
			b.failed++
			b.errs = append(b.errs, time.Now().Format("15:04:05")+" "+err.Error())
			if len(b.errs) > 10 {
				b.errs = b.errs[1:]
			}
		default:
			b.byPod[pod]++
			if tries > 1 {
				b.retried++
			}
		}
		b.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// request is one request: the pod that answered, the tries it took.
func (b *balancer) request(ctx context.Context, client *http.Client, i int) (string, int, error) {
	var errs []error
	tries := 0
	for round := range 3 {
		if round > 0 {
			select {
			case <-ctx.Done():
				return "", tries, ctx.Err()
			case <-time.After(300 * time.Millisecond):
			}
		}
		for j := range b.ports {
			port := b.ports[(i+j)%len(b.ports)]
			tries++
			pod, err := get(ctx, client, fmt.Sprintf("http://127.0.0.1:%d/hostname", port))
			if err == nil {
				return pod, tries, nil
			}
			errs = append(errs, fmt.Errorf("VM %d: %w", (i+j)%len(b.ports)+1, err))
		}
	}
	return "", tries, errors.Join(errs...)
}

func get(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	return strings.TrimSpace(string(body)), nil
}

// Answers counts, for each VM's NodePort, the nodes whose pod answered requests made through
// it: kube-proxy sends a NodePort's connections to any of the Service's pods, one on the
// other VM reached over flannel's overlay.
type Answers map[string]map[string]int

// AcrossHosts makes requests requests through each VM's NodePort and counts which node's
// pod answered each.
func (n *Nodes) AcrossHosts(ctx context.Context, requests int) (Answers, error) {
	out, err := n.C.Kubectl("", "get", "pods", "-l", "app=web", "-o", `jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName}{"\n"}{end}`)
	if err != nil {
		return nil, err
	}
	nodeOf := map[string]string{}
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if pod, node, ok := strings.Cut(l, " "); ok {
			nodeOf[pod] = node
		}
	}
	client := newClient()
	a := Answers{}
	for i, port := range n.lbPorts {
		via := n.Names[i]
		a[via] = map[string]int{}
		for range requests {
			pod, err := get(ctx, client, fmt.Sprintf("http://127.0.0.1:%d/hostname", port))
			if err != nil {
				return a, fmt.Errorf("through %s's NodePort: %w", via, err)
			}
			node, ok := nodeOf[pod]
			if !ok {
				node = "pod " + pod + " (not web's)"
			}
			a[via][node]++
		}
	}
	return a, nil
}

// Crossed reports whether each VM's NodePort was answered by a pod on the other VM.
func (a Answers) Crossed() bool {
	for via, by := range a {
		other := 0
		for node, k := range by {
			if node != via {
				other += k
			}
		}
		if other == 0 {
			return false
		}
	}
	return len(a) > 1
}

// String is a line for each VM's NodePort.
func (a Answers) String() string {
	var lines []string
	for _, via := range slices.Sorted(maps.Keys(a)) {
		var parts []string
		for _, node := range slices.Sorted(maps.Keys(a[via])) {
			parts = append(parts, fmt.Sprintf("%d by the pod on %s", a[via][node], node))
		}
		lines = append(lines, fmt.Sprintf("through %s's NodePort: %s", via, strings.Join(parts, ", ")))
	}
	return strings.Join(lines, "\n")
}
