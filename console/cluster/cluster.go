// Package cluster reads what the console shows of a fleet beside its updates: who holds
// locksmith's reboot lock and which subnet each host leases from flannel, both from etcd
// (locksmith's and flannel's own key layouts), and the Kubernetes nodes when a kubeconfig
// is given. A Watcher polls them, keeps the last snapshot for the pages and the API, and
// says when it changed; an admin can release a reboot lock a machine never gave back.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/flannel/lease"
	"github.com/cairn-os/cairn/update-engine/locksmith"
)

// DefaultFlannelPrefix is where flannel keeps its network in etcd, as CoreOS's flanneld did.
const DefaultFlannelPrefix = "/coreos.com/network"

// ErrNotConfigured: the console was started without etcd (or without a kubeconfig).
var ErrNotConfigured = errors.New("not configured")

// Lock is one of locksmith's reboot semaphores: the default one, or a group's.
type Lock struct {
	Key   string `json:"key"`
	Group string `json:"group,omitempty"` // "" for the default semaphore
	// Max machines may hold it at once; Free is how many more may take it now.
	Max     int      `json:"max"`
	Free    int      `json:"free"`
	Holders []string `json:"holders"` // machine ids
	Error   string   `json:"error,omitempty"`
}

// Lease is one host's flannel subnet.
type Lease struct {
	Subnet   string `json:"subnet"`
	PublicIP string `json:"public_ip"`
	Backend  string `json:"backend"`
	VNI      int    `json:"vni,omitempty"`
	VtepMAC  string `json:"vtep_mac,omitempty"`
	// Reservation: a key without an etcd lease, which never expires.
	Reservation bool   `json:"reservation"`
	Error       string `json:"error,omitempty"`
}

// Snapshot is what the last poll found.
type Snapshot struct {
	// Etcd: the console has etcd endpoints; without them the rest is empty.
	Etcd      bool      `json:"etcd"`
	Endpoints []string  `json:"endpoints,omitempty"`
	At        time.Time `json:"at"`
	// Error is why the last poll of etcd failed (the rest is then the poll's before).
	Error string `json:"error,omitempty"`
	// Network is flannel's overlay (its config's "Network"), "" when unset.
	Network string  `json:"network,omitempty"`
	Locks   []Lock  `json:"reboot_locks"`
	Leases  []Lease `json:"leases"`
	// Kubernetes is nil without a kubeconfig.
	Kubernetes *Nodes `json:"kubernetes,omitempty"`
}

// Holder is a machine holding a reboot lock, and which.
type Holder struct {
	Lock *Lock
	ID   string
}

// Holders lists every machine that holds a reboot lock.
func (s *Snapshot) Holders() []Holder {
	var out []Holder
	for i := range s.Locks {
		for _, h := range s.Locks[i].Holders {
			out = append(out, Holder{Lock: &s.Locks[i], ID: h})
		}
	}
	return out
}

// LeaseOf is the lease whose public address is ip (nil if none).
func (s *Snapshot) LeaseOf(ip string) *Lease {
	for i := range s.Leases {
		if ip != "" && s.Leases[i].PublicIP == ip {
			return &s.Leases[i]
		}
	}
	return nil
}

// HoldsLock reports whether the machine holds a reboot lock, and which one.
func (s *Snapshot) HoldsLock(machine string) *Lock {
	for i := range s.Locks {
		if slices.Contains(s.Locks[i].Holders, machine) {
			return &s.Locks[i]
		}
	}
	return nil
}

// KV is a key and its value as etcd returns them; Lease is its etcd lease (0 for none).
type KV struct {
	Key   string
	Value []byte
	Lease int64
}

// ParseLocks reads locksmith's semaphores among kvs (keys under locksmith.KeyPrefix ending
// in /semaphore), the default one first, then groups by name. A value that does not parse
// is listed with its error, so that a broken lock shows rather than vanishes.
func ParseLocks(kvs []KV) []Lock {
	var out []Lock
	for _, kv := range kvs {
		if !strings.HasPrefix(kv.Key, locksmith.KeyPrefix+"/") || !strings.HasSuffix(kv.Key, "/semaphore") {
			continue
		}
		l := Lock{Key: kv.Key, Holders: []string{}}
		if kv.Key != locksmith.SemaphoreOf {
			g, ok := strings.CutPrefix(strings.TrimSuffix(kv.Key, "/semaphore"), locksmith.KeyPrefix+"/groups/")
			if !ok || g == "" || strings.Contains(g, "/") {
				continue
			}
			l.Group = g
		}
		s, err := locksmith.ParseSemaphore(kv.Value)
		if err != nil {
			l.Error = err.Error()
		} else {
			l.Max, l.Free, l.Holders = s.Max, s.Semaphore, s.Holders
		}
		out = append(out, l)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if (out[i].Group == "") != (out[j].Group == "") {
			return out[i].Group == ""
		}
		return out[i].Group < out[j].Group
	})
	return out
}

// ParseLeases reads flannel's leases among kvs (keys under prefix/subnets/), by subnet. A
// lease that does not parse is listed with its error, after the others.
func ParseLeases(prefix string, kvs []KV) []Lease {
	type parsed struct {
		sn netip.Prefix
		l  Lease
	}
	var ps []parsed
	for _, kv := range kvs {
		if !strings.HasPrefix(kv.Key, lease.SubnetsPrefix(prefix)) {
			continue
		}
		sn, err := lease.ParseKey(prefix, kv.Key)
		if err != nil {
			ps = append(ps, parsed{l: Lease{Subnet: strings.TrimPrefix(kv.Key, lease.SubnetsPrefix(prefix)), Error: err.Error()}})
			continue
		}
		l := Lease{Subnet: sn.String(), Reservation: kv.Lease == 0}
		a, err := lease.DecodeAttrs(kv.Value)
		if err != nil {
			l.Error = err.Error()
		} else {
			l.PublicIP, l.Backend = a.PublicIP.String(), a.BackendType
			if a.BackendType == "vxlan" {
				if d, err := lease.DecodeVXLAN(a.BackendData); err == nil {
					l.VNI, l.VtepMAC = d.VNI, d.VtepMAC.String()
				}
			}
		}
		ps = append(ps, parsed{sn, l})
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].sn.IsValid() != ps[j].sn.IsValid() {
			return ps[i].sn.IsValid() // keys that do not parse last
		}
		if c := ps[i].sn.Addr().Compare(ps[j].sn.Addr()); c != 0 {
			return c < 0
		}
		return ps[i].l.Subnet < ps[j].l.Subnet
	})
	out := make([]Lease, len(ps))
	for i, p := range ps {
		out[i] = p.l
	}
	return out
}

// Watcher polls etcd (and Kubernetes) and keeps the last snapshot.
type Watcher struct {
	// Etcd is the client of the fleet's etcd; nil: not configured.
	Etcd      *clientv3.Client
	Endpoints []string
	// FlannelPrefix is flannel's etcd prefix (DefaultFlannelPrefix when empty).
	FlannelPrefix string
	// Kube reads the Kubernetes nodes; nil: not configured. Once polling has started,
	// SetKube changes it.
	Kube *Kube
	// Interval between polls (5 s when 0).
	Interval time.Duration
	// Changed, when set, is called after a poll that found something different.
	Changed func()
	Log     *slog.Logger
	Now     func() time.Time

	mu   sync.Mutex
	snap Snapshot
	done bool // a poll finished
}

func (w *Watcher) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Watcher) prefix() string {
	if w.FlannelPrefix == "" {
		return DefaultFlannelPrefix
	}
	return w.FlannelPrefix
}

// Snapshot is the last poll's result (an empty one, saying what is configured, before the
// first).
func (w *Watcher) Snapshot() Snapshot {
	if w == nil {
		return Snapshot{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		s := Snapshot{Etcd: w.Etcd != nil, Endpoints: w.Endpoints}
		if w.Kube != nil {
			s.Kubernetes = &Nodes{Server: w.Kube.Server}
		}
		return s
	}
	return w.snap
}

// SetKube has the watcher read the Kubernetes nodes through k from its next poll on (nil:
// no longer), for a cluster that comes up after the console does.
func (w *Watcher) SetKube(k *Kube) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.Kube = k
}

// Poll reads etcd and Kubernetes now, keeps the result and returns it.
func (w *Watcher) Poll(ctx context.Context) Snapshot {
	s := Snapshot{Etcd: w.Etcd != nil, Endpoints: w.Endpoints, At: w.now().UTC(), Locks: []Lock{}, Leases: []Lease{}}
	w.mu.Lock()
	prev, hadPrev, kube := w.snap, w.done, w.Kube
	w.mu.Unlock()
	if w.Etcd != nil {
		if err := w.readEtcd(ctx, &s); err != nil {
			s.Error = err.Error()
			if hadPrev {
				s.Network, s.Locks, s.Leases = prev.Network, prev.Locks, prev.Leases
			}
		}
	}
	if kube != nil {
		n := kube.Nodes(ctx)
		s.Kubernetes = &n
	}
	w.mu.Lock()
	changed := !hadPrev || !sameSnapshot(prev, s)
	w.snap, w.done = s, true
	w.mu.Unlock()
	if changed && w.Changed != nil {
		w.Changed()
	}
	return s
}

// sameSnapshot compares two snapshots but for their times.
func sameSnapshot(a, b Snapshot) bool {
	a.At, b.At = time.Time{}, time.Time{}
	if a.Kubernetes != nil && b.Kubernetes != nil {
		ka, kb := *a.Kubernetes, *b.Kubernetes
		ka.At, kb.At = time.Time{}, time.Time{}
		a.Kubernetes, b.Kubernetes = &ka, &kb
	}
	return reflect.DeepEqual(a, b)
}

func (w *Watcher) readEtcd(ctx context.Context, s *Snapshot) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	locks, err := w.Etcd.Get(ctx, locksmith.KeyPrefix+"/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("etcd %s: reboot locks: %w", strings.Join(w.Endpoints, ","), err)
	}
	s.Locks = ParseLocks(kvs(locks))
	leases, err := w.Etcd.Get(ctx, lease.SubnetsPrefix(w.prefix()), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("etcd %s: flannel leases: %w", strings.Join(w.Endpoints, ","), err)
	}
	s.Leases = ParseLeases(w.prefix(), kvs(leases))
	cfg, err := w.Etcd.Get(ctx, lease.ConfigKey(w.prefix()))
	if err != nil {
		return fmt.Errorf("etcd %s: flannel config: %w", strings.Join(w.Endpoints, ","), err)
	}
	if len(cfg.Kvs) > 0 {
		var c struct{ Network string }
		if json.Unmarshal(cfg.Kvs[0].Value, &c) == nil {
			s.Network = c.Network
		}
	}
	return nil
}

func kvs(r *clientv3.GetResponse) []KV {
	out := make([]KV, 0, len(r.Kvs))
	for _, kv := range r.Kvs {
		out = append(out, KV{Key: string(kv.Key), Value: kv.Value, Lease: kv.Lease})
	}
	return out
}

// Run polls every Interval until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	iv := w.Interval
	if iv <= 0 {
		iv = 5 * time.Second
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		w.Poll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ErrNotHolder: the machine does not hold the lock named.
var ErrNotHolder = errors.New("does not hold the reboot lock")

// Unlock releases holder's hold on the reboot lock at key (the default semaphore when
// empty): an operator's way out for a machine that took the lock and never came back. The
// snapshot is read again after.
func (w *Watcher) Unlock(ctx context.Context, key, holder string) error {
	if w.Etcd == nil {
		return fmt.Errorf("reboot lock: etcd %w (cairn-console serve -etcd-endpoints)", ErrNotConfigured)
	}
	if key == "" {
		key = locksmith.SemaphoreOf
	}
	if len(ParseLocks([]KV{{Key: key, Value: []byte(`{"semaphore":1,"max":1,"holders":[]}`)}})) == 0 {
		return fmt.Errorf("reboot lock %q: %w: not one of locksmith's semaphores", key, ErrNotHolder)
	}
	l := &locksmith.EtcdLock{Client: w.Etcd, Key: key}
	if err := l.UnlockHolder(ctx, holder); err != nil {
		if errors.Is(err, locksmith.ErrNotHeld) {
			return fmt.Errorf("reboot lock %s: %s %w", key, holder, ErrNotHolder)
		}
		return err
	}
	w.Poll(ctx)
	return nil
}
