package kube

import (
	"encoding/json"
	"errors"
	"maps"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cairn-os/cairn/flannel/lease"
)

func TestNewAnnotations(t *testing.T) {
	for _, tc := range []struct {
		prefix, backendData string // "" backendData: refused
	}{
		{"flannel.alpha.coreos.com", "flannel.alpha.coreos.com/backend-data"},
		{"flannel.alpha.coreos.com/", "flannel.alpha.coreos.com/backend-data"},
		{"example.com/net", "example.com/net-backend-data"},
		{"example.com/net-", "example.com/net-backend-data"},
		{"a.b/c/d", ""},
		{"nodots", ""},
		{"Example.com", ""},
		{"example.com/UPPER", ""},
		{"", ""},
	} {
		a, err := NewAnnotations(tc.prefix)
		switch {
		case tc.backendData == "" && err == nil:
			t.Errorf("NewAnnotations(%q) = %+v, want an error", tc.prefix, a)
		case tc.backendData != "" && err != nil:
			t.Errorf("NewAnnotations(%q): %v", tc.prefix, err)
		case a.BackendData != tc.backendData:
			t.Errorf("NewAnnotations(%q).BackendData = %q, want %q", tc.prefix, a.BackendData, tc.backendData)
		}
	}
	a, _ := NewAnnotations(DefaultAnnotationPrefix)
	want := Annotations{
		SubnetKubeManaged: "flannel.alpha.coreos.com/kube-subnet-manager", BackendData: "flannel.alpha.coreos.com/backend-data",
		BackendV6Data: "flannel.alpha.coreos.com/backend-v6-data", BackendType: "flannel.alpha.coreos.com/backend-type",
		PublicIP: "flannel.alpha.coreos.com/public-ip", PublicIPv6: "flannel.alpha.coreos.com/public-ipv6",
		NodePublicIP: "flannel.alpha.coreos.com/node-public-ip", NodePublicIPv6: "flannel.alpha.coreos.com/node-public-ipv6",
		PublicIPOverwrite: "flannel.alpha.coreos.com/public-ip-overwrite", PublicIPv6Overwrite: "flannel.alpha.coreos.com/public-ipv6-overwrite",
	}
	if a != want {
		t.Errorf("default annotations\n got %+v\nwant %+v", a, want)
	}
}

func TestPodCIDR(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec corev1.NodeSpec
		want string // "" = ErrNoPodCIDR
	}{
		{"podCIDR only", corev1.NodeSpec{PodCIDR: "10.5.1.0/24"}, "10.5.1.0/24"},
		{"podCIDRs wins", corev1.NodeSpec{PodCIDR: "10.5.1.0/24", PodCIDRs: []string{"10.5.2.0/24"}}, "10.5.2.0/24"},
		{"dual stack, v6 first", corev1.NodeSpec{PodCIDRs: []string{"fd00:1::/64", "10.5.3.0/24"}}, "10.5.3.0/24"},
		{"host bits masked", corev1.NodeSpec{PodCIDR: "10.5.4.7/24"}, "10.5.4.0/24"},
		{"none", corev1.NodeSpec{}, ""},
		{"v6 only", corev1.NodeSpec{PodCIDRs: []string{"fd00:1::/64"}}, ""},
		{"three", corev1.NodeSpec{PodCIDRs: []string{"10.5.1.0/24", "10.5.2.0/24", "fd00::/64"}}, ""},
		{"garbage", corev1.NodeSpec{PodCIDR: "10.5.1.0"}, ""},
	} {
		got, err := PodCIDR(tc.spec)
		if tc.want == "" {
			if !errors.Is(err, ErrNoPodCIDR) {
				t.Errorf("%s: PodCIDR = %v, %v; want ErrNoPodCIDR", tc.name, got, err)
			}
			continue
		}
		if err != nil || got != netip.MustParsePrefix(tc.want) {
			t.Errorf("%s: PodCIDR = %v, %v; want %s", tc.name, got, err, tc.want)
		}
	}
}

const vtep = `{"VNI":1,"VtepMAC":"0e:1c:2a:3b:4c:5d"}`

func node(name, cidr string, ann map[string]string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}, Spec: corev1.NodeSpec{PodCIDR: cidr}}
}

// stock is what stock flannel's vxlan backend writes on a node.
func stock(pub string) map[string]string {
	return map[string]string{
		"flannel.alpha.coreos.com/backend-data":        vtep,
		"flannel.alpha.coreos.com/backend-type":        "vxlan",
		"flannel.alpha.coreos.com/kube-subnet-manager": "true",
		"flannel.alpha.coreos.com/public-ip":           pub,
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	m = maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "-" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

func TestLease(t *testing.T) {
	a, _ := NewAnnotations(DefaultAnnotationPrefix)
	for _, tc := range []struct {
		name string
		n    *corev1.Node
		want error // nil: a lease of 10.5.1.0/24 from 192.168.100.11 with vtep
	}{
		{"stock node", node("n1", "10.5.1.0/24", stock("192.168.100.11")), nil},
		{"no annotations", node("n1", "10.5.1.0/24", nil), ErrNotManaged},
		{"managed=false", node("n1", "10.5.1.0/24", with(stock("192.168.100.11"), a.SubnetKubeManaged, "false")), ErrNotManaged},
		{"no pod CIDR", node("n1", "", stock("192.168.100.11")), ErrNoPodCIDR},
		{"no public ip", node("n1", "10.5.1.0/24", with(stock("x"), a.PublicIP, "-")), ErrBadAnnotation},
		{"v6 public ip", node("n1", "10.5.1.0/24", stock("fd00::1")), ErrBadAnnotation},
		{"backend data not JSON", node("n1", "10.5.1.0/24", with(stock("192.168.100.11"), a.BackendData, "{")), ErrBadAnnotation},
	} {
		l, err := a.Lease(tc.n)
		if tc.want != nil {
			if !errors.Is(err, tc.want) {
				t.Errorf("%s: Lease = %+v, %v; want %v", tc.name, l, err, tc.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		vx, err := l.VXLAN()
		if l.Subnet != netip.MustParsePrefix("10.5.1.0/24") || l.Attrs.PublicIP != netip.MustParseAddr("192.168.100.11") ||
			l.Attrs.BackendType != "vxlan" || string(l.Attrs.BackendData) != vtep || err != nil || vx.VNI != 1 || vx.VtepMAC.String() != "0e:1c:2a:3b:4c:5d" {
			t.Errorf("%s: Lease = %+v (vxlan %+v, %v)", tc.name, l, vx, err)
		}
	}
	// A "null" backend data (stock flannel's for a backend without data) is no data.
	l, err := a.Lease(node("n1", "10.5.1.0/24", with(stock("192.168.100.11"), a.BackendData, "null")))
	if err != nil || l.Attrs.BackendData != nil {
		t.Errorf("null backend data: %+v, %v", l, err)
	}
}

func TestPublish(t *testing.T) {
	a, _ := NewAnnotations(DefaultAnnotationPrefix)
	attrs := lease.Attrs{PublicIP: netip.MustParseAddr("192.168.100.11"), BackendType: "vxlan", BackendData: []byte(vtep)}
	for _, tc := range []struct {
		name    string
		current map[string]string
		changed bool
		pub     string
	}{
		{"fresh node", nil, true, "192.168.100.11"},
		{"as stock flannel left it", stock("192.168.100.11"), false, "192.168.100.11"},
		{"other labels kept out", with(stock("192.168.100.11"), "node.alpha.kubernetes.io/ttl", "0"), false, "192.168.100.11"},
		{"changed public ip", stock("192.168.100.99"), true, "192.168.100.11"},
		{"changed MAC", with(stock("192.168.100.11"), a.BackendData, `{"VNI":1,"VtepMAC":"0e:00:00:00:00:01"}`), true, "192.168.100.11"},
		{"managed removed", with(stock("192.168.100.11"), a.SubnetKubeManaged, "-"), true, "192.168.100.11"},
		{"overwrite", with(stock("192.168.100.11"), a.PublicIPOverwrite, "203.0.113.7"), true, "203.0.113.7"},
		{"overwrite in place", with(stock("203.0.113.7"), a.PublicIPOverwrite, "203.0.113.7"), false, "203.0.113.7"},
	} {
		want, changed := a.Publish(tc.current, attrs)
		if changed != tc.changed {
			t.Errorf("%s: changed = %v, want %v", tc.name, changed, tc.changed)
		}
		exp := with(stock(tc.pub))
		if !maps.Equal(want, exp) {
			t.Errorf("%s: annotations\n got %v\nwant %v", tc.name, want, exp)
		}
		// Publishing what Publish returned changes nothing: the loop is level-triggered.
		merged := maps.Clone(tc.current)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, want)
		if _, again := a.Publish(merged, attrs); again {
			t.Errorf("%s: publishing twice changes something", tc.name)
		}
		// What a host publishes reads back as its lease (with the overwrite as public IP).
		l, err := a.Lease(node("n", "10.5.1.0/24", merged))
		if err != nil || l.Attrs.PublicIP.String() != tc.pub || string(l.Attrs.BackendData) != vtep {
			t.Errorf("%s: read back %+v, %v", tc.name, l, err)
		}
	}
}

func TestOperatorPublicIP(t *testing.T) {
	a, _ := NewAnnotations(DefaultAnnotationPrefix)
	for _, tc := range []struct {
		value, want string
		bad         bool
	}{{"", "invalid IP", false}, {"192.168.100.50", "192.168.100.50", false}, {"fd00::1", "", true}, {"x", "", true}} {
		ip, err := a.OperatorPublicIP(node("n", "", map[string]string{a.NodePublicIP: tc.value}))
		if tc.bad {
			if !errors.Is(err, ErrBadAnnotation) {
				t.Errorf("%q: %v, %v; want ErrBadAnnotation", tc.value, ip, err)
			}
			continue
		}
		if err != nil || ip.String() != tc.want {
			t.Errorf("%q: %v, %v; want %s", tc.value, ip, err, tc.want)
		}
	}
}

// FuzzLease feeds annotation values from outside (anyone who can write Nodes) to Lease:
// it never panics, and a lease it accepts has an IPv4 pod CIDR, an IPv4 public IP and
// backend data that is valid JSON, so the reconciler gets nothing it cannot judge.
func FuzzLease(f *testing.F) {
	f.Add("true", "192.168.100.11", "vxlan", vtep, "10.5.1.0/24", "")
	f.Add("true", "192.168.100.11", "vxlan", "null", "10.5.1.0/24", "fd00::/64")
	f.Add("true", " 1.2.3.4", "host-gw", "{", "10.5.1.0/33", "")
	f.Add("false", "", "", "", "", "")
	a, _ := NewAnnotations(DefaultAnnotationPrefix)
	f.Fuzz(func(t *testing.T, managed, pub, typ, data, cidr, cidr2 string) {
		n := node("n", "", map[string]string{a.SubnetKubeManaged: managed, a.PublicIP: pub, a.BackendType: typ, a.BackendData: data})
		n.Spec.PodCIDRs = []string{cidr, cidr2}
		l, err := a.Lease(n)
		if err != nil {
			return
		}
		if !l.Subnet.Addr().Is4() || l.Subnet.Masked() != l.Subnet || !l.Attrs.PublicIP.Is4() {
			t.Fatalf("accepted %+v", l)
		}
		if l.Attrs.BackendData != nil && !json.Valid(l.Attrs.BackendData) {
			t.Fatalf("accepted backend data %q", l.Attrs.BackendData)
		}
		if want, _ := a.Publish(n.Annotations, l.Attrs); want[a.PublicIP] != l.Attrs.PublicIP.String() {
			t.Fatalf("publish of an accepted lease names %q", want[a.PublicIP])
		}
	})
}
