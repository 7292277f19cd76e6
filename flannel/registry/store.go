package registry

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/flannel/config"
	"github.com/cairn-os/cairn/flannel/lease"
)

// Config reads and validates the network config.
func (r *Registry) Config(ctx context.Context) (*config.Config, error) {
	r.mu.Lock()
	r.init()
	r.mu.Unlock()
	key := lease.ConfigKey(r.Prefix)
	resp, err := r.Client.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("%s: %w", key, ErrNoConfig)
	}
	c, err := config.Parse(resp.Kvs[0].Value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return c, nil
}

// EnsureConfig writes doc as the network config unless one exists.
func (r *Registry) EnsureConfig(ctx context.Context, doc []byte) (created bool, err error) {
	key := lease.ConfigKey(r.Prefix)
	resp, err := r.Client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(doc))).Commit()
	if err != nil {
		return false, fmt.Errorf("write default %s: %w", key, err)
	}
	return resp.Succeeded, nil
}

// List reads all leases. Undecodable keys and values are skipped with a warning.
func (r *Registry) List(ctx context.Context) ([]lease.Lease, int64, error) {
	leases, _, rev, err := r.list(ctx)
	return leases, rev, err
}

// list also returns the subnets whose key exists but whose value does not decode: they
// are nobody's usable lease, but not free either.
func (r *Registry) list(ctx context.Context) ([]lease.Lease, []netip.Prefix, int64, error) {
	resp, err := r.Client.Get(ctx, lease.SubnetsPrefix(r.Prefix), clientv3.WithPrefix())
	if err != nil {
		return nil, nil, 0, fmt.Errorf("list %s: %w", lease.SubnetsPrefix(r.Prefix), err)
	}
	out := make([]lease.Lease, 0, len(resp.Kvs))
	var occupied []netip.Prefix
	for _, kv := range resp.Kvs {
		if l, ok := r.decode(kv); ok {
			out = append(out, l)
		} else if sn, err := lease.ParseKey(r.Prefix, string(kv.Key)); err == nil {
			occupied = append(occupied, sn)
		}
	}
	return out, occupied, resp.Header.Revision, nil
}

func (r *Registry) decode(kv *mvccpb.KeyValue) (lease.Lease, bool) {
	sn, err := lease.ParseKey(r.Prefix, string(kv.Key))
	if err != nil {
		r.Log.Warn("ignoring lease key written by another writer", "key", string(kv.Key), "err", err)
		return lease.Lease{}, false
	}
	a, err := lease.DecodeAttrs(kv.Value)
	if err != nil {
		r.Log.Warn("ignoring lease value written by another writer", "key", string(kv.Key), "err", err)
		return lease.Lease{}, false
	}
	l := lease.Lease{Subnet: sn, Attrs: a, Reservation: kv.Lease == 0, ModRevision: kv.ModRevision, EtcdLease: kv.Lease}
	l.Predecode()
	return l, true
}

// grant returns the process's etcd lease, granting it on first use.
func (r *Registry) grant(ctx context.Context) (clientv3.LeaseID, error) {
	r.mu.Lock()
	id := r.leaseID
	r.mu.Unlock()
	if id != 0 {
		return id, nil
	}
	resp, err := r.Client.Grant(ctx, int64(r.TTL/time.Second))
	if err != nil {
		return 0, fmt.Errorf("grant etcd lease of %s: %w", r.TTL, err)
	}
	r.mu.Lock()
	r.leaseID = resp.ID
	r.mu.Unlock()
	return resp.ID, nil
}

// dropLease forgets the etcd lease id once etcd no longer has it, so the next grant makes a new one.
func (r *Registry) dropLease(id clientv3.LeaseID) {
	r.mu.Lock()
	if r.leaseID == id {
		r.leaseID = 0
	}
	r.mu.Unlock()
}

// revokeIfEmpty revokes an etcd lease a previous run of this host left behind, once
// no key hangs off it any more.
func (r *Registry) revokeIfEmpty(ctx context.Context, id clientv3.LeaseID) {
	ttl, err := r.Client.TimeToLive(ctx, id, clientv3.WithAttachedKeys())
	if err != nil || ttl.TTL <= 0 || len(ttl.Keys) != 0 {
		return
	}
	if _, err := r.Client.Revoke(ctx, id); err == nil {
		r.Log.Info("revoked the etcd lease of a previous run", "lease", fmt.Sprintf("%x", id))
	}
}
