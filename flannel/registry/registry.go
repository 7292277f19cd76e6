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
//
// The files follow the concerns: store.go reads and writes etcd (config, lease list,
// the etcd lease), acquire.go claims the subnet lease.Choose picked, keepalive.go renews
// it and takes it back when it is lost, watch.go follows the other hosts' leases.
package registry

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

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

// Own returns this host's current lease.
func (r *Registry) Own() lease.Lease {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.own
}

// LeaseID is the etcd lease the host's key is attached to (0 for a reservation or before Acquire).
func (r *Registry) LeaseID() clientv3.LeaseID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.leaseID
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
