package stage1_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/network"
	"github.com/cairn-os/cairn/runtime/store"
)

// Pods on CNI networks. Every scenario runs in a network and mount namespace of its own that
// stands for the host: the veths, addresses, routes and iptables rules the plugins make live
// there and die with it, and /var/lib/cni and /run/flannel are private tmpfs mounts.
const netHostEnv = "CAIRN_STAGE1_NET_HOST"

func TestPodNetworks(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "iptables")
	for _, p := range []string{"ptp", "bridge", "host-local", "portmap", "loopback"} {
		testenv.RequireFile(t, "/usr/lib/cni/"+p)
	}
	rktBinary(t) // build it here, once, rather than in every namespace
	if os.Getenv("CAIRN_BIN") == "" {
		// The inner runs get rkt's directory as CAIRN_BIN: the flannel plugin goes beside it.
		if plugin := filepath.Join(filepath.Dir(rktPath), "flannel"); !fileExists(plugin) {
			if out, err := exec.Command("go", "build", "-o", plugin, "github.com/cairn-os/cairn/flannel/cmd/flannel").CombinedOutput(); err != nil {
				t.Fatalf("go build flannel: %v\n%s", err, out)
			}
		}
	}
	for _, name := range []string{"TwoPodsAndHost", "PortForward", "Flannel", "CNIDNS", "NoLeaks", "BadInput", "UnjoinedNetworkGC", "HeldNamespace", "GCElsewhere", "TeardownRetried"} {
		t.Run(name, func(t *testing.T) {
			env := []string{netHostEnv + "=" + name}
			if os.Getenv("CAIRN_BIN") == "" {
				env = append(env, "CAIRN_BIN="+filepath.Dir(rktPath))
			}
			t.Logf("%s", testenv.InPrivateHost(t, "TestPodNetworksInHost", env...))
		})
	}
}

// TestPodNetworksInHost is the inner half of TestPodNetworks.
func TestPodNetworksInHost(t *testing.T) {
	scenario := os.Getenv(netHostEnv)
	if scenario == "" {
		t.Skip("runs only inside TestPodNetworks' namespaces")
	}
	testenv.SetUpPrivateHost(t, "/var/lib/cni", "/run/flannel")
	n := &netEnv{env: newEnv(t), conf: t.TempDir()}
	os.MkdirAll(filepath.Join(n.conf, "net.d"), 0o755)
	switch scenario {
	case "TwoPodsAndHost":
		twoPodsAndHost(t, n)
	case "PortForward":
		portForward(t, n)
	case "Flannel":
		flannelNetwork(t, n)
	case "CNIDNS":
		cniDNS(t, n)
	case "NoLeaks":
		noNetworkLeaks(t, n)
	case "BadInput":
		badNetworkInput(t, n)
	case "UnjoinedNetworkGC":
		unjoinedNetworkGC(t, n)
	case "HeldNamespace":
		heldNamespace(t, n)
	case "GCElsewhere":
		gcElsewhere(t, n)
	case "TeardownRetried":
		teardownRetried(t, n)
	default:
		t.Fatalf("unknown scenario %q", scenario)
	}
}

type netEnv struct {
	*env
	conf string // --local-config
}

func (n *netEnv) podArgs(args ...string) []string {
	return append([]string{"--local-config=" + n.conf, "--insecure-options=image"}, args...)
}

// ip waits for a running pod's address on a network, from rkt status.
func (n *netEnv) ip(uuid, net string) string {
	n.t.Helper()
	r := n.run("status", uuid)
	for l := range strings.SplitSeq(r.out, "\n") {
		if v, ok := strings.CutPrefix(l, "networks="); ok {
			for e := range strings.SplitSeq(v, ",") {
				if addr, ok := strings.CutPrefix(e, net+":ip4="); ok {
					return addr
				}
			}
		}
	}
	n.t.Fatalf("pod %s has no address on %s: %q", uuid, net, r.out)
	return ""
}

func dialRead(addr string) (string, error) {
	var last error
	for range 50 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			return string(b), nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return "", last
}

func twoPodsAndHost(t *testing.T, n *netEnv) {
	a, _ := n.start(n.podArgs("--net=default", n.aci, "--exec=/bin/sh", "--", "-c",
		"echo pong-a | nc -l -p 7000; echo pong-host | nc -l -p 7001; sleep 30")...)
	aIP := n.ip(a, "default")
	if !strings.HasPrefix(aIP, "172.16.28.") {
		t.Fatalf("pod a on default has %s, want 172.16.28.0/24", aIP)
	}
	// Another pod reaches it.
	r := n.run(append([]string{"run"}, n.podArgs("--net=default", n.aci, "--exec=/bin/sh", "--", "-c", "sleep 0.2; nc "+aIP+" 7000 </dev/null")...)...)
	if r.code != 0 || !strings.Contains(r.out, "pong-a") {
		t.Fatalf("pod b to pod a at %s: code %d out %q err %q", aIP, r.code, r.out, r.err)
	}
	// The host reaches it.
	if got, err := dialRead(aIP + ":7001"); err != nil || !strings.Contains(got, "pong-host") {
		t.Fatalf("host to pod a: %q %v", got, err)
	}
	// And a pod reaches the host, at its end of the veth.
	l, err := net.Listen("tcp", "0.0.0.0:7002")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("pong-from-host\n"))
			c.Close()
		}
	}()
	r = n.run(append([]string{"run"}, n.podArgs("--net=default", n.aci, "--exec=/bin/sh", "--", "-c",
		"nc $(ip route | awk '/^default/ {print $3}') 7002 </dev/null")...)...)
	if r.code != 0 || !strings.Contains(r.out, "pong-from-host") {
		t.Fatalf("pod to host: code %d out %q err %q", r.code, r.out, r.err)
	}
	if r := n.run("list", "--no-legend"); !strings.Contains(r.out, "default:ip4="+aIP) {
		t.Fatalf("rkt list does not show the pod's network: %q", r.out)
	}
}

// webImage is an ACI that declares port "http" (80) and serves a page on it.
func webImage(t *testing.T, n *netEnv) string {
	var buf bytes.Buffer
	if _, err := fixture.WriteACI(&buf, fixture.ACIOptions{
		Name: "example.com/web", Labels: map[string]string{"version": "1"},
		App: &types.App{Exec: types.Exec{"/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"}, User: "0", Group: "0",
			Ports: []types.Port{{Name: "http", Port: 80, Protocol: "tcp"}}},
		Files: map[string]string{"www/index.html": "hello from the pod\n"},
	}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(n.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ImportACI(context.Background(), &buf, store.ImportOptions{Name: "example.com/web", Trusted: true}); err != nil {
		t.Fatal(err)
	}
	return "example.com/web"
}

func portForward(t *testing.T, n *netEnv) {
	web := webImage(t, n)
	uuid, _ := n.start(n.podArgs("--net=default", "--port=http:8888", web)...)
	ip := n.ip(uuid, "default")
	gw := ip[:strings.LastIndex(ip, ".")] + ".1"
	// From the host itself: localhost (rkt#2283) and its address on the pod network.
	for _, u := range []string{"http://127.0.0.1:8888/", "http://" + gw + ":8888/"} {
		if body, err := testenv.HTTPGet(context.Background(), u); err != nil || body != "hello from the pod\n" {
			t.Fatalf("GET %s from the host: %q %v", u, body, err)
		}
	}
	// From another network namespace: a second pod, through the host's port.
	r := n.run(append([]string{"run"}, n.podArgs("--net=default", n.aci, "--exec=/bin/sh", "--", "-c",
		"wget -q -O - http://$(ip route | awk '/^default/ {print $3}'):8888/")...)...)
	if r.code != 0 || r.out != "hello from the pod\n" {
		t.Fatalf("GET from another pod: code %d out %q err %q", r.code, r.out, r.err)
	}
	// A name the image does not declare is refused before anything is made.
	if r := n.run(append([]string{"run"}, n.podArgs("--net=default", "--port=ssh:2222", web)...)...); r.code == 0 || !strings.Contains(r.err, `no app declares a port named "ssh"`) {
		t.Fatalf("undeclared port: %d %q", r.code, r.err)
	}
}

func flannelNetwork(t *testing.T, n *netEnv) {
	// The flannel CNI plugin, built from flannel/, beside the local network configs (where rkt
	// looks for third-party plugins), and a subnet.env as flanneld writes it.
	plugin := filepath.Join(n.conf, "net.d", "flannel")
	if d := os.Getenv("CAIRN_BIN"); d != "" {
		b, err := os.ReadFile(filepath.Join(d, "flannel"))
		testenv.Require(t, err == nil, "no flannel plugin in CAIRN_BIN: %v", err)
		os.WriteFile(plugin, b, 0o755)
	} else if out, err := exec.Command("go", "build", "-o", plugin, "github.com/cairn-os/cairn/flannel/cmd/flannel").CombinedOutput(); err != nil {
		t.Fatalf("go build flannel: %v\n%s", err, out)
	}
	os.WriteFile("/run/flannel/subnet.env", []byte("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"), 0o644)
	os.WriteFile(filepath.Join(n.conf, "net.d", "10-flannel.conf"), []byte(`{"cniVersion":"0.4.0","name":"overlay","type":"flannel"}`), 0o644)
	r := n.run(append([]string{"run"}, n.podArgs("--net=overlay", n.aci, "--exec=/bin/sh", "--", "-c", "ip -o -4 addr show eth0; ip link show eth0")...)...)
	if r.code != 0 || !strings.Contains(r.out, "inet 10.244.7.") || !strings.Contains(r.out, "mtu 1450") {
		t.Fatalf("pod on the flannel network: code %d out %q err %q", r.code, r.out, r.err)
	}
}

// cniDNS: the DNS servers a network answers with reach the pod's resolv.conf. The apps'
// containers are started while the network is joined, before its answer is known, so they are
// started again with the file; the app itself still runs once, and --dns still wins.
func cniDNS(t *testing.T, n *netEnv) {
	os.WriteFile(filepath.Join(n.conf, "net.d", "10-dnsnet.conf"), []byte(`{"cniVersion":"0.4.0","name":"dnsnet","type":"ptp",
		"dns":{"nameservers":["10.9.9.9"],"search":["example.org"]},"ipam":{"type":"host-local","subnet":"10.9.0.0/24"}}`), 0o644)
	vol := t.TempDir()
	podRun := func(flags ...string) result {
		args := append(append([]string{"run"}, n.podArgs(append(flags, "--volume=v,kind=host,source="+vol)...)...),
			n.aci, "--mount=volume=v,target=/v", "--exec=/bin/sh", "--", "-c", "echo ran >>/v/runs; cat /etc/resolv.conf; ip -o -4 addr show eth0")
		return n.run(args...)
	}
	r := podRun("--net=dnsnet")
	if r.code != 0 || !strings.Contains(r.out, "nameserver 10.9.9.9") || !strings.Contains(r.out, "search example.org") || !strings.Contains(r.out, "inet 10.9.0.") {
		t.Fatalf("pod on a network that answers with DNS: code %d out %q err %q", r.code, r.out, r.err)
	}
	if b, _ := os.ReadFile(filepath.Join(vol, "runs")); string(b) != "ran\n" {
		t.Fatalf("the app ran %q, want once", b)
	}
	r = podRun("--net=dnsnet", "--dns=10.1.1.1")
	if r.code != 0 || !strings.Contains(r.out, "nameserver 10.1.1.1") || strings.Contains(r.out, "10.9.9.9") {
		t.Fatalf("--dns with a network that answers with DNS: code %d out %q err %q", r.code, r.out, r.err)
	}
}

// hostNetLeftovers is what pods leave in the host namespace: interfaces, leases, nat rules.
func hostNetLeftovers(t *testing.T) string {
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	rules, _ := exec.Command("iptables", "-t", "nat", "-S").Output()
	masq, err := network.MasqRules()
	if err != nil {
		t.Fatal(err)
	}
	leases := 0
	filepath.Walk("/var/lib/cni/networks", func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(fi.Name(), "last_reserved_ip") && fi.Name() != "lock" {
			leases++
		}
		return nil
	})
	return fmt.Sprintf("links=%d nat-rules=%d masq-rules=%d leases=%d", bytes.Count(links, []byte("\n")), bytes.Count(rules, []byte("\n")), len(masq), leases)
}

// sameLeftovers waits for the host to be back to before: a pod's interfaces go with its
// network namespace, which the kernel takes apart in the background after the pod is gone.
func sameLeftovers(t *testing.T, before string) (after string, ok bool) {
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if after = hostNetLeftovers(t); after == before || time.Now().After(deadline) {
			return after, after == before
		}
	}
}

func noNetworkLeaks(t *testing.T, n *netEnv) {
	web := webImage(t, n)
	// One pod first: some chains (CNI-HOSTPORT-*) are made once and kept, as by any CNI runtime.
	if r := n.run(append([]string{"run"}, n.podArgs("--net=default", "--port=http:9000", web, "--exec=/bin/true")...)...); r.code != 0 {
		t.Fatalf("warm-up pod: %d %s", r.code, r.err)
	}
	before := hostNetLeftovers(t)
	for i := range 20 {
		args := n.podArgs("--net=default", fmt.Sprintf("--port=http:%d", 9001+i), web, "--exec=/bin/true")
		if i%4 == 3 {
			// Some pods are killed, not ended: rkt gc must release what they held.
			uuid, wait := n.start(n.podArgs("--net=default", web, "--exec=/bin/sleep", "--", "60")...)
			if err := unix.Kill(int(n.status(uuid)["pid"].(float64)), unix.SIGKILL); err != nil {
				t.Fatal(err)
			}
			wait()
			continue
		}
		if r := n.run(append([]string{"run"}, args...)...); r.code != 0 {
			t.Fatalf("pod %d: %d %s", i, r.code, r.err)
		}
	}
	n.run("gc", "--grace-period=0s")
	n.run("gc", "--grace-period=0s")
	if after, ok := sameLeftovers(t, before); !ok {
		t.Fatalf("20 pods leaked: before %s, after %s", before, after)
	}
	if left := n.podLeftovers(); len(left) > 0 {
		t.Fatalf("left on the host: %v", left)
	}
	t.Logf("after 20 pods (5 killed and collected): %s", before)
}

func badNetworkInput(t *testing.T, n *netEnv) {
	netd := filepath.Join(n.conf, "net.d")
	os.WriteFile(filepath.Join(netd, "20-fixed.conf"), []byte(`{"cniVersion":"0.4.0","name":"fixed","type":"ptp","ipam":{"type":"host-local","subnet":"10.9.0.0/24"}}`), 0o644)
	os.WriteFile(filepath.Join(netd, "30-noplugin.conf"), []byte(`{"cniVersion":"0.4.0","name":"noplugin","type":"no-such-plugin"}`), 0o644)
	holder, _ := n.start(n.podArgs("--net=fixed:IP=10.9.0.7", n.aci, "--exec=/bin/sleep", "--", "60")...)
	if ip := n.ip(holder, "fixed"); ip != "10.9.0.7" {
		t.Fatalf("--net=fixed:IP=10.9.0.7 gave %s", ip)
	}
	before := hostNetLeftovers(t)
	for _, c := range []struct{ net, want string }{
		{"--net=nosuch", "network not found: nosuch"},
		{"--net=default,noplugin", "no-such-plugin"},
		{"--net=fixed:IP=10.9.0.7", "10.9.0.7"},
		{"--net=fixed:IP", "not KEY=VALUE"},
	} {
		r := n.run(append([]string{"run"}, n.podArgs(c.net, n.aci, "--exec=/bin/true")...)...)
		if r.code == 0 || !strings.Contains(r.err, c.want) {
			t.Fatalf("%s: code %d, stderr %q; want an error naming %q", c.net, r.code, r.err, c.want)
		}
		n.run("gc", "--grace-period=0s")
		if after, ok := sameLeftovers(t, before); !ok {
			t.Fatalf("%s failed but leaked: before %s, after %s", c.net, before, after)
		}
	}
	os.WriteFile(filepath.Join(netd, "40-broken.conf"), []byte(`{"name": "broken", "type": `), 0o644)
	if r := n.run(append([]string{"run"}, n.podArgs("--net=default", n.aci, "--exec=/bin/true")...)...); r.code == 0 || !strings.Contains(r.err, "40-broken.conf") {
		t.Fatalf("malformed config: %d %q", r.code, r.err)
	}
}

// pods lists the pods of the data directory, in any phase.
func (n *netEnv) pods() []string {
	var out []string
	for _, ph := range []string{"embryo", "prepare", "prepared", "run", "exited-garbage", "garbage"} {
		ents, _ := os.ReadDir(filepath.Join(n.dir, "pods", ph))
		for _, e := range ents {
			out = append(out, ph+"/"+e.Name())
		}
	}
	return out
}

// unjoinedNetworkGC: a pod whose network was never joined (its plugin refused the argument)
// is collected by the first gc, which exits 0, and leaves nothing behind.
func unjoinedNetworkGC(t *testing.T, n *netEnv) {
	before := hostNetLeftovers(t)
	r := n.run(append([]string{"run"}, n.podArgs("--net=default:IP=notanip", n.aci, "--exec=/bin/true")...)...)
	if r.code == 0 || !strings.Contains(r.err, "notanip") {
		t.Fatalf("--net=default:IP=notanip: code %d, stderr %q; want an error naming the argument", r.code, r.err)
	}
	for i := range 2 {
		if r := n.run("gc", "--grace-period=0s"); r.code != 0 {
			t.Fatalf("gc %d: code %d, stderr %q", i+1, r.code, r.err)
		}
	}
	if left := n.pods(); len(left) > 0 {
		t.Fatalf("pods left after gc: %v", left)
	}
	if left := n.podLeftovers(); len(left) > 0 {
		t.Fatalf("left on the host: %v", left)
	}
	if after, ok := sameLeftovers(t, before); !ok {
		t.Fatalf("leaked: before %s, after %s", before, after)
	}
}

// heldNamespace: a mount namespace made while a pod runs keeps a copy of the pod's network
// namespace mount, and with it the namespace, after the pod. The next pod given the same
// address must get the host's traffic to it, not the dead pod's namespace.
func heldNamespace(t *testing.T, n *netEnv) {
	const addr = "172.16.28.50"
	serve := func(name string) (uuid string, wait func() result) {
		uuid, wait = n.start(n.podArgs("--net=default:IP="+addr, n.aci, "--exec=/bin/sh", "--", "-c",
			"trap 'exit 0' TERM; while :; do echo "+name+" | nc -l -p 7000 & wait $!; done")...)
		if ip := n.ip(uuid, "default"); ip != addr {
			t.Fatalf("pod %s has %s, want %s", name, ip, addr)
		}
		if got, err := dialRead(addr + ":7000"); err != nil || got != name+"\n" {
			t.Fatalf("host to pod %s: %q %v", name, got, err)
		}
		return uuid, wait
	}
	old, waitOld := serve("old")
	holder := exec.Command("unshare", "--mount", "--propagation", "unchanged", "sleep", "600")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	own, _ := os.Readlink("/proc/self/ns/mnt")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", holder.Process.Pid))
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", holder.Process.Pid)); ns != own && string(comm) == "sleep\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("unshare --mount did not start")
		}
	}
	if r := n.run("stop", old); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.err)
	}
	if r := waitOld(); r.code != 0 {
		t.Fatalf("the stopped pod's rkt run: %d %s", r.code, r.err)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "type", "veth").Output(); len(out) > 0 {
		t.Fatalf("the stopped pod's veth is left:\n%s", out)
	}
	serve("new")
	routes, _ := exec.Command("ip", "route", "show", addr).Output()
	veths, _ := exec.Command("ip", "-o", "link", "show", "type", "veth").Output()
	if bytes.Count(routes, []byte("\n")) != 1 || bytes.Count(veths, []byte("\n")) != 1 {
		t.Fatalf("routes to %s:\n%sveths:\n%s\nwant the new pod's one", addr, routes, veths)
	}
}

// gcElsewhere: rkt gc run from another network namespace than rkt run's removes the pod's
// masquerade rule, veth and lease from rkt run's.
func gcElsewhere(t *testing.T, n *netEnv) {
	before := hostNetLeftovers(t)
	uuid, wait := n.start(n.podArgs("--net=default", n.aci, "--exec=/bin/sleep", "--", "600")...)
	rule := "rkt-" + uuid + " default eth0"
	if rules, err := network.MasqRules(); err != nil || !slices.Contains(rules, rule) {
		t.Fatalf("masquerade rules %q, %v; want %q", rules, err, rule)
	}
	if err := unix.Kill(int(n.status(uuid)["pid"].(float64)), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait()
	gc := exec.Command("unshare", "--net", n.rkt, "--dir="+n.dir, "--debug", "gc", "--grace-period=0s")
	if out, err := gc.CombinedOutput(); err != nil {
		t.Fatalf("gc from another network namespace: %v\n%s", err, out)
	}
	if rules, _ := network.MasqRules(); slices.Contains(rules, rule) {
		t.Fatalf("masquerade rule %q left after gc from another network namespace", rule)
	}
	if left := n.pods(); len(left) > 0 {
		t.Fatalf("pods left after gc: %v", left)
	}
	if left := n.podLeftovers(); len(left) > 0 {
		t.Fatalf("left on the host: %v", left)
	}
	if after, ok := sameLeftovers(t, before); !ok {
		t.Fatalf("leaked: before %s, after %s", before, after)
	}
}

// teardownRetried: a network whose DEL fails keeps the pod, and the mounts of its namespaces,
// until a gc succeeds; that gc leaves nothing.
func teardownRetried(t *testing.T, n *netEnv) {
	netd := filepath.Join(n.conf, "net.d")
	refuse := filepath.Join(t.TempDir(), "refuse-del")
	os.WriteFile(refuse, nil, 0o644)
	// ptp under another name, whose DEL fails while the file exists.
	os.WriteFile(filepath.Join(netd, "flaky"), []byte(`#!/bin/sh
[ "$CNI_COMMAND" = DEL ] && [ -e `+refuse+` ] && { echo '{"code":999,"msg":"DEL refused"}'; exit 1; }
exec /usr/lib/cni/ptp
`), 0o755)
	os.WriteFile(filepath.Join(netd, "10-flaky.conf"), []byte(`{"cniVersion":"0.4.0","name":"flaky","type":"flaky","ipam":{"type":"host-local","subnet":"10.77.0.0/24"}}`), 0o644)
	before := hostNetLeftovers(t)
	r := n.run(append([]string{"run"}, n.podArgs("--net=flaky", n.aci, "--exec=/bin/true")...)...)
	if r.code != 0 || !strings.Contains(r.err, "DEL refused") {
		t.Fatalf("run: code %d, stderr %q; want the app's 0 and a warning about the teardown", r.code, r.err)
	}
	pinned := func() (host, pod bool) {
		mi, _ := os.ReadFile("/proc/self/mountinfo")
		for l := range strings.SplitSeq(string(mi), "\n") {
			if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], n.dir) {
				host = host || strings.HasSuffix(f[4], "/host-netns")
				pod = pod || strings.HasSuffix(f[4], "/ns/net")
			}
		}
		return host, pod
	}
	for i := range 2 {
		if host, pod := pinned(); !host || !pod {
			t.Fatalf("after %d failed teardowns: host namespace pinned %v, pod namespace pinned %v", i+1, host, pod)
		}
		if r := n.run("gc", "--grace-period=0s"); r.code == 0 || !strings.Contains(r.err, "DEL refused") {
			t.Fatalf("gc while DEL fails: code %d, stderr %q", r.code, r.err)
		}
	}
	os.Remove(refuse)
	if r := n.run("gc", "--grace-period=0s"); r.code != 0 {
		t.Fatalf("gc: code %d, stderr %q", r.code, r.err)
	}
	if left := n.pods(); len(left) > 0 {
		t.Fatalf("pods left after gc: %v", left)
	}
	if left := n.podLeftovers(); len(left) > 0 {
		t.Fatalf("left on the host: %v", left)
	}
	if after, ok := sameLeftovers(t, before); !ok {
		t.Fatalf("leaked: before %s, after %s", before, after)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
