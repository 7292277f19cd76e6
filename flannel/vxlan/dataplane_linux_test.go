package vxlan

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/cairn-os/cairn/flannel/clustertest"
	"github.com/cairn-os/cairn/flannel/lease"
	"github.com/cairn-os/cairn/flannel/reconcile"
	"github.com/cairn-os/cairn/internal/testenv"
)

// In a fresh namespace: Ensure creates the device as flannel does, leaves a correct one
// alone (same ifindex: no flap on restart), re-creates an incompatible one; a pass
// programs peers, a second pass finds nothing to do, and a peer's new VtepMAC replaces
// the old neighbour and FDB entry.
func TestDataplaneInNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ip")
	ns := fmt.Sprintf("flvx%d", os.Getpid())
	clustertest.Run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	clustertest.Run(t, "ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	clustertest.Run(t, "ip", "-n", ns, "addr", "add", "192.168.7.1/24", "dev", "eth0")
	clustertest.Run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	clustertest.Run(t, "ip", "-n", ns, "link", "set", "eth1", "up")

	log := slog.New(slog.DiscardHandler)
	local := netip.MustParseAddr("192.168.7.1")
	peer := func(sn, pub string, mac net.HardwareAddr) lease.Lease {
		bd, _ := lease.EncodeVXLAN(lease.VXLANData{VNI: 1, VtepMAC: mac})
		return lease.Lease{Subnet: netip.MustParsePrefix(sn), Attrs: lease.Attrs{PublicIP: netip.MustParseAddr(pub), BackendType: "vxlan", BackendData: bd}}
	}
	macA := DerivedMAC(netip.MustParseAddr("192.168.7.2"), 1)
	macA2 := DerivedMAC(netip.MustParseAddr("192.168.7.99"), 1)
	err := clustertest.InNS(ns, func() error {
		eth0, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		dp := &Dataplane{Log: log, Dev: Device{VNI: 1, Port: 8472, Local: local, Underlay: eth0.Index, MTU: 1450,
			MAC: DerivedMAC(local, 1), Address: netip.MustParseAddr("10.5.1.0"), Network: netip.MustParsePrefix("10.5.0.0/16")}}
		// A leftover device with the wrong port and learning on must be replaced.
		if err := netlink.LinkAdd(&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "flannel.1"}, VxlanId: 1, Port: 4789, Learning: true}); err != nil {
			return err
		}
		links, err := dp.Ensure(context.Background())
		if err != nil {
			return err
		}
		l, err := netlink.LinkByName("flannel.1")
		if err != nil {
			return err
		}
		vx := l.(*netlink.Vxlan)
		if vx.Port != 8472 || vx.Learning || vx.VxlanId != 1 || vx.MTU != 1450 || vx.HardwareAddr.String() != DerivedMAC(local, 1).String() || l.Attrs().Flags&net.FlagUp == 0 {
			return fmt.Errorf("device not in shape: port %d learning %v mtu %d mac %s flags %v", vx.Port, vx.Learning, vx.MTU, vx.HardwareAddr, l.Attrs().Flags)
		}
		links2, err := dp.Ensure(context.Background())
		if err != nil || links2.VXLAN != links.VXLAN {
			return fmt.Errorf("second Ensure re-created the device (%d -> %d): %v", links.VXLAN, links2.VXLAN, err)
		}

		h := reconcile.Host{Subnet: netip.MustParsePrefix("10.5.1.0/24"), VXLANLink: links.VXLAN, VNI: 1}
		pass := func(leases []lease.Lease) (reconcile.Plan, error) {
			have, err := dp.Current(links)
			if err != nil {
				return reconcile.Plan{}, err
			}
			p := reconcile.Diff(reconcile.Want(h, leases, log), have)
			return p, dp.Apply(p)
		}
		leases := []lease.Lease{peer("10.5.2.0/24", "192.168.7.2", macA), peer("10.5.3.0/24", "192.168.7.3", DerivedMAC(netip.MustParseAddr("192.168.7.3"), 1))}
		if p, err := pass(leases); err != nil || len(p.SetRoutes) != 2 || len(p.SetNeighs) != 2 || len(p.SetFDB) != 2 {
			return fmt.Errorf("first pass %+v: %v", p, err)
		}
		if p, err := pass(leases); err != nil || !p.Empty() {
			return fmt.Errorf("second pass not empty: %+v %v", p, err)
		}
		// Peer A comes back with another VtepMAC; peer 3 leaves.
		leases = []lease.Lease{peer("10.5.2.0/24", "192.168.7.2", macA2)}
		if _, err := pass(leases); err != nil {
			return err
		}
		have, err := dp.Current(links)
		if err != nil {
			return err
		}
		want := reconcile.Want(h, leases, log)
		if p := reconcile.Diff(want, have); !p.Empty() || len(have.Routes) != 1 || len(have.Neighs) != 1 || len(have.FDB) != 1 ||
			have.Neighs[0].MAC != macA2.String() || have.FDB[0].MAC != macA2.String() {
			return fmt.Errorf("after MAC change: have %+v", have)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
