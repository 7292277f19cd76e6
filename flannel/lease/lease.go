// Package lease is the wire format of flannel's subnet leases in etcd and the pure
// allocation logic on top of it. A lease lives at <prefix>/subnets/<ip>-<len>, for example
// /coreos.com/network/subnets/10.1.34.0-24, and its value is the JSON stock flannel writes:
//
//	{"PublicIP":"192.168.1.10","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:58:..."}}
//
// A key that has no etcd lease attached is a reservation: it never expires and is never
// handed to another host.
package lease

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ErrMalformed is wrapped by every decoding error: a key or value another writer got wrong.
var ErrMalformed = errors.New("malformed lease")

// Attrs is the value of a lease key.
type Attrs struct {
	PublicIP    netip.Addr
	BackendType string
	BackendData json.RawMessage
}

// VXLANData is BackendData of the vxlan backend.
type VXLANData struct {
	VNI     int
	VtepMAC net.HardwareAddr
}

// Lease is one host's subnet as read from the store.
type Lease struct {
	Subnet netip.Prefix
	Attrs  Attrs
	// Reservation is set for keys without a TTL (no etcd lease attached).
	Reservation bool
	// ModRevision is the etcd revision that last wrote the key; compare-and-swap uses it.
	ModRevision int64
	// EtcdLease is the etcd lease the key is attached to (0 for a reservation).
	EtcdLease int64

	vx *decoded // BackendData decoded once by Predecode; nil: decode on each call
}

type decoded struct {
	d   VXLANData
	err error
}

// Predecode decodes the vxlan backend data once, so that VXLAN does not parse JSON on
// every reconcile pass. Call it when the lease is read from the store.
func (l *Lease) Predecode() {
	d, err := DecodeVXLAN(l.Attrs.BackendData)
	l.vx = &decoded{d, err}
}

// VXLAN returns the lease's vxlan backend data.
func (l Lease) VXLAN() (VXLANData, error) {
	if l.vx != nil {
		return l.vx.d, l.vx.err
	}
	return DecodeVXLAN(l.Attrs.BackendData)
}

const subnetsDir = "/subnets/"

// SubnetsPrefix is the key prefix under which all leases of a network live.
func SubnetsPrefix(prefix string) string { return strings.TrimRight(prefix, "/") + subnetsDir }

// ConfigKey is the key of the network config.
func ConfigKey(prefix string) string { return strings.TrimRight(prefix, "/") + "/config" }

// Key returns the etcd key of subnet sn under prefix.
func Key(prefix string, sn netip.Prefix) string {
	return SubnetsPrefix(prefix) + sn.Addr().String() + "-" + strconv.Itoa(sn.Bits())
}

// ParseKey extracts the subnet from a lease key under prefix.
func ParseKey(prefix, key string) (netip.Prefix, error) {
	rest, ok := strings.CutPrefix(key, SubnetsPrefix(prefix))
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%w: key %q is not under %s", ErrMalformed, key, SubnetsPrefix(prefix))
	}
	return ParseSubnet(rest)
}

// ParseSubnet parses the "<ip>-<len>" form of a subnet used in keys.
func ParseSubnet(s string) (netip.Prefix, error) {
	ipS, lenS, ok := strings.Cut(s, "-")
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%w: subnet %q is not <ip>-<len>", ErrMalformed, s)
	}
	a, err := netip.ParseAddr(ipS)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%w: subnet %q: bad IPv4 address", ErrMalformed, s)
	}
	n, err := strconv.Atoi(lenS)
	if err != nil || n < 0 || n > 32 || strconv.Itoa(n) != lenS {
		return netip.Prefix{}, fmt.Errorf("%w: subnet %q: bad prefix length", ErrMalformed, s)
	}
	p := netip.PrefixFrom(a, n)
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%w: subnet %q has host bits set", ErrMalformed, s)
	}
	return p, nil
}

type attrsJSON struct {
	PublicIP    string
	BackendType string          `json:",omitempty"`
	BackendData json.RawMessage `json:",omitempty"`
}

// EncodeAttrs renders a lease value exactly as stock flannel does.
func EncodeAttrs(a Attrs) ([]byte, error) {
	if !a.PublicIP.Is4() {
		return nil, fmt.Errorf("lease attrs: PublicIP %v is not IPv4", a.PublicIP)
	}
	return json.Marshal(attrsJSON{PublicIP: a.PublicIP.String(), BackendType: a.BackendType, BackendData: a.BackendData})
}

// DecodeAttrs parses a lease value.
func DecodeAttrs(data []byte) (Attrs, error) {
	var w attrsJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return Attrs{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	a, err := netip.ParseAddr(w.PublicIP)
	if err != nil || !a.Is4() {
		return Attrs{}, fmt.Errorf("%w: PublicIP %q is not an IPv4 address", ErrMalformed, w.PublicIP)
	}
	data = bytes.TrimSpace(w.BackendData)
	if string(data) == "null" {
		data = nil
	}
	return Attrs{PublicIP: a, BackendType: w.BackendType, BackendData: data}, nil
}

type vxlanJSON struct {
	VNI     int
	VtepMAC string
}

// EncodeVXLAN renders vxlan BackendData: {"VNI":1,"VtepMAC":"0a:..."}.
func EncodeVXLAN(d VXLANData) (json.RawMessage, error) {
	if len(d.VtepMAC) != 6 {
		return nil, fmt.Errorf("vxlan backend data: VtepMAC %q is not a 6-byte MAC", d.VtepMAC)
	}
	return json.Marshal(vxlanJSON{VNI: d.VNI, VtepMAC: d.VtepMAC.String()})
}

// DecodeVXLAN parses vxlan BackendData.
func DecodeVXLAN(data json.RawMessage) (VXLANData, error) {
	if len(data) == 0 {
		return VXLANData{}, fmt.Errorf("%w: no vxlan BackendData", ErrMalformed)
	}
	var w vxlanJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return VXLANData{}, fmt.Errorf("%w: vxlan BackendData: %v", ErrMalformed, err)
	}
	mac, err := net.ParseMAC(w.VtepMAC)
	if err != nil || len(mac) != 6 {
		return VXLANData{}, fmt.Errorf("%w: VtepMAC %q is not a 6-byte MAC", ErrMalformed, w.VtepMAC)
	}
	if mac[0]&1 != 0 || bytes.Equal(mac, make([]byte, 6)) {
		return VXLANData{}, fmt.Errorf("%w: VtepMAC %s is not a unicast address", ErrMalformed, mac)
	}
	if w.VNI < 0 || w.VNI >= 1<<24 {
		return VXLANData{}, fmt.Errorf("%w: VNI %d out of range", ErrMalformed, w.VNI)
	}
	return VXLANData{VNI: w.VNI, VtepMAC: mac}, nil
}
