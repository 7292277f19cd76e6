package lease

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"

	"github.com/cairn-os/cairn/flannel/config"
)

func TestKey(t *testing.T) {
	sn := netip.MustParsePrefix("10.1.34.0/24")
	k := Key("/coreos.com/network", sn)
	if k != "/coreos.com/network/subnets/10.1.34.0-24" {
		t.Fatalf("Key = %q", k)
	}
	if k2 := Key("/coreos.com/network/", sn); k2 != k {
		t.Fatalf("Key with trailing slash = %q", k2)
	}
	got, err := ParseKey("/coreos.com/network", k)
	if err != nil || got != sn {
		t.Fatalf("ParseKey = %v, %v", got, err)
	}
	for _, bad := range []string{"/coreos.com/network/subnets/10.1.34.0", "/coreos.com/network/subnets/10.1.34.1-24",
		"/coreos.com/network/subnets/10.1.34.0-33", "/coreos.com/network/subnets/10.1.34.0-024", "/other/subnets/10.1.34.0-24",
		"/coreos.com/network/subnets/fd00::-64", "/coreos.com/network/subnets/10.1.34.0-+24", "/coreos.com/network/subnets/"} {
		if _, err := ParseKey("/coreos.com/network", bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseKey(%q) err = %v", bad, err)
		}
	}
}

// The exact bytes stock flannel writes for a vxlan lease.
const stockValue = `{"PublicIP":"192.168.100.11","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:58:c0:a8:64:0b"}}`

func TestAttrsStockBytes(t *testing.T) {
	mac, _ := net.ParseMAC("0a:58:c0:a8:64:0b")
	bd, err := EncodeVXLAN(VXLANData{VNI: 1, VtepMAC: mac})
	if err != nil {
		t.Fatal(err)
	}
	b, err := EncodeAttrs(Attrs{PublicIP: netip.MustParseAddr("192.168.100.11"), BackendType: "vxlan", BackendData: bd})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != stockValue {
		t.Fatalf("EncodeAttrs = %s\nwant          %s", b, stockValue)
	}
	a, err := DecodeAttrs([]byte(stockValue))
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeVXLAN(a.BackendData)
	if err != nil || d.VNI != 1 || d.VtepMAC.String() != "0a:58:c0:a8:64:0b" || a.PublicIP.String() != "192.168.100.11" {
		t.Fatalf("decode = %+v %+v %v", a, d, err)
	}
	// Values from older writers carry PublicIPv6:null and spacing; they must still decode.
	if _, err := DecodeAttrs([]byte(`{"PublicIP":"10.0.0.1", "PublicIPv6":null, "BackendType":"vxlan", "BackendData":null}`)); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeHostile(t *testing.T) {
	for _, bad := range []string{``, `null`, `{}`, `{"PublicIP":"x"}`, `{"PublicIP":"::1"}`, `{"PublicIP":7}`, `[1]`, `{"PublicIP":"1.2.3.4"`} {
		if _, err := DecodeAttrs([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeAttrs(%q) err = %v", bad, err)
		}
	}
	for _, bad := range []string{``, `null`, `{"VNI":1}`, `{"VNI":1,"VtepMAC":"01:00:00:00:00:01"}`, `{"VNI":1,"VtepMAC":"00:00:00:00:00:00"}`,
		`{"VNI":-1,"VtepMAC":"0a:00:00:00:00:01"}`, `{"VNI":1,"VtepMAC":"0a:00:00:00:00:00:00:01"}`, `"x"`} {
		if _, err := DecodeVXLAN([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("DecodeVXLAN(%q) err = %v", bad, err)
		}
	}
}

func TestPick(t *testing.T) {
	cfg, err := config.Parse([]byte(`{"Network":"10.1.0.0/28"}`)) // /30 subnets: .4 .8 .12
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	taken := map[netip.Prefix]bool{}
	for range 3 {
		sn, err := Pick(cfg, taken, rnd)
		if err != nil {
			t.Fatal(err)
		}
		if taken[sn] || !cfg.Contains(sn) {
			t.Fatalf("Pick returned %s (taken %v)", sn, taken)
		}
		taken[sn] = true
	}
	if _, err := Pick(cfg, taken, rnd); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Pick on a full network: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(stockValue))
	f.Add([]byte(`{"PublicIP":"10.0.0.1","BackendData":{"VNI":16777215,"VtepMAC":"0A-00-00-00-00-01"}}`))
	f.Add([]byte(`{"PublicIP":"10.0.0.1","BackendData":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := DecodeAttrs(data)
		if err != nil {
			return
		}
		b, err := EncodeAttrs(a)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", a, err)
		}
		a2, err := DecodeAttrs(b)
		if err != nil || a2.PublicIP != a.PublicIP || a2.BackendType != a.BackendType {
			t.Fatalf("round trip %q -> %q: %+v %v", data, b, a2, err)
		}
		if d, err := DecodeVXLAN(a.BackendData); err == nil {
			if _, err := EncodeVXLAN(d); err != nil {
				t.Fatalf("decoded vxlan data does not re-encode: %v", err)
			}
		}
	})
}

func FuzzParseKey(f *testing.F) {
	f.Add("/coreos.com/network/subnets/10.1.34.0-24")
	f.Add("/coreos.com/network/subnets/10.1.34.0-")
	f.Fuzz(func(t *testing.T, key string) {
		sn, err := ParseKey("/coreos.com/network", key)
		if err != nil {
			return
		}
		if Key("/coreos.com/network", sn) != key {
			t.Fatalf("ParseKey(%q) = %s does not round-trip", key, sn)
		}
	})
}
