package flanneld

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Underlay is the interface encapsulated traffic leaves by, and the address peers reach us at.
type Underlay struct {
	Name     string
	Index    int
	MTU      int
	Addr     netip.Addr // the interface's own IPv4 address: the VTEP source
	PublicIP netip.Addr // what peers send to; -public-ip, else Addr
}

// chooseUnderlay applies -iface, -iface-regex, -iface-can-reach and -public-ip in
// flannel's order of precedence; without any, the interface of the default route.
func chooseUnderlay(o *Options) (Underlay, error) {
	var u Underlay
	var err error
	switch {
	case len(o.Iface) > 0:
		for _, spec := range o.Iface {
			if u, err = byNameOrIP(spec); err == nil {
				break
			}
		}
		if err != nil {
			return u, fmt.Errorf("no usable interface among -iface %q: %w", o.Iface, err)
		}
	case len(o.IfaceRegex) > 0:
		u, err = byRegex(o)
		if err != nil {
			return u, err
		}
	case o.IfaceCanReach.IsValid():
		rs, err := netlink.RouteGet(o.IfaceCanReach.AsSlice())
		if err != nil || len(rs) == 0 {
			return u, fmt.Errorf("-iface-can-reach %s: no route: %v", o.IfaceCanReach, err)
		}
		l, err := netlink.LinkByIndex(rs[0].LinkIndex)
		if err != nil {
			return u, fmt.Errorf("-iface-can-reach %s: %w", o.IfaceCanReach, err)
		}
		if u, err = fromLink(l, netip.Addr{}); err != nil {
			return u, err
		}
		if src, ok := netip.AddrFromSlice(rs[0].Src.To4()); ok {
			u.Addr = src
		}
	default:
		rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			return u, fmt.Errorf("find the default route: %w", err)
		}
		for _, r := range rs {
			if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Table == unix.RT_TABLE_MAIN {
				l, err := netlink.LinkByIndex(r.LinkIndex)
				if err != nil {
					continue
				}
				if u, err = fromLink(l, netip.Addr{}); err == nil {
					break
				}
			}
		}
		if u.Index == 0 {
			return u, errors.New("no default route to pick the interface from; pass -iface NAME|IP or -iface-can-reach IP")
		}
	}
	u.PublicIP = u.Addr
	if o.PublicIP.IsValid() {
		u.PublicIP = o.PublicIP
	}
	return u, nil
}

func byNameOrIP(spec string) (Underlay, error) {
	if ip, err := netip.ParseAddr(spec); err == nil {
		links, err := netlink.LinkList()
		if err != nil {
			return Underlay{}, err
		}
		for _, l := range links {
			if u, err := fromLink(l, ip); err == nil {
				return u, nil
			}
		}
		return Underlay{}, fmt.Errorf("no interface has address %s", ip)
	}
	l, err := netlink.LinkByName(spec)
	if err != nil {
		return Underlay{}, fmt.Errorf("interface %q: %w", spec, err)
	}
	return fromLink(l, netip.Addr{})
}

func byRegex(o *Options) (Underlay, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return Underlay{}, err
	}
	for _, re := range o.IfaceRegex {
		for _, l := range links {
			if re.MatchString(l.Attrs().Name) {
				if u, err := fromLink(l, netip.Addr{}); err == nil {
					return u, nil
				}
			}
			addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4)
			for _, a := range addrs {
				if re.MatchString(a.IP.String()) {
					ip, _ := netip.AddrFromSlice(a.IP.To4())
					if u, err := fromLink(l, ip); err == nil {
						return u, nil
					}
				}
			}
		}
	}
	return Underlay{}, fmt.Errorf("no interface matches -iface-regex %v", o.IfaceRegex)
}

// fromLink takes the link's first global IPv4 address, or want when it has that one.
func fromLink(l netlink.Link, want netip.Addr) (Underlay, error) {
	a := l.Attrs()
	if a.Flags&net.FlagLoopback != 0 {
		return Underlay{}, fmt.Errorf("interface %s is loopback", a.Name)
	}
	addrs, err := netlink.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return Underlay{}, fmt.Errorf("interface %s: %w", a.Name, err)
	}
	for _, ad := range addrs {
		ip, ok := netip.AddrFromSlice(ad.IP.To4())
		if !ok || ip.IsLinkLocalUnicast() {
			continue
		}
		if !want.IsValid() || ip == want {
			return Underlay{Name: a.Name, Index: a.Index, MTU: a.MTU, Addr: ip}, nil
		}
	}
	return Underlay{}, fmt.Errorf("interface %s has no usable IPv4 address", a.Name)
}
