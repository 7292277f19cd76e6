package sysext

import (
	"cmp"
	"fmt"
	"strings"
	"time"
)

// What a host's first-boot config adds to make it a Kubernetes node with the extension
// Kubernetes builds: the kernel settings, the unit that fetches and merges the extension, the
// unit that runs kubeadm and kubeadm join's configuration. kube/README.md's Ignition configs
// and e2e's fleet.KubeConfig are made of these, and kube/clustertest's nodes join with the
// same configuration.

// Names of the first-boot units and paths of the files.
const (
	FetchUnitName   = "kubernetes-sysext.service"
	KubeadmUnitName = "kubeadm.service"
	SysctlPath      = "/etc/sysctl.d/90-kubernetes.conf"
	ModulesLoadPath = "/etc/modules-load.d/kubernetes.conf"
)

// NodeSysctls are the kernel settings a node needs before kubeadm runs: IPv4 forwarding,
// which kubeadm's preflight requires, and bridged traffic through netfilter's hooks, so that
// what pods on one node's bridge send each other through a Service meets kube-proxy's rules.
const NodeSysctls = "net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\n"

// NodeModules are the modules a node loads at boot: br_netfilter, which the second of
// NodeSysctls belongs to (systemd-sysctl runs after systemd-modules-load).
const NodeModules = "br_netfilter\n"

// FetchUnit is the unit that fetches the extension image name.raw from url once the network
// is up (first boot takes only data: sources, far too small for it), verified against its
// SHA-256 before it takes its name in /etc/extensions, then merges it and reloads systemd for
// kubelet's unit. It runs once: the merge is redone at every boot by systemd-sysext.
func FetchUnit(url, sha256, name string) string {
	return fmt.Sprintf(`[Unit]
Description=Fetch and merge the Kubernetes system extension
Wants=network-online.target
After=network-online.target
ConditionPathExists=!/var/lib/cairn/kubernetes-sysext.done

[Service]
Type=oneshot
RemainAfterExit=yes
StateDirectory=cairn
Environment=URL=%[1]s
Environment=SHA256=%[2]s
ExecStart=/usr/lib/systemd/systemd-pull raw --direct --verify=${SHA256} --settings=no --roothash=no --verity=no ${URL} /etc/extensions/.%[3]s.raw.part
ExecStart=/usr/bin/mv /etc/extensions/.%[3]s.raw.part /etc/extensions/%[3]s.raw
ExecStart=/usr/bin/systemd-sysext refresh
ExecStart=/usr/bin/systemctl daemon-reload
ExecStart=/usr/bin/touch /var/lib/cairn/kubernetes-sysext.done

[Install]
WantedBy=multi-user.target
`, url, sha256, name)
}

// KubeadmConfigPath is where KubeadmUnit(verb) reads kubeadm's configuration.
func KubeadmConfigPath(verb string) string { return "/etc/kubernetes/kubeadm-" + verb + ".yaml" }

// KubeadmUnit is the unit that runs `kubeadm init` or `kubeadm join` (verb) with its
// configuration file once the extension is merged, until it has configured the node. It
// starts after rktlet.service, not only its socket: kubeadm's preflight gives the CRI a few
// seconds to answer, less than a rktlet started by that first connection takes in a slow
// guest.
func KubeadmUnit(verb string) string {
	done := "/etc/kubernetes/kubelet.conf"
	if verb == "init" {
		done = "/etc/kubernetes/admin.conf"
	}
	return fmt.Sprintf(`[Unit]
Description=kubeadm %[1]s
Requires=%[2]s
After=%[2]s rktlet.service network-online.target
Wants=network-online.target rktlet.service
ConditionPathExists=!%[3]s

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/bin/kubeadm %[1]s --config=%[4]s

[Install]
WantedBy=multi-user.target
`, verb, FetchUnitName, done, KubeadmConfigPath(verb))
}

// KubeletArg is one of kubelet's flags (its name without dashes) that kubeadm writes into
// kubeadm-flags.env.
type KubeletArg struct{ Name, Value string }

// NodeRegistration is kubeadm's nodeRegistration, of an InitConfiguration or a
// JoinConfiguration.
type NodeRegistration struct {
	Name             string // "": the host name
	CRISocket        string // "": rktlet's, KubeletSocket
	KubeletExtraArgs []KubeletArg
}

// YAML is the nodeRegistration key and its fields, as kubeadm's v1beta4 configurations have it.
func (r NodeRegistration) YAML() string {
	var b strings.Builder
	b.WriteString("nodeRegistration:\n")
	if r.Name != "" {
		fmt.Fprintf(&b, "  name: %q\n", r.Name)
	}
	fmt.Fprintf(&b, "  criSocket: %s\n", cmp.Or(r.CRISocket, KubeletSocket))
	if len(r.KubeletExtraArgs) > 0 {
		b.WriteString("  kubeletExtraArgs:\n")
		for _, a := range r.KubeletExtraArgs {
			fmt.Fprintf(&b, "  - {name: %s, value: %q}\n", a.Name, a.Value)
		}
	}
	return b.String()
}

// JoinConfig is kubeadm join's configuration for a node that finds the cluster through a
// bootstrap token and trusts it by its CA's public key hash, as `kubeadm token create
// --print-join-command` prints them.
type JoinConfig struct {
	APIServer string // the API server's HOST:PORT (the cluster's controlPlaneEndpoint)
	Token     string // the bootstrap token
	CAHash    string // sha256:HEX of the CA's public key
	NodeRegistration
	// Timeouts that are not zero replace kubeadm's defaults: a slow node's kubelet can take
	// longer to start than kubeadm waits.
	Timeouts JoinTimeouts
}

// JoinTimeouts are kubeadm join's waits (v1beta4's timeouts).
type JoinTimeouts struct {
	Discovery, TLSBootstrap, KubeletHealthCheck time.Duration
}

// YAML is the configuration file kubeadm join --config reads.
func (c JoinConfig) YAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %q
    token: %q
    caCertHashes: [%q]
`, c.APIServer, c.Token, c.CAHash)
	b.WriteString(c.NodeRegistration.YAML())
	if c.Timeouts != (JoinTimeouts{}) {
		b.WriteString("timeouts:\n")
		for _, t := range []struct {
			key string
			d   time.Duration
		}{{"discovery", c.Timeouts.Discovery}, {"tlsBootstrap", c.Timeouts.TLSBootstrap}, {"kubeletHealthCheck", c.Timeouts.KubeletHealthCheck}} {
			if t.d != 0 {
				fmt.Fprintf(&b, "  %s: %s\n", t.key, t.d)
			}
		}
	}
	return b.String()
}
