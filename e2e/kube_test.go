package e2e

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
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/cairn-os/cairn/e2e/fleet"
	"github.com/cairn-os/cairn/e2e/fleettest"
	fct "github.com/cairn-os/cairn/flannel/clustertest"
	"github.com/cairn-os/cairn/image/sysext"
	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/kube/clustertest"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// The Kubernetes tier's addresses. The control plane runs in a network namespace of this
// machine (clustertest: node-1 on the underlay 192.168.100.0/24, the registry on its bridge,
// 192.168.100.1:5000); the nodes are two Cairn VMs, which reach this machine only through
// qemu's user-mode network, at fleet.HostGateway (10.0.2.2: the host's 127.0.0.1), and each
// other over their cable (fleet.ClusterLinkIP: 192.168.76.11 and .12).
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
const nodePort = 30080

// The test's own deadline: kubeTimeout after the images are ready, or kubeCleanup before go
// test's deadline if that comes first, so that a stuck stage fails the test with the VMs'
// journals and the cluster torn down rather than go test killing the binary (README: -timeout
// 60m).
const (
	kubeTimeout = 45 * time.Minute
	kubeCleanup = 5 * time.Minute
)

// kubeDeadline is the test's deadline at now, given go test's (ok false: none).
func kubeDeadline(now, testDeadline time.Time, ok bool) time.Time {
	d := now.Add(kubeTimeout)
	if cut := testDeadline.Add(-kubeCleanup); ok && cut.Before(d) {
		d = cut
	}
	return d
}

// kubeWeb is clustertest.WebDeployment (two replicas of agnhost's netexec, one per node),
// its budget that keeps one of them up, and a NodePort Service in front of them.
var kubeWeb = clustertest.WebDeployment + "---\n" + clustertest.WebBudget + `---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: ` + strconv.Itoa(nodePort) + `}]
`

// TestKubernetesNodes: two Cairn VMs with the Kubernetes extension join a kubeadm control
// plane (in a namespace of this machine), serve a Deployment through a NodePort to a client
// that tries the other VM when one fails, and take an OS update one at a time, each drained
// by locksmithd's kubernetes strategy under a PodDisruptionBudget, back with the extension
// of the new version.
func TestKubernetesNodes(t *testing.T) {
	if os.Getenv("CAIRN_E2E_KUBE") != "1" {
		t.Skip("CAIRN_E2E_KUBE=1 runs it: two Kubernetes nodes in TCG guests and an update rolled through them take 8-9 minutes beyond the e2e images, which make test's budget for the e2e tier has no room for")
	}
	im := fleettest.Images(t)
	c := clustertest.New(t)
	// Ended by cleanups, not defers: the VMs (started with ctx) must outlive the test's body
	// for the cleanups that read their journals.
	testDeadline, ok := t.Deadline()
	ctx, cancel := context.WithDeadline(context.Background(), kubeDeadline(time.Now(), testDeadline, ok))
	t.Cleanup(cancel)
	dir := t.TempDir()
	f, err := fleet.StartFleet(ctx, filepath.Join(dir, "fleet"), im)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	stages := &stageLog{t: t, start: time.Now()}

	// The control plane, on node-1 of the underlay.
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	apiPort := uint16(api.Addr().(*net.TCPAddr).Port)
	n1 := c.AddNode()
	go fleet.Forward(api, func(ctx context.Context) (net.Conn, error) {
		return fct.DialInNS(ctx, c.Net.UnderNS, netip.AddrPortFrom(n1.Host.IP, apiPort).String())
	})
	endpoint := netip.AddrPortFrom(netip.MustParseAddr(fleet.HostGateway), apiPort)
	c.PushAgnhost(t)
	c.InitWith(n1, clustertest.InitOptions{Endpoint: endpoint, NodePortAddresses: []string{"0.0.0.0/0"}})
	c.StartFlannelOn(n1)
	stages.done("control plane (kubeadm init on node-1, a namespace of this machine)")

	// The extension for each release, served to the guests.
	served := filepath.Join(dir, "extensions")
	extPort, err := f.Serve(http.FileServer(http.Dir(served)))
	if err != nil {
		t.Fatal(err)
	}
	exts := map[string]payload.Extension{}
	for _, v := range []string{fleet.Old, fleet.New} {
		name := "kubernetes-" + sysext.KubernetesVersion
		url := fmt.Sprintf("%s/%s/%s.raw", fleet.GuestURL(extPort), v, name)
		raw, x, err := im.KubeExtension(ctx, v, c.Kube, url, fleettest.Log(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(served, v), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(raw, filepath.Join(served, v, name+".raw")); err != nil {
			t.Fatal(err)
		}
		exts[v] = x
	}
	stages.done("Kubernetes extensions for " + fleet.Old + " and " + fleet.New)

	// The nodes' credentials: kubeadm join's discovery, flannel's and locksmithd's tokens.
	k := fleet.KubeNode{APIServer: endpoint.String(), Token: c.BootstrapToken(), CAHash: c.CAHash(),
		FlannelKubeconfig:    c.FlannelKubeconfig(),
		LocksmithdKubeconfig: c.LocksmithdKubeconfig(),
		Extension:            exts[fleet.Old], PodNetwork: clustertest.PodNetwork,
		RegistryMirrors: []string{clustertest.RegistryAddr + "=" + fleet.GuestURL(c.RegistryPort())}}
	links, err := fleet.ClusterLinks()
	if err != nil {
		t.Fatal(err)
	}
	var hosts []*fleet.Host
	var lbPorts []int
	for i := range 2 {
		n := i + 1
		h, err := f.NewHost(fleet.KubeNodeName(n), filepath.Join(dir, fleet.KubeNodeName(n)), f.KubeConfig(n, k), links[i])
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
		h.Machine.Forward = append(h.Machine.Forward, fmt.Sprintf("tcp:127.0.0.1:%d-:%d", p, nodePort))
		lbPorts = append(lbPorts, p)
		watch(t, h)
		t.Cleanup(func() {
			if vm := h.VM(); t.Failed() && vm != nil && !vm.Exited() {
				jctx, jcancel := context.WithTimeout(context.Background(), time.Minute)
				defer jcancel()
				// kubelet says every second that there is no static pod directory on a node.
				out, _ := h.Run(jctx, "journalctl --no-pager -o short-precise -u kubeadm -u kubelet -u kubernetes-sysext -u flanneld -u rktlet -u locksmithd -u update-engine | grep -v 'Unable to read config path' | tail -n 80")
				t.Logf("%s's journal (its end):\n%s", h.Name, out)
			}
		})
		hosts = append(hosts, h)
	}
	for _, h := range hosts {
		if err := h.Boot(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range hosts {
		if _, took, err := h.WaitFor(ctx, fleet.BootMarker(fleet.Old, "A")); err != nil {
			t.Fatal(err)
		} else {
			t.Logf("%s up on Cairn %s in %v", h.Name, fleet.Old, took.Round(time.Second))
		}
	}
	stages.done("both VMs booted")
	for _, h := range hosts {
		joined(t, ctx, h)
	}
	stages.done("kubeadm join done on both VMs")
	names := []string{fleet.KubeNodeName(1), fleet.KubeNodeName(2)}
	c.WaitNodes(t, within(ctx, 30*time.Minute), names, clustertest.NodeReady)
	stages.done("both VMs joined and Ready")

	// What the nodes are, for real: cgroup v2 under systemd, kubelet from the extension of
	// their version, pods run by rktlet.
	for _, h := range hosts {
		if got := run(t, ctx, h, "stat -fc %T /sys/fs/cgroup; cat /proc/1/comm"); got != "cgroup2fs\nsystemd\n" {
			t.Errorf("%s: cgroup file system and PID 1: %q", h.Name, got)
		}
		if got := run(t, ctx, h, "cat /usr/lib/extension-release.d/extension-release.kubernetes-"+sysext.KubernetesVersion); !strings.Contains(got, "VERSION_ID="+fleet.Old) {
			t.Errorf("%s: the merged extension's release: %q", h.Name, got)
		}
	}
	c.MustKubectl(kubeWeb, "apply", "-f", "-")
	c.MustKubectl("", "rollout", "status", "deployment/web", "--timeout=15m")
	where := webPods(t, c)
	if len(where) != 2 || where[0] == where[1] {
		t.Errorf("web's pods are on %v; want one on each VM", where)
	}
	stages.done("web Deployment Ready, one pod per VM")
	// kube-proxy starts on a VM as web's pod does (both images pulled at once) and writes the
	// NodePort's rules in its first sync after that: the client starts once both VMs serve it.
	c.MustKubectl("", "-n", "kube-system", "rollout", "status", "daemonset/kube-proxy", "--timeout=10m")
	lb := &balancer{ports: lbPorts}
	if err := lb.serving(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	stages.done("kube-proxy on both VMs, the NodePort answering on each")
	lctx, lcancel := context.WithCancel(ctx)
	lbDone := make(chan struct{})
	go func() { lb.run(lctx); close(lbDone) }()
	stopClient := func() {
		lcancel()
		<-lbDone
	}
	defer stopClient()
	for _, h := range hosts {
		if got := run(t, ctx, h, "rkt list --no-legend | grep -c running || true"); strings.TrimSpace(got) == "0" {
			t.Errorf("%s: rkt lists no running pod", h.Name)
		}
	}
	time.Sleep(20 * time.Second)
	if st := lb.stats(); st.ok == 0 || st.failed > 0 {
		t.Fatalf("the Service through the VMs' NodePorts: %s; the last errors: %s\nweb's pods' events:\n%s", st,
			strings.Join(st.lastErrors, "; "), webEvents(c))
	} else {
		t.Logf("the Service answers through both VMs' NodePorts: %s", st)
	}
	stages.done("stage (a): join, Ready, Service answering")
	if t.Failed() {
		return
	}

	// Stage (b): the update, drained node by node.
	pl := filepath.Join(dir, "update-with-extensions.payload")
	if err := im.ExtensionPayload(pl, []payload.Extension{exts[fleet.New]}); err != nil {
		t.Fatal(err)
	}
	watcher := &nodeWatch{}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	go watcher.run(wctx, c, names)
	if err := f.Offer(pl, fleet.New); err != nil {
		t.Fatal(err)
	}
	offered := time.Now()
	t.Logf("offering Cairn %s at %s", fleet.New, offered.Format("15:04:05"))
	for _, h := range hosts {
		run(t, ctx, h, "update_engine_client -check_for_update")
	}
	var wg sync.WaitGroup
	reboots := make([]reboot, len(hosts))
	for i, h := range hosts {
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
	c.WaitNodes(t, within(ctx, 20*time.Minute), names, func(n *corev1.Node) error {
		if err := clustertest.NodeReady(n); err != nil {
			return err
		}
		if n.Spec.Unschedulable {
			return errors.New("cordoned")
		}
		return nil
	})
	stages.done("stage (b): both nodes updated, Ready and uncordoned")
	time.Sleep(10 * time.Second)
	stopClient()

	for i, h := range hosts {
		if got := run(t, ctx, h, ". /etc/os-release; echo $VERSION_ID"); strings.TrimSpace(got) != fleet.New {
			t.Errorf("%s: /etc/os-release says %q", h.Name, got)
		}
		if got := run(t, ctx, h, "cat /usr/lib/extension-release.d/extension-release.kubernetes-"+sysext.KubernetesVersion); !strings.Contains(got, "VERSION_ID="+fleet.New) {
			t.Errorf("%s: the merged extension's release after the update: %q", h.Name, got)
		}
		gctx, gcancel := context.WithTimeout(ctx, 3*time.Minute)
		if _, err := fleet.WaitGood(gctx, h, disklayout.SlotB); err != nil {
			t.Error(err)
		}
		gcancel()
		cord := watcher.cordoned(names[i])
		if len(cord) == 0 {
			t.Errorf("%s was never seen cordoned", names[i])
		}
		for _, iv := range cord {
			t.Logf("%s: cordoned from +%v for %v (down +%v, up +%v)", names[i], iv.from.Sub(offered).Round(time.Second),
				iv.to.Sub(iv.from).Round(time.Second), reboots[i].down.Sub(offered).Round(time.Second), reboots[i].up.Sub(offered).Round(time.Second))
		}
	}
	// One at a time: the second node went down after the first was back in service.
	a, b := watcher.cordoned(names[0]), watcher.cordoned(names[1])
	if len(a) > 0 && len(b) > 0 {
		first, second := a[0], b[0]
		if second.from.Before(first.from) {
			first, second = second, first
		}
		if second.from.Before(first.to) {
			t.Errorf("both nodes were cordoned at once: %v-%v and %v-%v", first.from, first.to, second.from, second.to)
		}
	}
	st := lb.stats()
	t.Logf("client through the NodePorts during the update: %s", st)
	for _, iv := range watcher.cordoned(noEndpoints) {
		t.Logf("%s from +%v for %v", noEndpoints, iv.from.Sub(offered).Round(time.Second), iv.to.Sub(iv.from).Round(time.Second))
	}
	if st.failed > 0 {
		t.Errorf("%d of %d requests failed on both VMs; the last errors: %s\nweb's pods' events:\n%s", st.failed, st.total,
			strings.Join(st.lastErrors, "; "), webEvents(c))
	}
	stages.report()
}

// stageLog times the test's stages.
type stageLog struct {
	t     *testing.T
	start time.Time
	last  time.Time
	lines []string
}

func (s *stageLog) done(what string) {
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

func (s *stageLog) report() { s.t.Logf("stages:\n%s", strings.Join(s.lines, "\n")) }

type reboot struct {
	down, up time.Time
	err      error
}

// joined waits until h's kubeadm join has run, and fails the test at once with the journal
// when it or the extension's fetch failed: the node would never register.
func joined(t *testing.T, ctx context.Context, h *fleet.Host) {
	t.Helper()
	jctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	out := eventually(t, jctx, h, "systemctl show -p ActiveState --value "+strings.Join(joinUnits, " "), func(s string) bool {
		done, _ := joinDone(s)
		return done
	})
	if _, failed := joinDone(out); failed != "" {
		j, _ := h.Run(ctx, "journalctl --no-pager -o cat -u kubernetes-sysext -u kubeadm | tail -n 80")
		t.Fatalf("%s: %s failed:\n%s", h.Name, failed, j)
	}
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
func webPods(t *testing.T, c *clustertest.Cluster) []string {
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

type balancerStats struct {
	total, ok, failed, retried int
	byPod                      map[string]int
	lastErrors                 []string
}

func (s balancerStats) String() string {
	return fmt.Sprintf("%d requests, %d answered (%d after a retry), %d failed; answers by pod %v", s.total, s.ok, s.retried, s.failed, s.byPod)
}

func (b *balancer) stats() balancerStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return balancerStats{total: b.total, ok: b.total - b.failed, failed: b.failed, retried: b.retried, byPod: maps.Clone(b.byPod),
		lastErrors: slices.Clone(b.errs)}
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

func TestJoinDone(t *testing.T) {
	for _, tc := range []struct {
		out    string
		done   bool
		failed string
	}{
		{"", false, ""},
		{"activating\n\ninactive\n", false, ""},
		{"active\n\nactivating\n", false, ""},
		{"active\n\nactive\n", true, ""},
		{"active\n\nfailed\n", true, "kubeadm.service"},
		// The fetch failed: kubeadm's unit ends inactive, a dependency failure.
		{"failed\n\ninactive\n", true, "kubernetes-sysext.service"},
		{"active\n", false, ""},
	} {
		done, failed := joinDone(tc.out)
		if done != tc.done || failed != tc.failed {
			t.Errorf("joinDone(%q) = %v, %q; want %v, %q", tc.out, done, failed, tc.done, tc.failed)
		}
	}
}

func TestKubeDeadline(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		deadline time.Time
		ok       bool
		want     time.Time
	}{
		{"no deadline", time.Time{}, false, now.Add(45 * time.Minute)},
		{"-timeout 60m", now.Add(60 * time.Minute), true, now.Add(45 * time.Minute)},
		{"-timeout 40m", now.Add(40 * time.Minute), true, now.Add(35 * time.Minute)},
		{"10 minutes left after the images", now.Add(10 * time.Minute), true, now.Add(5 * time.Minute)},
	} {
		if got := kubeDeadline(now, tc.deadline, tc.ok); !got.Equal(tc.want) {
			t.Errorf("%s: %v; want %v", tc.name, got, tc.want)
		}
	}
}
