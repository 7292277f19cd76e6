// Package ipmasq holds the NAT rules -ip-masq installs: the same four POSTROUTING rules
// stock flannel adds, so traffic between hosts' subnets keeps its source address and
// traffic leaving the overlay is masqueraded. The rules are data; Apply installs them with
// iptables (the iptables-nft binary on Debian, so they land in nftables).
package ipmasq

import (
	"fmt"
	"net/netip"

	"github.com/coreos/go-iptables/iptables"
)

const comment = "flanneld masq"

// Rule is one rule of the nat table's POSTROUTING chain.
type Rule []string

// Rules returns the rules for a host owning subnet in network.
func Rules(network, subnet netip.Prefix) []Rule {
	n, s := network.String(), subnet.String()
	return []Rule{
		// Overlay to overlay: untouched.
		{"-s", n, "-d", n, "-m", "comment", "--comment", comment, "-j", "RETURN"},
		// Overlay to the outside world (but not multicast): masquerade.
		{"-s", n, "!", "-d", "224.0.0.0/4", "-m", "comment", "--comment", comment, "-j", "MASQUERADE", "--random-fully"},
		// Outside to this host's subnet: untouched (port forwards keep the client's address).
		{"!", "-s", n, "-d", s, "-m", "comment", "--comment", comment, "-j", "RETURN"},
		// Outside (the host itself) to other hosts' subnets: masquerade.
		{"!", "-s", n, "-d", n, "-m", "comment", "--comment", comment, "-j", "MASQUERADE", "--random-fully"},
	}
}

// Apply installs rules in order and removes the rules of a previous subnet (stale).
func Apply(rules, stale []Rule) error {
	ipt, err := iptables.NewWithProtocol(iptables.ProtocolIPv4)
	if err != nil {
		return fmt.Errorf("ip-masq: %w", err)
	}
	for _, r := range stale {
		if err := ipt.DeleteIfExists("nat", "POSTROUTING", r...); err != nil {
			return fmt.Errorf("ip-masq: remove stale rule %v: %w", r, err)
		}
	}
	for _, r := range rules {
		if err := ipt.AppendUnique("nat", "POSTROUTING", r...); err != nil {
			return fmt.Errorf("ip-masq: add rule %v: %w", r, err)
		}
	}
	return nil
}
