package network

import (
	"fmt"
	"testing"
)

func TestOwnLinks(t *testing.T) {
	rec := []HostLink{{Name: "veth1234", MAC: "8a:9b:39:fe:3e:e3"}, {Name: "cni0", MAC: "02:00:00:00:00:01"}, {Name: "vethnomac"}}
	for _, c := range []struct {
		name  string
		found []hostLink
		want  string
	}{
		{"the pod's veth", []hostLink{{Name: "veth1234", Type: "veth", MAC: "8a:9b:39:fe:3e:e3", Index: 7}}, "[veth1234]"},
		{"hardware address in capitals", []hostLink{{Name: "veth1234", Type: "veth", MAC: "8A:9B:39:FE:3E:E3"}}, "[veth1234]"},
		{"a later pod's veth of the same name", []hostLink{{Name: "veth1234", Type: "veth", MAC: "8a:9b:39:fe:3e:e4"}}, "[]"},
		{"the network's bridge", []hostLink{{Name: "cni0", Type: "bridge", MAC: "02:00:00:00:00:01"}}, "[]"},
		{"a veth recorded without an address", []hostLink{{Name: "vethnomac", Type: "veth", MAC: "02:00:00:00:00:02"}}, "[]"},
		{"a link no record names", []hostLink{{Name: "veth9999", Type: "veth", MAC: "8a:9b:39:fe:3e:e3"}}, "[]"},
		{"nothing found", nil, "[]"},
		{"veth and bridge", []hostLink{{Name: "cni0", Type: "bridge", MAC: "02:00:00:00:00:01"}, {Name: "veth1234", Type: "veth", MAC: "8a:9b:39:fe:3e:e3"}}, "[veth1234]"},
	} {
		var names []string
		for _, l := range ownLinks(rec, c.found) {
			names = append(names, l.Name)
		}
		if got := fmt.Sprint(names); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestHostRoutes(t *testing.T) {
	for _, c := range []struct {
		addrs []string
		want  string
	}{
		{[]string{"172.16.28.5/24"}, "[172.16.28.5/32]"},
		{[]string{"fd00:28::5/64", "10.1.2.3/8"}, "[fd00:28::5/128 10.1.2.3/32]"},
		{[]string{"not-an-address", "10.0.0.1"}, "[]"}, // plugins report CIDRs; anything else is no route of theirs
		{nil, "[]"},
	} {
		if got := fmt.Sprint(hostRoutes(c.addrs)); got != c.want {
			t.Errorf("%q: %s, want %s", c.addrs, got, c.want)
		}
	}
}
