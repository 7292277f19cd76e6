package network

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/mount"
	"github.com/cairn-os/cairn/internal/testenv"
)

// The root tests run in a network and mount namespace of their own, which stands for the
// host: every veth, address, route and iptables rule the plugins make lives there and dies
// with it, and /run/netns and /var/lib/cni are private tmpfs mounts.
const innerEnv = "CAIRN_NETWORK_TEST_HOST"

func TestNetworkingInPrivateHost(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "iptables")
	testenv.RequireFile(t, "/usr/lib/cni/ptp")
	testenv.RequireFile(t, "/usr/lib/cni/portmap")
	testenv.RequireFile(t, "/bin/busybox")
	for _, name := range []string{"TwoPodsAndHost", "PortForward", "NoLeaksOver20Pods", "FailuresLeakNothing", "HeldNamespace", "TeardownElsewhere"} {
		t.Run(name, func(t *testing.T) {
			t.Logf("%s", testenv.InPrivateHost(t, "TestInHost", innerEnv+"="+name))
		})
	}
}

// TestInHost is the inner half: it runs only when re-executed by the test above.
func TestInHost(t *testing.T) {
	scenario := os.Getenv(innerEnv)
	if scenario == "" {
		t.Skip("runs only inside TestNetworkingInPrivateHost's namespaces")
	}
	testenv.SetUpPrivateHost(t, "/run/netns", "/var/lib/cni")
	m := &Manager{ConfDirs: []string{t.TempDir()}}
	switch scenario {
	case "TwoPodsAndHost":
		twoPodsAndHost(t, m)
	case "PortForward":
		portForward(t, m)
	case "NoLeaksOver20Pods":
		noLeaks(t, m)
	case "FailuresLeakNothing":
		failures(t, m)
	case "HeldNamespace":
		heldNamespace(t, m)
	case "TeardownElsewhere":
		teardownElsewhere(t, m)
	default:
		t.Fatalf("unknown scenario %q", scenario)
	}
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func inPod(st *State, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", filepath.Base(st.NetNS)}, args...)...)
}

func setup(t *testing.T, m *Manager, id string, nets []string, ports []PortMapping) *State {
	t.Helper()
	sel, err := ParseSelection(nets)
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Setup(context.Background(), id, sel, ports)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Teardown(context.Background(), st) })
	return st
}

func ip(st *State) string { return strings.Split(st.Nets[0].IPs[0], "/")[0] }

func twoPodsAndHost(t *testing.T, m *Manager) {
	a := setup(t, m, "pod-a", nil, nil)
	b := setup(t, m, "pod-b", nil, nil)
	for _, st := range []*State{a, b} {
		if len(st.Nets) != 1 || st.Nets[0].Name != "default" || st.Nets[0].IfName != "eth0" || !strings.HasPrefix(st.Nets[0].IPs[0], "172.16.28.") {
			t.Fatalf("default network state %+v", st)
		}
	}
	if out, err := inPod(a, "/bin/busybox", "ping", "-c", "1", "-W", "2", ip(b)).CombinedOutput(); err != nil {
		t.Fatalf("pod a cannot reach pod b at %s: %v\n%s", ip(b), err, out)
	}
	if out, err := exec.Command("/bin/busybox", "ping", "-c", "1", "-W", "2", ip(a)).CombinedOutput(); err != nil {
		t.Fatalf("host cannot reach pod a: %v\n%s", err, out)
	}
	if out, err := inPod(a, "/bin/busybox", "ping", "-c", "1", "-W", "2", a.Nets[0].Gateway).CombinedOutput(); err != nil {
		t.Fatalf("pod a cannot reach the host at %s: %v\n%s", a.Nets[0].Gateway, err, out)
	}
	// Masquerade: a namespace outside the pod network, with no route back to it, answers the
	// pod only if the pod's packets leave with the host's address.
	if rules, err := MasqRules(); err != nil || !slices.Contains(rules, "rkt-pod-a default eth0") {
		t.Fatalf("masquerade rules %q, %v; want one for pod-a", rules, err)
	}
	outside := "/run/netns/outside"
	if err := createNetns(outside); err != nil {
		t.Fatal(err)
	}
	defer removeNetns(outside)
	sh(t, "ip", "link", "add", "out0", "type", "veth", "peer", "name", "out1", "netns", "outside")
	sh(t, "ip", "addr", "add", "192.0.2.1/24", "dev", "out0")
	sh(t, "ip", "link", "set", "out0", "up")
	sh(t, "ip", "-n", "outside", "addr", "add", "192.0.2.2/24", "dev", "out1")
	sh(t, "ip", "-n", "outside", "link", "set", "out1", "up")
	if out, err := inPod(a, "/bin/busybox", "ping", "-c", "1", "-W", "2", "192.0.2.2").CombinedOutput(); err != nil {
		t.Fatalf("pod a reaches no address outside its network (no masquerade?): %v\n%s", err, out)
	}
	// The control: the same network without masquerade gets no answer.
	os.WriteFile(filepath.Join(m.ConfDirs[0], "10-nomasq.conf"), []byte(`{"cniVersion":"0.4.0","name":"nomasq","type":"ptp","ipMasq":false,
		"ipam":{"type":"host-local","subnet":"172.16.29.0/24","routes":[{"dst":"0.0.0.0/0"}]}}`), 0o644)
	c := setup(t, m, "pod-c", []string{"nomasq"}, nil)
	if out, err := inPod(c, "/bin/busybox", "ping", "-c", "1", "-W", "1", "192.0.2.2").CombinedOutput(); err == nil {
		t.Fatalf("a pod on a network without masquerade got an answer from outside:\n%s", out)
	}
	if err := m.Teardown(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if rules, err := MasqRules(); err != nil || slices.Contains(rules, "rkt-pod-a default eth0") {
		t.Fatalf("masquerade rules after pod-a's teardown: %q, %v", rules, err)
	}
	// IPv6 addresses get the ip6 form of the rule, and a retry replaces rather than doubles.
	for range 2 {
		if err := addMasq("v6", "six", "eth0", []string{"fd00:28::5/64", "172.16.30.5/24"}); err != nil {
			t.Fatal(err)
		}
	}
	if rules, _ := MasqRules(); len(slices.DeleteFunc(rules, func(r string) bool { return r != "rkt-v6 six eth0" })) != 2 {
		t.Fatalf("rules after two adds of two addresses: %q", rules)
	}
	if err := delMasq("v6", "six", "eth0"); err != nil {
		t.Fatal(err)
	}
	if rules, _ := MasqRules(); slices.Contains(rules, "rkt-v6 six eth0") {
		t.Fatalf("rules left after delMasq: %q", rules)
	}
	if err := addMasq("bad", "n", "eth0", []string{"not-an-address"}); err == nil {
		t.Fatal("an address that is not CIDR was accepted")
	}

	// A sandbox that made its own namespace attaches it; teardown leaves the namespace.
	own := "/run/netns/sandbox"
	if err := createNetns(own); err != nil {
		t.Fatal(err)
	}
	defer removeNetns(own)
	st, err := m.Attach(context.Background(), "pod-c", own, Selection{Nets: []Request{{Name: "default"}}}, nil)
	if err != nil || st.OwnNetNS || len(st.Nets) != 1 {
		t.Fatalf("attach: %+v, %v", st, err)
	}
	if err := m.Teardown(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(own); err != nil {
		t.Fatalf("teardown removed the caller's namespace: %v", err)
	}
	if out := sh(t, "ip", "netns", "exec", "sandbox", "ip", "-o", "addr"); strings.Contains(out, "eth0") {
		t.Fatalf("eth0 left in the sandbox after teardown:\n%s", out)
	}
}

func portForward(t *testing.T, m *Manager) {
	srv := setup(t, m, "web", nil, []PortMapping{{Name: "http", HostPort: 8888, ContainerPort: 80, Protocol: "tcp"}})
	cli := setup(t, m, "client", nil, nil)
	www := t.TempDir()
	os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from the pod\n"), 0o644)
	httpd := inPod(srv, "/bin/busybox", "httpd", "-f", "-p", "80", "-h", www)
	if err := httpd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { httpd.Process.Kill(); httpd.Wait() }()

	get := func(url string) (string, error) {
		var last error
		for range 50 {
			c := &http.Client{Timeout: time.Second}
			resp, err := c.Get(url)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				return string(b), nil
			}
			last = err
			time.Sleep(100 * time.Millisecond)
		}
		return "", last
	}
	// From the host itself, by localhost (rkt#2283) and by the host's address on the pod network.
	for _, u := range []string{"http://127.0.0.1:8888/", "http://" + srv.Nets[0].Gateway + ":8888/"} {
		if body, err := get(u); err != nil || body != "hello from the pod\n" {
			t.Fatalf("GET %s from the host: %q, %v", u, body, err)
		}
	}
	// From another network namespace (another pod), through the host's port.
	out, err := inPod(cli, "timeout", "5", "/bin/busybox", "wget", "-q", "-O", "-", fmt.Sprintf("http://%s:8888/", cli.Nets[0].Gateway)).CombinedOutput()
	if err != nil || string(out) != "hello from the pod\n" {
		t.Fatalf("GET from another pod: %q, %v", out, err)
	}
}

// counts is what a pod leaves on the host: interfaces, address leases, nat and masquerade rules,
// namespaces.
func counts(t *testing.T) string {
	links := strings.Count(sh(t, "ip", "-o", "link", "show"), "\n")
	leases := 0
	filepath.Walk("/var/lib/cni/networks", func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasPrefix(fi.Name(), "last_reserved_ip") && fi.Name() != "lock" {
			leases++
		}
		return nil
	})
	rules := strings.Count(sh(t, "iptables", "-t", "nat", "-S"), "\n")
	masq, err := MasqRules()
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir("/run/netns")
	return fmt.Sprintf("links=%d leases=%d nat-rules=%d masq-rules=%d netns=%d", links, leases, rules, len(masq), len(ents))
}

func noLeaks(t *testing.T, m *Manager) {
	// One pod first, so that chains that plugins create once and keep (CNI-HOSTPORT-*) exist.
	st := setup(t, m, "warm", nil, []PortMapping{{HostPort: 9000, ContainerPort: 80, Protocol: "tcp"}})
	if err := m.Teardown(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	before := counts(t)
	for i := range 20 {
		sel, _ := ParseSelection(nil)
		st, err := m.Setup(context.Background(), fmt.Sprintf("p%02d", i), sel, []PortMapping{{HostPort: 9000 + i, ContainerPort: 80, Protocol: "tcp"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Teardown(context.Background(), st); err != nil {
			t.Fatal(err)
		}
	}
	if after := counts(t); after != before {
		t.Fatalf("20 pods leaked: before %s, after %s", before, after)
	}
	t.Logf("after 20 pods: %s", before)
}

func failures(t *testing.T, m *Manager) {
	dir := m.ConfDirs[0]
	os.WriteFile(filepath.Join(dir, "10-noplugin.conf"), []byte(`{"cniVersion":"0.4.0","name":"noplugin","type":"no-such-plugin"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "20-fixed.conf"), []byte(`{"cniVersion":"0.4.0","name":"fixed","type":"ptp",
		"ipam":{"type":"host-local","subnet":"10.9.0.0/24"}}`), 0o644)
	first := setup(t, m, "holder", []string{"fixed:IP=10.9.0.7"}, nil)
	if ip(first) != "10.9.0.7" {
		t.Fatalf("per-network IP argument ignored: %v", first.Nets[0].IPs)
	}
	before := counts(t)
	for _, c := range []struct {
		nets []string
		want string
	}{
		{[]string{"default,noplugin"}, "no-such-plugin"},
		{[]string{"nosuch"}, "network not found"},
		{[]string{"default,fixed:IP=10.9.0.7"}, "10.9.0.7"},
	} {
		sel, err := ParseSelection(c.nets)
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.Setup(context.Background(), "bad", sel, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("--net=%s: %v, want an error naming %q", c.nets, err, c.want)
		}
		if after := counts(t); after != before {
			t.Fatalf("--net=%s failed but leaked: before %s, after %s", c.nets, before, after)
		}
	}
	os.WriteFile(filepath.Join(dir, "30-broken.conf"), []byte(`{"name": "broken", "type": `), 0o644)
	if _, err := m.Setup(context.Background(), "bad2", Selection{Nets: []Request{{Name: "default"}}}, nil); err == nil || !strings.Contains(err.Error(), "30-broken.conf") {
		t.Fatalf("malformed config: %v", err)
	}
	if _, err := os.Stat(m.NetnsPath("bad2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("netns left after a config error: %v", err)
	}
}

// sandbox makes a namespace as a pod's sandbox does and attaches it, as rkt run does.
func sandbox(t *testing.T, m *Manager, id string, nets ...string) *State {
	t.Helper()
	path := "/run/netns/" + id
	if err := createNetns(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeNetns(path) })
	sel, err := ParseSelection(nets)
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Attach(context.Background(), id, path, sel, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// heldNamespace: something else (an open file here; a mount namespace that copied the pod's
// bind mount, in practice) keeps a pod's network namespace alive after the pod. Its teardown
// must still take its veth and route off the host before its address goes to the next pod,
// whose traffic would otherwise go to the dead pod's namespace.
func heldNamespace(t *testing.T, m *Manager) {
	old := sandbox(t, m, "old", "default:IP=172.16.28.50")
	hold, err := os.Open(old.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	oldLink := old.Nets[0].HostLinks
	if len(oldLink) != 1 || !strings.HasPrefix(oldLink[0].Name, "veth") || oldLink[0].MAC == "" {
		t.Fatalf("host links recorded: %+v", oldLink)
	}
	// As the pod's Clean does: the namespace's mount goes first, then the networks.
	if err := removeNetns(old.NetNS); err != nil {
		t.Fatal(err)
	}
	if old.TeardownNeedsNetns() {
		t.Fatal("the default network's teardown should not need the namespace")
	}
	if err := m.Teardown(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	if out := sh(t, "ip", "-o", "link", "show"); strings.Contains(out, oldLink[0].Name) {
		t.Fatalf("the old pod's veth %s is left:\n%s", oldLink[0].Name, out)
	}
	next := sandbox(t, m, "next", "default:IP=172.16.28.50")
	defer m.Teardown(context.Background(), next)
	if got := ip(next); got != "172.16.28.50" {
		t.Fatalf("the next pod has %s", got)
	}
	if out := sh(t, "ip", "route", "show", "172.16.28.50"); strings.Count(out, "\n") != 1 || !strings.Contains(out, next.Nets[0].HostLinks[0].Name) {
		t.Fatalf("routes to the address: %q; want the one through the next pod's veth %s", out, next.Nets[0].HostLinks[0].Name)
	}
	www := t.TempDir()
	os.WriteFile(filepath.Join(www, "index.html"), []byte("next\n"), 0o644)
	srv := inPod(next, "/bin/busybox", "httpd", "-f", "-p", "7000", "-h", www)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	var got string
	for range 50 {
		c := &http.Client{Timeout: time.Second}
		if resp, err := c.Get("http://172.16.28.50:7000/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got = string(b)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got != "next\n" {
		t.Fatalf("the host reached %q at the next pod's address, want its answer", got)
	}
}

// teardownElsewhere: a pod's host side (its masquerade rule, veth and lease) is torn down by
// a process in another network namespace, as `rkt gc` run from elsewhere does.
func teardownElsewhere(t *testing.T, m *Manager) {
	pin := filepath.Join(t.TempDir(), "host-netns")
	m.HostNetnsPin = pin
	st := sandbox(t, m, "far")
	if !isNetns(pin) || !strings.HasPrefix(st.HostNetNSID, "net:[") {
		t.Fatalf("host namespace not pinned: %+v", st)
	}
	if rules, _ := MasqRules(); !slices.Contains(rules, "rkt-far default eth0") {
		t.Fatalf("masquerade rules %q", rules)
	}
	veth := st.Nets[0].HostLinks[0].Name
	elsewhere := func(f func() error) error {
		errc := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends in the new namespace
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				errc <- err
				return
			}
			errc <- f()
		}()
		return <-errc
	}
	// A pin that is some other kind of namespace cannot be entered: the error says which.
	uts := filepath.Join(t.TempDir(), "uts")
	os.WriteFile(uts, nil, 0o444)
	if err := (mount.Mount{Source: "/proc/self/ns/uts", Target: uts, Flags: unix.MS_BIND}).Apply(); err != nil {
		t.Fatal(err)
	}
	defer mount.Unmount(uts, unix.MNT_DETACH)
	wrong := *st
	wrong.HostNetNS = uts
	if err := elsewhere(func() error { return m.Teardown(context.Background(), &wrong) }); err == nil || !strings.Contains(err.Error(), uts) {
		t.Fatalf("teardown through a pin that is no network namespace: %v", err)
	}

	if err := elsewhere(func() error { return m.Teardown(context.Background(), st) }); err != nil {
		t.Fatal(err)
	}
	if rules, _ := MasqRules(); slices.Contains(rules, "rkt-far default eth0") {
		t.Fatalf("masquerade rule left after a teardown from another namespace: %q", rules)
	}
	if out := sh(t, "ip", "-o", "link", "show"); strings.Contains(out, veth) {
		t.Fatalf("veth %s left:\n%s", veth, out)
	}
	if leases, _ := filepath.Glob("/var/lib/cni/networks/default/172.*"); len(leases) != 0 {
		t.Fatalf("leases left: %v", leases)
	}
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pin left after teardown: %v", err)
	}
	// Once done, a retry from anywhere finds nothing to do.
	if err := elsewhere(func() error { return m.Teardown(context.Background(), st) }); err != nil {
		t.Fatalf("second teardown: %v", err)
	}
}
