package updateconf

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLayering(t *testing.T) {
	dir := t.TempDir()
	usr, coreos, cairn := filepath.Join(dir, "usr"), filepath.Join(dir, "coreos"), filepath.Join(dir, "cairn")
	os.WriteFile(usr, []byte("GROUP=stable\nSERVER=https://img.example/v1/update/\n"), 0o644)
	os.WriteFile(coreos, []byte("# from a Container Linux machine\nGROUP=beta\nREBOOT_STRATEGY=etcd-lock\n"+
		"LOCKSMITHD_REBOOT_WINDOW_START=\"Thu 04:00\"\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h\nLOCKSMITHD_ENDPOINT=http://a:2379,http://b:2379\nDOWNLOAD_USER=ignored\n"), 0o644)
	os.WriteFile(cairn, []byte("export SERVER='http://127.0.0.1:8000/v1/update/'\n"), 0o644)
	c, err := Load([]string{usr, coreos, cairn, filepath.Join(dir, "missing")})
	if err != nil {
		t.Fatal(err)
	}
	if c.Group != "beta" || c.Server != "http://127.0.0.1:8000/v1/update/" || c.RebootStrategy != StrategyEtcdLock ||
		c.WindowStart != "Thu 04:00" || c.WindowLength != "1h" || len(c.EtcdEndpoints) != 2 || c.Raw["DOWNLOAD_USER"] != "ignored" {
		t.Fatalf("%+v", c)
	}
	// Cairn's report: rkt's pods, progress every 10 s, unless a file says otherwise.
	if strings.Join(c.PodsCommand, " ") != "rkt list --format=json" || c.ProgressInterval != 10*time.Second {
		t.Fatalf("report: %q %s", c.PodsCommand, c.ProgressInterval)
	}
	os.WriteFile(cairn, []byte("PODS_COMMAND=\nPROGRESS_INTERVAL=0\n"), 0o644)
	if c, err = Load([]string{usr, cairn}); err != nil || len(c.PodsCommand) != 0 || c.ProgressInterval != 0 {
		t.Fatalf("report turned off: %q %s %v", c.PodsCommand, c.ProgressInterval, err)
	}
}

func TestBestEffortAndErrors(t *testing.T) {
	c, err := FromMap(map[string]string{"SERVER": "x", "REBOOT_STRATEGY": "best-effort"})
	if err != nil || c.RebootStrategy != StrategyReboot {
		t.Fatalf("%v %v", c, err)
	}
	c, _ = FromMap(map[string]string{"SERVER": "x", "LOCKSMITHD_ENDPOINT": "http://e:2379"})
	if c.RebootStrategy != StrategyEtcdLock {
		t.Fatalf("best-effort with etcd: %s", c.RebootStrategy)
	}
	for _, bad := range []map[string]string{
		{"SERVER": "x", "REBOOT_STRATEGY": "sometimes"},
		{"SERVER": "x", "LOCKSMITHD_REBOOT_WINDOW_START": "04:00"},
		{"SERVER": "x", "LOCKSMITHD_REBOOT_WINDOW_START": "04:00", "LOCKSMITHD_REBOOT_WINDOW_LENGTH": "-1h"},
		{"SERVER": ""},
		{"SERVER": "x", "PROGRESS_INTERVAL": "100ms"},
		{"SERVER": "x", "PROGRESS_INTERVAL": "often"},
	} {
		if _, err := FromMap(bad); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
	for _, bad := range []string{"NOEQUALS\n", "=v\n", "9KEY=v\n", "KEY WITH SPACE=v\n"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse accepted %q", bad)
		}
	}
}

func TestKube(t *testing.T) {
	defaults := Kube{Kubeconfig: "/etc/kubernetes/locksmithd.conf", Namespace: "kube-system", Lease: "cairn-reboot", Max: 1,
		LeaseDuration: time.Hour, DrainTimeout: 15 * time.Minute, DrainRetry: time.Hour}
	for _, tc := range []struct {
		name string
		kv   map[string]string
		want Kube
		err  string
	}{
		{name: "defaults", kv: map[string]string{"REBOOT_STRATEGY": "kubernetes"}, want: defaults},
		{name: "set", kv: map[string]string{"REBOOT_STRATEGY": "kubernetes", "LOCKSMITHD_KUBECONFIG": "/k.conf", "LOCKSMITHD_KUBE_NAMESPACE": "ops",
			"LOCKSMITHD_KUBE_LEASE": "reboot", "LOCKSMITHD_KUBE_MAX": "3", "LOCKSMITHD_KUBE_LEASE_DURATION": "2h",
			"LOCKSMITHD_KUBE_DRAIN_TIMEOUT": "5m", "LOCKSMITHD_KUBE_DRAIN_RETRY": "30m"},
			want: Kube{Kubeconfig: "/k.conf", Namespace: "ops", Lease: "reboot", Max: 3, LeaseDuration: 2 * time.Hour,
				DrainTimeout: 5 * time.Minute, DrainRetry: 30 * time.Minute}},
		{name: "empty is the default", kv: map[string]string{"LOCKSMITHD_KUBE_MAX": "", "LOCKSMITHD_KUBE_NAMESPACE": " "}, want: defaults},
		{name: "max 0", kv: map[string]string{"LOCKSMITHD_KUBE_MAX": "0"}, err: "LOCKSMITHD_KUBE_MAX"},
		{name: "max word", kv: map[string]string{"LOCKSMITHD_KUBE_MAX": "two"}, err: "LOCKSMITHD_KUBE_MAX"},
		{name: "drain timeout", kv: map[string]string{"LOCKSMITHD_KUBE_DRAIN_TIMEOUT": "soon"}, err: "LOCKSMITHD_KUBE_DRAIN_TIMEOUT"},
		{name: "lease duration", kv: map[string]string{"LOCKSMITHD_KUBE_LEASE_DURATION": "10ms"}, err: "LOCKSMITHD_KUBE_LEASE_DURATION"},
		{name: "retry", kv: map[string]string{"LOCKSMITHD_KUBE_DRAIN_RETRY": "-1h"}, err: "LOCKSMITHD_KUBE_DRAIN_RETRY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kv := map[string]string{"SERVER": "x"}
			maps.Copy(kv, tc.kv)
			c, err := FromMap(kv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil || c.Kube != tc.want {
				t.Fatalf("%+v %v, want %+v", c.Kube, err, tc.want)
			}
		})
	}
	// Only an explicit REBOOT_STRATEGY picks kubernetes: best-effort never does.
	if c, _ := FromMap(map[string]string{"SERVER": "x"}); c.RebootStrategy != StrategyReboot {
		t.Fatalf("best-effort: %s", c.RebootStrategy)
	}
}

func TestSchedule(t *testing.T) {
	s := DefaultSchedule
	cases := []struct {
		first    bool
		failures int
		r        float64
		want     time.Duration
	}{
		{true, 0, 0.5, 7 * time.Minute},
		{false, 0, 0.5, 45 * time.Minute},
		{false, 0, 0, 40 * time.Minute},
		{false, 0, 0.999999, 50 * time.Minute},
		{false, 1, 0.5, 90 * time.Minute},
		{false, 2, 0.5, 180 * time.Minute},
		{false, 3, 0.5, 4 * time.Hour},
		{false, 60, 0.5, 4 * time.Hour},
	}
	for _, c := range cases {
		got := s.Delay(c.first, c.failures, c.r).Round(time.Second)
		if got != c.want {
			t.Errorf("Delay(%v, %d, %v) = %v, want %v", c.first, c.failures, c.r, got, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("GROUP=stable\n# c\nexport SERVER='http://x/'\n"))
	f.Add([]byte("A=\"unterminated\n=\n\x00=1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		kv, err := Parse(b)
		if err != nil {
			return
		}
		for k := range kv {
			if !validKey(k) {
				t.Fatalf("invalid key %q accepted", k)
			}
		}
	})
}
