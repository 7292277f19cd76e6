package flanneld

import (
	"errors"
	"io"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	env := map[string]string{"FLANNELD_ETCD_PREFIX": "/from/env", "FLANNELD_IP_MASQ": "true", "FLANNELD_IFACE": "eth9"}
	o, err := ParseFlags([]string{"-etcd-endpoints", "http://a:2379, http://b:2379", "--iface", "eth0", "-iface", "10.0.0.1",
		"-subnet-lease-renew-margin", "30", "-public-ip", "192.0.2.1"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.EtcdEndpoints) != 2 || o.EtcdEndpoints[1] != "http://b:2379" || o.EtcdPrefix != "/from/env" || !o.IPMasq ||
		len(o.Iface) != 2 || o.Iface[1] != "10.0.0.1" || o.RenewMargin != 30*time.Minute || o.PublicIP.String() != "192.0.2.1" ||
		o.SubnetFile != "/run/flannel/subnet.env" || o.LeaseTTL != 24*time.Hour {
		t.Fatalf("options = %+v", o)
	}
	for _, bad := range [][]string{{"-subnet-lease-renew-margin", "0"}, {"-subnet-lease-renew-margin", "1440"}, {"-public-ip", "x"},
		{"-iface-regex", "("}, {"-nope"}, {"extra"}, {"-etcd-certfile", "c"}, {"-reconcile-interval", "1m"}, {"-iface-can-reach", "nohost"},
		{"-kube-subnet-mgr", "-kube-annotation-prefix", "a/b/c"}, {"-kube-subnet-mgr", "-kube-annotation-prefix", "NoDots"}} {
		if _, err := ParseFlags(bad, nil, io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("ParseFlags(%q) err = %v", bad, err)
		}
	}
	if _, err := ParseFlags(nil, func(k string) string {
		if k == "FLANNELD_HEALTHZ_PORT" {
			return "many"
		}
		return ""
	}, io.Discard); !errors.Is(err, ErrUsage) {
		t.Errorf("bad env accepted: %v", err)
	}
}

// Flags and FLANNELD_* variables into Options: a flag given on the command line wins over
// its variable, a variable fills a flag not given, and the rest keeps stock flannel's defaults.
func TestParseFlagsOptions(t *testing.T) {
	defaults := func(edit func(o *Options)) Options {
		o := Options{EtcdPrefix: "/coreos.com/network", SubnetFile: "/run/flannel/subnet.env", RenewMargin: time.Hour,
			HealthzIP: "0.0.0.0", LeaseTTL: 24 * time.Hour, DataDir: "/var/lib/flannel", ReconcileInterval: 10 * time.Second,
			LogLevel: "info", KubeAnnotationPrefix: "flannel.alpha.coreos.com", NetConfigPath: "/etc/kube-flannel/net-conf.json",
			SetNodeNetworkUnavailable: true}
		if edit != nil {
			edit(&o)
		}
		return o
	}
	cases := []struct {
		name  string
		args  []string
		env   map[string]string
		want  Options
		regex []string // want IfaceRegex, as written
	}{
		{name: "defaults", want: defaults(nil)},
		{name: "every flag", args: []string{"-etcd-endpoints", "https://a:2379,https://b:2379", "-etcd-prefix", "/p",
			"-etcd-cafile", "ca.pem", "-etcd-certfile", "c.pem", "-etcd-keyfile", "k.pem", "-etcd-username", "u", "-etcd-password", "pw",
			"-iface", "eth0", "-iface-regex", "^en", "-iface-can-reach", "10.0.0.1", "-public-ip", "192.0.2.7", "-ip-masq",
			"-subnet-file", "/run/s.env", "-subnet-lease-renew-margin", "5", "-healthz-ip", "127.0.0.1", "-healthz-port", "8471",
			"-version", "-subnet-lease-ttl", "30s", "-data-dir", "/d", "-reconcile-interval", "2s", "-log-level", "debug",
			"-kube-subnet-mgr", "-kube-api-url", "https://api:6443", "-kubeconfig-file", "/k", "-kube-annotation-prefix", "example.com/net",
			"-net-config-path", "/n.json", "-set-node-network-unavailable=false"},
			want: Options{EtcdEndpoints: []string{"https://a:2379", "https://b:2379"}, EtcdPrefix: "/p", EtcdCAFile: "ca.pem",
				EtcdCertFile: "c.pem", EtcdKeyFile: "k.pem", EtcdUsername: "u", EtcdPassword: "pw", Iface: []string{"eth0"},
				IfaceCanReach: netip.MustParseAddr("10.0.0.1"), PublicIP: netip.MustParseAddr("192.0.2.7"), IPMasq: true,
				SubnetFile: "/run/s.env", RenewMargin: 5 * time.Minute, HealthzIP: "127.0.0.1", HealthzPort: 8471, Version: true,
				LeaseTTL: 30 * time.Second, DataDir: "/d", ReconcileInterval: 2 * time.Second, LogLevel: "debug",
				KubeSubnetMgr: true, KubeAPIURL: "https://api:6443", KubeconfigFile: "/k", KubeAnnotationPrefix: "example.com/net",
				NetConfigPath: "/n.json"},
			regex: []string{"^en"}},
		{name: "every variable", env: map[string]string{"FLANNELD_ETCD_ENDPOINTS": "http://e:2379", "FLANNELD_ETCD_PREFIX": "/env",
			"FLANNELD_ETCD_CAFILE": "ca", "FLANNELD_ETCD_CERTFILE": "c", "FLANNELD_ETCD_KEYFILE": "k", "FLANNELD_ETCD_USERNAME": "u",
			"FLANNELD_ETCD_PASSWORD": "p", "FLANNELD_IFACE": "eth1", "FLANNELD_IFACE_REGEX": "^wl", "FLANNELD_IFACE_CAN_REACH": "fd00::1",
			"FLANNELD_PUBLIC_IP": "192.0.2.8", "FLANNELD_IP_MASQ": "true", "FLANNELD_SUBNET_FILE": "/s", "FLANNELD_SUBNET_LEASE_RENEW_MARGIN": "1439",
			"FLANNELD_HEALTHZ_IP": "::", "FLANNELD_HEALTHZ_PORT": "1", "FLANNELD_VERSION": "1", "FLANNELD_SUBNET_LEASE_TTL": "2s",
			"FLANNELD_DATA_DIR": "/dd", "FLANNELD_RECONCILE_INTERVAL": "10s", "FLANNELD_LOG_LEVEL": "warn",
			"FLANNELD_KUBE_SUBNET_MGR": "true", "FLANNELD_KUBE_API_URL": "https://k:6443", "FLANNELD_KUBECONFIG_FILE": "/kc",
			"FLANNELD_KUBE_ANNOTATION_PREFIX": "example.org", "FLANNELD_NET_CONFIG_PATH": "/nc", "FLANNELD_SET_NODE_NETWORK_UNAVAILABLE": "false"},
			want: Options{EtcdEndpoints: []string{"http://e:2379"}, EtcdPrefix: "/env", EtcdCAFile: "ca", EtcdCertFile: "c",
				EtcdKeyFile: "k", EtcdUsername: "u", EtcdPassword: "p", Iface: []string{"eth1"},
				IfaceCanReach: netip.MustParseAddr("fd00::1"), PublicIP: netip.MustParseAddr("192.0.2.8"), IPMasq: true,
				SubnetFile: "/s", RenewMargin: 1439 * time.Minute, HealthzIP: "::", HealthzPort: 1, Version: true,
				LeaseTTL: 2 * time.Second, DataDir: "/dd", ReconcileInterval: 10 * time.Second, LogLevel: "warn",
				KubeSubnetMgr: true, KubeAPIURL: "https://k:6443", KubeconfigFile: "/kc", KubeAnnotationPrefix: "example.org",
				NetConfigPath: "/nc"},
			regex: []string{"^wl"}},
		{name: "flag wins over its variable", args: []string{"-etcd-prefix", "/flag", "-iface", "eth0", "-iface", "eth2", "-ip-masq=false"},
			env: map[string]string{"FLANNELD_ETCD_PREFIX": "/env", "FLANNELD_IFACE": "eth9", "FLANNELD_IP_MASQ": "true", "FLANNELD_LOG_LEVEL": "error"},
			want: defaults(func(o *Options) {
				o.EtcdPrefix, o.Iface, o.LogLevel = "/flag", []string{"eth0", "eth2"}, "error"
			})},
		{name: "last of a repeated flag, endpoints trimmed", args: []string{"-etcd-endpoints", "x", "-etcd-endpoints", " http://a:1 ,, http://b:2 ",
			"-iface-regex", "a", "-iface-regex", "b"},
			want:  defaults(func(o *Options) { o.EtcdEndpoints = []string{"http://a:1", "http://b:2"} }),
			regex: []string{"a", "b"}},
		{name: "empty variable is not set", env: map[string]string{"FLANNELD_ETCD_PREFIX": "", "FLANNELD_SUBNET_LEASE_RENEW_MARGIN": ""},
			want: defaults(nil)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, err := ParseFlags(c.args, func(k string) string { return c.env[k] }, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			var regex []string
			for _, re := range o.IfaceRegex {
				regex = append(regex, re.String())
			}
			if !slices.Equal(regex, c.regex) {
				t.Errorf("IfaceRegex = %q, want %q", regex, c.regex)
			}
			got := *o
			got.IfaceRegex = nil
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("options\n got %+v\nwant %+v", got, c.want)
			}
		})
	}
}
