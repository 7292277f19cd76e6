package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/cairn-os/cairn/console/updates"
	"github.com/cairn-os/cairn/image/sysext"
	"github.com/cairn-os/cairn/installer/firstboot"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/updateconf"
)

func TestRktletDropIn(t *testing.T) {
	for _, tc := range []struct {
		mirrors []string
		want    string
	}{
		{nil, "[Service]\nExecStart=\nExecStart=/usr/bin/rktlet --listen=unix:///run/rktlet/rktlet.sock\n"},
		{[]string{"192.168.100.1:5000=http://10.0.2.2:40001"},
			"[Service]\nExecStart=\nExecStart=/usr/bin/rktlet --listen=unix:///run/rktlet/rktlet.sock --registry-mirror=192.168.100.1:5000=http://10.0.2.2:40001\n"},
		{[]string{"a=http://x", "b=https://y"},
			"[Service]\nExecStart=\nExecStart=/usr/bin/rktlet --listen=unix:///run/rktlet/rktlet.sock --registry-mirror=a=http://x --registry-mirror=b=https://y\n"},
	} {
		if got := rktletDropIn(tc.mirrors); got != tc.want {
			t.Errorf("rktletDropIn(%q) = %q; want %q", tc.mirrors, got, tc.want)
		}
	}
}

// A node's first-boot config goes through Cairn's first boot as it stands, and says what each
// host is: its name, its kubelet and flannel on its cluster link address, kubeadm join's
// discovery, the extension and the update strategy.
func TestKubeConfig(t *testing.T) {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	f := &Fleet{Key: key, ConsolePort: 40100}
	k := KubeNode{APIServer: "10.0.2.2:40200", Token: "abcdef.0123456789abcdef", CAHash: "sha256:00ff",
		FlannelKubeconfig: "flannel's", LocksmithdKubeconfig: "locksmithd's", PodNetwork: "10.244.0.0/16",
		RegistryMirrors: []string{"192.168.100.1:5000=http://10.0.2.2:40300"},
		Extension: payload.Extension{Name: "kubernetes-v1.37.2", URL: "http://10.0.2.2:40400/1.0.0/kubernetes-v1.37.2.raw", Size: 1,
			SHA256: strings.Repeat("a", 64), USRHash: strings.Repeat("b", 64)}}
	for _, tc := range []struct {
		n          int
		name, addr string
	}{
		{1, "cairn-1", "192.168.76.11"},
		{2, "cairn-2", "192.168.76.12"},
	} {
		b, err := f.KubeConfig(tc.n, k).JSON()
		if err != nil {
			t.Fatal(err)
		}
		cfg, rpt, err := firstboot.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.name, err, rpt.String())
		}
		plan, err := firstboot.MakePlan(cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		files := map[string]string{}
		for _, fl := range plan.Files {
			files[fl.Path] = string(fl.Data)
		}
		units := map[string]string{}
		for _, u := range plan.Units {
			units[u.Name] = ""
			if u.Contents != nil {
				units[u.Name] = *u.Contents
			}
		}
		var join struct {
			Discovery struct {
				BootstrapToken struct {
					APIServerEndpoint string   `json:"apiServerEndpoint"`
					Token             string   `json:"token"`
					CACertHashes      []string `json:"caCertHashes"`
				} `json:"bootstrapToken"`
			} `json:"discovery"`
			NodeRegistration struct {
				Name             string `json:"name"`
				CRISocket        string `json:"criSocket"`
				KubeletExtraArgs []struct{ Name, Value string }
			} `json:"nodeRegistration"`
		}
		if err := yaml.Unmarshal([]byte(files["/etc/kubernetes/kubeadm-join.yaml"]), &join); err != nil {
			t.Fatalf("%s: kubeadm-join.yaml: %v", tc.name, err)
		}
		d, nr := join.Discovery.BootstrapToken, join.NodeRegistration
		if d.APIServerEndpoint != k.APIServer || d.Token != k.Token || len(d.CACertHashes) != 1 || d.CACertHashes[0] != k.CAHash ||
			nr.Name != tc.name || nr.CRISocket != "unix:///run/rktlet/rktlet.sock" || len(nr.KubeletExtraArgs) != 1 ||
			nr.KubeletExtraArgs[0].Name != "node-ip" || nr.KubeletExtraArgs[0].Value != tc.addr {
			t.Errorf("%s: kubeadm-join.yaml reads %+v", tc.name, join)
		}
		for path, want := range map[string]string{
			"/etc/hostname": tc.name + "\n",
			"/etc/extensions/kubernetes-v1.37.2.usrhash": k.Extension.USRHash + "\n",
			"/etc/kube-flannel/kubeconfig":               "flannel's",
			"/etc/kubernetes/locksmithd.conf":            "locksmithd's",
			sysext.SysctlPath:                            sysext.NodeSysctls,
			sysext.ModulesLoadPath:                       sysext.NodeModules,
		} {
			if files[path] != want {
				t.Errorf("%s: %s = %q; want %q", tc.name, path, files[path], want)
			}
		}
		for path, want := range map[string]string{
			"/etc/systemd/network/10-cluster.network":              "Address=" + tc.addr + "/24",
			"/etc/cairn/flanneld.env":                              "NODE_NAME=" + tc.name + "\nFLANNELD_OPTS=-kube-subnet-mgr -kubeconfig-file=/etc/kube-flannel/kubeconfig -iface=" + tc.addr + " ",
			"/etc/systemd/system/rktlet.service.d/10-mirrors.conf": "--registry-mirror=192.168.100.1:5000=http://10.0.2.2:40300",
			"/etc/kube-flannel/net-conf.json":                      `"Network": "10.244.0.0/16"`,
			"/etc/sysctl.d/90-kubernetes.conf":                     "net.ipv4.ip_forward = 1\n",
			"/etc/sysctl.d/91-kubelet.conf":                        "kernel.panic = 10\n",
		} {
			if !strings.Contains(files[path], want) {
				t.Errorf("%s: %s = %q; want it to contain %q", tc.name, path, files[path], want)
			}
		}
		// update.conf as update_engine and locksmithd read it, over their defaults.
		conf := filepath.Join(t.TempDir(), "update.conf")
		if err := os.WriteFile(conf, []byte(files["/etc/cairn/update.conf"]), 0o644); err != nil {
			t.Fatal(err)
		}
		uc, err := updateconf.Load([]string{conf})
		if err != nil {
			t.Fatalf("%s: update.conf: %v", tc.name, err)
		}
		if uc.RebootStrategy != updateconf.StrategyKubernetes || uc.Server != "http://10.0.2.2:40100"+updates.UpdatePath || uc.Group != "stable" ||
			uc.Kube.Kubeconfig != "/etc/kubernetes/locksmithd.conf" {
			t.Errorf("%s: update.conf reads as strategy %q, server %q, group %q, kubeconfig %q", tc.name, uc.RebootStrategy, uc.Server, uc.Group, uc.Kube.Kubeconfig)
		}
		if u := units["kubernetes-sysext.service"]; !strings.Contains(u, "Environment=URL="+k.Extension.URL+"\n") ||
			!strings.Contains(u, "Environment=SHA256="+k.Extension.SHA256+"\n") || !strings.Contains(u, "/etc/extensions/kubernetes-v1.37.2.raw\n") {
			t.Errorf("%s: kubernetes-sysext.service:\n%s", tc.name, u)
		}
		if u, ok := units["kubeadm.service"]; !ok || !strings.Contains(u, "kubeadm join --config=/etc/kubernetes/kubeadm-join.yaml") {
			t.Errorf("%s: kubeadm.service:\n%s", tc.name, u)
		}
		// kube/README.md's join config has the same units (image/sysext's readme test).
		if units[sysext.FetchUnitName] != sysext.FetchUnit(k.Extension.URL, k.Extension.SHA256, k.Extension.Name) ||
			units[sysext.KubeadmUnitName] != sysext.KubeadmUnit("join") {
			t.Errorf("%s: the units are not image/sysext's", tc.name)
		}
		if _, ok := units["flanneld.service"]; !ok {
			t.Errorf("%s: flanneld.service not enabled", tc.name)
		}
	}
}
