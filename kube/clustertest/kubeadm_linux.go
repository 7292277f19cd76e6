package clustertest

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	fct "github.com/cairn-os/cairn/flannel/clustertest"
	"github.com/cairn-os/cairn/image/sysext"
	"github.com/cairn-os/cairn/internal/testenv"
)

// preflightIgnored are kubeadm's preflight checks a node in a namespace cannot pass, each
// with why.
var preflightIgnored = map[string]string{
	// cgroup v1 hybrid here: kubeadm's system verification wants cgroup v2 (kubelet is
	// told failCgroupV1: false).
	"SystemVerification": "cgroup v1",
}

func ignoredPreflight() string {
	var names []string
	for k := range preflightIgnored {
		names = append(names, k)
	}
	return "--ignore-preflight-errors=" + strings.Join(names, ",")
}

// registration is the node's nodeRegistration in kubeadm's configuration: its name, its
// runtime's socket and the per-node kubelet flags kubeadm writes into kubeadm-flags.env.
func (n *Node) registration() sysext.NodeRegistration {
	return sysext.NodeRegistration{Name: n.Name, CRISocket: "unix://" + n.Runtime.criSocket(),
		KubeletExtraArgs: []sysext.KubeletArg{{Name: "node-ip", Value: n.Host.IP.String()}, {Name: "cgroup-root", Value: n.CgroupRoot}}}
}

// bootstrapToken is the token nodes join with (kubeadm's format: 6.16 characters).
func bootstrapToken() string { return randomHex(3) + "." + randomHex(8) }

// Init runs `kubeadm init` on the node: certificates, kubeconfigs, static pods for etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler run by kubelet on rktlet,
// then kube-proxy and CoreDNS. It returns kubeadm's output.
func (c *Cluster) Init(n *Node) string {
	c.T.Helper()
	return c.InitWith(n, InitOptions{})
}

// InitOptions change kubeadm init's configuration for a cluster with nodes off the underlay
// (the e2e tier's VMs, which reach this machine only through qemu's user-mode network).
type InitOptions struct {
	// Endpoint is where every node and client reaches the API server: kubeadm's
	// controlPlaneEndpoint and advertiseAddress, the API server's port, and so a name on its
	// certificate. The address goes on the init node's loopback and is routed to that node
	// from the underlay namespace and the nodes that join. Default: the init node's underlay
	// address, port 6443.
	Endpoint netip.AddrPort
	// NodePortAddresses is kube-proxy's nodePortAddresses (default kube-proxy's: in
	// nftables mode, the node's primary address only).
	NodePortAddresses []string
}

// kubeProxyExtra is what the options add to kube-proxy's configuration.
func (o InitOptions) kubeProxyExtra() string {
	if len(o.NodePortAddresses) == 0 {
		return ""
	}
	// A JSON array of strings is a YAML flow sequence; a []string always marshals.
	b, _ := json.Marshal(o.NodePortAddresses)
	return "nodePortAddresses: " + string(b) + "\n"
}

// InitWith is Init with the options given.
func (c *Cluster) InitWith(n *Node, o InitOptions) string {
	t := c.T
	t.Helper()
	c.token = bootstrapToken()
	c.init, c.endpoint = n, netip.AddrPortFrom(n.Host.IP, 6443)
	if o.Endpoint.IsValid() {
		c.endpoint = o.Endpoint
	}
	if ep, ok := c.routedEndpoint(); ok {
		n.MustExec("ip", "addr", "add", ep+"/32", "dev", "lo")
		fct.Run(t, "ip", "-n", c.Net.UnderNS, "route", "add", ep+"/32", "via", n.Host.IP.String())
	}
	cfg := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: %q
localAPIEndpoint:
  advertiseAddress: %q
  bindPort: %d
%s---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %s
imageRepository: %s
controlPlaneEndpoint: %q
networking:
  podSubnet: %s
  serviceSubnet: %s
etcd:
  local:
    imageTag: %s # etcd as built here, at the release Cairn's modules use
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
protectKernelDefaults: true
# The nodes share the machine's disk: its free share is not a node's to act on.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1Gi
  imagefs.available: 1Gi
  nodefs.inodesFree: 1%%
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
%s`, c.token, c.endpoint.Addr(), c.endpoint.Port(), n.registration().YAML(), KubernetesVersion, RegistryAddr,
		c.endpoint.String(), PodNetwork, ServiceNetwork, c.etcdTag, o.kubeProxyExtra())
	path := filepath.Join(n.Dir, "kubeadm-init.yaml")
	writeFile(t, path, cfg)
	start := time.Now()
	out, err := n.Exec(filepath.Join(c.Kube, "kubeadm"), "init", "--config", path, ignoredPreflight(), "--v=1")
	if err != nil {
		t.Fatalf("kubeadm init: %v\nkubelet:\n%s\nrktlet:\n%s", err, n.Log("kubelet", 40), n.Log("rktlet", 40))
	}
	t.Logf("kubeadm init on %s: %s", n.Name, time.Since(start).Round(time.Second))
	c.Kubeconfig = filepath.Join(n.Dir, "etc/kubernetes/admin.conf")
	return out
}

// routedEndpoint is the API server's address when it is not the init node's underlay
// address: it is on that node's loopback, and the underlay and every other node route it
// there.
func (c *Cluster) routedEndpoint() (string, bool) {
	ep := c.endpoint.Addr()
	return ep.String(), ep != c.init.Host.IP
}

// Join runs `kubeadm join` on the node, discovering the cluster through the bootstrap
// token and the CA's public key hash, as `kubeadm token create --print-join-command` says.
func (c *Cluster) Join(n *Node) string {
	t := c.T
	t.Helper()
	if ep, ok := c.routedEndpoint(); ok {
		n.MustExec("ip", "route", "add", ep+"/32", "via", c.init.Host.IP.String())
	}
	cfg := sysext.JoinConfig{APIServer: c.endpoint.String(), Token: c.token, CAHash: c.CAHash(), NodeRegistration: n.registration()}.YAML()
	path := filepath.Join(n.Dir, "kubeadm-join.yaml")
	writeFile(t, path, cfg)
	start := time.Now()
	out, err := n.Exec(filepath.Join(c.Kube, "kubeadm"), "join", "--config", path, ignoredPreflight(), "--v=1")
	if err != nil {
		t.Fatalf("kubeadm join: %v\nkubelet:\n%s", err, n.Log("kubelet", 40))
	}
	t.Logf("kubeadm join on %s: %s", n.Name, time.Since(start).Round(time.Second))
	return out
}

// BootstrapToken is the token nodes join with.
func (c *Cluster) BootstrapToken() string { return c.token }

// CACert is the cluster CA's certificate (PEM).
func (c *Cluster) CACert() []byte {
	b, err := os.ReadFile(filepath.Join(c.init.Dir, "etc/kubernetes/pki/ca.crt"))
	if err != nil {
		c.T.Fatal(err)
	}
	return b
}

// CAHash is kubeadm's discovery hash of the cluster CA: sha256 of its public key info.
func (c *Cluster) CAHash() string {
	b := c.CACert()
	blk, _ := pem.Decode(b)
	if blk == nil {
		c.T.Fatal("ca.crt: no PEM block")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		c.T.Fatalf("ca.crt: %v", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// flannelRBAC is kube-flannel's ServiceAccount and ClusterRole: nodes to read and watch,
// nodes/status to patch.
const flannelRBAC = `apiVersion: v1
kind: Namespace
metadata: {name: kube-flannel}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: flannel, namespace: kube-flannel}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: flannel}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [nodes/status]
  verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: flannel}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: flannel}
subjects:
- {kind: ServiceAccount, name: flannel, namespace: kube-flannel}
`

// StartFlannelOn gives the node flanneld in the Kubernetes mode, with kube-flannel's RBAC
// and a token of its ServiceAccount, as a host unit running flanneld would have.
func (c *Cluster) StartFlannelOn(n *Node) {
	t := c.T
	t.Helper()
	writeFile(t, filepath.Join(n.Dir, "etc/kube-flannel/kubeconfig"), c.FlannelKubeconfig())
	n.StartFlannel("/etc/kube-flannel/kubeconfig")
}

// FlannelKubeconfig is a kubeconfig for flanneld -kube-subnet-mgr: a token of kube-flannel's
// ServiceAccount (its RBAC applied on the first call), the API server at Endpoint.
func (c *Cluster) FlannelKubeconfig() string {
	c.T.Helper()
	if !c.flannelRBAC {
		c.MustKubectl(flannelRBAC, "apply", "-f", "-")
		c.flannelRBAC = true
	}
	token := strings.TrimSpace(c.MustKubectl("", "-n", "kube-flannel", "create", "token", "flannel", "--duration=24h"))
	return Kubeconfig("https://"+c.endpoint.String(), c.CACert(), "flannel", token)
}

// LocksmithdKubeconfig is a kubeconfig for locksmithd's kubernetes strategy, made as
// update-engine/README.md says: update-engine/locksmith/kube/rbac.yaml applied, the token of
// its ServiceAccount's Secret, kubectl config's commands; the API server at the endpoint.
func (c *Cluster) LocksmithdKubeconfig() string {
	t := c.T
	t.Helper()
	rbac, err := os.ReadFile(filepath.Join(c.root, "update-engine/locksmith/kube/rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c.MustKubectl(string(rbac), "apply", "-f", "-")
	var token []byte
	fct.Eventually(t, 2*time.Minute, "locksmithd's token", func() error {
		out, err := c.Kubectl("", "-n", "kube-system", "get", "secret", "locksmithd-token", "-o", "jsonpath={.data.token}")
		if err != nil {
			return err
		}
		if token, err = base64.StdEncoding.DecodeString(strings.TrimSpace(out)); err != nil || len(token) == 0 {
			return fmt.Errorf("not filled in yet (%v)", err)
		}
		return nil
	})
	path := filepath.Join(c.Dir, "locksmithd.conf")
	os.Remove(path) // kubectl config adds to a file there: a second call starts afresh
	kubectl := filepath.Join(c.Kube, "kubectl")
	for _, args := range [][]string{
		{"set-cluster", "kubernetes", "--server=https://" + c.endpoint.String(),
			"--certificate-authority=" + filepath.Join(c.init.Dir, "etc/kubernetes/pki/ca.crt"), "--embed-certs"},
		{"set-credentials", "locksmithd", "--token=" + string(token)},
		{"set-context", "locksmithd", "--cluster=kubernetes", "--user=locksmithd"},
		{"use-context", "locksmithd"},
	} {
		if out, err := exec.Command(kubectl, append([]string{"config", "--kubeconfig=" + path}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("kubectl config %s: %v\n%s", args[0], err, out)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Kubeconfig is a kubeconfig of one cluster at server (its CA given), one user with a bearer
// token, and a context of the two.
func Kubeconfig(server string, ca []byte, user, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster: {server: %q, certificate-authority-data: %s}
users:
- name: %s
  user: {token: %q}
contexts:
- name: %[3]s
  context: {cluster: kubernetes, user: %[3]s}
current-context: %[3]s
`, server, b64(ca), user, token)
}

// Kubectl runs kubectl with the cluster's admin kubeconfig in the underlay namespace,
// with stdin as its input.
func (c *Cluster) Kubectl(stdin string, args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + c.Net.UnderNS, "--", filepath.Join(c.Kube, "kubectl"),
		"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// MustKubectl is Kubectl, failing the test on error.
func (c *Cluster) MustKubectl(stdin string, args ...string) string {
	c.T.Helper()
	out, err := c.Kubectl(stdin, args...)
	if err != nil {
		c.T.Fatal(err)
	}
	return out
}

// KubectlCmd is a kubectl command in the underlay namespace, for the caller to run.
func (c *Cluster) KubectlCmd(args ...string) *exec.Cmd {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + c.Net.UnderNS, "--", filepath.Join(c.Kube, "kubectl"),
		"--kubeconfig", c.Kubeconfig}, args...)...)
}

// WaitNodesReady waits until every node is Ready.
func (c *Cluster) WaitNodesReady(t testenv.TB, timeout time.Duration) {
	t.Helper()
	var names []string
	for _, n := range c.Nodes() {
		names = append(names, n.Name)
	}
	c.WaitNodes(t, timeout, names, NodeReady)
}

// WaitNodes waits until check passes for each named Node, polling every second, and fails
// the test with why not for each one after timeout.
func (c *Cluster) WaitNodes(t testenv.TB, timeout time.Duration, names []string, check func(*corev1.Node) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		nodes, err := c.ListNodes()
		var why []string
		if err != nil {
			why = append(why, err.Error())
		}
		for _, name := range names {
			if n, ok := nodes[name]; !ok {
				why = append(why, name+": not registered")
			} else if err := check(n); err != nil {
				why = append(why, name+": "+err.Error())
			}
		}
		if len(why) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes %s: not within %v: %s", strings.Join(names, ", "), timeout, strings.Join(why, "; "))
		}
		time.Sleep(time.Second)
	}
}

// ListNodes are the cluster's Nodes by name.
func (c *Cluster) ListNodes() (map[string]*corev1.Node, error) {
	out, err := c.Kubectl("", "get", "nodes", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list corev1.NodeList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("kubectl get nodes: %w", err)
	}
	m := map[string]*corev1.Node{}
	for i := range list.Items {
		m[list.Items[i].Name] = &list.Items[i]
	}
	return m, nil
}

// NodeReady is nil when n's Ready condition is True, else why it is not.
func NodeReady(n *corev1.Node) error {
	for _, cd := range n.Status.Conditions {
		if cd.Type == corev1.NodeReady {
			if cd.Status == corev1.ConditionTrue {
				return nil
			}
			return fmt.Errorf("not Ready: %s", cd.Message)
		}
	}
	return errors.New("no Ready condition yet")
}
