package config

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseDefaults(t *testing.T) {
	for _, tc := range []struct {
		in            string
		subnetLen     int
		min, max      string
		vni, port     int
		directRouting bool
	}{
		{`{"Network":"10.1.0.0/16"}`, 24, "10.1.1.0", "10.1.255.0", 1, 8472, false},
		{`{"network":"10.1.0.0/16","backend":{"type":"vxlan","vni":42,"port":4789,"DirectRouting":true}}`, 24, "10.1.1.0", "10.1.255.0", 42, 4789, true},
		{`{"Network":"10.1.0.0/24"}`, 26, "10.1.0.64", "10.1.0.192", 1, 8472, false},
		{`{"Network":"10.1.0.0/28"}`, 30, "10.1.0.4", "10.1.0.12", 1, 8472, false},
		{`{"Network":"10.1.2.3/16","SubnetLen":20,"SubnetMin":"10.1.32.0","SubnetMax":"10.1.64.0","Backend":{"Type":"vxlan","VNI":0}}`, 20, "10.1.32.0", "10.1.64.0", 0, 8472, false},
		{`{"Network":"10.1.0.0/16","Backend":null}`, 24, "10.1.1.0", "10.1.255.0", 1, 8472, false},
	} {
		c, err := Parse([]byte(tc.in))
		if err != nil {
			t.Errorf("Parse(%s): %v", tc.in, err)
			continue
		}
		if c.SubnetLen != tc.subnetLen || c.SubnetMin.String() != tc.min || c.SubnetMax.String() != tc.max ||
			c.Backend.VNI != tc.vni || c.Backend.Port != tc.port || c.Backend.Type != "vxlan" || c.Backend.DirectRouting != tc.directRouting {
			t.Errorf("Parse(%s) = %+v", tc.in, c)
		}
		if c.Network.Masked() != c.Network {
			t.Errorf("Parse(%s): network %s not masked", tc.in, c.Network)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	for _, in := range []string{
		``, `nope`, `[]`, `{}`, `{"Network":""}`,
		`{"Network":"10.1.0.0"}`,
		`{"Network":"fd00::/64"}`,
		`{"Network":"10.1.0.0/29"}`,
		`{"Network":"10.1.0.0/16","SubnetLen":31}`,
		`{"Network":"10.1.0.0/16","SubnetLen":17}`,
		`{"Network":"10.1.0.0/16","SubnetLen":-4}`,
		`{"Network":"10.1.0.0/16","SubnetMin":"10.2.0.0"}`,
		`{"Network":"10.1.0.0/16","SubnetMax":"10.1.0.7"}`,
		`{"Network":"10.1.0.0/16","SubnetMin":"10.1.9.0","SubnetMax":"10.1.8.0"}`,
		`{"Network":"10.1.0.0/16","SubnetMin":"x"}`,
		`{"Network":"10.1.0.0/16","Backend":{"Type":"udp"}}`,
		`{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}`,
		`{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","Port":70000}}`,
		`{"Network":"10.1.0.0/16","Backend":{"Type":"vxlan","MTU":100}}`,
		`{"Network":"10.1.0.0/16","Backend":"vxlan"}`,
		`{"Network":"10.1.0.0/16","EnableIPv6":true}`,
		`{"Network":"10.1.0.0/16","SubnetLen":"24"}`,
	} {
		if c, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%q) = %+v, want error", in, c)
		} else if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error %v does not wrap ErrInvalid", in, err)
		}
	}
}

func TestSubnets(t *testing.T) {
	c, err := Parse([]byte(`{"Network":"10.1.0.0/16"}`))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.Subnets(); n != 255 {
		t.Fatalf("Subnets = %d, want 255", n)
	}
	if got := c.SubnetAt(0); got != netip.MustParsePrefix("10.1.1.0/24") {
		t.Fatalf("SubnetAt(0) = %s", got)
	}
	if got := c.SubnetAt(254); got != netip.MustParsePrefix("10.1.255.0/24") {
		t.Fatalf("SubnetAt(254) = %s", got)
	}
	for sn, want := range map[string]bool{"10.1.0.0/24": false, "10.1.7.0/24": true, "10.1.7.0/25": false, "10.2.7.0/24": false, "10.1.255.0/24": true} {
		if got := c.Contains(netip.MustParsePrefix(sn)); got != want {
			t.Errorf("Contains(%s) = %v", sn, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"Network":"10.1.0.0/16"}`, `{"Network":"10.1.0.0/28","SubnetLen":30}`,
		`{"Network":"10.1.0.0/16","SubnetMin":"10.1.9.0","SubnetMax":"10.1.10.0","Backend":{"Type":"vxlan","VNI":7}}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if c.SubnetLen < c.Network.Bits()+2 || c.SubnetLen > 30 || !c.Contains(c.SubnetAt(0)) || !c.Contains(c.SubnetAt(c.Subnets()-1)) {
			t.Fatalf("accepted inconsistent config %+v from %q", c, data)
		}
	})
}
