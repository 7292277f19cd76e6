package vxlan

import (
	"net/netip"
	"testing"
)

func TestDerivedMAC(t *testing.T) {
	a := DerivedMAC(netip.MustParseAddr("192.168.100.11"), 1)
	if b := DerivedMAC(netip.MustParseAddr("192.168.100.11"), 1); a.String() != b.String() {
		t.Fatalf("not stable: %s %s", a, b)
	}
	if c := DerivedMAC(netip.MustParseAddr("192.168.100.12"), 1); a.String() == c.String() {
		t.Fatalf("two hosts share %s", a)
	}
	if d := DerivedMAC(netip.MustParseAddr("192.168.100.11"), 2); a.String() == d.String() {
		t.Fatalf("two VNIs share %s", a)
	}
	if len(a) != 6 || a[0]&1 != 0 || a[0]&2 == 0 {
		t.Fatalf("%s is not a locally administered unicast MAC", a)
	}
	if DeviceName(1) != "flannel.1" || DeviceName(4096) != "flannel.4096" || DeviceName(0) != "flannel.0" {
		t.Fatal("DeviceName")
	}
}
