package kube

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/cairn-os/cairn/flannel/config"
	"github.com/cairn-os/cairn/flannel/lease"
)

// fakeCore is the fake clientset's core/v1 client, saying what the fake clientset says:
// it cannot stream the initial list as watch events.
type fakeCore struct{ corev1client.CoreV1Interface }

func (fakeCore) IsWatchListSemanticsUnSupported() bool { return true }

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func subnets(m *Manager) map[string]string {
	ls, _ := m.Leases()
	out := map[string]string{}
	for _, l := range ls {
		out[l.Subnet.String()] = l.Attrs.PublicIP.String()
	}
	return out
}

// TestManager runs the manager against client-go's fake API: the own Node's pod CIDR
// becomes the lease and gets the annotations, peers come and go with their Nodes, and
// annotations someone removes are put back.
func TestManager(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := NewAnnotations(DefaultAnnotationPrefix)
	cs := fake.NewClientset(
		node("h1", "10.5.1.0/24", map[string]string{"other": "kept"}),
		node("h2", "10.5.2.0/24", stock("192.168.100.12")),
		node("unmanaged", "10.5.3.0/24", nil),
	)
	dir := t.TempDir()
	netconf := filepath.Join(dir, "net-conf.json")
	if err := os.WriteFile(netconf, []byte(`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &Manager{Client: fakeCore{cs.CoreV1()}, NodeName: "h1", Annotations: a, NetConfPath: netconf, SetNodeNetworkUnavailable: true,
		Log: slog.New(slog.NewTextHandler(t.Output(), nil))}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := m.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	attrs := lease.Attrs{PublicIP: netip.MustParseAddr("192.168.100.11"), BackendType: "vxlan", BackendData: []byte(vtep)}
	own, err := m.Acquire(ctx, cfg, attrs, netip.Prefix{})
	if err != nil || own.Subnet != netip.MustParsePrefix("10.5.1.0/24") {
		t.Fatalf("Acquire = %+v, %v", own, err)
	}
	nodes := cs.CoreV1().Nodes()
	get := func(name string) *corev1.Node {
		n, err := nodes.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := get("h1")
	if want, changed := a.Publish(n.Annotations, attrs); changed || n.Annotations["other"] != "kept" {
		t.Errorf("h1's annotations after Acquire: %v (want %v)", n.Annotations, want)
	}
	waitFor(t, "both managed nodes as leases", func() bool {
		s := subnets(m)
		return len(s) == 2 && s["10.5.1.0/24"] == "192.168.100.11" && s["10.5.2.0/24"] == "192.168.100.12"
	})

	var changedTo []lease.Lease
	done := make(chan struct{})
	go func() {
		m.Follow(ctx, cfg, func(l lease.Lease) { changedTo = append(changedTo, l) })
		close(done)
	}()
	waitFor(t, "NetworkUnavailable=False", func() bool {
		for _, c := range get("h1").Status.Conditions {
			if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionFalse && c.Reason == "FlannelIsUp" {
				return true
			}
		}
		return false
	})

	// A new peer, a changed peer, a deleted peer.
	if _, err := nodes.Create(ctx, node("h4", "10.5.4.0/24", stock("192.168.100.14")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "h4's lease", func() bool { return subnets(m)["10.5.4.0/24"] == "192.168.100.14" })
	_, ch := m.Leases()
	n2 := get("h2")
	n2.Annotations = with(n2.Annotations, a.PublicIP, "192.168.100.22")
	if _, err := nodes.Update(ctx, n2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	<-ch
	waitFor(t, "h2's new public IP", func() bool { return subnets(m)["10.5.2.0/24"] == "192.168.100.22" })
	if err := nodes.Delete(ctx, "h4", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "h4's lease gone", func() bool { _, ok := subnets(m)["10.5.4.0/24"]; return !ok })

	// A change that is no lease change (a heartbeat, a label) wakes nobody.
	_, ch = m.Leases()
	n2 = get("h2")
	n2.Labels = map[string]string{"x": "y"}
	if _, err := nodes.Update(ctx, n2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Error("a label change was reported as a lease change")
	case <-time.After(200 * time.Millisecond):
	}

	// Someone strips this host's annotations: they come back.
	n = get("h1")
	n.Annotations = with(n.Annotations, a.BackendData, "-", a.SubnetKubeManaged, "-")
	if _, err := nodes.Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "h1's annotations back", func() bool {
		_, changed := a.Publish(get("h1").Annotations, attrs)
		return !changed
	})
	cancel()
	<-done
	if len(changedTo) != 0 {
		t.Errorf("own subnet reported changed: %+v", changedTo)
	}
}

func TestAcquireErrors(t *testing.T) {
	ctx := context.Background()
	a, _ := NewAnnotations(DefaultAnnotationPrefix)
	cs := fake.NewClientset(node("nocidr", "", nil), node("outside", "10.6.1.0/24", nil), node("wide", "10.0.0.0/8", nil))
	m := &Manager{Client: fakeCore{cs.CoreV1()}, Annotations: a, Log: slog.New(slog.DiscardHandler)}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(`{"Network":"10.5.0.0/16"}`))
	if err != nil {
		t.Fatal(err)
	}
	attrs := lease.Attrs{PublicIP: netip.MustParseAddr("192.168.100.11"), BackendType: "vxlan", BackendData: []byte(vtep)}
	for _, tc := range []struct {
		node    string
		invalid bool // a config error, not worth retrying
	}{{"missing", false}, {"nocidr", false}, {"outside", true}, {"wide", true}} {
		m.NodeName = tc.node
		_, err := m.Acquire(ctx, cfg, attrs, netip.Prefix{})
		if err == nil || errors.Is(err, config.ErrInvalid) != tc.invalid {
			t.Errorf("Acquire on %s: %v (config error wanted: %v)", tc.node, err, tc.invalid)
		}
	}
}
