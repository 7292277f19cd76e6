package vxlan

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/flannel/reconcile"
)

// Device is the wanted shape of the vxlan device.
type Device struct {
	VNI           int
	Port          int
	Local         netip.Addr // our public IP: the VTEP source address
	Underlay      int        // ifindex the encapsulated traffic leaves by
	MTU           int
	MAC           net.HardwareAddr
	GBP           bool
	Address       netip.Addr // subnet.0, set as /32 on the device
	Network       netip.Prefix
	DirectRouting bool
}

// Name is the device's name, flannel.<VNI>.
func (d Device) Name() string { return DeviceName(d.VNI) }

// Dataplane owns one flannel.<VNI> device in the current network namespace.
type Dataplane struct {
	Dev Device // the wanted device; set before use, then change it with SetDevice
	Log *slog.Logger

	mu    sync.Mutex
	index atomic.Int64 // the device's ifindex as of the last Ensure
}

// SetDevice changes the wanted device (a new lease moves its address).
func (d *Dataplane) SetDevice(dev Device) {
	d.mu.Lock()
	d.Dev = dev
	d.mu.Unlock()
}

// Wanted returns the wanted device.
func (d *Dataplane) Wanted() Device {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.Dev
}

// Links are the interface indexes a reconcile pass works with.
type Links struct{ VXLAN, Underlay int }

// Ensure creates the device or brings an existing one into shape and returns its index.
// A device whose VNI, port, local address or underlay differs cannot be changed in place
// and is re-created; everything else (MAC, MTU, learning, address, up) is fixed in place,
// so a restart of flanneld leaves a correct device untouched and drops no traffic.
func (d *Dataplane) Ensure(ctx context.Context) (Links, error) {
	want := d.Wanted()
	name := want.Name()
	links := Links{Underlay: want.Underlay}
	l, err := netlink.LinkByName(name)
	switch {
	case err == nil:
		vx, ok := l.(*netlink.Vxlan)
		if !ok || vx.VxlanId != want.VNI || vx.Port != want.Port || !vx.SrcAddr.Equal(want.Local.AsSlice()) ||
			vx.VtepDevIndex != want.Underlay || vx.GBP != want.GBP {
			d.Log.Warn("re-creating vxlan device with incompatible attributes", "device", name)
			if err := netlink.LinkDel(l); err != nil {
				return links, fmt.Errorf("device %s: delete incompatible: %w", name, err)
			}
			l = nil
		}
	case errors.As(err, new(netlink.LinkNotFoundError)):
		l = nil
	default:
		return links, fmt.Errorf("device %s: %w", name, err)
	}
	if l == nil {
		vx := &netlink.Vxlan{
			LinkAttrs:    netlink.LinkAttrs{Name: name, MTU: want.MTU, HardwareAddr: want.MAC},
			VxlanId:      want.VNI,
			VtepDevIndex: want.Underlay,
			SrcAddr:      want.Local.AsSlice(),
			Port:         want.Port,
			Learning:     false,
			GBP:          want.GBP,
		}
		if err := netlink.LinkAdd(vx); err != nil {
			return links, fmt.Errorf("device %s: create: %w", name, err)
		}
		d.Log.Info("created vxlan device", "device", name, "vni", want.VNI, "mac", want.MAC.String(), "mtu", want.MTU)
		if l, err = netlink.LinkByName(name); err != nil {
			return links, fmt.Errorf("device %s: %w", name, err)
		}
	}
	attrs := l.Attrs()
	links.VXLAN = attrs.Index
	d.index.Store(int64(attrs.Index))
	if vx := l.(*netlink.Vxlan); vx.Learning {
		// The kernel cannot switch learning on an existing device through netlink's
		// changelink on every version; re-create is the safe route.
		if err := netlink.LinkDel(l); err != nil {
			return links, fmt.Errorf("device %s: delete learning device: %w", name, err)
		}
		return d.Ensure(ctx)
	}
	if attrs.HardwareAddr.String() != want.MAC.String() {
		if err := netlink.LinkSetHardwareAddr(l, want.MAC); err != nil {
			return links, fmt.Errorf("device %s: set MAC %s: %w", name, want.MAC, err)
		}
	}
	if attrs.MTU != want.MTU {
		if err := netlink.LinkSetMTU(l, want.MTU); err != nil {
			return links, fmt.Errorf("device %s: set MTU %d: %w", name, want.MTU, err)
		}
	}
	if err := ensureAddress(l, want.Address); err != nil {
		return links, err
	}
	if attrs.Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(l); err != nil {
			return links, fmt.Errorf("device %s: set up: %w", name, err)
		}
	}
	return links, nil
}

func ensureAddress(l netlink.Link, addr netip.Addr) error {
	name := l.Attrs().Name
	want := &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(32, 32)}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("device %s: list addresses: %w", name, err)
	}
	have := false
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			have = true
			continue
		}
		// A stale address from an earlier lease would attract its subnet's traffic.
		if err := netlink.AddrDel(l, &a); err != nil {
			return fmt.Errorf("device %s: remove stale address %s: %w", name, a.IPNet, err)
		}
	}
	if !have {
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: want}); err != nil {
			return fmt.Errorf("device %s: add address %s: %w", name, want, err)
		}
	}
	return nil
}

// SameL2 reports whether ip is reached through the underlay device without a gateway.
func (d *Dataplane) SameL2(ip netip.Addr) bool {
	rs, err := netlink.RouteGet(ip.AsSlice())
	if err != nil || len(rs) == 0 {
		return false
	}
	return rs[0].Gw == nil && rs[0].LinkIndex == d.Wanted().Underlay
}

// Current reads the entries flanneld owns: routes into the network on the vxlan device
// (and, with DirectRouting, on the underlay), permanent neighbours and FDB entries on the
// vxlan device.
func (d *Dataplane) Current(links Links) (reconcile.State, error) {
	dev := d.Wanted()
	var s reconcile.State
	add := func(link int, gwRequired bool) error {
		rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: link, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		if err != nil {
			return fmt.Errorf("list routes on link %d: %w", link, err)
		}
		for _, r := range rs {
			if r.Dst == nil || (gwRequired && r.Gw == nil) {
				continue
			}
			dst, ok := prefixOf(r.Dst)
			if !ok || !dev.Network.Contains(dst.Addr()) || dst.Bits() < dev.Network.Bits() {
				continue
			}
			gw, _ := netip.AddrFromSlice(r.Gw.To4())
			s.Routes = append(s.Routes, reconcile.Route{Dst: dst, Gw: gw, Link: link, Onlink: r.Flags&int(netlink.FLAG_ONLINK) != 0})
		}
		return nil
	}
	if err := add(links.VXLAN, false); err != nil {
		return s, err
	}
	if dev.DirectRouting && links.Underlay != 0 {
		if err := add(links.Underlay, true); err != nil {
			return s, err
		}
	}
	ns, err := netlink.NeighList(links.VXLAN, netlink.FAMILY_V4)
	if err != nil {
		return s, fmt.Errorf("device %s: list neighbours: %w", dev.Name(), err)
	}
	for _, n := range ns {
		if n.State&netlink.NUD_PERMANENT == 0 || n.IP.To4() == nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(n.IP.To4())
		s.Neighs = append(s.Neighs, reconcile.Neigh{IP: ip, MAC: n.HardwareAddr.String(), Link: links.VXLAN})
	}
	fs, err := netlink.NeighList(links.VXLAN, unix.AF_BRIDGE)
	if err != nil {
		return s, fmt.Errorf("device %s: list FDB: %w", dev.Name(), err)
	}
	for _, f := range fs {
		if f.IP.To4() == nil || len(f.HardwareAddr) != 6 || f.LinkIndex != links.VXLAN {
			continue
		}
		ip, _ := netip.AddrFromSlice(f.IP.To4())
		s.FDB = append(s.FDB, reconcile.FDB{MAC: f.HardwareAddr.String(), Dst: ip, Link: links.VXLAN})
	}
	s.Sort()
	return s, nil
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP.To4())
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits != 32 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}

// Apply carries out a plan: FDB before neighbours before routes when adding, the reverse
// when removing, so that a route never points at a peer the device cannot reach yet.
// It goes on after a failed edit and returns all errors joined.
func (d *Dataplane) Apply(p reconcile.Plan) error {
	var errs []error
	for _, f := range p.SetFDB {
		errs = append(errs, wrap("set FDB", f, netlink.NeighSet(fdb(f))))
	}
	for _, n := range p.SetNeighs {
		mac, _ := net.ParseMAC(n.MAC)
		errs = append(errs, wrap("set neighbour", n, netlink.NeighSet(&netlink.Neigh{
			LinkIndex: n.Link, Family: unix.AF_INET, State: netlink.NUD_PERMANENT, Type: unix.RTN_UNICAST,
			IP: n.IP.AsSlice(), HardwareAddr: mac})))
	}
	for _, r := range p.SetRoutes {
		errs = append(errs, wrap("set route", r, netlink.RouteReplace(route(r))))
	}
	for _, r := range p.DelRoutes {
		errs = append(errs, wrap("delete route", r, ignoreGone(netlink.RouteDel(route(r)))))
	}
	for _, n := range p.DelNeighs {
		errs = append(errs, wrap("delete neighbour", n, ignoreGone(netlink.NeighDel(&netlink.Neigh{
			LinkIndex: n.Link, Family: unix.AF_INET, IP: n.IP.AsSlice()}))))
	}
	for _, f := range p.DelFDB {
		errs = append(errs, wrap("delete FDB", f, ignoreGone(netlink.NeighDel(fdb(f)))))
	}
	return errors.Join(errs...)
}

func fdb(f reconcile.FDB) *netlink.Neigh {
	mac, _ := net.ParseMAC(f.MAC)
	return &netlink.Neigh{LinkIndex: f.Link, Family: unix.AF_BRIDGE, State: netlink.NUD_PERMANENT,
		Flags: netlink.NTF_SELF, IP: f.Dst.AsSlice(), HardwareAddr: mac}
}

func route(r reconcile.Route) *netlink.Route {
	nr := &netlink.Route{LinkIndex: r.Link, Scope: netlink.SCOPE_UNIVERSE, Table: unix.RT_TABLE_MAIN,
		Dst: &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), 32)}, Gw: r.Gw.AsSlice()}
	if r.Onlink {
		nr.Flags = int(netlink.FLAG_ONLINK)
	}
	return nr
}

func ignoreGone(err error) error {
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	return err
}

func wrap(what string, obj any, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s %+v: %w", what, obj, err)
}

// Subscribe calls notify whenever the kernel reports a link, route or neighbour being
// deleted or a link changing, until ctx ends. If a subscription breaks (for example the
// socket overflowed), it is re-opened: the periodic pass covers the gap.
func (d *Dataplane) Subscribe(ctx context.Context, notify func()) {
	go d.subscribeLoop(ctx, "link", func(done chan struct{}, errf func(error)) error {
		ch := make(chan netlink.LinkUpdate, 64)
		if err := netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{ErrorCallback: errf}); err != nil {
			return err
		}
		for u := range ch {
			dev := d.Wanted()
			if u.Header.Type == unix.RTM_DELLINK || u.Attrs().Name == dev.Name() || u.Attrs().Index == dev.Underlay {
				notify()
			}
		}
		return nil
	})
	go d.subscribeLoop(ctx, "route", func(done chan struct{}, errf func(error)) error {
		ch := make(chan netlink.RouteUpdate, 256)
		if err := netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{ErrorCallback: errf}); err != nil {
			return err
		}
		for u := range ch {
			if u.Type == unix.RTM_DELROUTE {
				notify()
			}
		}
		return nil
	})
	go d.subscribeLoop(ctx, "neighbour", func(done chan struct{}, errf func(error)) error {
		ch := make(chan netlink.NeighUpdate, 256)
		if err := netlink.NeighSubscribeWithOptions(ch, done, netlink.NeighSubscribeOptions{ErrorCallback: errf}); err != nil {
			return err
		}
		for u := range ch {
			// The kernel reports a deleted entry with its state already gone, so any
			// deletion on our device counts.
			if u.Type == unix.RTM_DELNEIGH && int64(u.Neigh.LinkIndex) == d.index.Load() {
				notify()
			}
		}
		return nil
	})
}

func (d *Dataplane) subscribeLoop(ctx context.Context, what string, run func(done chan struct{}, errf func(error)) error) {
	for ctx.Err() == nil {
		done := make(chan struct{})
		stop := context.AfterFunc(ctx, func() { close(done) })
		err := run(done, func(err error) { d.Log.Debug("netlink subscription error", "kind", what, "err", err) })
		stop()
		if err != nil {
			d.Log.Warn("netlink subscription failed", "kind", what, "err", err)
		}
		// Pace re-subscription after a broken subscription.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
