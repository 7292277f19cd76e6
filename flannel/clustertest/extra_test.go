//go:build linux

package clustertest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// DirectRouting between hosts on one L2 routes via the peer's public IP on the underlay,
// without encapsulation; -ip-masq installs flannel's POSTROUTING rules; /healthz and
// /readyz answer.
func TestDirectRoutingIPMasqHealth(t *testing.T) {
	t.Parallel()
	c := newCluster(t, `{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true}}`)
	hs, envs, eps := startHosts(t, c, 2, "-ip-masq", "-healthz-port", "9102", "-healthz-ip", "127.0.0.1")
	pingAll(t, hs, eps, 10*time.Second)
	out := hs[0].MustExec("ip", "route", "show", envs[1].Subnet.String())
	if !strings.Contains(out, "via "+hs[1].IP.String()+" dev eth0") {
		t.Fatalf("DirectRouting route: %q", out)
	}
	if !envs[0].IPMasq {
		t.Fatalf("subnet.env FLANNEL_IPMASQ=false with -ip-masq")
	}
	nat := hs[0].MustExec("iptables", "-t", "nat", "-S", "POSTROUTING")
	for _, want := range []string{
		"-A POSTROUTING -s 10.5.0.0/16 -d 10.5.0.0/16 -m comment --comment \"flanneld masq\" -j RETURN",
		"-A POSTROUTING ! -s 10.5.0.0/16 -d " + envs[0].Subnet.String() + " -m comment --comment \"flanneld masq\" -j RETURN",
		"MASQUERADE --random-fully",
	} {
		if !strings.Contains(nat, want) {
			t.Errorf("nat POSTROUTING lacks %q:\n%s", want, nat)
		}
	}
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return DialInNS(ctx, hs[0].NS, addr)
	}}}
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := hc.Get("http://127.0.0.1:9102" + p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
			t.Fatalf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
}

// Interop with stock flannel in the etcd mode: a stock flanneld (FLANNEL_PEER_BIN, else
// the one tools/flannel builds) joins the same etcd, and endpoints on both sides ping.
func TestInteropStockFlannel(t *testing.T) {
	t.Parallel()
	c := newCluster(t, netDoc)
	peer := stockFlanneld(t)
	ours := c.AddHost()
	stock := c.AddHost()
	stock.Bin = peer
	// Stock flanneld's own flags: it has no -log-level.
	stock.Args = []string{"-etcd-endpoints", c.EtcdURL, "-iface", "eth0", "-subnet-file", stock.SubnetFile}
	ours.Start()
	stock.Start()
	e1 := ours.WaitEnv(30 * time.Second)
	e2 := stock.WaitEnv(60 * time.Second)
	ep1, ep2 := ours.AddEndpoint(e1), stock.AddEndpoint(e2)
	pingAll(t, []*Host{ours, stock}, []netip.Addr{ep1, ep2}, 20*time.Second)
}

// Without -iface, flanneld uses the default route's interface; -iface-can-reach picks the
// interface that routes to an address; -iface-regex (repeatable) matches names or
// addresses; FLANNELD_* variables work like the flags.
func TestInterfaceSelection(t *testing.T) {
	t.Parallel()
	c := newCluster(t, netDoc)
	h1, h2, h3 := c.AddHost(), c.AddHost(), c.AddHost()
	h1.MustExec("ip", "route", "add", "default", "via", EtcdIP)
	h1.Args = []string{"-etcd-endpoints", c.EtcdURL, "-subnet-file", h1.SubnetFile}
	h2.Args = []string{"-iface-can-reach", EtcdIP, "-subnet-file", h2.SubnetFile}
	h3.Args = []string{"-etcd-endpoints", c.EtcdURL, "-iface-regex", `^nomatch$`, "-iface-regex", `^192\.168\.100\.`, "-subnet-file", h3.SubnetFile}
	h1.Start()
	h2.Env = []string{"FLANNELD_ETCD_ENDPOINTS=" + c.EtcdURL}
	h2.Start()
	h3.Start()
	e1, e2, e3 := h1.WaitEnv(30*time.Second), h2.WaitEnv(30*time.Second), h3.WaitEnv(30*time.Second)
	ep1, ep2, ep3 := h1.AddEndpoint(e1), h2.AddEndpoint(e2), h3.AddEndpoint(e3)
	pingAll(t, []*Host{h1, h2, h3}, []netip.Addr{ep1, ep2, ep3}, 10*time.Second)
	for _, h := range []*Host{h1, h2, h3} {
		if !strings.Contains(h.Log(), "iface=eth0 addr="+h.IP.String()) {
			t.Errorf("%s did not pick eth0:\n%s", h.NS, h.Log())
		}
	}
}

// With no -etcd-endpoints, flanneld runs its own single-node etcd on 127.0.0.1 (data in
// -data-dir), writes the default network config, and comes up on its own; a restart
// finds its subnet again in that etcd.
func TestEmbeddedEtcd(t *testing.T) {
	t.Parallel()
	c := newCluster(t, "")
	h := c.AddHost()
	h.Args = []string{"-iface", "eth0", "-subnet-file", h.SubnetFile, "-data-dir", filepath.Join(c.Dir, "h1data")}
	// sd_notify: READY=1 must come after subnet.env is in place.
	sock := filepath.Join(c.Dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h.Env = []string{"NOTIFY_SOCKET=" + sock}
	h.Start()
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	buf := make([]byte, 256)
	n, err := conn.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "READY=1") {
		t.Fatalf("sd_notify: %q %v\n%s", buf[:n], err, h.Log())
	}
	if _, err := os.Stat(h.SubnetFile); err != nil {
		t.Fatalf("READY=1 before subnet.env: %v", err)
	}
	e := h.WaitEnv(time.Second)
	if e.Network.String() != "10.1.0.0/16" || e.Subnet.Bits() != 24 {
		t.Fatalf("subnet.env from the default config: %+v", e)
	}
	if !strings.Contains(h.Log(), "wrote the default network config") {
		t.Fatalf("no log of the default config:\n%s", h.Log())
	}
	if err := h.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	os.Remove(h.SubnetFile) // the subnet must come from the embedded store this time
	h.Start()
	if e2 := h.WaitEnv(60 * time.Second); e2.Subnet != e.Subnet {
		t.Fatalf("subnet after restart %s, before %s", e2.Subnet, e.Subnet)
	}
}
