//go:build linux

package clustertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv/sdguest"
)

// The unit the OS image installs for flanneld.
const flanneldUnit = "../../image/build/files/flanneld.service" // relative to the package, where go test runs

// TestFlanneldUnit runs flanneld as a Cairn host does: under systemd on cgroup v2 (a guest
// booted in a cluster host's network namespace), from the unit file the image ships, enabled
// as the image enables it, with its options in /etc/cairn/flanneld.env. A host that boots
// before its etcd answers keeps the unit starting, not failed, and its boot waiting for it,
// until etcd is back; then the unit is active, the subnet written and the boot done. A
// flanneld killed with SIGKILL is started again by systemd after the unit's restart delay.
func TestFlanneldUnit(t *testing.T) {
	t.Parallel()
	c := newCluster(t, netDoc)
	h := c.AddHost()
	c.StopEtcd()

	env := filepath.Join(t.TempDir(), "flanneld.env")
	opts := fmt.Sprintf("FLANNELD_OPTS=-etcd-endpoints %s -iface eth0\n", c.EtcdURL)
	if err := os.WriteFile(env, []byte(opts), 0o644); err != nil {
		t.Fatal(err)
	}
	g := sdguest.Boot(t, sdguest.Options{Name: "cairn-flanneld-sd", Cgroup2: true, NetNS: "/var/run/netns/" + h.NS, Booting: true,
		Files: map[string]string{
			"/usr/bin/flanneld":                        c.Flanneld,
			"/usr/lib/systemd/system/flanneld.service": flanneldUnit,
			"/etc/cairn/flanneld.env":                  env,
		},
		// As the image enables it ([Install] WantedBy=multi-user.target).
		Links: map[string]string{"/etc/systemd/system/multi-user.target.wants/flanneld.service": "/usr/lib/systemd/system/flanneld.service"},
	})
	state := func() map[string]string {
		props := map[string]string{}
		out := g.Must("systemctl", "show", "-p", "ActiveState,SubState,NRestarts,MainPID,Result", "flanneld.service")
		for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				props[k] = v
			}
		}
		return props
	}
	journal := func() string {
		out, _ := g.Exec("journalctl", "-u", "flanneld.service", "--no-pager", "-o", "cat")
		return out
	}
	t.Cleanup(func() { // before the guest, and its journal, are gone
		if t.Failed() {
			t.Logf("flanneld.service's journal:\n%s", tail(journal(), 40))
		}
	})
	waitState := func(what string, ok func(map[string]string) bool) map[string]string {
		t.Helper()
		var last map[string]string
		Eventually(t, 60*time.Second, what, func() error {
			if last = state(); !ok(last) {
				return fmt.Errorf("flanneld.service %v", last)
			}
			return nil
		})
		return last
	}

	// etcd down: flanneld retries, the unit waits for it (Type=notify) without failing, and
	// the boot waits for the unit (a target is ordered after what it wants).
	Eventually(t, 30*time.Second, "flanneld retrying etcd, in the unit's journal", func() error {
		if !strings.Contains(journal(), "etcd unreachable; retrying") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if s := state(); s["ActiveState"] != "activating" || s["SubState"] != "start" || s["NRestarts"] != "0" {
		t.Fatalf("with etcd down, flanneld.service is %v, want activating (start) and never restarted", s)
	}
	if out, _ := g.Exec("systemctl", "is-active", "multi-user.target"); strings.TrimSpace(out) != "inactive" { // exit status 3
		t.Fatalf("with flanneld starting, multi-user.target is %s, want inactive (its start waiting)", strings.TrimSpace(out))
	}
	if jobs := g.Must("systemctl", "list-jobs", "--no-legend"); !strings.Contains(jobs, "multi-user.target") || !strings.Contains(jobs, "flanneld.service") {
		t.Fatalf("with flanneld starting, the boot's jobs:\n%s", jobs)
	}
	// Container Linux's start timeout, not systemd's 90 s, as systemd read it from the unit.
	if got := strings.TrimSpace(g.Must("systemctl", "show", "-p", "TimeoutStartUSec", "--value", "flanneld.service")); got != "5min" {
		t.Fatalf("flanneld.service TimeoutStartUSec=%s, want 5min", got)
	}

	// etcd back: ready, with the lease written where the CNI plugin reads it.
	c.StartEtcd()
	first := waitState("flanneld.service active after etcd came back", func(s map[string]string) bool {
		return s["ActiveState"] == "active" && s["SubState"] == "running" && s["NRestarts"] == "0"
	})
	if e := g.Must("cat", "/run/flannel/subnet.env"); !strings.Contains(e, "FLANNEL_NETWORK=10.5.0.0/16") {
		t.Fatalf("subnet.env:\n%s", e)
	}
	Eventually(t, 30*time.Second, "the boot done once flanneld is ready", func() error {
		if out, _ := g.Exec("systemctl", "is-active", "multi-user.target"); strings.TrimSpace(out) != "active" {
			return fmt.Errorf("multi-user.target %s", strings.TrimSpace(out))
		}
		return nil
	})

	// SIGKILL: systemd waits out RestartSec (auto-restart), then starts flanneld again.
	g.Must("systemctl", "kill", "--kill-whom=main", "--signal=SIGKILL", "flanneld.service")
	waitState("flanneld.service waiting to restart after SIGKILL", func(s map[string]string) bool {
		return s["SubState"] == "auto-restart"
	})
	again := waitState("flanneld.service active again", func(s map[string]string) bool {
		return s["ActiveState"] == "active" && s["SubState"] == "running" && s["NRestarts"] == "1"
	})
	if again["MainPID"] == first["MainPID"] {
		t.Fatalf("flanneld.service active with the killed process's pid %s", first["MainPID"])
	}
}
