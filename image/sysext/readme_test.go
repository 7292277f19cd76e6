package sysext

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/cairn-os/cairn/installer/firstboot"
)

// The first-boot configs kube/README.md gives for kubeadm init and join are applied as they
// stand by Cairn's first boot, name this package's extension and rktlet's socket, and are made
// of this package's first-boot pieces: the same units and kernel files as e2e's nodes boot.
func TestReadmeIgnitionConfigs(t *testing.T) {
	b, err := os.ReadFile("../../kube/README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)\n```").FindAllSubmatch(b, -1)
	if len(blocks) != 2 {
		t.Fatalf("%d JSON configs in kube/README.md, want init and join", len(blocks))
	}
	yamls := regexp.MustCompile("(?s)```yaml\n(.*?\n)```").FindAllSubmatch(b, -1)
	if len(yamls) != 2 {
		t.Fatalf("%d kubeadm configurations in kube/README.md, want init's and join's", len(yamls))
	}
	spec := Kubernetes(KubernetesVersion, "0.1.0", "", "", 0)
	for i, verb := range []string{"init", "join"} {
		cfg, rpt, err := firstboot.Parse(blocks[i][1])
		if err != nil {
			t.Fatalf("%s config: %v\n%s", verb, err, rpt.String())
		}
		plan, err := firstboot.MakePlan(cfg)
		if err != nil {
			t.Fatalf("%s config: %v", verb, err)
		}
		files := map[string]string{}
		for _, f := range plan.Files {
			files[f.Path] = string(f.Data)
		}
		if h := files["/etc/extensions/"+spec.Name+".usrhash"]; !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(h) {
			t.Errorf("%s config: root hash file %q", verb, h)
		}
		if y := files["/etc/kubernetes/kubeadm-"+verb+".yaml"]; !strings.Contains(y, "criSocket: "+KubeletSocket) {
			t.Errorf("%s config: kubeadm's configuration does not name rktlet's socket:\n%s", verb, y)
		}
		units := map[string]string{}
		for _, u := range plan.Units {
			if u.Contents == nil || u.Enabled == nil || !*u.Enabled {
				t.Errorf("%s config: unit %s without contents or not enabled", verb, u.Name)
				continue
			}
			units[u.Name] = *u.Contents
		}
		if u := units["kubernetes-sysext.service"]; !strings.Contains(u, "/etc/extensions/"+spec.Name+".raw") || !strings.Contains(u, "--verify=") ||
			!strings.Contains(u, "systemd-sysext refresh") {
			t.Errorf("%s config: the unit fetching the extension:\n%s", verb, u)
		}
		if u := units["kubeadm.service"]; !strings.Contains(u, "/usr/bin/kubeadm "+verb+" --config=/etc/kubernetes/kubeadm-"+verb+".yaml") ||
			!strings.Contains(u, "After=kubernetes-sysext.service") {
			t.Errorf("%s config: kubeadm's unit:\n%s", verb, u)
		}
		// The kubeadm configuration shown above the config is the one in it; join's is
		// JoinConfig's, as e2e's nodes and kube/clustertest's have it.
		y := files[KubeadmConfigPath(verb)]
		if y != string(yamls[i][1]) {
			t.Errorf("%s config: its kubeadm configuration is not the one shown above it:\n%s", verb, y)
		}
		if verb == "join" {
			var jc struct {
				Discovery struct {
					BootstrapToken struct {
						APIServerEndpoint string   `json:"apiServerEndpoint"`
						Token             string   `json:"token"`
						CACertHashes      []string `json:"caCertHashes"`
					} `json:"bootstrapToken"`
				} `json:"discovery"`
			}
			if err := yaml.Unmarshal([]byte(y), &jc); err != nil || len(jc.Discovery.BootstrapToken.CACertHashes) != 1 {
				t.Fatalf("join config: kubeadm's configuration: %v, %+v", err, jc)
			}
			d := jc.Discovery.BootstrapToken
			if want := (JoinConfig{APIServer: d.APIServerEndpoint, Token: d.Token, CAHash: d.CACertHashes[0]}).YAML(); y != want {
				t.Errorf("join config: kubeadm's configuration is not JoinConfig's:\n%s\nwant:\n%s", y, want)
			}
		} else if !strings.Contains(y, NodeRegistration{}.YAML()) {
			t.Errorf("init config: kubeadm's configuration lacks NodeRegistration's:\n%s", y)
		}
		for path, want := range map[string]string{SysctlPath: NodeSysctls, ModulesLoadPath: NodeModules} {
			if files[path] != want {
				t.Errorf("%s config: %s = %q; want %q", verb, path, files[path], want)
			}
		}
		fetch := units[FetchUnitName]
		url, sha := envValue(fetch, "URL"), envValue(fetch, "SHA256")
		if want := FetchUnit(url, sha, spec.Name); fetch != want {
			t.Errorf("%s config: %s is not FetchUnit(%q, %q, %q):\n%s\nwant:\n%s", verb, FetchUnitName, url, sha, spec.Name, fetch, want)
		}
		if want := KubeadmUnit(verb); units[KubeadmUnitName] != want {
			t.Errorf("%s config: %s is not KubeadmUnit(%q):\n%s\nwant:\n%s", verb, KubeadmUnitName, verb, units[KubeadmUnitName], want)
		}
	}
}

// envValue is the value of a unit's Environment=KEY=VALUE line.
func envValue(unit, key string) string {
	m := regexp.MustCompile(`(?m)^Environment=` + key + `=(.*)$`).FindStringSubmatch(unit)
	if m == nil {
		return ""
	}
	return m[1]
}
