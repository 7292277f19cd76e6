package subnetenv

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "run", "flannel", "subnet.env")
	e := Env{Network: netip.MustParsePrefix("10.1.0.0/16"), Subnet: netip.MustParsePrefix("10.1.34.0/24"), MTU: 1450}
	if err := Write(p, e); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	want := "FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.34.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
	if string(b) != want {
		t.Fatalf("file = %q, want %q", b, want)
	}
	got, err := Read(p)
	if err != nil || got != e {
		t.Fatalf("Read = %+v, %v", got, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("stray files beside subnet.env: %v", ents)
	}
}

func TestParseHostile(t *testing.T) {
	for _, bad := range []string{
		"", "FLANNEL_NETWORK=10.1.0.0/16\n", "FLANNEL_SUBNET=10.1.1.1/24\n",
		"FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.2.1.1/24\n",
		"FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.1.1/8\n",
		"FLANNEL_NETWORK=x\nFLANNEL_SUBNET=10.1.1.1/24\n",
		"FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.1.1/24\nFLANNEL_MTU=9\n",
		"FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.1.1/24\nFLANNEL_IPMASQ=perhaps\n",
		"FLANNEL_NETWORK=10.1.0.0/16\ngarbage\n",
		"FLANNEL_NETWORK=" + strings.Repeat("9", 1<<17),
	} {
		if _, err := Parse(strings.NewReader(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%.60q) err = %v", bad, err)
		}
	}
	e, err := Parse(strings.NewReader("# written by flanneld\nFLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=\"10.1.1.1/24\"\nFLANNEL_IPV6_NETWORK=fd00::/48\nFLANNEL_IPMASQ=true\n"))
	if err != nil || !e.IPMasq || e.Subnet != netip.MustParsePrefix("10.1.1.0/24") {
		t.Fatalf("Parse = %+v, %v", e, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("FLANNEL_NETWORK=10.1.0.0/16\nFLANNEL_SUBNET=10.1.34.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n")
	f.Add("FLANNEL_NETWORK=10.1.0.0/16\r\nFLANNEL_SUBNET=10.1.34.1/24\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		e2, err := Parse(strings.NewReader(string(e.Marshal())))
		if err != nil || e2.Network != e.Network || e2.Subnet != e.Subnet || e2.IPMasq != e.IPMasq {
			t.Fatalf("round trip of %q: %+v %v", s, e2, err)
		}
	})
}
