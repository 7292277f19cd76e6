package network

import (
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// Port forwards chain portmap after a network's plugins once: a config list that has its
// own (as Kubernetes' do) keeps it, alone.
func TestWithPortmap(t *testing.T) {
	for _, tc := range []struct {
		conf  string
		types []string
	}{
		{`{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"ptp"}]}`, []string{"ptp", "portmap"}},
		{`{"cniVersion":"1.0.0","name":"k","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}`, []string{"bridge", "portmap"}},
	} {
		l, err := libcni.NetworkConfFromBytes([]byte(tc.conf))
		if err != nil {
			t.Fatal(err)
		}
		got, err := withPortmap(l)
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, p := range got.Plugins {
			types = append(types, p.Network.Type)
		}
		if len(types) != len(tc.types) || types[len(types)-1] != "portmap" || types[0] != tc.types[0] {
			t.Errorf("%s: plugins %v, want %v", l.Name, types, tc.types)
		}
	}
}
