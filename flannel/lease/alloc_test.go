package lease

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/flannel/config"
)

func TestChoose(t *testing.T) {
	const (
		self  = "192.0.2.1"
		other = "192.0.2.2"
	)
	// held is a key in the store: a lease with an etcd lease, or a reservation when etcdLease is 0.
	held := func(sn, pub string, etcdLease int64) Lease {
		return Lease{Subnet: netip.MustParsePrefix(sn), Attrs: Attrs{PublicIP: netip.MustParseAddr(pub)},
			Reservation: etcdLease == 0, ModRevision: 7, EtcdLease: etcdLease}
	}
	const small = `{"Network":"10.9.0.0/28"}` // three /30 subnets: .4 .8 .12
	const bounded = `{"Network":"10.9.0.0/24","SubnetLen":28,"SubnetMin":"10.9.0.32","SubnetMax":"10.9.0.48"}`
	cases := []struct {
		name     string
		cfg      string
		leases   []Lease
		occupied []string
		hint     string
		want     string // the subnet; for a random pick, the lowest allowed
		upTo     string // for a random pick: the highest allowed
		existing bool   // want the host's own key taken over
		err      error
	}{
		{name: "own lease reused", cfg: small,
			leases: []Lease{held("10.9.0.4/30", other, 1), held("10.9.0.8/30", self, 2)},
			want:   "10.9.0.8/30", existing: true},
		{name: "own lease reused over a free hint", cfg: small,
			leases: []Lease{held("10.9.0.8/30", self, 2)}, hint: "10.9.0.12/30",
			want: "10.9.0.8/30", existing: true},
		{name: "own reservation first", cfg: small,
			leases: []Lease{held("10.9.0.4/30", self, 2), held("10.9.0.12/30", self, 0)}, hint: "10.9.0.4/30",
			want: "10.9.0.12/30", existing: true},
		{name: "own lease of the hint before other own leases", cfg: small,
			leases: []Lease{held("10.9.0.4/30", self, 2), held("10.9.0.8/30", self, 3)}, hint: "10.9.0.8/30",
			want: "10.9.0.8/30", existing: true},
		{name: "of two own leases the first in store order", cfg: small,
			leases: []Lease{held("10.9.0.12/30", self, 2), held("10.9.0.4/30", self, 3)},
			want:   "10.9.0.12/30", existing: true},
		{name: "own lease outside SubnetMin..SubnetMax ignored", cfg: bounded,
			leases: []Lease{held("10.9.0.16/28", self, 2), held("10.9.0.32/28", other, 3)},
			want:   "10.9.0.48/28"},
		{name: "own lease of another SubnetLen ignored", cfg: small,
			leases: []Lease{held("10.9.0.8/29", self, 2), held("10.9.0.4/30", other, 3), held("10.9.0.12/30", other, 4)},
			want:   "10.9.0.8/30"},
		{name: "free hint", cfg: small, hint: "10.9.0.8/30", want: "10.9.0.8/30"},
		{name: "hint held by another host", cfg: small,
			leases: []Lease{held("10.9.0.8/30", other, 1), held("10.9.0.4/30", other, 2)}, hint: "10.9.0.8/30",
			want: "10.9.0.12/30"},
		{name: "hint reserved for another host", cfg: small,
			leases: []Lease{held("10.9.0.8/30", other, 0), held("10.9.0.4/30", other, 2)}, hint: "10.9.0.8/30",
			want: "10.9.0.12/30"},
		{name: "hint whose value does not decode", cfg: small,
			leases: []Lease{held("10.9.0.4/30", other, 2)}, occupied: []string{"10.9.0.8/30"}, hint: "10.9.0.8/30",
			want: "10.9.0.12/30"},
		{name: "hint below SubnetMin", cfg: bounded,
			leases: []Lease{held("10.9.0.48/28", other, 2)}, hint: "10.9.0.16/28",
			want: "10.9.0.32/28"},
		{name: "hint outside the network", cfg: small,
			leases: []Lease{held("10.9.0.4/30", other, 2), held("10.9.0.12/30", other, 3)}, hint: "10.8.0.8/30",
			want: "10.9.0.8/30"},
		{name: "first free subnet", cfg: small,
			leases: []Lease{held("10.9.0.4/30", other, 1), held("10.9.0.12/30", other, 2)},
			want:   "10.9.0.8/30"},
		{name: "hint of the network's first subnet, below the default SubnetMin", cfg: small,
			leases: []Lease{held("10.9.0.4/30", other, 1), held("10.9.0.12/30", other, 2)}, hint: "10.9.0.0/30",
			want: "10.9.0.8/30"},
		{name: "only inside SubnetMin..SubnetMax", cfg: bounded,
			leases: []Lease{held("10.9.0.32/28", other, 1)},
			want:   "10.9.0.48/28"},
		{name: "SubnetMin..SubnetMax full while the network is not", cfg: bounded,
			leases: []Lease{held("10.9.0.32/28", other, 1), held("10.9.0.48/28", other, 2)},
			err:    ErrExhausted},
		{name: "full network", cfg: small,
			leases: []Lease{held("10.9.0.4/30", other, 1), held("10.9.0.8/30", "192.0.2.3", 2), held("10.9.0.12/30", "192.0.2.4", 0)},
			err:    ErrExhausted},
		{name: "full network counting undecodable keys", cfg: small,
			leases: []Lease{held("10.9.0.4/30", other, 1)}, occupied: []string{"10.9.0.8/30", "10.9.0.12/30"},
			err: ErrExhausted},
		{name: "full network but the host's own lease", cfg: small,
			leases: []Lease{held("10.9.0.4/30", other, 1), held("10.9.0.8/30", self, 2), held("10.9.0.12/30", "192.0.2.4", 3)},
			want:   "10.9.0.8/30", existing: true},
		// etcd deletes a key whose lease expired: it is simply not in the store any more.
		{name: "own expired lease back through the hint", cfg: small,
			leases: []Lease{held("10.9.0.4/30", other, 1)}, hint: "10.9.0.12/30",
			want: "10.9.0.12/30"},
		{name: "another host's expired lease is free", cfg: small,
			leases: []Lease{held("10.9.0.4/30", other, 1), held("10.9.0.12/30", "192.0.2.4", 3)},
			want:   "10.9.0.8/30"},
		{name: "random among the first 100 free", cfg: `{"Network":"10.9.0.0/16"}`,
			leases: []Lease{held("10.9.1.0/24", other, 1), held("10.9.3.0/24", "192.0.2.3", 2)},
			want:   "10.9.2.0/24", upTo: "10.9.102.0/24"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(c.cfg))
			if err != nil {
				t.Fatal(err)
			}
			var occupied []netip.Prefix
			for _, s := range c.occupied {
				occupied = append(occupied, netip.MustParsePrefix(s))
			}
			var hint netip.Prefix
			if c.hint != "" {
				hint = netip.MustParsePrefix(c.hint)
			}
			got, err := Choose(cfg, c.leases, occupied, netip.MustParseAddr(self), hint, rand.New(rand.NewPCG(1, 2)))
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("Choose = %+v, %v; want %v", got, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := netip.MustParsePrefix(c.want)
			if c.upTo != "" {
				lo, hi := want.Addr(), netip.MustParsePrefix(c.upTo).Addr()
				if !cfg.Contains(got.Subnet) || got.Subnet.Addr().Less(lo) || hi.Less(got.Subnet.Addr()) {
					t.Fatalf("Choose = %s; want a subnet in %s..%s", got.Subnet, lo, hi)
				}
				for _, l := range c.leases {
					if l.Subnet == got.Subnet {
						t.Fatalf("Choose = %s, which %s holds", got.Subnet, l.Attrs.PublicIP)
					}
				}
			} else if got.Subnet != want {
				t.Fatalf("Choose = %s; want %s", got.Subnet, want)
			}
			switch {
			case c.existing && got.Existing == nil:
				t.Fatalf("Choose = %s as a new key; want the host's own key taken over", got.Subnet)
			case !c.existing && got.Existing != nil:
				t.Fatalf("Choose = %s taking over %+v; want a new key", got.Subnet, *got.Existing)
			case c.existing:
				var in Lease
				for _, l := range c.leases {
					if l.Subnet == got.Subnet {
						in = l
					}
				}
				if e := *got.Existing; e.Subnet != in.Subnet || e.ModRevision != in.ModRevision ||
					e.EtcdLease != in.EtcdLease || e.Reservation != in.Reservation {
					t.Fatalf("Existing = %+v; want the store's %+v", e, in)
				}
			}
		})
	}
}

// The error says how full the network is, for the operator who reads it.
func TestChooseExhaustedMessage(t *testing.T) {
	cfg, err := config.Parse([]byte(`{"Network":"10.9.0.0/28"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Choose(cfg, nil, []netip.Prefix{netip.MustParsePrefix("10.9.0.4/30"), netip.MustParsePrefix("10.9.0.8/30"),
		netip.MustParsePrefix("10.9.0.12/30")}, netip.MustParseAddr("192.0.2.1"), netip.Prefix{}, nil)
	if !errors.Is(err, ErrExhausted) || !strings.Contains(err.Error(), "network 10.9.0.0/28 (3 subnets, 3 taken)") {
		t.Fatalf("err = %v", err)
	}
}
