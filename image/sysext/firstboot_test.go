package sysext

import (
	"strings"
	"testing"
	"time"
)

func TestKubeadmUnit(t *testing.T) {
	for _, tc := range []struct {
		verb string
		want []string
	}{
		{"init", []string{"Description=kubeadm init\n", "ConditionPathExists=!/etc/kubernetes/admin.conf\n",
			"ExecStart=/usr/bin/kubeadm init --config=/etc/kubernetes/kubeadm-init.yaml\n"}},
		{"join", []string{"Description=kubeadm join\n", "ConditionPathExists=!/etc/kubernetes/kubelet.conf\n",
			"ExecStart=/usr/bin/kubeadm join --config=/etc/kubernetes/kubeadm-join.yaml\n"}},
	} {
		u := KubeadmUnit(tc.verb)
		// After the extension's merge, and after rktlet itself, not only its socket.
		for _, w := range append(tc.want, "Requires=kubernetes-sysext.service\n", "After=kubernetes-sysext.service rktlet.service network-online.target\n") {
			if !strings.Contains(u, w) {
				t.Errorf("KubeadmUnit(%q) lacks %q:\n%s", tc.verb, w, u)
			}
		}
	}
}

func TestFetchUnit(t *testing.T) {
	u := FetchUnit("https://updates.example/1.2.0/kubernetes-v1.37.2.raw", "c4725253", "kubernetes-v1.37.2")
	for _, w := range []string{
		"Environment=URL=https://updates.example/1.2.0/kubernetes-v1.37.2.raw\n",
		"Environment=SHA256=c4725253\n",
		// Fetched under a temporary name, renamed only once the hash matched.
		"--verify=${SHA256} --settings=no --roothash=no --verity=no ${URL} /etc/extensions/.kubernetes-v1.37.2.raw.part\n",
		"ExecStart=/usr/bin/mv /etc/extensions/.kubernetes-v1.37.2.raw.part /etc/extensions/kubernetes-v1.37.2.raw\n",
		"ExecStart=/usr/bin/systemd-sysext refresh\n",
		"ConditionPathExists=!/var/lib/cairn/kubernetes-sysext.done\n",
	} {
		if !strings.Contains(u, w) {
			t.Errorf("FetchUnit lacks %q:\n%s", w, u)
		}
	}
}

func TestJoinConfig(t *testing.T) {
	const head = `apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: "10.0.2.2:40200"
    token: "abcdef.0123456789abcdef"
    caCertHashes: ["sha256:00ff"]
`
	base := JoinConfig{APIServer: "10.0.2.2:40200", Token: "abcdef.0123456789abcdef", CAHash: "sha256:00ff"}
	for _, tc := range []struct {
		name string
		edit func(*JoinConfig)
		want string
	}{
		{"kubeadm's defaults, rktlet", func(*JoinConfig) {}, head + "nodeRegistration:\n  criSocket: unix:///run/rktlet/rktlet.sock\n"},
		{"a TCG guest", func(c *JoinConfig) {
			c.Name = "cairn-1"
			c.KubeletExtraArgs = []KubeletArg{{"node-ip", "192.168.76.11"}}
			c.Timeouts = JoinTimeouts{Discovery: 10 * time.Minute, TLSBootstrap: 15 * time.Minute, KubeletHealthCheck: 15 * time.Minute}
		}, head + `nodeRegistration:
  name: "cairn-1"
  criSocket: unix:///run/rktlet/rktlet.sock
  kubeletExtraArgs:
  - {name: node-ip, value: "192.168.76.11"}
timeouts:
  discovery: 10m0s
  tlsBootstrap: 15m0s
  kubeletHealthCheck: 15m0s
`},
		{"a node in a namespace, on containerd", func(c *JoinConfig) {
			c.Name = "node-2"
			c.CRISocket = "unix:///run/containerd/containerd.sock"
			c.KubeletExtraArgs = []KubeletArg{{"node-ip", "192.168.100.12"}, {"cgroup-root", "/c1-node-2"}}
		}, head + `nodeRegistration:
  name: "node-2"
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
  - {name: node-ip, value: "192.168.100.12"}
  - {name: cgroup-root, value: "/c1-node-2"}
`},
		{"one timeout", func(c *JoinConfig) { c.Timeouts.TLSBootstrap = 90 * time.Second },
			head + "nodeRegistration:\n  criSocket: unix:///run/rktlet/rktlet.sock\ntimeouts:\n  tlsBootstrap: 1m30s\n"},
	} {
		c := base
		tc.edit(&c)
		if got := c.YAML(); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, got, tc.want)
		}
	}
}
