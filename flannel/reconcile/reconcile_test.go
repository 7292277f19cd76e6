package reconcile

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/cairn-os/cairn/flannel/lease"
)

var quiet = slog.New(slog.DiscardHandler)

func vx(sn, pub, mac string) lease.Lease {
	hw, _ := net.ParseMAC(mac)
	bd, err := lease.EncodeVXLAN(lease.VXLANData{VNI: 1, VtepMAC: hw})
	if err != nil {
		panic(err)
	}
	return lease.Lease{Subnet: netip.MustParsePrefix(sn), Attrs: lease.Attrs{PublicIP: netip.MustParseAddr(pub), BackendType: "vxlan", BackendData: bd}}
}

func TestWant(t *testing.T) {
	h := Host{Subnet: netip.MustParsePrefix("10.1.1.0/24"), VXLANLink: 5, UnderlayLink: 2}
	bad := vx("10.1.9.0/24", "192.168.0.9", "0a:00:00:00:00:09")
	bad.Attrs.BackendData = json.RawMessage(`{"VNI":1,"VtepMAC":"zz"}`)
	udp := vx("10.1.8.0/24", "192.168.0.8", "0a:00:00:00:00:08")
	udp.Attrs.BackendType = "udp"
	got := Want(h, []lease.Lease{
		vx("10.1.3.0/24", "192.168.0.3", "0a:00:00:00:00:03"),
		vx("10.1.1.0/24", "192.168.0.1", "0a:00:00:00:00:01"), // ourselves
		vx("10.1.2.0/24", "192.168.0.2", "0a:00:00:00:00:02"),
		bad, udp,
	}, quiet)
	want := State{
		Routes: []Route{
			{Dst: netip.MustParsePrefix("10.1.2.0/24"), Gw: netip.MustParseAddr("10.1.2.0"), Link: 5, Onlink: true},
			{Dst: netip.MustParsePrefix("10.1.3.0/24"), Gw: netip.MustParseAddr("10.1.3.0"), Link: 5, Onlink: true},
		},
		Neighs: []Neigh{{IP: netip.MustParseAddr("10.1.2.0"), MAC: "0a:00:00:00:00:02", Link: 5}, {IP: netip.MustParseAddr("10.1.3.0"), MAC: "0a:00:00:00:00:03", Link: 5}},
		FDB:    []FDB{{MAC: "0a:00:00:00:00:02", Dst: netip.MustParseAddr("192.168.0.2"), Link: 5}, {MAC: "0a:00:00:00:00:03", Dst: netip.MustParseAddr("192.168.0.3"), Link: 5}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Want =\n%+v\nwant\n%+v", got, want)
	}

	h.DirectRouting = true
	h.SameL2 = func(a netip.Addr) bool { return a == netip.MustParseAddr("192.168.0.2") }
	got = Want(h, []lease.Lease{vx("10.1.2.0/24", "192.168.0.2", "0a:00:00:00:00:02"), vx("10.1.3.0/24", "192.168.0.3", "0a:00:00:00:00:03")}, quiet)
	if len(got.Routes) != 2 || got.Routes[0] != (Route{Dst: netip.MustParsePrefix("10.1.2.0/24"), Gw: netip.MustParseAddr("192.168.0.2"), Link: 2}) || len(got.Neighs) != 1 || len(got.FDB) != 1 {
		t.Fatalf("DirectRouting Want = %+v", got)
	}
}

func TestDiff(t *testing.T) {
	h := Host{Subnet: netip.MustParsePrefix("10.1.1.0/24"), VXLANLink: 5}
	want := Want(h, []lease.Lease{vx("10.1.2.0/24", "192.168.0.2", "0a:00:00:00:00:02"), vx("10.1.3.0/24", "192.168.0.3", "0a:00:00:00:00:33")}, quiet)

	if p := Diff(want, want); !p.Empty() {
		t.Fatalf("Diff(x, x) = %+v", p)
	}
	p := Diff(want, State{})
	if len(p.SetRoutes) != 2 || len(p.SetNeighs) != 2 || len(p.SetFDB) != 2 || len(p.DelRoutes)+len(p.DelNeighs)+len(p.DelFDB) != 0 {
		t.Fatalf("Diff(want, empty) = %+v", p)
	}

	// have: peer 3 with its old MAC, a stale peer 4, and a missing route for peer 2.
	have := Want(h, []lease.Lease{vx("10.1.2.0/24", "192.168.0.2", "0a:00:00:00:00:02"), vx("10.1.3.0/24", "192.168.0.3", "0a:00:00:00:00:03"), vx("10.1.4.0/24", "192.168.0.4", "0a:00:00:00:00:04")}, quiet)
	have.Routes = have.Routes[1:]
	p = Diff(want, have)
	str := fmt.Sprintf("%+v", p)
	if len(p.SetRoutes) != 1 || p.SetRoutes[0].Dst.String() != "10.1.2.0/24" ||
		len(p.DelRoutes) != 1 || p.DelRoutes[0].Dst.String() != "10.1.4.0/24" ||
		len(p.SetNeighs) != 1 || p.SetNeighs[0].MAC != "0a:00:00:00:00:33" ||
		len(p.DelNeighs) != 1 || p.DelNeighs[0].IP.String() != "10.1.4.0" ||
		len(p.SetFDB) != 1 || p.SetFDB[0].MAC != "0a:00:00:00:00:33" ||
		len(p.DelFDB) != 2 {
		t.Fatalf("Diff = %s", str)
	}
}

func benchLeases(n int) []lease.Lease {
	ls := make([]lease.Lease, n)
	for i := range ls {
		ls[i] = vx(fmt.Sprintf("10.%d.%d.0/24", 1+i/256, i%256), fmt.Sprintf("192.168.%d.%d", i/250, 1+i%250), fmt.Sprintf("0a:00:00:00:%02x:%02x", i/256, i%256))
	}
	return ls
}

// BenchmarkWantDiff1000 is the pure cost of one reconcile pass over 1000 leases.
func BenchmarkWantDiff1000(b *testing.B) {
	ls := benchLeases(1000)
	for i := range ls {
		ls[i].Predecode()
	}
	h := Host{Subnet: netip.MustParsePrefix("10.200.0.0/24"), VXLANLink: 5}
	have := Want(h, ls, quiet)
	b.ResetTimer()
	for b.Loop() {
		if p := Diff(Want(h, ls, quiet), have); !p.Empty() {
			b.Fatal("non-empty plan")
		}
	}
}
