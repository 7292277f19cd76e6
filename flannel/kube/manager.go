package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/cairn-os/cairn/flannel/config"
	"github.com/cairn-os/cairn/flannel/lease"
)

// resync replays every Node to the handlers now and then, as stock flannel's informer does.
const resync = 5 * time.Minute

// Manager is one host's view of the cluster's Nodes.
type Manager struct {
	// Client is a core/v1 client: flanneld needs no other API group, and linking only this
	// one keeps the binary small.
	Client      corev1client.CoreV1Interface
	NodeName    string
	Annotations Annotations
	// NetConfPath is the network config file (stock flannel's -net-config-path); the
	// Kubernetes mode keeps no config in the API.
	NetConfPath string
	// SetNodeNetworkUnavailable makes Follow set the Node's NetworkUnavailable condition
	// to False (reason FlannelIsUp) once the host is on the overlay.
	SetNodeNetworkUnavailable bool
	Log                       *slog.Logger

	store    cache.Store
	informer cache.Controller

	mu      sync.Mutex
	attrs   lease.Attrs // what this host publishes; set by Acquire
	own     lease.Lease
	leases  map[string]lease.Lease // by Node name
	changed chan struct{}          // closed and replaced on every change of the lease set
	ownKick chan struct{}          // this host's Node changed
}

// Start starts following the Nodes and waits until the first list is in.
func (m *Manager) Start(ctx context.Context) error {
	m.leases = map[string]lease.Lease{}
	m.changed = make(chan struct{})
	m.ownKick = make(chan struct{}, 1)
	nodes := m.Client.Nodes()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return nodes.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return nodes.Watch(ctx, o)
		},
	}
	m.store, m.informer = cache.NewInformerWithOptions(cache.InformerOptions{
		// A client that cannot stream the initial list as watch events (client-go's fake)
		// says so; the reflector then lists and watches.
		ListerWatcher: cache.ToListWatcherWithWatchListSemantics(lw, m.Client),
		ObjectType:    &corev1.Node{},
		ResyncPeriod:  resync,
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { m.update(obj) },
			UpdateFunc: func(_, obj any) { m.update(obj) },
			DeleteFunc: m.remove,
		},
	})
	go m.informer.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), m.informer.HasSynced) {
		return fmt.Errorf("list nodes: %w", context.Cause(ctx))
	}
	return nil
}

func (m *Manager) update(obj any) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	if n.Name == m.NodeName {
		select {
		case m.ownKick <- struct{}{}:
		default:
		}
	}
	l, err := m.Annotations.Lease(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	old, had := m.leases[n.Name]
	switch {
	case err != nil:
		if !had {
			if !errors.Is(err, ErrNotManaged) {
				m.Log.Warn("ignoring node", "node", n.Name, "err", err)
			}
			return
		}
		m.Log.Warn("node no longer has a usable lease", "node", n.Name, "err", err)
		delete(m.leases, n.Name)
	case had && same(old, l):
		return
	default:
		m.Log.Debug("node lease", "node", n.Name, "subnet", l.Subnet, "public_ip", l.Attrs.PublicIP)
		m.leases[n.Name] = l
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *Manager) remove(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, had := m.leases[n.Name]; !had {
		return
	}
	m.Log.Info("node deleted", "node", n.Name)
	delete(m.leases, n.Name)
	close(m.changed)
	m.changed = make(chan struct{})
}

// node returns this host's Node from the informer's cache.
func (m *Manager) node() (*corev1.Node, error) {
	obj, ok, err := m.store.GetByKey(m.NodeName)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", m.NodeName, err)
	}
	if !ok {
		return nil, fmt.Errorf("node %s does not exist (yet)", m.NodeName)
	}
	return obj.(*corev1.Node), nil
}

// NodePublicIP returns the node-public-ip annotation of this host's Node, if set.
func (m *Manager) NodePublicIP() (netip.Addr, error) {
	n, err := m.node()
	if err != nil {
		return netip.Addr{}, err
	}
	return m.Annotations.OperatorPublicIP(n)
}

// Config reads the network config file.
func (m *Manager) Config(ctx context.Context) (*config.Config, error) {
	b, err := os.ReadFile(m.NetConfPath)
	if err != nil {
		return nil, fmt.Errorf("%w: network config %s: %w", config.ErrInvalid, m.NetConfPath, err)
	}
	cfg, err := config.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("network config %s: %w", m.NetConfPath, err)
	}
	return cfg, nil
}

// Acquire publishes attrs on this host's Node and returns its lease: the Node's pod CIDR.
// A Node that does not exist yet or has no pod CIDR yet is an error the caller retries; a
// pod CIDR outside the configured network is a config error (config.ErrInvalid).
func (m *Manager) Acquire(ctx context.Context, cfg *config.Config, attrs lease.Attrs, _ netip.Prefix) (lease.Lease, error) {
	n, err := m.node()
	if err != nil {
		return lease.Lease{}, err
	}
	sn, err := PodCIDR(n.Spec)
	if err != nil {
		return lease.Lease{}, fmt.Errorf("node %s: %w", m.NodeName, err)
	}
	if sn.Bits() < cfg.Network.Bits() || !cfg.Network.Contains(sn.Addr()) {
		return lease.Lease{}, fmt.Errorf("%w: node %s has pod CIDR %s, outside Network %s of %s", config.ErrInvalid, m.NodeName, sn, cfg.Network, m.NetConfPath)
	}
	if err := m.publish(ctx, n, attrs); err != nil {
		return lease.Lease{}, err
	}
	own := lease.Lease{Subnet: sn, Attrs: attrs}
	own.Predecode()
	m.mu.Lock()
	m.attrs, m.own = attrs, own
	m.mu.Unlock()
	return own, nil
}

// publish writes this host's annotations when the Node's differ. It patches the status
// subresource, as stock flannel does: kube-flannel's RBAC grants patch on nodes/status only.
func (m *Manager) publish(ctx context.Context, n *corev1.Node, attrs lease.Attrs) error {
	want, changed := m.Annotations.Publish(n.Annotations, attrs)
	if !changed {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": want}})
	if err != nil {
		return fmt.Errorf("node %s: annotations patch: %w", m.NodeName, err)
	}
	if _, err := m.Client.Nodes().Patch(ctx, m.NodeName, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("node %s: annotate: %w", m.NodeName, err)
	}
	m.Log.Info("annotated node", "node", m.NodeName, "public_ip", want[m.Annotations.PublicIP], "backend_data", want[m.Annotations.BackendData])
	return nil
}

// Own returns this host's lease.
func (m *Manager) Own() lease.Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.own
}

// Leases returns the leases of all Nodes flannel runs on (this host's included), sorted by
// subnet, and a channel closed at the next change.
func (m *Manager) Leases() ([]lease.Lease, <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]lease.Lease, 0, len(m.leases))
	for _, l := range m.leases {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b lease.Lease) int { return a.Subnet.Addr().Compare(b.Subnet.Addr()) })
	return out, m.changed
}

// Follow keeps this host's Node right until ctx ends: it marks the Node's network
// available, puts back annotations someone removed or changed, and reports a changed pod
// CIDR to onChange. The other Nodes are followed by the informer Start started.
func (m *Manager) Follow(ctx context.Context, cfg *config.Config, onChange func(lease.Lease)) {
	if m.SetNodeNetworkUnavailable {
		m.retry(ctx, "set NetworkUnavailable=False", m.networkAvailable)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.ownKick:
		}
		m.retry(ctx, "keep node annotations", func(ctx context.Context) error { return m.keep(ctx, cfg, onChange) })
	}
}

func (m *Manager) keep(ctx context.Context, cfg *config.Config, onChange func(lease.Lease)) error {
	n, err := m.node()
	if err != nil {
		return err
	}
	m.mu.Lock()
	attrs, own := m.attrs, m.own
	m.mu.Unlock()
	if err := m.publish(ctx, n, attrs); err != nil {
		return err
	}
	sn, err := PodCIDR(n.Spec)
	if err != nil || sn == own.Subnet || !cfg.Network.Contains(sn.Addr()) || sn.Bits() < cfg.Network.Bits() {
		return nil //nolint:nilerr // a Node without a usable pod CIDR keeps the lease the host has
	}
	own.Subnet = sn
	m.mu.Lock()
	m.own = own
	m.mu.Unlock()
	onChange(own)
	return nil
}

// retry runs f until it succeeds or ctx ends, logging failures.
func (m *Manager) retry(ctx context.Context, what string, f func(context.Context) error) {
	b := time.Second
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := f(cctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		m.Log.Warn(what+"; retrying", "node", m.NodeName, "err", err, "retry_in", b)
		select {
		case <-ctx.Done():
			return
		case <-time.After(b):
		}
		b = min(2*b, 30*time.Second)
	}
}

// networkAvailable sets the Node's NetworkUnavailable condition to False, as stock flannel does.
func (m *Manager) networkAvailable(ctx context.Context) error {
	now := metav1.Now()
	cond := []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse,
		Reason: "FlannelIsUp", Message: "Flannel is running on this node", LastTransitionTime: now, LastHeartbeatTime: now}}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": cond}})
	if err != nil {
		return fmt.Errorf("node %s: condition patch: %w", m.NodeName, err)
	}
	if _, err := m.Client.Nodes().PatchStatus(ctx, m.NodeName, patch); err != nil {
		return fmt.Errorf("node %s: set NetworkUnavailable=False: %w", m.NodeName, err)
	}
	return nil
}
