// Package vxlan is flannel's VXLAN dataplane on Linux: it keeps the flannel.<VNI> device
// in shape, reads the routes, neighbour and FDB entries flanneld owns into a
// reconcile.State, applies a reconcile.Plan, and reports the kernel's deletion
// notifications so that a removed entry is put back at once.
package vxlan

import (
	"crypto/sha256"
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
)

// DeviceName is the name stock flannel gives the device of a VNI.
func DeviceName(vni int) string { return "flannel." + strconv.Itoa(vni) }

// DerivedMAC is the VtepMAC of a host: derived from its public IP and the VNI, so it is
// the same after a flanneld restart, a device re-creation or a reboot (flannel#1795: a
// random MAC per start makes every peer relearn it, and drops traffic meanwhile). The
// address is locally administered and unicast.
func DerivedMAC(publicIP netip.Addr, vni int) net.HardwareAddr {
	h := sha256.New()
	h.Write([]byte("cairn flannel vtep\x00"))
	h.Write(publicIP.AsSlice())
	var v [4]byte
	binary.BigEndian.PutUint32(v[:], uint32(vni))
	h.Write(v[:])
	sum := h.Sum(nil)
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&0xfc | 0x02
	return mac
}

// Overhead is what VXLAN encapsulation costs on top of the inner frame's IP packet:
// outer IP + UDP + VXLAN header + inner Ethernet header.
func Overhead(underlayIPv6 bool) int {
	if underlayIPv6 {
		return 70
	}
	return 50
}
