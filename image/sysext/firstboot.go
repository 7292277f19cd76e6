package sysext

import "fmt"

// What a host's first-boot config adds to make it a Kubernetes node with the extension
// Kubernetes builds: the kernel settings, the unit that fetches and merges the extension and
// the unit that runs kubeadm. kube/README.md's Ignition configs and e2e's fleet.KubeConfig are
// made of these.

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
