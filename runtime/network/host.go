package network

import (
	"net"
	"strings"
)

// HostLink is an interface that a plugin's ADD reported outside the pod (no sandbox): the host
// end of a veth, or the bridge it hangs on.
type HostLink struct {
	Name string `json:"name"`
	MAC  string `json:"mac,omitempty"`
}

// hostLink is a link of the host namespace as teardown finds it.
type hostLink struct {
	Name, Type, MAC string
	Index           int
}

// ownLinks picks, among the links found by the recorded names, those that are the pod's own:
// veths with the recorded hardware address. A bridge is shared by the network's pods, and a
// link that has the name but another address belongs to a pod that came later.
func ownLinks(recorded []HostLink, found []hostLink) []hostLink {
	var out []hostLink
	for _, f := range found {
		if f.Type != "veth" {
			continue
		}
		for _, r := range recorded {
			if r.Name == f.Name && r.MAC != "" && strings.EqualFold(r.MAC, f.MAC) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// hostRoutes are the destinations of the routes that lead to the pod's addresses (CIDR strings
// from the plugin's result), as ptp sets them on the host: each address on its own (/32, /128).
func hostRoutes(addrs []string) []*net.IPNet {
	var out []*net.IPNet
	for _, a := range addrs {
		ip, _, err := net.ParseCIDR(a)
		if err != nil {
			continue
		}
		if ip4 := ip.To4(); ip4 != nil {
			out = append(out, &net.IPNet{IP: ip4, Mask: net.CIDRMask(32, 32)})
		} else {
			out = append(out, &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)})
		}
	}
	return out
}
