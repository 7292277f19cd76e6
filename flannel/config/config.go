// Package config parses and validates the flannel network configuration stored at
// <prefix>/config in etcd. It accepts the same JSON as stock flannel (field names are
// matched case-insensitively, as encoding/json does) and applies the same defaults, with
// one documented difference: a config without a Backend selects the vxlan backend, where
// stock flannel's code falls back to udp.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Defaults of the vxlan backend, as in stock flannel.
const (
	DefaultVNI   = 1
	DefaultPort  = 8472 // the Linux kernel's IANA-predating VXLAN port, flannel's wire default
	BackendVXLAN = "vxlan"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid network config")

// Backend is the "Backend" object of the network config.
type Backend struct {
	Type          string
	VNI           int
	Port          int
	DirectRouting bool
	// MTU overrides the device MTU; 0 derives it from the underlay (underlay - 50, or - 70 over IPv6).
	MTU int
	GBP bool
}

// Config is a validated network config with defaults filled in.
type Config struct {
	Network   netip.Prefix
	SubnetLen int
	SubnetMin netip.Addr
	SubnetMax netip.Addr
	Backend   Backend
}

// wire mirrors the JSON document. Addresses are strings so that errors can name them.
type wire struct {
	Network    string
	SubnetLen  *int
	SubnetMin  string
	SubnetMax  string
	EnableIPv6 bool
	EnableIPv4 *bool
	Backend    json.RawMessage
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Parse decodes, defaults and validates a network config document.
func Parse(data []byte) (*Config, error) {
	var w wire
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, invalid("decode JSON: %v", err)
	}
	if w.EnableIPv6 {
		return nil, invalid("EnableIPv6 is not supported yet; remove it or set it to false")
	}
	if w.EnableIPv4 != nil && !*w.EnableIPv4 {
		return nil, invalid("EnableIPv4=false leaves no network to manage")
	}
	if w.Network == "" {
		return nil, invalid("Network is missing; set it to an IPv4 CIDR such as 10.1.0.0/16")
	}
	network, err := netip.ParsePrefix(strings.TrimSpace(w.Network))
	if err != nil || !network.Addr().Is4() {
		return nil, invalid("Network %q is not an IPv4 CIDR", w.Network)
	}
	c := &Config{Network: network.Masked()}
	plen := c.Network.Bits()

	if w.SubnetLen != nil && *w.SubnetLen != 0 {
		c.SubnetLen = *w.SubnetLen
		switch {
		case c.SubnetLen < 0 || c.SubnetLen > 30:
			return nil, invalid("SubnetLen %d must be between the Network's prefix + 2 and 30", c.SubnetLen)
		case c.SubnetLen < plen+2:
			return nil, invalid("SubnetLen %d is too short for Network %s: it must fit at least four subnets (SubnetLen >= %d)", c.SubnetLen, c.Network, plen+2)
		}
	} else {
		switch {
		case plen > 28:
			return nil, invalid("Network %s is too small: the smallest usable prefix is /28", c.Network)
		case plen <= 22:
			c.SubnetLen = 24
		default:
			c.SubnetLen = plen + 2
		}
	}

	size := uint32(1) << (32 - c.SubnetLen)
	base := addrU32(c.Network.Addr())
	last := base + uint32((uint64(1)<<(32-plen))-1)
	c.SubnetMin = u32Addr(base + size)
	c.SubnetMax = u32Addr(last - size + 1)
	if w.SubnetMin != "" {
		if c.SubnetMin, err = c.boundary("SubnetMin", w.SubnetMin); err != nil {
			return nil, err
		}
	}
	if w.SubnetMax != "" {
		if c.SubnetMax, err = c.boundary("SubnetMax", w.SubnetMax); err != nil {
			return nil, err
		}
	}
	if addrU32(c.SubnetMin) > addrU32(c.SubnetMax) {
		return nil, invalid("SubnetMin %s is above SubnetMax %s", c.SubnetMin, c.SubnetMax)
	}

	if c.Backend, err = parseBackend(w.Backend); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) boundary(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || !a.Is4() {
		return netip.Addr{}, invalid("%s %q is not an IPv4 address", field, s)
	}
	if !c.Network.Contains(a) {
		return netip.Addr{}, invalid("%s %s is not in Network %s", field, a, c.Network)
	}
	if addrU32(a)&^(^uint32(0)<<(32-c.SubnetLen)) != 0 {
		return netip.Addr{}, invalid("%s %s is not on a /%d boundary", field, a, c.SubnetLen)
	}
	return a, nil
}

func parseBackend(raw json.RawMessage) (Backend, error) {
	b := Backend{Type: BackendVXLAN}
	if len(raw) == 0 || string(raw) == "null" {
		b.VNI, b.Port = DefaultVNI, DefaultPort
		return b, nil
	}
	var w struct {
		Type          string
		VNI           *int
		Port          int
		DirectRouting bool
		MTU           int
		GBP           bool
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return b, invalid("decode Backend: %v", err)
	}
	if w.Type != "" {
		b.Type = strings.ToLower(w.Type)
	}
	if b.Type != BackendVXLAN {
		return b, invalid("Backend.Type %q is not supported; use \"vxlan\"", w.Type)
	}
	b.VNI = DefaultVNI
	if w.VNI != nil {
		b.VNI = *w.VNI
	}
	if b.VNI < 0 || b.VNI >= 1<<24 {
		return b, invalid("Backend.VNI %d is out of range 0..16777215", b.VNI)
	}
	b.Port = w.Port
	if b.Port == 0 {
		b.Port = DefaultPort
	}
	if b.Port < 1 || b.Port > 65535 {
		return b, invalid("Backend.Port %d is out of range 1..65535", b.Port)
	}
	if w.MTU != 0 && (w.MTU < 576 || w.MTU > 65535) {
		return b, invalid("Backend.MTU %d is out of range 576..65535 (0 derives it from the underlay)", w.MTU)
	}
	b.MTU, b.DirectRouting, b.GBP = w.MTU, w.DirectRouting, w.GBP
	return b, nil
}

// SubnetSize is the number of addresses in one host subnet.
func (c *Config) SubnetSize() uint32 { return uint32(1) << (32 - c.SubnetLen) }

// Contains reports whether sn is a host subnet of this network in [SubnetMin, SubnetMax]
// with the configured length.
func (c *Config) Contains(sn netip.Prefix) bool {
	if !sn.IsValid() || sn.Bits() != c.SubnetLen || sn.Masked() != sn || !c.Network.Contains(sn.Addr()) {
		return false
	}
	v := addrU32(sn.Addr())
	return v >= addrU32(c.SubnetMin) && v <= addrU32(c.SubnetMax)
}

// Subnets returns how many host subnets [SubnetMin, SubnetMax] holds.
func (c *Config) Subnets() uint64 {
	return uint64(addrU32(c.SubnetMax)-addrU32(c.SubnetMin))/uint64(c.SubnetSize()) + 1
}

// SubnetAt returns the i-th host subnet counted from SubnetMin.
func (c *Config) SubnetAt(i uint64) netip.Prefix {
	return netip.PrefixFrom(u32Addr(addrU32(c.SubnetMin)+uint32(i)*c.SubnetSize()), c.SubnetLen)
}

// Marshal renders the config in flannel's JSON shape.
func (c *Config) Marshal() ([]byte, error) {
	return json.Marshal(map[string]any{
		"Network":   c.Network.String(),
		"SubnetLen": c.SubnetLen,
		"SubnetMin": c.SubnetMin.String(),
		"SubnetMax": c.SubnetMax.String(),
		"Backend":   c.Backend,
	})
}

func addrU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u32Addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
