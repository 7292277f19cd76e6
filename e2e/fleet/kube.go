package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cairn-os/cairn/console/updates"
	"github.com/cairn-os/cairn/image/build"
	"github.com/cairn-os/cairn/image/sysext"
	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// KubeNode is what a Cairn host needs to join a kubeadm cluster as a node: where the API
// server is and how to trust it, the credentials of its host services, and the Kubernetes
// system extension for the version it boots.
type KubeNode struct {
	// APIServer is the API server's HOST:PORT as the guest reaches it (the cluster's
	// controlPlaneEndpoint); Token and CAHash are kubeadm join's discovery.
	APIServer, Token, CAHash string
	// FlannelKubeconfig and LocksmithdKubeconfig are the kubeconfigs of flanneld
	// -kube-subnet-mgr and of locksmithd's kubernetes strategy (their ServiceAccounts').
	FlannelKubeconfig, LocksmithdKubeconfig string
	// Extension is the Kubernetes system extension built for the version the host boots,
	// fetched from its URL after the network is up.
	Extension payload.Extension
	// RegistryMirrors are rktlet's -registry-mirror values (HOST=URL): the cluster's image
	// references name a registry the guest reaches elsewhere.
	RegistryMirrors []string
	// PodNetwork is flannel's Network (the cluster's podSubnet).
	PodNetwork string
}

// KubeNodeName is host n's name, as host and as Kubernetes node.
func KubeNodeName(n int) string { return fmt.Sprintf("cairn-%d", n) }

// kubeletSysctls are the values kubelet insists on (pkg/kubelet/cm's setupKernelTunables):
// the test cluster's kubelet configuration, which kubeadm join hands every node, protects
// kernel defaults, so kubelet checks them instead of writing them. (kubeadm's default
// configuration lets kubelet write them: kube/README.md's configs go without.)
const (
	kubeletSysctlPath = "/etc/sysctl.d/91-kubelet.conf"
	kubeletSysctls    = `vm.overcommit_memory = 1
vm.panic_on_oom = 0
kernel.panic = 10
kernel.panic_on_oops = 1
kernel.keys.root_maxkeys = 1000000
kernel.keys.root_maxbytes = 25000000
`
)

// joinConfig is kubeadm join's configuration for host n. kubelet's address is the one on
// the cluster link, where the other node's pods are (flannel's VXLAN runs there too). Under
// TCG kubelet takes minutes to start: kubeadm's waits are longer than its defaults.
func (k KubeNode) joinConfig(n int) sysext.JoinConfig {
	return sysext.JoinConfig{APIServer: k.APIServer, Token: k.Token, CAHash: k.CAHash,
		NodeRegistration: sysext.NodeRegistration{Name: KubeNodeName(n), KubeletExtraArgs: []sysext.KubeletArg{{Name: "node-ip", Value: ClusterLinkIP(n)}}},
		Timeouts:         sysext.JoinTimeouts{Discovery: 10 * time.Minute, TLSBootstrap: 15 * time.Minute, KubeletHealthCheck: 15 * time.Minute}}
}

// kubeUpdateConf is a node's update.conf: updates from the fleet's Omaha server, reboots
// coordinated by locksmithd's kubernetes strategy with the kubeconfig where it looks by
// default.
func (f *Fleet) kubeUpdateConf() string {
	return fmt.Sprintf("GROUP=stable\nSERVER=%s%s\nREBOOT_STRATEGY=%s\n", GuestURL(f.ConsolePort), updates.UpdatePath, updateconf.StrategyKubernetes)
}

// KubeConfig is host n's first-boot config as a Kubernetes node: root's ssh key, its address
// on the cluster link, kube/README.md's join config (image/sysext's first-boot pieces: the
// kernel settings, the Kubernetes extension fetched and merged, kubeadm join), rktlet with
// the registry mirrors, flanneld -kube-subnet-mgr over the cluster link, and updates whose
// reboots locksmithd drains the node for.
func (f *Fleet) KubeConfig(n int, k KubeNode) *Config {
	name, x := KubeNodeName(n), k.Extension
	return NewConfig(f.Key).
		File("/etc/hostname", 0o644, name+"\n").
		File("/etc/systemd/network/10-cluster.network", 0o644, clusterNetwork(n)).
		File(sysext.ModulesLoadPath, 0o644, sysext.NodeModules).
		File(sysext.SysctlPath, 0o644, sysext.NodeSysctls).
		File(kubeletSysctlPath, 0o644, kubeletSysctls).
		File("/etc/extensions/"+x.Name+".usrhash", 0o644, x.USRHash+"\n").
		Unit(sysext.FetchUnitName, sysext.FetchUnit(x.URL, x.SHA256, x.Name), true).
		File(sysext.KubeadmConfigPath("join"), 0o600, k.joinConfig(n).YAML()).
		Unit(sysext.KubeadmUnitName, sysext.KubeadmUnit("join"), true).
		File("/etc/systemd/system/rktlet.service.d/10-mirrors.conf", 0o644, rktletDropIn(k.RegistryMirrors)).
		File("/etc/cni/net.d/10-flannel.conflist", 0o644, flannelCNI).
		File("/etc/kube-flannel/net-conf.json", 0o644, `{"Network": "`+k.PodNetwork+`", "Backend": {"Type": "vxlan"}}`+"\n").
		File("/etc/kube-flannel/kubeconfig", 0o600, k.FlannelKubeconfig).
		// -ip-masq: pods reach the API server (the kubernetes Service) through qemu's
		// user-mode network, which answers only the host's own address.
		File("/etc/cairn/flanneld.env", 0o644, fmt.Sprintf("NODE_NAME=%s\nFLANNELD_OPTS=-kube-subnet-mgr -kubeconfig-file=/etc/kube-flannel/kubeconfig -iface=%s -ip-masq\n",
			name, ClusterLinkIP(n))).
		Unit("flanneld.service", "", true).
		File(updateconf.Defaults["LOCKSMITHD_KUBECONFIG"], 0o600, k.LocksmithdKubeconfig).
		File("/etc/cairn/update.conf", 0o644, f.kubeUpdateConf())
}

// clusterNetwork is host n's networkd config of its cluster link.
func clusterNetwork(n int) string {
	return fmt.Sprintf("[Match]\nMACAddress=%s\n\n[Network]\nAddress=%s/24\nLinkLocalAddressing=no\n", linkMAC(n), ClusterLinkIP(n))
}

// flannelCNI is flannel's CNI configuration, as kube-flannel installs it.
const flannelCNI = `{
  "name": "cbr0",
  "cniVersion": "1.0.0",
  "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

// rktletDropIn runs the image's rktlet with the registry mirrors given.
func rktletDropIn(mirrors []string) string {
	var b strings.Builder
	b.WriteString("[Service]\nExecStart=\nExecStart=/usr/bin/rktlet --listen=unix:///run/rktlet/rktlet.sock")
	for _, m := range mirrors {
		b.WriteString(" --registry-mirror=" + m)
	}
	b.WriteString("\n")
	return b.String()
}

// KubeExtension builds the Kubernetes system extension for Cairn version from the kubelet,
// kubeadm and kubectl in kubeBin, under Dir/kubernetes/KEY/version, KEY being the hash of the
// extension's spec (every file it carries, the binaries' contents included) and of the
// builder's sources: an extension built before from the same inputs is used as it is. It
// returns the image's path and its description with url as where it is served from.
func (im *Images) KubeExtension(ctx context.Context, version, kubeBin, url string, progress io.Writer) (string, payload.Extension, error) {
	spec := sysext.Kubernetes(sysext.KubernetesVersion, version, kubeBin, "", build.Config{}.Defaults().SourceDateEpoch)
	digest, err := spec.Digest()
	if err != nil {
		return "", payload.Extension{}, err
	}
	builder, err := sourceFiles(im.Source, "image/sysext", "image/disk", "internal/gpt")
	if err != nil {
		return "", payload.Extension{}, fmt.Errorf("kubernetes extension for %s: its builder: %w", version, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "spec %s\n", digest)
	if err := hashFiles(h, builder); err != nil {
		return "", payload.Extension{}, fmt.Errorf("kubernetes extension for %s: its builder: %w", version, err)
	}
	out := filepath.Join(im.Dir, "kubernetes", hex.EncodeToString(h.Sum(nil))[:16], version)
	raw, usrhash := filepath.Join(out, spec.Name+".raw"), filepath.Join(out, spec.Name+".usrhash")
	if _, err := os.Stat(usrhash); err != nil {
		if _, err := (&sysext.Builder{Spec: spec, Out: out, Progress: progress}).Build(ctx); err != nil {
			return "", payload.Extension{}, err
		}
	}
	x, err := payload.DescribeExtension(raw)
	if err != nil {
		return "", payload.Extension{}, err
	}
	x.URL = url
	return raw, x, nil
}

// ExtensionPayload writes to out the new release's payload with exts named in its manifest
// (format 2), signed with the release key: the update that brings a node's extensions along.
func (im *Images) ExtensionPayload(out string, exts []payload.Extension) error {
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".payload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	h, parts, err := extractParts(im.NewPayload(), tmp)
	if err != nil {
		return err
	}
	if parts[payload.PartUSR] == "" || parts[payload.PartUKI] == "" {
		return fmt.Errorf("the %s payload lacks its usr or uki part", New)
	}
	kb, err := os.ReadFile(im.Key)
	if err != nil {
		return err
	}
	priv, err := payload.ParsePrivateKey(kb)
	if err != nil {
		return fmt.Errorf("release key %s: %w", im.Key, err)
	}
	return atomicfile.Write(out, 0o644, func(w io.Writer) error {
		_, err := payload.Build(w, payload.BuildOptions{Version: h.Manifest.Version, Board: h.Manifest.Board,
			MinSourceVersion: h.Manifest.MinSourceVersion, TempDir: tmp, Extensions: exts,
			USR: payload.FileSource(payload.PartUSR, parts[payload.PartUSR]), UKI: payload.FileSource(payload.PartUKI, parts[payload.PartUKI])}, priv)
		return err
	})
}

// Forward accepts connections on l until it is closed and joins each to one that dial opens:
// a TCP proxy on the host's loopback for what guests must reach in a network namespace.
func Forward(l net.Listener, dial func(ctx context.Context) (net.Conn, error)) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				slog.Warn("fleet: a forward stopped accepting", "addr", l.Addr().String(), "err", err)
			}
			return
		}
		go func() {
			defer c.Close()
			up, err := dial(context.Background())
			if err != nil {
				return // the guest sees its connection closed, as when the server is down
			}
			defer up.Close()
			var wg sync.WaitGroup
			for _, p := range [][2]net.Conn{{up, c}, {c, up}} {
				wg.Go(func() {
					// Either side closing ends the copy; the other direction goes on until its
					// own end, as a half-closed TCP connection does.
					io.Copy(p[0], p[1]) //nolint:errcheck // see above
					if tc, ok := p[0].(*net.TCPConn); ok {
						tc.CloseWrite() //nolint:errcheck // the peer may be gone already
					}
				})
			}
			wg.Wait()
		}()
	}
}
