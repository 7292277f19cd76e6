package network

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseSelection(t *testing.T) {
	cases := []struct {
		in   []string
		want Selection
	}{
		{nil, Selection{Nets: []Request{{Name: "default"}}}},
		{[]string{"host"}, Selection{Mode: Host}},
		{[]string{"none"}, Selection{Mode: None}},
		{[]string{"all"}, Selection{All: true}},
		{[]string{"default,mynet:IP=10.1.1.7"}, Selection{Nets: []Request{{Name: "default"}, {Name: "mynet", Args: [][2]string{{"IP", "10.1.1.7"}}}}}},
		{[]string{"a:X=1;Y=2", "b"}, Selection{Nets: []Request{{Name: "a", Args: [][2]string{{"X", "1"}, {"Y", "2"}}}, {Name: "b"}}}},
	}
	for _, c := range cases {
		got, err := ParseSelection(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseSelection(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range [][]string{{"host,default"}, {"none:X=1"}, {"a,a"}, {"a:IP"}, {"../x"}, {"a:=1"}, {"all:x=1"}} {
		if _, err := ParseSelection(bad); !errors.Is(err, ErrBadNet) {
			t.Errorf("ParseSelection(%q): %v, want ErrBadNet", bad, err)
		}
	}
	sel, _ := ParseSelection([]string{"default,mynet:IP=10.1.1.7;X=y"})
	if s := sel.String(); s != "default,mynet:IP=10.1.1.7;X=y" {
		t.Errorf("String() = %q", s)
	}
}

func TestParseConf(t *testing.T) {
	l, err := ParseConf([]byte(`{"cniVersion":"0.3.1","name":"br","type":"bridge","ipMasq":true,"ipam":{"type":"host-local","subnet":"10.2.0.0/24"}}`))
	if err != nil || l.Name != "br" || len(l.Plugins) != 1 || l.Plugins[0].Network.Type != "bridge" {
		t.Fatalf("single conf: %+v %v", l, err)
	}
	l, err = ParseConf([]byte(`{"cniVersion":"1.0.0","name":"chain","plugins":[{"type":"bridge"},{"type":"portmap"}]}`))
	if err != nil || len(l.Plugins) != 2 {
		t.Fatalf("conflist: %+v %v", l, err)
	}
	for name, bad := range map[string]string{
		"not json":                     `{"name":`,
		"no name":                      `{"type":"ptp"}`,
		"bad name":                     `{"name":"a b","type":"ptp"}`,
		"no type":                      `{"name":"x"}`,
		"path type":                    `{"name":"x","type":"../../bin/sh"}`,
		"empty list":                   `{"name":"x","plugins":[]}`,
		"ipMasq not a boolean":         `{"name":"x","type":"ptp","ipMasq":"yes"}`,
		"ipMasq not a boolean in list": `{"name":"x","plugins":[{"type":"bridge","ipMasq":1}]}`,
		"huge":                         `{"name":"x","type":"ptp","pad":"` + strings.Repeat("a", MaxConfSize) + `"}`,
	} {
		if _, err := ParseConf([]byte(bad)); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestLoadAllAndResolve(t *testing.T) {
	etc, usr := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(usr, "10-mynet.conf"), []byte(`{"name":"mynet","type":"bridge"}`), 0o644)
	os.WriteFile(filepath.Join(etc, "10-mynet.conf"), []byte(`{"name":"mynet","type":"macvlan"}`), 0o644)
	os.WriteFile(filepath.Join(etc, "50-other.conflist"), []byte(`{"name":"other","cniVersion":"0.4.0","plugins":[{"type":"ptp"}]}`), 0o644)
	os.WriteFile(filepath.Join(etc, "notes.txt"), []byte(`ignored`), 0o644)
	all, err := LoadAll([]string{etc, usr, filepath.Join(t.TempDir(), "absent")})
	if err != nil {
		t.Fatal(err)
	}
	if got := all["mynet"].List.Plugins[0].Network.Type; got != "macvlan" {
		t.Errorf("/etc did not override /usr/lib: type %s", got)
	}
	if all["default"] == nil {
		t.Fatalf("built-ins: %+v", all)
	}
	if m, err := all["default"].Masq(); !m || err != nil {
		t.Errorf("default masquerades: %v %v", m, err)
	}
	if m, err := all["default-restricted"].Masq(); m || err != nil {
		t.Errorf("default-restricted masquerades: %v %v", m, err)
	}
	sel, _ := ParseSelection([]string{"default,other,mynet"})
	nets, err := Resolve(all, sel)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, n := range nets {
		order = append(order, n.Name)
	}
	if strings.Join(order, ",") != "mynet,other,default" {
		t.Errorf("order %v, want file-name order mynet,other,default", order)
	}
	sel, _ = ParseSelection([]string{"all"})
	nets, _ = Resolve(all, sel)
	if len(nets) != 3 {
		t.Errorf("all: %d networks, want mynet, other, default", len(nets))
	}
	sel, _ = ParseSelection([]string{"nosuch"})
	if _, err := Resolve(all, sel); !errors.Is(err, ErrUnknownNet) || !strings.Contains(err.Error(), "nosuch") || !strings.Contains(err.Error(), "mynet") {
		t.Errorf("unknown network: %v", err)
	}
	os.WriteFile(filepath.Join(etc, "20-broken.conf"), []byte(`{"name":`), 0o644)
	if _, err := LoadAll([]string{etc}); err == nil || !strings.Contains(err.Error(), "20-broken.conf") {
		t.Errorf("broken file: %v", err)
	}
}

func FuzzParseConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"0.4.0","name":"default","type":"ptp","ipMasq":true,"ipam":{"type":"host-local","subnet":"172.16.28.0/24"}}`))
	f.Add([]byte(`{"name":"chain","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ParseConf(b)
		if err != nil {
			return
		}
		if l.Name == "" || len(l.Plugins) == 0 {
			t.Fatalf("accepted a config without name or plugins: %q", b)
		}
		for _, p := range l.Plugins {
			if p.Network.Type == "" || strings.Contains(p.Network.Type, "/") {
				t.Fatalf("accepted plugin type %q", p.Network.Type)
			}
		}
	})
}
