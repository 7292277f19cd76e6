//go:build linux

package clustertest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
)

// APIServer is a real kube-apiserver in the cluster's underlay namespace, stored in the
// cluster's etcd, reached by the hosts at https://EtcdIP:6443 with a static token.
type APIServer struct {
	C          *Cluster
	Kubectl    string
	Kubeconfig string
	URL        string
}

// StartAPIServer starts kube-apiserver and waits until it is ready.
func (c *Cluster) StartAPIServer(bins string) *APIServer {
	t := c.T
	t.Helper()
	dir := filepath.Join(c.Dir, "kube")
	if err := os.MkdirAll(filepath.Join(dir, "pki"), 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKey := filepath.Join(dir, "sa.key")
	writeFile(t, saKey, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	var tok [16]byte
	rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	writeFile(t, filepath.Join(dir, "tokens.csv"), token+",admin,admin,system:masters\n")
	a := &APIServer{C: c, Kubectl: filepath.Join(bins, "kubectl"), Kubeconfig: filepath.Join(dir, "kubeconfig"), URL: "https://" + EtcdIP + ":6443"}
	// The serving certificate is the self-signed one kube-apiserver makes for itself; the
	// hosts skip its verification, which is no part of what is tested here.
	writeFile(t, a.Kubeconfig, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, a.URL, token))
	log, err := os.Create(filepath.Join(c.Dir, "kube-apiserver.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("ip", "netns", "exec", c.UnderNS, filepath.Join(bins, "kube-apiserver"),
		"--etcd-servers", c.EtcdURL, "--bind-address", EtcdIP, "--advertise-address", EtcdIP, "--secure-port", "6443",
		"--cert-dir", filepath.Join(dir, "pki"), "--token-auth-file", filepath.Join(dir, "tokens.csv"),
		"--authorization-mode", "AlwaysAllow", "--service-cluster-ip-range", "10.96.0.0/16",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", saKey,
		"--service-account-signing-key-file", saKey, "--enable-priority-and-fairness=false", "--v", "1")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kube-apiserver: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("kube-apiserver log:\n%s", tail(c.read("kube-apiserver.log"), 40))
		}
	})
	Eventually(t, 90*time.Second, "kube-apiserver /readyz", func() error {
		select {
		case <-exited:
			t.Fatalf("kube-apiserver exited:\n%s", tail(c.read("kube-apiserver.log"), 40))
		default:
		}
		_, err := a.Run("", "get", "--raw", "/readyz")
		return err
	})
	t.Logf("kube-apiserver ready in %s", time.Since(start).Round(time.Millisecond))
	return a
}

// Run runs kubectl in the underlay namespace with stdin as its input.
func (a *APIServer) Run(stdin string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", a.C.UnderNS, a.Kubectl, "--kubeconfig", a.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// MustRun is Run, failing the test on error.
func (a *APIServer) MustRun(stdin string, args ...string) string {
	a.C.T.Helper()
	out, err := a.Run(stdin, args...)
	if err != nil {
		a.C.T.Fatal(err)
	}
	return out
}

// CreateNode creates a Node with a pod CIDR, as kube-controller-manager's allocator would
// have given it, and the annotation kubelet registers every Node with (stock flanneld
// assumes a Node has annotations: on one without any it panics).
func (a *APIServer) CreateNode(name, podCIDR string) {
	a.C.T.Helper()
	a.MustRun(fmt.Sprintf(`{"apiVersion":"v1","kind":"Node","metadata":{"name":%q,`+
		`"annotations":{"volumes.kubernetes.io/controller-managed-attach-detach":"true"}},`+
		`"spec":{"podCIDR":%q,"podCIDRs":[%q]}}`, name, podCIDR, podCIDR), "create", "-f", "-")
}

// Annotations returns a Node's annotations.
func (a *APIServer) Annotations(name string) (map[string]string, error) {
	out, err := a.Run("", "get", "node", name, "-o", "json")
	if err != nil {
		return nil, err
	}
	var n struct {
		Metadata struct{ Annotations map[string]string }
	}
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	return n.Metadata.Annotations, nil
}

func writeFile(t testenv.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// kubeHost makes a host whose flanneld runs in the Kubernetes mode as Node name, with
// the flags Cairn's flanneld and stock flanneld share, and extra.
func kubeHost(c *Cluster, api *APIServer, netConf, name string, extra ...string) *Host {
	h := c.AddHost()
	h.Args = append([]string{"-kube-subnet-mgr", "-kubeconfig-file", api.Kubeconfig, "-net-config-path", netConf,
		"-iface", "eth0", "-subnet-file", h.SubnetFile}, extra...)
	h.Env = []string{"NODE_NAME=" + name}
	return h
}

// kubeCluster makes a cluster without etcd config, starts kube-apiserver in it and writes
// the network config as kube-flannel's ConfigMap mounts it (net-conf.json); it returns the
// path of that file.
func kubeCluster(t *testing.T) (*Cluster, *APIServer, string) {
	t.Helper()
	testenv.SkipShort(t, "starts kube-apiserver, etcd and flanneld processes")
	Require(t)
	bins := kubeBins(t)
	c := newCluster(t, "")
	api := c.StartAPIServer(bins)
	netConf := filepath.Join(c.Dir, "net-conf.json")
	writeFile(t, netConf, netDoc)
	return c, api, netConf
}

const flannelAnn = "flannel.alpha.coreos.com/"

// waitAnnotated waits for a Node to carry the annotations flanneld publishes, with the
// host's address as public IP, and returns them.
func waitAnnotated(t *testing.T, api *APIServer, name string, h *Host) map[string]string {
	t.Helper()
	var ann map[string]string
	Eventually(t, 60*time.Second, "node "+name+" annotated", func() error {
		var err error
		if ann, err = api.Annotations(name); err != nil {
			return err
		}
		if ann[flannelAnn+"kube-subnet-manager"] != "true" || ann[flannelAnn+"backend-type"] != "vxlan" ||
			ann[flannelAnn+"public-ip"] != h.IP.String() || !strings.Contains(ann[flannelAnn+"backend-data"], `"VtepMAC"`) {
			return fmt.Errorf("annotations %v", ann)
		}
		return nil
	})
	return ann
}

// backendData decodes a Node's backend-data annotation.
func backendData(t *testing.T, ann map[string]string) (vni int, vtepMAC string) {
	t.Helper()
	var bd struct {
		VNI     int
		VtepMAC string
	}
	if err := json.Unmarshal([]byte(ann[flannelAnn+"backend-data"]), &bd); err != nil {
		t.Fatalf("backend-data %q: %v", ann[flannelAnn+"backend-data"], err)
	}
	return bd.VNI, bd.VtepMAC
}

// waitNetworkAvailable waits for flanneld to set the Node's NetworkUnavailable condition
// to False with reason FlannelIsUp.
func waitNetworkAvailable(t *testing.T, api *APIServer, name string) {
	t.Helper()
	Eventually(t, 30*time.Second, "NetworkUnavailable=False on "+name, func() error {
		out, err := api.Run("", "get", "node", name, "-o", `jsonpath={.status.conditions[?(@.type=="NetworkUnavailable")].reason}`)
		if err == nil && strings.TrimSpace(out) != "FlannelIsUp" {
			err = fmt.Errorf("reason %q", out)
		}
		return err
	})
}

// checkPeer checks that h carries the route, neighbour and FDB entry of flannel's vxlan
// backend for a peer with the given subnet, VtepMAC and public IP.
func checkPeer(t *testing.T, h *Host, subnet netip.Prefix, mac string, publicIP netip.Addr) {
	t.Helper()
	gw := subnet.Addr().String()
	if r := h.MustExec("ip", "route", "show", subnet.String()); !strings.Contains(r, "via "+gw+" dev flannel.1 onlink") {
		t.Errorf("%s: route to %s: %q", h.NS, subnet, r)
	}
	if n := h.MustExec("ip", "neigh", "show", gw, "dev", "flannel.1"); !strings.Contains(n, "lladdr "+mac+" PERMANENT") {
		t.Errorf("%s: neighbour %s: %q, want lladdr %s", h.NS, gw, n, mac)
	}
	if f := h.MustExec("bridge", "fdb", "show", "dev", "flannel.1"); !strings.Contains(f, mac+" dst "+publicIP.String()) {
		t.Errorf("%s: no FDB entry %s dst %s:\n%s", h.NS, mac, publicIP, f)
	}
}

// The Kubernetes mode against a real kube-apiserver: two Nodes with pod CIDRs, flanneld
// -kube-subnet-mgr on two hosts; each annotates its Node, takes its pod CIDR as subnet,
// programs the other's route, neighbour and FDB entry, and pods on the two reach each
// other. Deleting a Node removes its routes from the other host.
func TestKubeSubnetManager(t *testing.T) {
	t.Parallel()
	c, api, netConf := kubeCluster(t)
	api.CreateNode("node-1", "10.5.1.0/24")
	api.CreateNode("node-2", "10.5.2.0/24")
	h1, h2 := kubeHost(c, api, netConf, "node-1", "-log-level", "debug"), kubeHost(c, api, netConf, "node-2", "-log-level", "debug")
	h1.Start()
	h2.Start()
	e1, e2 := h1.WaitEnv(60*time.Second), h2.WaitEnv(60*time.Second)
	if e1.Subnet != netip.MustParsePrefix("10.5.1.0/24") || e2.Subnet != netip.MustParsePrefix("10.5.2.0/24") {
		t.Fatalf("subnets %s, %s; want the pod CIDRs 10.5.1.0/24, 10.5.2.0/24", e1.Subnet, e2.Subnet)
	}
	ann1 := waitAnnotated(t, api, "node-1", h1)
	ann2 := waitAnnotated(t, api, "node-2", h2)
	if vni, _ := backendData(t, ann1); vni != 1 {
		t.Errorf("backend-data %q: VNI %d", ann1[flannelAnn+"backend-data"], vni)
	}
	waitNetworkAvailable(t, api, "node-1")

	ep1, ep2 := h1.AddEndpoint(e1), h2.AddEndpoint(e2)
	pingAll(t, []*Host{h1, h2}, []netip.Addr{ep1, ep2}, 20*time.Second)
	_, mac2 := backendData(t, ann2)
	checkPeer(t, h1, e2.Subnet, mac2, h2.IP)

	api.MustRun("", "delete", "node", "node-2")
	Eventually(t, 20*time.Second, "node-2's route, neighbour and FDB entry gone from node-1", func() error {
		if r := h1.MustExec("ip", "route", "show", "10.5.2.0/24"); strings.TrimSpace(r) != "" {
			return fmt.Errorf("route %q", r)
		}
		if n := h1.MustExec("ip", "neigh", "show", "10.5.2.0", "dev", "flannel.1"); strings.TrimSpace(n) != "" {
			return fmt.Errorf("neighbour %q", n)
		}
		if f := h1.MustExec("bridge", "fdb", "show", "dev", "flannel.1"); strings.Contains(f, h2.IP.String()) {
			return fmt.Errorf("fdb %q", f)
		}
		return nil
	})
}

// Stock flanneld (flannel-io/flannel, built by tools/flannel) in the Kubernetes mode next to
// Cairn's, as kube-flannel's DaemonSet runs it (-kube-subnet-mgr, the ConfigMap's
// net-conf.json, NODE_NAME): each annotates its own Node, the other reads those annotations
// and programs route, neighbour and FDB entry from them, and pods on the two reach each other
// both ways.
func TestKubeInteropStockFlannel(t *testing.T) {
	t.Parallel()
	testenv.SkipShort(t, "starts kube-apiserver, etcd and flanneld processes")
	Require(t)
	// Before the API server starts: a cold build takes minutes, and a failed one skips.
	stockBin := stockFlanneld(t)
	c, api, netConf := kubeCluster(t)
	api.CreateNode("node-1", "10.5.1.0/24")
	api.CreateNode("node-2", "10.5.2.0/24")
	ours := kubeHost(c, api, netConf, "node-1", "-log-level", "debug")
	stock := kubeHost(c, api, netConf, "node-2")
	stock.Bin = stockBin
	ours.Start()
	stock.Start()
	e1, e2 := ours.WaitEnv(60*time.Second), stock.WaitEnv(60*time.Second)
	if e1.Subnet != netip.MustParsePrefix("10.5.1.0/24") || e2.Subnet != netip.MustParsePrefix("10.5.2.0/24") {
		t.Fatalf("subnets %s (Cairn), %s (stock); want the pod CIDRs 10.5.1.0/24, 10.5.2.0/24", e1.Subnet, e2.Subnet)
	}
	if e1.Network != e2.Network || e1.MTU != e2.MTU {
		t.Errorf("subnet.env: Cairn %+v, stock %+v; want the same network and MTU", e1, e2)
	}
	annOurs, annStock := waitAnnotated(t, api, "node-1", ours), waitAnnotated(t, api, "node-2", stock)
	vniOurs, macOurs := backendData(t, annOurs)
	vniStock, macStock := backendData(t, annStock)
	if vniOurs != 1 || vniStock != 1 {
		t.Errorf("VNI: Cairn %d, stock %d; want 1", vniOurs, vniStock)
	}
	if l := stock.MustExec("ip", "-o", "link", "show", "flannel.1"); !strings.Contains(l, "link/ether "+macStock) {
		t.Errorf("stock's backend-data VtepMAC %s is not its device's:\n%s", macStock, l)
	}
	waitNetworkAvailable(t, api, "node-1")
	waitNetworkAvailable(t, api, "node-2")

	ep1, ep2 := ours.AddEndpoint(e1), stock.AddEndpoint(e2)
	pingAll(t, []*Host{ours, stock}, []netip.Addr{ep1, ep2}, 20*time.Second)
	checkPeer(t, ours, e2.Subnet, macStock, stock.IP)
	checkPeer(t, stock, e1.Subnet, macOurs, ours.IP)
}
