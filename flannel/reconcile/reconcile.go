// Package reconcile computes the dataplane a flannel host should have from the current
// lease set, and the edits that take the current dataplane there. Everything here is data:
// the netlink layer (flannel/vxlan) reads the current state into a State and applies a Plan,
// so running a pass twice changes nothing the second time, and a deleted route, neighbour
// or FDB entry simply shows up as a difference on the next pass.
package reconcile

import (
	"cmp"
	"log/slog"
	"net"
	"net/netip"
	"slices"

	"github.com/cairn-os/cairn/flannel/lease"
)

// Route is a route to a peer's subnet: onlink via the peer's VTEP address on the vxlan
// device, or via the peer's public IP on the underlay device (DirectRouting).
type Route struct {
	Dst    netip.Prefix
	Gw     netip.Addr
	Link   int
	Onlink bool
}

// Neigh is a permanent ARP entry on the vxlan device: peer VTEP address -> peer VtepMAC.
type Neigh struct {
	IP   netip.Addr
	MAC  string
	Link int
}

// FDB is a permanent forwarding entry on the vxlan device: peer VtepMAC -> peer public IP.
type FDB struct {
	MAC  string
	Dst  netip.Addr
	Link int
}

// State is a set of routes, neighbours and FDB entries.
type State struct {
	Routes []Route
	Neighs []Neigh
	FDB    []FDB
}

// Sort orders the state so that two equal states compare equal.
func (s *State) Sort() {
	slices.SortFunc(s.Routes, func(a, b Route) int { return a.Dst.Addr().Compare(b.Dst.Addr()) })
	slices.SortFunc(s.Neighs, func(a, b Neigh) int { return a.IP.Compare(b.IP) })
	slices.SortFunc(s.FDB, func(a, b FDB) int { return cmp.Or(cmp.Compare(a.MAC, b.MAC), a.Dst.Compare(b.Dst)) })
}

// Host describes this host for Want.
type Host struct {
	Subnet        netip.Prefix // our own lease; never routed
	VXLANLink     int
	UnderlayLink  int
	VNI           int
	DirectRouting bool
	// SameL2 reports whether a peer's public IP is reachable without a gateway on the
	// underlay; only consulted with DirectRouting.
	SameL2 func(netip.Addr) bool
}

// Want computes the wanted dataplane for the given leases. Leases of other backends or
// with unreadable backend data are skipped with a warning: another writer's mistake must
// not take the host's dataplane down.
func Want(h Host, leases []lease.Lease, log *slog.Logger) State {
	var s State
	for _, l := range leases {
		if l.Subnet == h.Subnet {
			continue
		}
		if l.Attrs.BackendType != "vxlan" {
			log.Warn("ignoring lease of another backend", "subnet", l.Subnet, "backend", l.Attrs.BackendType)
			continue
		}
		if h.DirectRouting && h.SameL2 != nil && h.SameL2(l.Attrs.PublicIP) {
			s.Routes = append(s.Routes, Route{Dst: l.Subnet, Gw: l.Attrs.PublicIP, Link: h.UnderlayLink})
			continue
		}
		d, err := l.VXLAN()
		if err != nil {
			log.Warn("ignoring lease with bad vxlan data", "subnet", l.Subnet, "err", err)
			continue
		}
		vtep := l.Subnet.Masked().Addr()
		mac := d.VtepMAC.String()
		s.Routes = append(s.Routes, Route{Dst: l.Subnet, Gw: vtep, Link: h.VXLANLink, Onlink: true})
		s.Neighs = append(s.Neighs, Neigh{IP: vtep, MAC: mac, Link: h.VXLANLink})
		s.FDB = append(s.FDB, FDB{MAC: mac, Dst: l.Attrs.PublicIP, Link: h.VXLANLink})
	}
	s.Sort()
	return s
}

// Plan is the difference between two states. Set entries are created or replaced in place
// (so a changed gateway or MAC never leaves a gap); Del entries are removed.
type Plan struct {
	SetRoutes, DelRoutes []Route
	SetNeighs, DelNeighs []Neigh
	SetFDB, DelFDB       []FDB
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool {
	return len(p.SetRoutes)+len(p.DelRoutes)+len(p.SetNeighs)+len(p.DelNeighs)+len(p.SetFDB)+len(p.DelFDB) == 0
}

// Diff computes the plan that takes have to want. Routes are keyed by destination and
// neighbours by (link, IP), because replacing them is atomic in the kernel and deleting by
// key after a replace would remove the new entry; FDB entries are keyed by (link, MAC, dst),
// because a vxlan device can hold several destinations for one MAC.
func Diff(want, have State) Plan {
	var p Plan
	haveR := map[netip.Prefix]Route{}
	for _, r := range have.Routes {
		haveR[r.Dst] = r
	}
	wantR := map[netip.Prefix]bool{}
	for _, r := range want.Routes {
		wantR[r.Dst] = true
		if h, ok := haveR[r.Dst]; !ok || h != r {
			p.SetRoutes = append(p.SetRoutes, r)
		}
	}
	for _, r := range have.Routes {
		if !wantR[r.Dst] {
			p.DelRoutes = append(p.DelRoutes, r)
		}
	}

	type nk struct {
		link int
		ip   netip.Addr
	}
	haveN := map[nk]Neigh{}
	for _, n := range have.Neighs {
		haveN[nk{n.Link, n.IP}] = n
	}
	wantN := map[nk]bool{}
	for _, n := range want.Neighs {
		wantN[nk{n.Link, n.IP}] = true
		if h, ok := haveN[nk{n.Link, n.IP}]; !ok || h != n {
			p.SetNeighs = append(p.SetNeighs, n)
		}
	}
	for _, n := range have.Neighs {
		if !wantN[nk{n.Link, n.IP}] {
			p.DelNeighs = append(p.DelNeighs, n)
		}
	}

	haveF := map[FDB]bool{}
	for _, f := range have.FDB {
		haveF[f] = true
	}
	wantF := map[FDB]bool{}
	for _, f := range want.FDB {
		wantF[f] = true
		if !haveF[f] {
			p.SetFDB = append(p.SetFDB, f)
		}
	}
	for _, f := range have.FDB {
		if !wantF[f] {
			p.DelFDB = append(p.DelFDB, f)
		}
	}
	return p
}

// MAC formats a hardware address the way State stores it.
func MAC(hw net.HardwareAddr) string { return hw.String() }
