//go:build linux

// Package flannel benchmarks Cairn's flanneld against its peers on one machine, in
// network namespaces on a bridge underlay: iperf3 TCP throughput endpoint to endpoint
// through flanneld's overlay vs the raw veth underlay vs a VXLAN pair made by hand with
// `ip` (and, with DirectRouting, vs raw veth); the time from a lease's Put to routes,
// neighbours and FDB entries present on every host with 50 simulated peers; and the cost
// of a reconcile pass over 1000 leases. It prints the ratios. Run it with `make bench`
// (go test -bench); `go test` alone does not.
package flannel

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/flannel/clustertest"
	"github.com/cairn-os/cairn/flannel/lease"
	"github.com/cairn-os/cairn/flannel/reconcile"
	"github.com/cairn-os/cairn/flannel/vxlan"
	"github.com/cairn-os/cairn/internal/testenv"
)

func flanneld(b *testing.B) string {
	b.Helper()
	p, err := clustertest.BuildFlanneld(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// iperf runs a 4 s TCP test from client to server inside their namespaces, in Gbit/s.
func iperf(b *testing.B, client, server *clustertest.Host, src, dst string) float64 {
	b.Helper()
	srv := exec.Command("ip", "netns", "exec", server.NS, "iperf3", "-s", "-1", "-B", dst)
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	var out string
	var err error
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		if out, err = client.Exec("iperf3", "-c", dst, "-B", src, "-t", "4", "-J"); err == nil {
			break
		}
	}
	if err != nil {
		b.Fatalf("iperf3 %s -> %s: %v\n%s", src, dst, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		b.Fatalf("iperf3 JSON: %v", err)
	}
	return r.End.SumReceived.BitsPerSecond / 1e9
}

func twoHosts(b *testing.B, bin, doc string) (*clustertest.Cluster, []*clustertest.Host, []netip.Addr) {
	c := clustertest.New(b, bin)
	c.SetConfig(doc)
	hs := []*clustertest.Host{c.AddHost(), c.AddHost()}
	var eps []netip.Addr
	for _, h := range hs {
		h.Start()
	}
	for _, h := range hs {
		eps = append(eps, h.AddEndpoint(h.WaitEnv(30*time.Second)))
	}
	clustertest.Eventually(b, 10*time.Second, "overlay ping", func() error {
		_, err := hs[0].Ping(eps[0], eps[1], 1, "0.2")
		return err
	})
	return c, hs, eps
}

func BenchmarkThroughput(b *testing.B) {
	clustertest.Require(b)
	testenv.RequireCommand(b, "iperf3")
	bin := flanneld(b)
	for range b.N {
		_, hs, eps := twoHosts(b, bin, `{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`)
		raw := iperf(b, hs[0], hs[1], hs[0].IP.String(), hs[1].IP.String())
		overlay := iperf(b, hs[0], hs[1], eps[0].String(), eps[1].String())
		// The hand-made peer: a VXLAN pair on the same underlay, configured with ip alone.
		for i, h := range hs {
			other := hs[1-i]
			h.MustExec("ip", "link", "add", "vxm", "type", "vxlan", "id", "42", "dstport", "4790", "local", h.IP.String(),
				"remote", other.IP.String(), "dev", "eth0", "nolearning")
			h.MustExec("ip", "link", "set", "vxm", "mtu", "1450", "up")
			h.MustExec("ip", "addr", "add", fmt.Sprintf("172.31.0.%d/24", i+1), "dev", "vxm")
		}
		hand := iperf(b, hs[0], hs[1], "172.31.0.1", "172.31.0.2")

		_, dhs, deps := twoHosts(b, bin, `{"Network":"10.6.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true}}`)
		direct := iperf(b, dhs[0], dhs[1], deps[0].String(), deps[1].String())
		rawD := iperf(b, dhs[0], dhs[1], dhs[0].IP.String(), dhs[1].IP.String())

		fmt.Printf("flannel throughput (iperf3 TCP, 4 s, one stream):\n")
		fmt.Printf("  raw veth underlay         %6.2f Gbit/s\n", raw)
		fmt.Printf("  hand-made VXLAN (ip)      %6.2f Gbit/s\n", hand)
		fmt.Printf("  flanneld VXLAN overlay    %6.2f Gbit/s  = %.2fx hand-made VXLAN (target >= 0.95), %.2fx raw veth\n", overlay, overlay/hand, overlay/raw)
		fmt.Printf("  flanneld DirectRouting    %6.2f Gbit/s  = %.2fx raw veth (%.2f Gbit/s in that run; target >= 0.95)\n", direct, direct/rawD, rawD)
		b.ReportMetric(overlay/hand, "overlay/handmade")
		b.ReportMetric(direct/rawD, "direct/raw")
	}
}

func vxLease(sn netip.Prefix, pub netip.Addr) string {
	bd, _ := lease.EncodeVXLAN(lease.VXLANData{VNI: 1, VtepMAC: vxlan.DerivedMAC(pub, 1)})
	v, _ := lease.EncodeAttrs(lease.Attrs{PublicIP: pub, BackendType: "vxlan", BackendData: bd})
	return string(v)
}

// BenchmarkConvergence writes 50 simulated peers' leases straight into etcd, one at a
// time, and measures from each Put until the route, neighbour and FDB entry for it are
// present on all three real hosts.
func BenchmarkConvergence(b *testing.B) {
	clustertest.Require(b)
	bin := flanneld(b)
	for range b.N {
		c := clustertest.New(b, bin)
		c.SetConfig(`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`)
		var hs []*clustertest.Host
		for range 3 {
			h := c.AddHost()
			h.Args = append(h.Args, "-log-level", "info")
			hs = append(hs, h)
		}
		for _, h := range hs {
			h.Start()
		}
		for _, h := range hs {
			h.WaitEnv(30 * time.Second)
		}
		var took []time.Duration
		for i := range 50 {
			sn := netip.MustParsePrefix(fmt.Sprintf("10.5.%d.0/24", 200+i%50))
			pub := netip.MustParseAddr(fmt.Sprintf("192.168.101.%d", 1+i))
			mac := vxlan.DerivedMAC(pub, 1).String()
			start := time.Now()
			if _, err := c.Client().Put(context.Background(), lease.Key(clustertest.Prefix, sn), vxLease(sn, pub)); err != nil {
				b.Fatal(err)
			}
			for _, h := range hs {
				// Poll tightly with `ip -n` (no mount namespace set-up per call).
				deadline := time.Now().Add(10 * time.Second)
				for {
					r, _ := exec.Command("ip", "-n", h.NS, "route", "show", sn.String()).Output()
					n, _ := exec.Command("ip", "-n", h.NS, "neigh", "show", sn.Addr().String(), "dev", "flannel.1").Output()
					f, _ := exec.Command("bridge", "-n", h.NS, "fdb", "show", "dev", "flannel.1").Output()
					if len(r) > 0 && strings.Contains(string(n), mac) && strings.Contains(string(f), mac+" dst "+pub.String()) {
						break
					}
					if time.Now().After(deadline) {
						b.Fatalf("peer %s not programmed on %s within 10s", sn, h.NS)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			took = append(took, time.Since(start))
		}
		slices.Sort(took)
		p50, p99 := took[len(took)/2], took[len(took)*99/100]
		fmt.Printf("flannel convergence, 50 simulated peers, 3 hosts (Put -> route+neigh+fdb on all; polled with ip, so an upper bound):\n")
		fmt.Printf("  p50 %s  p99 %s  max %s  (target p99 <= 1s)\n", p50.Round(time.Millisecond), p99.Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond))
		b.ReportMetric(float64(p99.Milliseconds()), "p99-ms")
	}
}

// BenchmarkReconcile1000 programs 1000 peers into a vxlan device in a scratch namespace
// and times the first (full) pass and a steady-state pass that finds nothing to do.
func BenchmarkReconcile1000(b *testing.B) {
	testenv.RequireRoot(b)
	ns := fmt.Sprintf("flbench%d", os.Getpid())
	clustertest.Run(b, "ip", "netns", "add", ns)
	b.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	clustertest.Run(b, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	clustertest.Run(b, "ip", "-n", ns, "addr", "add", "192.168.50.1/16", "dev", "eth0")
	clustertest.Run(b, "ip", "-n", ns, "link", "set", "eth0", "up")
	clustertest.Run(b, "ip", "-n", ns, "link", "set", "eth1", "up")
	log := slog.New(slog.DiscardHandler)
	var leases []lease.Lease
	for i := range 1000 {
		sn := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256))
		pub := netip.MustParseAddr(fmt.Sprintf("192.168.%d.%d", 51+i/250, 1+i%250))
		a, _ := lease.DecodeAttrs([]byte(vxLease(sn, pub)))
		l := lease.Lease{Subnet: sn, Attrs: a}
		l.Predecode() // as the registry does when it reads a lease
		leases = append(leases, l)
	}
	for range b.N {
		err := clustertest.InNS(ns, func() error {
			l, _ := net.InterfaceByName("eth0")
			local := netip.MustParseAddr("192.168.50.1")
			dp := &vxlan.Dataplane{Log: log, Dev: vxlan.Device{VNI: 1, Port: 8472, Local: local, Underlay: l.Index, MTU: 1450,
				MAC: vxlan.DerivedMAC(local, 1), Address: netip.MustParseAddr("10.99.0.0"), Network: netip.MustParsePrefix("10.0.0.0/8")}}
			pass := func() (reconcile.Plan, time.Duration, error) {
				start := time.Now()
				links, err := dp.Ensure(context.Background())
				if err != nil {
					return reconcile.Plan{}, 0, err
				}
				want := reconcile.Want(reconcile.Host{Subnet: netip.MustParsePrefix("10.99.0.0/24"), VXLANLink: links.VXLAN, VNI: 1}, leases, log)
				have, err := dp.Current(links)
				if err != nil {
					return reconcile.Plan{}, 0, err
				}
				p := reconcile.Diff(want, have)
				err = dp.Apply(p)
				return p, time.Since(start), err
			}
			p1, full, err := pass()
			if err != nil {
				return err
			}
			p2, steady, err := pass()
			if err != nil {
				return err
			}
			if len(p1.SetRoutes) != 1000 || !p2.Empty() {
				return fmt.Errorf("first pass set %d routes, second pass plan empty=%v", len(p1.SetRoutes), p2.Empty())
			}
			fmt.Printf("flannel reconcile with 1000 leases: first pass (3000 netlink edits) %s, steady pass %s\n",
				full.Round(time.Millisecond), steady.Round(time.Millisecond))
			b.ReportMetric(float64(steady.Microseconds())/1000, "steady-ms")
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
