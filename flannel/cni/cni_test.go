package cni

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"testing"

	"github.com/cairn-os/cairn/flannel/subnetenv"
)

var env = subnetenv.Env{Network: netip.MustParsePrefix("10.1.0.0/16"), Subnet: netip.MustParsePrefix("10.1.34.0/24"), MTU: 1450}

func TestDelegateConf(t *testing.T) {
	n, err := ParseNetConf([]byte(`{"cniVersion":"1.0.0","name":"flannel","type":"flannel"}`))
	if err != nil {
		t.Fatal(err)
	}
	if n.SubnetFile != "/run/flannel/subnet.env" || n.DataDir != "/var/lib/cni/flannel" {
		t.Fatalf("defaults: %+v", n)
	}
	b, typ, err := DelegateConf(n, env)
	if err != nil || typ != "bridge" {
		t.Fatal(typ, err)
	}
	var got map[string]any
	json.Unmarshal(b, &got)
	want := map[string]any{"type": "bridge", "name": "flannel", "cniVersion": "1.0.0", "ipMasq": true, "isGateway": true, "mtu": 1450.0,
		"ipam": map[string]any{"type": "host-local", "subnet": "10.1.34.0/24", "routes": []any{map[string]any{"dst": "10.1.0.0/16"}}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("delegate = %s", b)
	}

	n, _ = ParseNetConf([]byte(`{"cniVersion":"0.4.0","name":"x","type":"flannel","delegate":{"type":"ipvlan","master":"eth0","mtu":1400,"ipMasq":false}}`))
	e2 := env
	e2.IPMasq = true
	b, typ, _ = DelegateConf(n, e2)
	got = nil
	json.Unmarshal(b, &got)
	if typ != "ipvlan" || got["mtu"] != 1400.0 || got["ipMasq"] != false || got["isGateway"] != nil || got["master"] != "eth0" {
		t.Fatalf("delegate = %s", b)
	}
	for _, bad := range []string{`{"name":"x","delegate":{"type":"../../bin/sh"}}`, `{"name":"x","delegate":{"type":7}}`} {
		n, err := ParseNetConf([]byte(bad))
		if err == nil {
			_, _, err = DelegateConf(n, env)
		}
		if err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	if _, err := ParseNetConf([]byte(`{"type":"flannel"}`)); err == nil {
		t.Error("config without name accepted")
	}
	if _, err := (&NetConf{DataDir: "/d"}).savePath("../x", "eth0"); err == nil {
		t.Error("container ID with a slash accepted")
	}
}

func FuzzParseNetConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"flannel","type":"flannel","delegate":{"hairpinMode":true}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseNetConf(b)
		if err != nil {
			return
		}
		if conf, typ, err := DelegateConf(n, env); err == nil {
			var m map[string]any
			if json.Unmarshal(conf, &m) != nil || m["type"] != typ || m["name"] != n.Name {
				t.Fatalf("delegate %s for %s", conf, b)
			}
		}
	})
}
