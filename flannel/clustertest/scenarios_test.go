//go:build linux

package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/flannel/lease"
)

func linkMAC(t *testing.T, h *Host) string {
	t.Helper()
	f := strings.Fields(h.MustExec("ip", "-br", "link", "show", "flannel.1"))
	if len(f) < 3 {
		t.Fatalf("ip -br link: %v", f)
	}
	return f[2]
}

func storedLease(t *testing.T, c *Cluster, sn netip.Prefix) (lease.Attrs, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Client().Get(ctx, lease.Key(Prefix, sn))
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("lease %s: %v (%d keys)", sn, err, len(r.Kvs))
	}
	a, err := lease.DecodeAttrs(r.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	return a, r.Kvs[0].Lease
}

// Scenario 2: a restart keeps subnet and VtepMAC, and traffic across it loses nothing.
func TestRestartKeepsSubnetMACAndTraffic(t *testing.T) {
	t.Parallel()
	c := newCluster(t, netDoc)
	hs, envs, eps := startHosts(t, c, 2)
	pingAll(t, hs, eps, 10*time.Second)
	mac := linkMAC(t, hs[0])
	attrs, _ := storedLease(t, c, envs[0].Subnet)

	type res struct {
		out string
		err error
	}
	done := make(chan res, 1)
	go func() {
		out, err := hs[1].Ping(eps[1], eps[0], 100, "0.05")
		done <- res{out, err}
	}()
	time.Sleep(time.Second)
	if err := hs[0].Stop(); err != nil {
		t.Fatalf("flanneld exit on SIGTERM: %v", err)
	}
	hs[0].Start()
	hs[0].WaitLog("flanneld running", 2, 20*time.Second)
	r := <-done
	if r.err != nil || !strings.Contains(r.out, " 0% packet loss") {
		t.Fatalf("ping across the restart: %v\n%s", r.err, r.out)
	}
	if e := hs[0].WaitEnv(time.Second); e.Subnet != envs[0].Subnet {
		t.Fatalf("subnet after restart %s, before %s", e.Subnet, envs[0].Subnet)
	}
	if m := linkMAC(t, hs[0]); m != mac {
		t.Fatalf("VtepMAC after restart %s, before %s", m, mac)
	}
	attrs2, _ := storedLease(t, c, envs[0].Subnet)
	if string(attrs2.BackendData) != string(attrs.BackendData) {
		t.Fatalf("BackendData after restart %s, before %s", attrs2.BackendData, attrs.BackendData)
	}
	ls, err := c.Client().Leases(t.Context())
	if err != nil || len(ls.Leases) != 2 {
		t.Fatalf("etcd leases after restart: %d (%v), want 2: one per host, none leaked", len(ls.Leases), err)
	}
}

// Scenario 3: etcd goes away; the dataplane keeps working; afterwards leases are renewed
// (they never lapse) and a new host is learned. FLANNEL_ETCD_OUTAGE sets the outage
// (default 60s; longer in a manual run).
func TestEtcdOutage(t *testing.T) {
	t.Parallel()
	outage := 60 * time.Second
	if s := os.Getenv("FLANNEL_ETCD_OUTAGE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		outage = d
	}
	c := newCluster(t, netDoc)
	ttl := "10s"
	hs, envs, eps := startHosts(t, c, 2, "-subnet-lease-ttl", ttl)
	pingAll(t, hs, eps, 10*time.Second)

	c.StopEtcd()
	start := time.Now()
	for time.Since(start) < outage {
		if out, err := hs[0].Ping(eps[0], eps[1], 3, "0.2"); err != nil {
			t.Fatalf("overlay broke %s into the etcd outage: %v\n%s", time.Since(start).Round(time.Second), err, out)
		}
		time.Sleep(2 * time.Second)
	}
	c.StartEtcd()
	// Leases must be renewed before they lapse: wait two TTLs and check that neither
	// host ever had to acquire again, and that both keys are still there.
	time.Sleep(20 * time.Second)
	for i, h := range hs {
		if strings.Contains(h.Log(), "acquiring the subnet again") || strings.Contains(h.Log(), "acquiring it again") {
			t.Errorf("host %d let its lease lapse after etcd returned", i+1)
		}
		_, id := storedLease(t, c, envs[i].Subnet)
		ttl, err := c.Client().TimeToLive(t.Context(), clientv3.LeaseID(id))
		if err != nil || ttl.TTL <= 0 {
			t.Errorf("host %d lease: %+v %v", i+1, ttl, err)
		}
	}
	h3 := c.AddHost("-subnet-lease-ttl", ttl)
	h3.Start()
	e3 := h3.WaitEnv(30 * time.Second)
	ep3 := h3.AddEndpoint(e3)
	pingAll(t, []*Host{hs[0], hs[1], h3}, []netip.Addr{eps[0], eps[1], ep3}, 10*time.Second)
}

// Scenario 4: a deleted route, neighbour, FDB entry or the whole device comes back ≤ 10 s.
func TestRepairsDataplane(t *testing.T) {
	t.Parallel()
	c := newCluster(t, netDoc)
	hs, envs, eps := startHosts(t, c, 2)
	pingAll(t, hs, eps, 10*time.Second)
	h := hs[0]
	peer := envs[1].Subnet
	vtep := peer.Masked().Addr().String()
	attrs, _ := storedLease(t, c, peer)
	d, _ := lease.DecodeVXLAN(attrs.BackendData)
	mac := d.VtepMAC.String()

	check := map[string]func() error{
		"route": func() error {
			if out, _ := h.Exec("ip", "route", "show", peer.String()); !strings.Contains(out, "via "+vtep+" dev flannel.1 onlink") {
				return fmt.Errorf("route: %q", out)
			}
			return nil
		},
		"neighbour": func() error {
			if out, _ := h.Exec("ip", "neigh", "show", vtep, "dev", "flannel.1"); !strings.Contains(out, mac) || !strings.Contains(out, "PERMANENT") {
				return fmt.Errorf("neigh: %q", out)
			}
			return nil
		},
		"fdb": func() error {
			if out, _ := h.Exec("bridge", "fdb", "show", "dev", "flannel.1"); !strings.Contains(out, mac+" dst "+envsIP(hs[1])+" self permanent") {
				return fmt.Errorf("fdb: %q", out)
			}
			return nil
		},
	}
	all := func() error {
		for _, k := range []string{"route", "neighbour", "fdb"} {
			if err := check[k](); err != nil {
				return err
			}
		}
		return nil
	}
	if err := all(); err != nil {
		t.Fatal(err)
	}
	for _, del := range []struct {
		name string
		cmd  []string
	}{
		{"route", []string{"ip", "route", "del", peer.String()}},
		{"neighbour", []string{"ip", "neigh", "del", vtep, "dev", "flannel.1"}},
		{"fdb", []string{"bridge", "fdb", "del", mac, "dev", "flannel.1", "dst", envsIP(hs[1]), "self"}},
		{"device", []string{"ip", "link", "del", "flannel.1"}},
	} {
		h.MustExec(del.cmd[0], del.cmd[1:]...)
		took := Eventually(t, 10*time.Second, "repair of deleted "+del.name, all)
		t.Logf("deleted %s repaired in %s", del.name, took.Round(time.Millisecond))
	}
	pingAll(t, hs, eps, 10*time.Second)

	// A peer whose VtepMAC changes (another writer, a re-created host) is re-programmed:
	// the old neighbour and FDB entry are replaced, not left beside the new ones.
	sim := netip.MustParsePrefix("10.5.240.0/24")
	for _, m := range []string{"0a:00:00:00:00:01", "0a:00:00:00:00:02"} {
		hw, _ := net.ParseMAC(m)
		bd, _ := lease.EncodeVXLAN(lease.VXLANData{VNI: 1, VtepMAC: hw})
		v, _ := lease.EncodeAttrs(lease.Attrs{PublicIP: netip.MustParseAddr("192.168.100.200"), BackendType: "vxlan", BackendData: bd})
		if _, err := c.Client().Put(t.Context(), lease.Key(Prefix, sim), string(v)); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 10*time.Second, "simulated peer with VtepMAC "+m, func() error {
			n, _ := h.Exec("ip", "neigh", "show", sim.Addr().String(), "dev", "flannel.1")
			f, _ := h.Exec("bridge", "fdb", "show", "dev", "flannel.1")
			if !strings.Contains(n, m) || strings.Count(f, "dst 192.168.100.200") != 1 || !strings.Contains(f, m+" dst 192.168.100.200") {
				return fmt.Errorf("neigh %q fdb %q", n, f)
			}
			return nil
		})
	}
}

func envsIP(h *Host) string { return h.IP.String() }

// Scenario 5: ten hosts started at once get ten different subnets and learn each other.
func TestTenHostsAtOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t, netDoc)
	hs, envs, _ := startHosts(t, c, 10)
	seen := map[netip.Prefix]int{}
	for i, e := range envs {
		if j, dup := seen[e.Subnet]; dup {
			t.Fatalf("hosts %d and %d share subnet %s", j+1, i+1, e.Subnet)
		}
		seen[e.Subnet] = i
	}
	for i, h := range hs {
		Eventually(t, 10*time.Second, fmt.Sprintf("host %d routes to 9 peers", i+1), func() error {
			out, _ := h.Exec("ip", "route", "show", "dev", "flannel.1")
			if n := strings.Count(out, "onlink"); n != 9 {
				return fmt.Errorf("%d routes:\n%s", n, out)
			}
			return nil
		})
	}
}

// Scenario 6: a dead host's lease expires and the others drop its routes; a host whose
// key is deleted puts it back and keeps running.
func TestLeaseExpiryAndReacquire(t *testing.T) {
	t.Parallel()
	c := newCluster(t, netDoc)
	hs, envs, eps := startHosts(t, c, 3, "-subnet-lease-ttl", "4s")
	pingAll(t, hs[:2], eps[:2], 10*time.Second)
	dead := envs[2].Subnet
	Eventually(t, 10*time.Second, "route to host 3", func() error {
		if out, _ := hs[0].Exec("ip", "route", "show", dead.String()); out == "" {
			return fmt.Errorf("no route")
		}
		return nil
	})
	hs[2].Kill()
	Eventually(t, 15*time.Second, "dead host's route removed", func() error {
		for _, h := range hs[:2] {
			if out, _ := h.Exec("ip", "route", "show", dead.String()); out != "" {
				return fmt.Errorf("%s still has %q", h.NS, out)
			}
			if out, _ := h.Exec("ip", "neigh", "show", dead.Masked().Addr().String(), "dev", "flannel.1"); out != "" {
				return fmt.Errorf("%s still has neighbour %q", h.NS, out)
			}
		}
		return nil
	})

	if _, err := c.Client().Delete(t.Context(), lease.Key(Prefix, envs[0].Subnet)); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, "host 1 re-acquires its subnet", func() error {
		r, err := c.Client().Get(t.Context(), lease.Key(Prefix, envs[0].Subnet))
		if err != nil || len(r.Kvs) != 1 {
			return fmt.Errorf("key missing (%v)", err)
		}
		var v map[string]any
		if err := json.Unmarshal(r.Kvs[0].Value, &v); err != nil || v["PublicIP"] != hs[0].IP.String() {
			return fmt.Errorf("value %s", r.Kvs[0].Value)
		}
		return nil
	})
	if err, exited := hs[0].Wait(2 * time.Second); exited {
		t.Fatalf("flanneld exited after its key was deleted: %v", err)
	}
	pingAll(t, hs[:2], eps[:2], 10*time.Second)
}

// Bad input: an invalid config, an exhausted network and an etcd that is not up yet.
func TestBadConfigExhaustionUnreachableEtcd(t *testing.T) {
	t.Parallel()
	c := newCluster(t, `{"Network":"10.5.0.0/16","SubnetLen":31}`)
	h1 := c.AddHost()
	h1.Start()
	if err, exited := h1.Wait(15 * time.Second); !exited || err == nil {
		t.Fatalf("flanneld with SubnetLen 31: exited=%v err=%v", exited, err)
	}
	if !strings.Contains(h1.Log(), "SubnetLen 31") {
		t.Fatalf("log does not name the problem:\n%s", h1.Log())
	}

	// A /28 has three /30 host subnets: the fourth host is told the network is full.
	c.SetConfig(`{"Network":"10.5.0.0/28"}`)
	hs := []*Host{h1, c.AddHost(), c.AddHost(), c.AddHost()}
	for _, h := range hs[:3] {
		h.Start()
		h.WaitEnv(30 * time.Second)
	}
	hs[3].Start()
	if err, exited := hs[3].Wait(15 * time.Second); !exited || err == nil || !strings.Contains(hs[3].Log(), "no free subnet") {
		t.Fatalf("fourth host in a full /28: exited=%v err=%v\n%s", exited, err, hs[3].Log())
	}

	// etcd down at start: flanneld retries with a clear log line, and starts once etcd is back.
	c.SetConfig(`{"Network":"10.6.0.0/16"}`)
	c.StopEtcd()
	h5 := c.AddHost()
	h5.Start()
	h5.WaitLog("etcd unreachable; retrying", 1, 20*time.Second)
	c.StartEtcd()
	if e := h5.WaitEnv(30 * time.Second); e.Network.String() != "10.6.0.0/16" {
		t.Fatalf("subnet.env after etcd came back: %+v", e)
	}
}
