package flanneld

import (
	"errors"
	"io"
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
		{"-iface-regex", "("}, {"-nope"}, {"extra"}, {"-etcd-certfile", "c"}, {"-reconcile-interval", "1m"}, {"-iface-can-reach", "nohost"}} {
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
