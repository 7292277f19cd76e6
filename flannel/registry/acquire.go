package registry

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/flannel/config"
	"github.com/cairn-os/cairn/flannel/lease"
)

// maxClaims bounds the tries when other hosts keep winning the race for the chosen subnet.
const maxClaims = 20

// Acquire gets a subnet for attrs: the host's existing lease or reservation (by PublicIP),
// else hint when free, else a random free subnet (lease.Choose decides). It also loads the
// lease set and returns the revision it was read at, from which Watch continues.
func (r *Registry) Acquire(ctx context.Context, cfg *config.Config, attrs lease.Attrs, hint netip.Prefix) (lease.Lease, error) {
	r.mu.Lock()
	r.init()
	r.mu.Unlock()
	val, err := lease.EncodeAttrs(attrs)
	if err != nil {
		return lease.Lease{}, err
	}
	for range maxClaims {
		leases, occupied, rev, err := r.list(ctx)
		if err != nil {
			return lease.Lease{}, err
		}
		ch, err := lease.Choose(cfg, leases, occupied, attrs.PublicIP, hint, r.Rand)
		if err != nil {
			return lease.Lease{}, err
		}
		own, ok, err := r.claim(ctx, ch, attrs, val)
		if err != nil {
			return lease.Lease{}, err
		}
		if !ok {
			continue
		}
		if prev := ch.Existing; prev != nil && prev.EtcdLease != 0 && prev.EtcdLease != own.EtcdLease {
			r.revokeIfEmpty(ctx, clientv3.LeaseID(prev.EtcdLease))
		}
		r.record(own, leases, rev)
		r.Log.Info("acquired subnet lease", "subnet", own.Subnet, "reservation", own.Reservation, "ttl", r.TTL, "public_ip", attrs.PublicIP)
		return own, nil
	}
	return lease.Lease{}, fmt.Errorf("lease a subnet of %s: too much contention, gave up after %d tries", cfg.Network, maxClaims)
}

// claim writes the host's key for ch in one transaction that holds only while the store is
// as Choose saw it: a new key only while nobody has created it, the host's own key only
// while nobody has changed it. ok is false when the store moved on (another host won the
// subnet, or the etcd lease is gone) and the subnet is to be chosen again.
func (r *Registry) claim(ctx context.Context, ch lease.Choice, attrs lease.Attrs, val []byte) (own lease.Lease, ok bool, err error) {
	key := lease.Key(r.Prefix, ch.Subnet)
	cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	reservation := false
	if prev := ch.Existing; prev != nil {
		cmp = clientv3.Compare(clientv3.ModRevision(key), "=", prev.ModRevision)
		reservation = prev.Reservation
	}
	put := clientv3.OpPut(key, string(val))
	var id clientv3.LeaseID
	if !reservation {
		// The etcd lease is granted only now: a host on a reservation needs none.
		if id, err = r.grant(ctx); err != nil {
			return lease.Lease{}, false, err
		}
		put = clientv3.OpPut(key, string(val), clientv3.WithLease(id))
	}
	resp, err := r.Client.Txn(ctx).If(cmp).Then(put).Commit()
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			r.dropLease(id)
			return lease.Lease{}, false, nil
		}
		return lease.Lease{}, false, fmt.Errorf("lease %s: %w", key, err)
	}
	if !resp.Succeeded {
		r.Log.Info("subnet taken by another host meanwhile, trying again", "subnet", ch.Subnet)
		return lease.Lease{}, false, nil
	}
	own = lease.Lease{Subnet: ch.Subnet, Attrs: attrs, Reservation: reservation, ModRevision: resp.Header.Revision, EtcdLease: int64(id)}
	own.Predecode()
	return own, true, nil
}

// record makes own the host's lease and, on the first acquire, loads the lease set read
// at rev, from which Watch continues.
func (r *Registry) record(own lease.Lease, leases []lease.Lease, rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.own = own
	if r.rev == 0 {
		r.rev = rev
		r.leases = map[netip.Prefix]lease.Lease{}
		for _, l := range leases {
			r.leases[l.Subnet] = l
		}
	}
	r.leases[own.Subnet] = own
	r.notifyLocked()
}
