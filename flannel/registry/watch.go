package registry

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/flannel/lease"
)

// Watch follows the lease set from the revision Acquire read it at until ctx ends:
// puts and deletes update the set, a compaction makes it relist, and the deletion of the
// host's own key makes Keep acquire again.
func (r *Registry) Watch(ctx context.Context) {
	r.mu.Lock()
	r.init()
	r.mu.Unlock()
	backoff := time.Second
	for ctx.Err() == nil {
		r.mu.Lock()
		rev := r.rev
		r.mu.Unlock()
		if rev == 0 {
			if err := r.relist(ctx); err != nil {
				r.Log.Warn("list leases; will retry", "err", err)
				r.sleep(ctx, &backoff)
			}
			continue
		}
		wch := r.Client.Watch(clientv3.WithRequireLeader(ctx), lease.SubnetsPrefix(r.Prefix), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		for resp := range wch {
			if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
				r.Log.Warn("watch revision compacted; relisting leases", "rev", rev, "compact_rev", resp.CompactRevision)
				r.mu.Lock()
				r.rev = 0
				r.mu.Unlock()
				break
			}
			if err := resp.Err(); err != nil {
				r.Log.Warn("watch leases; will resume", "err", err, "rev", rev)
				break
			}
			r.apply(resp.Events, resp.Header.Revision)
			backoff = time.Second
		}
		if ctx.Err() == nil {
			r.sleep(ctx, &backoff)
		}
	}
}

func (r *Registry) sleep(ctx context.Context, backoff *time.Duration) {
	select {
	case <-ctx.Done():
	case <-r.After(*backoff):
	}
	*backoff = min(*backoff*2, 10*time.Second)
}

func (r *Registry) relist(ctx context.Context) error {
	leases, rev, err := r.List(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.leases = map[netip.Prefix]lease.Lease{}
	for _, l := range leases {
		r.leases[l.Subnet] = l
	}
	r.rev = rev
	if own := r.own.Subnet; own.IsValid() {
		if l, ok := r.leases[own]; !ok || l.Attrs.PublicIP != r.own.Attrs.PublicIP {
			r.signalLost()
		}
	}
	r.notifyLocked()
	return nil
}

func (r *Registry) apply(evs []*clientv3.Event, rev int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range evs {
		sn, err := lease.ParseKey(r.Prefix, string(ev.Kv.Key))
		if err != nil {
			r.Log.Warn("ignoring lease key written by another writer", "key", string(ev.Kv.Key), "err", err)
			continue
		}
		mine := r.own.Subnet == sn
		switch ev.Type {
		case clientv3.EventTypeDelete:
			delete(r.leases, sn)
			if mine {
				r.signalLost()
			}
		case clientv3.EventTypePut:
			l, ok := r.decode(ev.Kv)
			if !ok {
				// A corrupt value replaces whatever was there: the peer is unusable.
				delete(r.leases, sn)
				continue
			}
			r.leases[sn] = l
			if mine && l.Attrs.PublicIP != r.own.Attrs.PublicIP {
				r.Log.Error("another host wrote our subnet's key", "subnet", sn, "their_public_ip", l.Attrs.PublicIP)
			}
		}
	}
	r.rev = rev
	r.notifyLocked()
}
