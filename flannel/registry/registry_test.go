package registry

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-os/cairn/flannel/config"
	"github.com/cairn-os/cairn/flannel/lease"
	"github.com/cairn-os/cairn/flannel/vxlan"
	"github.com/cairn-os/cairn/internal/testenv"
)

// etcdClient connects to an etcd of the test's own.
func etcdClient(t *testing.T) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{testenv.Etcd(t)}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func logger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func attrs(pub string) lease.Attrs {
	ip := netip.MustParseAddr(pub)
	bd, _ := lease.EncodeVXLAN(lease.VXLANData{VNI: 1, VtepMAC: vxlan.DerivedMAC(ip, 1)})
	return lease.Attrs{PublicIP: ip, BackendType: "vxlan", BackendData: bd}
}

func mustConfig(t *testing.T, s string) *config.Config {
	c, err := config.Parse([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestAcquireReuseReserveExhaust(t *testing.T) {
	c := etcdClient(t)
	ctx := t.Context()
	cfg := mustConfig(t, `{"Network":"10.9.0.0/28"}`) // three /30 subnets
	newReg := func() *Registry { return &Registry{Client: c, Log: logger(t), TTL: time.Minute} }

	// A reservation for host .3 and a corrupt value from another writer.
	res := netip.MustParsePrefix("10.9.0.12/30")
	val, _ := lease.EncodeAttrs(attrs("192.0.2.3"))
	if _, err := c.Put(ctx, lease.Key(DefaultPrefix, res), string(val)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, DefaultPrefix+"/subnets/garbage", "{"); err != nil {
		t.Fatal(err)
	}

	a := newReg()
	la, err := a.Acquire(ctx, cfg, attrs("192.0.2.1"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	if la.Subnet == res || !cfg.Contains(la.Subnet) || la.Reservation {
		t.Fatalf("host 1 got %+v", la)
	}
	b := newReg()
	lb, err := b.Acquire(ctx, cfg, attrs("192.0.2.3"), netip.Prefix{})
	if err != nil || lb.Subnet != res || !lb.Reservation {
		t.Fatalf("host 3 got %+v, %v; want its reservation %s", lb, err, res)
	}
	// The reservation stays a reservation (no lease attached).
	if gr, _ := c.Get(ctx, lease.Key(DefaultPrefix, res)); gr.Kvs[0].Lease != 0 {
		t.Fatal("reservation got a TTL")
	}

	// Host 1 restarts: same subnet, and the old etcd lease is revoked, not leaked.
	oldID := a.LeaseID()
	a2 := newReg()
	la2, err := a2.Acquire(ctx, cfg, attrs("192.0.2.1"), netip.Prefix{})
	if err != nil || la2.Subnet != la.Subnet {
		t.Fatalf("after restart got %+v, %v; want %s", la2, err, la.Subnet)
	}
	if ttl, err := c.TimeToLive(ctx, oldID); err != nil || ttl.TTL != -1 {
		t.Fatalf("previous etcd lease %x still alive: %+v %v", oldID, ttl, err)
	}
	leases, _ := c.Leases(ctx)
	if len(leases.Leases) != 1 {
		t.Fatalf("%d etcd leases alive, want 1", len(leases.Leases))
	}

	// Host 2 takes the last subnet; host 4 finds the network exhausted.
	if _, err := newReg().Acquire(ctx, cfg, attrs("192.0.2.2"), netip.Prefix{}); err != nil {
		t.Fatal(err)
	}
	if _, err := newReg().Acquire(ctx, cfg, attrs("192.0.2.4"), netip.Prefix{}); !errors.Is(err, lease.ErrExhausted) {
		t.Fatalf("exhausted network: err = %v", err)
	}
}

func TestHintFromSubnetEnv(t *testing.T) {
	c := etcdClient(t)
	cfg := mustConfig(t, `{"Network":"10.9.0.0/16"}`)
	hint := netip.MustParsePrefix("10.9.77.0/24")
	l, err := (&Registry{Client: c, Log: logger(t)}).Acquire(t.Context(), cfg, attrs("192.0.2.1"), hint)
	if err != nil || l.Subnet != hint {
		t.Fatalf("got %+v, %v; want hint %s", l, err, hint)
	}
	// Someone else's hint for a taken subnet is not honoured.
	l2, err := (&Registry{Client: c, Log: logger(t)}).Acquire(t.Context(), cfg, attrs("192.0.2.2"), hint)
	if err != nil || l2.Subnet == hint {
		t.Fatalf("second host got %+v, %v", l2, err)
	}
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func has(r *Registry, sn netip.Prefix) bool {
	ls, _ := r.Leases()
	for _, l := range ls {
		if l.Subnet == sn {
			return true
		}
	}
	return false
}

func TestWatchExpiryReacquireCompaction(t *testing.T) {
	c := etcdClient(t)
	ctx := t.Context()
	cfg := mustConfig(t, `{"Network":"10.9.0.0/16"}`)

	a := &Registry{Client: c, Log: logger(t), TTL: 30 * time.Second}
	la, err := a.Acquire(ctx, cfg, attrs("192.0.2.1"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	go a.Watch(ctx)
	go a.Keep(ctx, cfg, nil)

	// A peer with a short TTL that is never renewed: its lease expires and A forgets it.
	b := &Registry{Client: c, Log: logger(t), TTL: 2 * time.Second}
	lb, err := b.Acquire(ctx, cfg, attrs("192.0.2.2"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "peer lease seen", func() bool { return has(a, lb.Subnet) })
	waitFor(t, "peer lease expired", func() bool { return !has(a, lb.Subnet) })

	// Corrupt values from another writer are skipped, the watch goes on.
	if _, err := c.Put(ctx, lease.Key(DefaultPrefix, netip.MustParsePrefix("10.9.200.0/24")), "not json"); err != nil {
		t.Fatal(err)
	}

	// Our key is deleted: A puts it back (same subnet), it does not give up.
	if _, err := c.Delete(ctx, lease.Key(DefaultPrefix, la.Subnet)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "own lease re-acquired", func() bool {
		gr, err := c.Get(ctx, lease.Key(DefaultPrefix, la.Subnet))
		return err == nil && len(gr.Kvs) == 1 && gr.Kvs[0].Lease != 0
	})

	// Compaction past the watch's revision: A relists and still sees new leases.
	d := &Registry{Client: c, Log: logger(t), TTL: time.Minute}
	ld, err := d.Acquire(ctx, cfg, attrs("192.0.2.4"), netip.Prefix{})
	if err != nil {
		t.Fatal(err)
	}
	gr, _ := c.Get(ctx, "x")
	if _, err := c.Compact(ctx, gr.Header.Revision); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "lease after compaction seen", func() bool { return has(a, ld.Subnet) })
}

// A key whose value another writer broke is nobody's lease, but its subnet is not free.
func TestCorruptValueOccupiesSubnet(t *testing.T) {
	c := etcdClient(t)
	ctx := t.Context()
	cfg := mustConfig(t, `{"Network":"10.9.0.0/28"}`)
	for _, sn := range []string{"10.9.0.4/30", "10.9.0.8/30"} {
		if _, err := c.Put(ctx, lease.Key(DefaultPrefix, netip.MustParsePrefix(sn)), `{"PublicIP":"nope"}`); err != nil {
			t.Fatal(err)
		}
	}
	l, err := (&Registry{Client: c, Log: logger(t)}).Acquire(ctx, cfg, attrs("192.0.2.1"), netip.MustParsePrefix("10.9.0.4/30"))
	if err != nil || l.Subnet != netip.MustParsePrefix("10.9.0.12/30") {
		t.Fatalf("got %+v, %v; want the one clean subnet", l, err)
	}
	if _, err := (&Registry{Client: c, Log: logger(t)}).Acquire(ctx, cfg, attrs("192.0.2.2"), netip.Prefix{}); !errors.Is(err, lease.ErrExhausted) {
		t.Fatalf("second host: %v, want ErrExhausted", err)
	}
}
