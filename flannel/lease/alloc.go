package lease

import (
	"errors"
	"math/rand/v2"
	"net/netip"

	"github.com/cairn-os/cairn/flannel/config"
)

// ErrExhausted means every subnet between SubnetMin and SubnetMax is taken.
var ErrExhausted = errors.New("no free subnet left in the network")

// maxCandidates bounds the scan of a huge network: like flannel, pick among the first free ones.
const maxCandidates = 100

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
