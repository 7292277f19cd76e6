//go:build linux

package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/cairn-os/cairn/flannel/subnetenv"
	"github.com/cairn-os/cairn/internal/testenv"
)

// The flannel CNI plugin, run through libcni in a host namespace, gives a pod namespace
// an address of the host's subnet on a bridge (the real bridge + host-local plugins), a
// route to the whole overlay network, and cleans up on DEL.
func TestCNIPluginDelegatesToBridge(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip")
	pluginDir := testenv.RequireFile(t, "/usr/lib/cni/bridge")
	pluginDir = filepath.Dir(pluginDir)
	testenv.RequireFile(t, filepath.Join(pluginDir, "host-local"))

	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	plugin := filepath.Join(os.Getenv("CAIRN_BIN"), "flannel")
	if _, err := os.Stat(plugin); os.Getenv("CAIRN_BIN") == "" || err != nil {
		plugin = filepath.Join(bin, "flannel")
		if out, err := exec.Command("go", "build", "-o", plugin, "github.com/cairn-os/cairn/flannel/cmd/flannel").CombinedOutput(); err != nil {
			t.Fatalf("build flannel CNI plugin: %v\n%s", err, out)
		}
	} else {
		os.Symlink(plugin, filepath.Join(bin, "flannel"))
	}

	var b [3]byte
	for i := range b {
		b[i] = byte(os.Getpid() >> (8 * i))
	}
	hostNS, podNS := fmt.Sprintf("flcni%xh", b), fmt.Sprintf("flcni%xp", b)
	for _, ns := range []string{hostNS, podNS} {
		Run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		Run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	env := subnetenv.Env{Network: netip.MustParsePrefix("10.7.0.0/16"), Subnet: netip.MustParsePrefix("10.7.3.0/24"), MTU: 1400}
	if err := subnetenv.Write(filepath.Join(dir, "subnet.env"), env); err != nil {
		t.Fatal(err)
	}
	netName := "flannel-test-" + hostNS
	t.Cleanup(func() { os.RemoveAll(filepath.Join("/var/lib/cni/networks", netName)) })
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": netName, "type": "flannel",
		"subnetFile": filepath.Join(dir, "subnet.env"), "dataDir": filepath.Join(dir, "data"),
		"delegate": map[string]any{"bridge": "cni-fl0"}})
	nc, err := libcni.NetworkPluginConfFromBytes(conf)
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfig([]string{bin, pluginDir}, nil)
	rt := &libcni.RuntimeConf{ContainerID: "pod1", NetNS: "/run/netns/" + podNS, IfName: "eth0"}

	var res *current.Result
	err = InNS(hostNS, func() error {
		r, err := cni.AddNetwork(context.Background(), nc, rt)
		if err != nil {
			return err
		}
		res, err = current.NewResultFromResult(r)
		return err
	})
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != "10.7.3.2/24" || res.IPs[0].Gateway.String() != "10.7.3.1" {
		t.Fatalf("ADD result: %+v", res)
	}
	if out := Run(t, "ip", "-n", podNS, "route"); !strings.Contains(out, "10.7.0.0/16 via 10.7.3.1") {
		t.Fatalf("pod routes lack the overlay network:\n%s", out)
	}
	if out := Run(t, "ip", "-n", podNS, "link", "show", "eth0"); !strings.Contains(out, "mtu 1400") {
		t.Fatalf("pod eth0 MTU not from subnet.env:\n%s", out)
	}
	if out, err := exec.Command("ip", "netns", "exec", hostNS, "ping", "-c", "1", "-W", "2", "10.7.3.2").CombinedOutput(); err != nil {
		t.Fatalf("host cannot reach the pod: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "pod1")); err != nil {
		t.Fatalf("delegate config not saved: %v", err)
	}
	if err := InNS(hostNS, func() error { return cni.DelNetwork(context.Background(), nc, rt) }); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	if out, _ := exec.Command("ip", "-n", podNS, "link", "show", "eth0").CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Fatalf("pod eth0 still there after DEL: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "pod1")); !os.IsNotExist(err) {
		t.Fatalf("saved delegate config left after DEL: %v", err)
	}
	// DEL of an unknown container is fine (runtimes retry DEL).
	if err := InNS(hostNS, func() error { return cni.DelNetwork(context.Background(), nc, rt) }); err != nil {
		t.Fatalf("second DEL: %v", err)
	}
}
