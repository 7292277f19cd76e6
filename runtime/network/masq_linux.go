package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Masquerade for networks whose ptp or bridge plugin is configured with "ipMasq": true is
// done by Cairn rather than by the plugin. The plugins (Debian's, and upstream's default
// backend) build it from iptables commands, about fifteen processes per pod start and stop;
// Cairn writes the same rule in one nftables netlink transaction. The rules live in one table,
// `inet rkt`, chain `postrouting`, one rule per pod address, each with the comment
// "rkt-<pod uuid> <network> <ifname>" so that teardown and `rkt gc` find them:
//
//	ip saddr POD ip daddr != SUBNET ip daddr != 224.0.0.0/4 masquerade
//
// which is what the plugins' per-pod chain does (traffic within the pod's own subnet and to
// multicast groups keeps its source).
const (
	masqTable = "rkt"
	masqChain = "postrouting"
)

// masqPlugins are the plugin types whose "ipMasq" Cairn takes over.
var masqPlugins = map[string]bool{"ptp": true, "bridge": true}

// takeOverMasq returns the config list with "ipMasq" turned off in its first plugin, and true,
// when that plugin is one whose masquerade Cairn does itself; otherwise the list unchanged and
// false.
func takeOverMasq(confList []byte) ([]byte, bool, error) {
	var raw map[string]any
	if err := json.Unmarshal(confList, &raw); err != nil {
		return nil, false, err
	}
	plugins, _ := raw["plugins"].([]any)
	if len(plugins) == 0 {
		return confList, false, nil
	}
	first, _ := plugins[0].(map[string]any)
	if typ, _ := first["type"].(string); !masqPlugins[typ] {
		return confList, false, nil
	}
	if on, _ := first["ipMasq"].(bool); !on {
		return confList, false, nil
	}
	first["ipMasq"] = false
	b, err := json.Marshal(raw)
	return b, err == nil, err
}

func masqComment(podID, netName, ifName string) string {
	return "rkt-" + podID + " " + netName + " " + ifName
}

// addMasq masquerades the pod's addresses (CIDR strings from the plugin's result) on their way
// out of their subnet. Rules left by an earlier, interrupted attempt for the same pod,
// network and interface are replaced, so a retry never doubles them.
func addMasq(podID, netName, ifName string, addrs []string) error {
	var rules [][]expr.Any
	for _, a := range addrs {
		ip, ipn, err := net.ParseCIDR(a)
		if err != nil {
			return fmt.Errorf("masquerade: address %q from the plugin: %w", a, err)
		}
		rules = append(rules, masqExprs(ip, ipn))
	}
	if len(rules) == 0 {
		return nil
	}
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("masquerade: nftables: %w", err)
	}
	t, ch := masqObjects(c)
	comment := masqComment(podID, netName, ifName)
	if err := delMasqRules(c, comment); err != nil {
		return err
	}
	for _, e := range rules {
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: e,
			UserData: userdata.AppendString(nil, userdata.TypeComment, comment)})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("masquerade: add the rules for pod %s on %s: %w", podID, netName, err)
	}
	return nil
}

// delMasq removes the pod's masquerade rules for one network. Nothing to remove is no error.
func delMasq(podID, netName, ifName string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("masquerade: nftables: %w", err)
	}
	if err := delMasqRules(c, masqComment(podID, netName, ifName)); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("masquerade: remove the rules of pod %s on %s: %w", podID, netName, err)
	}
	return nil
}

// masqObjects queues the creation of the table and chain; both are kept if they exist.
func masqObjects(c *nftables.Conn) (*nftables.Table, *nftables.Chain) {
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: masqTable})
	ch := c.AddChain(&nftables.Chain{Table: t, Name: masqChain, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	return t, ch
}

// masqRules lists the chain's rules; a table or chain that does not exist yet has none.
func masqRules(c *nftables.Conn) ([]*nftables.Rule, error) {
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: masqTable}
	rules, err := c.GetRules(t, &nftables.Chain{Table: t, Name: masqChain})
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("masquerade: list table inet %s chain %s: %w", masqTable, masqChain, err)
	}
	return rules, nil
}

// delMasqRules queues the deletion of the chain's rules that carry comment.
func delMasqRules(c *nftables.Conn, comment string) error {
	rules, err := masqRules(c)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if got, ok := userdata.GetString(r.UserData, userdata.TypeComment); ok && got == comment {
			if err := c.DelRule(r); err != nil {
				return fmt.Errorf("masquerade: %w", err)
			}
		}
	}
	return nil
}

// masqExprs is `ip saddr IP ip daddr != SUBNET ip daddr != MULTICAST masquerade` (or ip6).
func masqExprs(ip net.IP, subnet *net.IPNet) []expr.Any {
	proto, saddr, daddr, size := byte(unix.NFPROTO_IPV4), uint32(12), uint32(16), uint32(4)
	mcast := &net.IPNet{IP: net.IPv4(224, 0, 0, 0).To4(), Mask: net.CIDRMask(4, 32)}
	if ip4 := ip.To4(); ip4 != nil {
		ip = ip4
		subnet = &net.IPNet{IP: subnet.IP.To4(), Mask: subnet.Mask[len(subnet.Mask)-4:]}
	} else {
		proto, saddr, daddr, size = unix.NFPROTO_IPV6, 8, 24, 16
		mcast = &net.IPNet{IP: net.ParseIP("ff00::"), Mask: net.CIDRMask(8, 128)}
	}
	notIn := func(n *net.IPNet) []expr.Any {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: daddr, Len: size},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: []byte(n.Mask), Xor: make([]byte, size)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte(n.IP.Mask(n.Mask))},
		}
	}
	e := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: saddr, Len: size},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(ip)},
	}
	e = append(e, notIn(subnet)...)
	e = append(e, notIn(mcast)...)
	return append(e, &expr.Masq{})
}

// MasqRules lists the comments ("rkt-<pod uuid> <network> <ifname>") of the masquerade rules
// Cairn holds in this network namespace, one per pod address.
func MasqRules() ([]string, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("masquerade: nftables: %w", err)
	}
	rules, err := masqRules(c)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range rules {
		s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
		out = append(out, s)
	}
	return out, nil
}
