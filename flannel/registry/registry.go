// Package registry keeps this host's subnet lease in etcd v3 and follows everyone else's.
// The layout is stock flannel's (see flannel/lease); the behaviour is meant to be sturdier:
//
//   - A lease is created with a compare-and-create transaction, so two hosts racing for one
//     subnet cannot both win.
//   - All of a process's keys hang off ONE etcd lease (TTL 24 h by default), renewed with
//     KeepAliveOnce before the renew margin; a lease left over by a previous run of this
//     host is revoked once nothing is attached to it, so nothing leaks.
//   - Keys without an etcd lease are reservations: never handed to another host, and used
//     by the host whose PublicIP they carry.
//   - After a restart the host gets its previous subnet back: the store's lease with its
//     PublicIP first, else the subnet from subnet.env when it is still free.
//   - When the host's key disappears (TTL expired while etcd was away, or someone deleted
//     it), the host acquires again instead of shutting down (flannel#1070, #958).
//   - The watch resumes from the last revision seen; after a compaction it relists.
//   - A value another writer got wrong is skipped with a warning, never fatal.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/flannel/config"
	"github.com/cairn-os/cairn/flannel/lease"
)

// Defaults as in stock flannel.
const (
	DefaultPrefix      = "/coreos.com/network"
	DefaultTTL         = 24 * time.Hour
	DefaultRenewMargin = time.Hour
)

// ErrNoConfig means <prefix>/config does not exist.
var ErrNoConfig = errors.New("no network config in etcd")

// Registry is one host's view of the lease store.
type Registry struct {
	Client      *clientv3.Client
	Prefix      string
	TTL         time.Duration
	RenewMargin time.Duration
	Log         *slog.Logger
	Rand        *rand.Rand // nil: math/rand/v2's global source
	// Now and After are the clock; nil means the real one.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time

	mu      sync.Mutex
	leaseID clientv3.LeaseID
	own     lease.Lease
	leases  map[netip.Prefix]lease.Lease
	rev     int64
	changed chan struct{} // closed and replaced on every change of the lease set
	lost    chan struct{} // signalled when our key disappears
}

func (r *Registry) init() {
	if r.changed == nil {
		r.changed = make(chan struct{})
		r.lost = make(chan struct{}, 1)
		r.leases = map[netip.Prefix]lease.Lease{}
	}
	if r.Prefix == "" {
		r.Prefix = DefaultPrefix
	}
	if r.TTL == 0 {
		r.TTL = DefaultTTL
	}
	if r.RenewMargin == 0 {
		r.RenewMargin = DefaultRenewMargin
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.After == nil {
		r.After = time.After
	}
}

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

// Own returns this host's current lease.
func (r *Registry) Own() lease.Lease {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.own
}

// Leases returns the known leases, sorted by subnet, and a channel closed at the next change.
func (r *Registry) Leases() ([]lease.Lease, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.init()
	out := make([]lease.Lease, 0, len(r.leases))
	for _, l := range r.leases {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b lease.Lease) int { return a.Subnet.Addr().Compare(b.Subnet.Addr()) })
	return out, r.changed
}

func (r *Registry) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

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

// Acquire gets a subnet for attrs: the host's existing lease or reservation (by PublicIP),
// else hint when free, else a random free subnet. It also loads the lease set and returns
// the revision it was read at, from which Watch continues.
func (r *Registry) Acquire(ctx context.Context, cfg *config.Config, attrs lease.Attrs, hint netip.Prefix) (lease.Lease, error) {
	r.mu.Lock()
	r.init()
	r.mu.Unlock()
	val, err := lease.EncodeAttrs(attrs)
	if err != nil {
		return lease.Lease{}, err
	}
	var id clientv3.LeaseID
	for attempt := 0; attempt < 20; attempt++ {
		leases, occupied, rev, err := r.list(ctx)
		if err != nil {
			return lease.Lease{}, err
		}
		taken := map[netip.Prefix]bool{}
		for _, sn := range occupied {
			taken[sn] = true
		}
		var mine []lease.Lease
		for _, l := range leases {
			taken[l.Subnet] = true
			if l.Attrs.PublicIP == attrs.PublicIP && cfg.Contains(l.Subnet) {
				mine = append(mine, l)
			}
		}
		// Prefer our reservation, then the hint, then any lease of ours.
		slices.SortStableFunc(mine, func(a, b lease.Lease) int {
			score := func(l lease.Lease) int {
				switch {
				case l.Reservation:
					return 0
				case l.Subnet == hint:
					return 1
				}
				return 2
			}
			return score(a) - score(b)
		})
		var sn netip.Prefix
		var cmp clientv3.Cmp
		var prevLease int64
		reservation := false
		switch {
		case len(mine) > 0:
			sn, reservation = mine[0].Subnet, mine[0].Reservation
			cmp = clientv3.Compare(clientv3.ModRevision(lease.Key(r.Prefix, sn)), "=", mine[0].ModRevision)
			prevLease = mine[0].EtcdLease
		case hint.IsValid() && cfg.Contains(hint) && !taken[hint]:
			sn = hint
			cmp = clientv3.Compare(clientv3.CreateRevision(lease.Key(r.Prefix, sn)), "=", 0)
		default:
			sn, err = lease.Pick(cfg, taken, r.Rand)
			if err != nil {
				return lease.Lease{}, fmt.Errorf("network %s (%d subnets, %d taken): %w", cfg.Network, cfg.Subnets(), len(taken), err)
			}
			cmp = clientv3.Compare(clientv3.CreateRevision(lease.Key(r.Prefix, sn)), "=", 0)
		}
		key := lease.Key(r.Prefix, sn)
		put := clientv3.OpPut(key, string(val))
		if !reservation {
			// The etcd lease is granted only now: a host on a reservation needs none.
			if id, err = r.grant(ctx); err != nil {
				return lease.Lease{}, err
			}
			put = clientv3.OpPut(key, string(val), clientv3.WithLease(id))
		}
		resp, err := r.Client.Txn(ctx).If(cmp).Then(put).Commit()
		if err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				r.dropLease(id)
				continue
			}
			return lease.Lease{}, fmt.Errorf("lease %s: %w", key, err)
		}
		if !resp.Succeeded {
			r.Log.Info("subnet taken by another host meanwhile, trying again", "subnet", sn)
			continue
		}
		own := lease.Lease{Subnet: sn, Attrs: attrs, Reservation: reservation, ModRevision: resp.Header.Revision}
		own.Predecode()
		if !reservation {
			own.EtcdLease = int64(id)
		}
		if prevLease != 0 && prevLease != int64(id) {
			r.revokeIfEmpty(ctx, clientv3.LeaseID(prevLease))
		}
		r.mu.Lock()
		r.own = own
		if r.rev == 0 {
			r.rev = rev
			r.leases = map[netip.Prefix]lease.Lease{}
			for _, l := range leases {
				r.leases[l.Subnet] = l
			}
		}
		r.leases[sn] = own
		r.notifyLocked()
		r.mu.Unlock()
		r.Log.Info("acquired subnet lease", "subnet", sn, "reservation", reservation, "ttl", r.TTL, "public_ip", attrs.PublicIP)
		return own, nil
	}
	return lease.Lease{}, fmt.Errorf("lease a subnet of %s: too much contention, gave up after 20 tries", cfg.Network)
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

func (r *Registry) dropLease(id clientv3.LeaseID) {
	r.mu.Lock()
	if r.leaseID == id {
		r.leaseID = 0
	}
	r.mu.Unlock()
}

// LeaseID is the etcd lease the host's key is attached to (0 for a reservation or before Acquire).
func (r *Registry) LeaseID() clientv3.LeaseID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaseID
}

// RenewInterval is how often the etcd lease is refreshed: when the renew margin is
// reached, and at least every TTL/3 so that a missed renewal or two is harmless.
// Failed renewals are retried every few seconds at most (retryCap), so that a lease
// survives an etcd outage that ends before the TTL runs out.
func (r *Registry) RenewInterval() time.Duration {
	iv := r.TTL - r.RenewMargin
	if iv <= 0 || iv > r.TTL/3 {
		iv = r.TTL / 3
	}
	return max(iv, 500*time.Millisecond)
}

// Keep keeps the host's lease: it renews the etcd lease, and acquires again (the same
// subnet whenever possible) when the key or the etcd lease is gone. onChange is called
// with the new lease when the subnet changed. It returns when ctx ends.
func (r *Registry) Keep(ctx context.Context, cfg *config.Config, onChange func(lease.Lease)) {
	r.mu.Lock()
	r.init()
	r.mu.Unlock()
	backoff := time.Second
	next := r.RenewInterval()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.After(next):
		case <-r.lost:
			r.Log.Warn("our subnet lease disappeared from etcd; acquiring it again", "subnet", r.Own().Subnet)
			if err := r.reacquire(ctx, cfg, onChange); err != nil {
				r.Log.Error("re-acquire subnet lease", "err", err)
				next = backoff
				backoff = min(backoff*2, r.retryCap())
				r.signalLost()
				continue
			}
			backoff, next = time.Second, r.RenewInterval()
			continue
		}
		err := r.renew(ctx)
		switch {
		case err == nil:
			backoff, next = time.Second, r.RenewInterval()
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			r.Log.Warn("etcd lease expired; acquiring the subnet again", "subnet", r.Own().Subnet)
			r.dropLease(r.LeaseID())
			if err := r.reacquire(ctx, cfg, onChange); err != nil {
				r.Log.Error("re-acquire subnet lease", "err", err, "retry_in", backoff)
				next = backoff
				backoff = min(backoff*2, r.retryCap())
				continue
			}
			backoff, next = time.Second, r.RenewInterval()
		default:
			r.Log.Warn("renew subnet lease; will retry", "err", err, "retry_in", backoff)
			next = backoff
			backoff = min(backoff*2, r.retryCap())
		}
	}
}

func (r *Registry) retryCap() time.Duration {
	return min(5*time.Second, max(r.TTL/6, 500*time.Millisecond))
}

func (r *Registry) renew(ctx context.Context) error {
	own := r.Own()
	if own.Reservation {
		return nil
	}
	id := r.LeaseID()
	if id == 0 {
		return rpctypes.ErrLeaseNotFound
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := r.Client.KeepAliveOnce(cctx, id)
	if err != nil {
		return fmt.Errorf("renew lease of %s: %w", own.Subnet, err)
	}
	r.Log.Debug("renewed subnet lease", "subnet", own.Subnet, "ttl", resp.TTL)
	return nil
}

func (r *Registry) reacquire(ctx context.Context, cfg *config.Config, onChange func(lease.Lease)) error {
	old := r.Own()
	l, err := r.Acquire(ctx, cfg, old.Attrs, old.Subnet)
	if err != nil {
		return err
	}
	if l.Subnet != old.Subnet && onChange != nil {
		onChange(l)
	}
	return nil
}

func (r *Registry) signalLost() {
	select {
	case r.lost <- struct{}{}:
	default:
	}
}

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
