package lease

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/cairn-os/cairn/flannel/config"
)

// ErrExhausted means every subnet between SubnetMin and SubnetMax is taken.
var ErrExhausted = errors.New("no free subnet left in the network")

// maxCandidates bounds the scan of a huge network: like flannel, pick among the first free ones.
const maxCandidates = 100

// Choice is the subnet Choose settled on.
type Choice struct {
	Subnet netip.Prefix
	// Existing is the host's own key in the store (a lease or a reservation) when Subnet is
	// one the host takes over; nil when Subnet is free and a new key is to be created.
	Existing *Lease
}

// Choose decides which subnet of cfg the host with publicIP gets, given what the store
// holds: leases (in the store's key order) and occupied, the subnets whose key exists but
// does not decode (nobody's usable lease, but not free either). Expired leases are not
// among them: etcd deletes a key when its lease runs out.
//
// In order: the host's own reservation; its own lease for hint; any other lease of its own
// (the first in the order given); hint when it is inside the network and free; a free
// subnet chosen by Pick. A lease of the host outside the network (an older config) is
// ignored. The result is a decision only: the store's compare-and-create settles a race
// with another host.
func Choose(cfg *config.Config, leases []Lease, occupied []netip.Prefix, publicIP netip.Addr, hint netip.Prefix, rnd *rand.Rand) (Choice, error) {
	taken := make(map[netip.Prefix]bool, len(leases)+len(occupied))
	for _, sn := range occupied {
		taken[sn] = true
	}
	var mine []int
	for i, l := range leases {
		taken[l.Subnet] = true
		if l.Attrs.PublicIP == publicIP && cfg.Contains(l.Subnet) {
			mine = append(mine, i)
		}
	}
	if len(mine) > 0 {
		score := func(l Lease) int {
			switch {
			case l.Reservation:
				return 0
			case l.Subnet == hint:
				return 1
			}
			return 2
		}
		best := slices.MinFunc(mine, func(a, b int) int { return score(leases[a]) - score(leases[b]) })
		l := leases[best]
		return Choice{Subnet: l.Subnet, Existing: &l}, nil
	}
	if hint.IsValid() && cfg.Contains(hint) && !taken[hint] {
		return Choice{Subnet: hint}, nil
	}
	sn, err := Pick(cfg, taken, rnd)
	if err != nil {
		return Choice{}, fmt.Errorf("network %s (%d subnets, %d taken): %w", cfg.Network, cfg.Subnets(), len(taken), err)
	}
	return Choice{Subnet: sn}, nil
}

// Pick chooses a free subnet of cfg not in taken. It chooses at random among the first
// free candidates, so that hosts racing for a subnet rarely collide (the store's
// compare-and-create settles the rest). rnd may be nil.
func Pick(cfg *config.Config, taken map[netip.Prefix]bool, rnd *rand.Rand) (netip.Prefix, error) {
	var free []netip.Prefix
	n := cfg.Subnets()
	for i := uint64(0); i < n && len(free) < maxCandidates; i++ {
		if sn := cfg.SubnetAt(i); !taken[sn] {
			free = append(free, sn)
		}
	}
	if len(free) == 0 {
		return netip.Prefix{}, ErrExhausted
	}
	if rnd == nil {
		return free[rand.IntN(len(free))], nil
	}
	return free[rnd.IntN(len(free))], nil
}
