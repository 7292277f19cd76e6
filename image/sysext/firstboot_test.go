package sysext

import (
	"strings"
	"testing"
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
