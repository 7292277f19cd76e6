package ipmasq

import (
	"net/netip"
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	rs := Rules(netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.1.34.0/24"))
	var got []string
	for _, r := range rs {
		got = append(got, strings.Join(r, " "))
	}
	want := []string{
		`-s 10.1.0.0/16 -d 10.1.0.0/16 -m comment --comment flanneld masq -j RETURN`,
		`-s 10.1.0.0/16 ! -d 224.0.0.0/4 -m comment --comment flanneld masq -j MASQUERADE --random-fully`,
		`! -s 10.1.0.0/16 -d 10.1.34.0/24 -m comment --comment flanneld masq -j RETURN`,
		`! -s 10.1.0.0/16 -d 10.1.0.0/16 -m comment --comment flanneld masq -j MASQUERADE --random-fully`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Rules =\n%s", strings.Join(got, "\n"))
	}
}
