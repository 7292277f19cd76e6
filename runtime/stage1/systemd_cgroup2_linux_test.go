package stage1_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/internal/testenv/sdguest"
	"github.com/cairn-os/cairn/runtime/fixture"
)

// bootSystemdCgroup2 is bootSystemd on cgroup v2 alone: the guest's /sys/fs/cgroup is a
// cgroup2 mount of a sub-cgroup of the machine's unified hierarchy, in a cgroup namespace.
func bootSystemdCgroup2(t *testing.T, rktBin string) *sdguest.Guest {
	t.Helper()
	g := sdguest.Boot(t, sdguest.Options{Name: "cairn-pods-sd2", Cgroup2: true, Files: rktFiles(rktBin)})
	if fs := g.Must("stat", "-fc", "%T", "/sys/fs/cgroup"); strings.TrimSpace(fs) != "cgroup2fs" {
		t.Fatalf("guest /sys/fs/cgroup is %s, want cgroup2fs", fs)
	}
	return g
}

// TestSystemdUnitCgroup2 is TestSystemdUnit on cgroup v2 alone, as in a Cairn guest: for a
// Delegate=yes unit running `rkt run`, rkt moves into <unit>/rkt-<uuid>-stage1 and the pod is
// in <unit>/rkt-<uuid>, so the unit's journal has the app's output, stopping the unit stops
// the pod, and a rkt run killed with SIGKILL leaves no process behind the unit.
func TestSystemdUnitCgroup2(t *testing.T) {
	rkt := rktBinary(t)
	testenv.RequireFile(t, fixture.BusyboxPath)
	g := bootSystemdCgroup2(t, rkt)

	importFixture(t, g)
	writeUnit := func(name, stopTimeout string) {
		app := `echo hello-journal; cat /proc/self/cgroup; trap "echo got-term; exit 0" TERM; while :; do sleep 0.1; done`
		unit := "[Unit]\nDescription=pod\n[Service]\nType=notify\nKillMode=mixed\nDelegate=yes\nTimeoutStopSec=" + stopTimeout + "\n" +
			"ExecStart=/usr/local/bin/rkt --debug run --pull-policy=never --net=none --uuid-file-save=/run/" + name + ".uuid " +
			fixture.ACIName + " --exec=/bin/sh -- -c '" + app + "'\n"
		if err := os.WriteFile(filepath.Join(g.Root, "etc/systemd/system", name+".service"), []byte(unit), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeUnit("pod", "20")
	writeUnit("pod2", "3")
	g.Must("systemctl", "daemon-reload")
	start := func(name string) (uuid, cg string) {
		if out, err := g.Exec("timeout", "30", "systemctl", "start", name+".service"); err != nil {
			j, _ := g.Exec("journalctl", "-u", name+".service", "--no-pager")
			t.Fatalf("start %s: %v %s\n%s", name, err, out, j)
		}
		uuid = strings.TrimSpace(g.Must("cat", "/run/"+name+".uuid"))
		cg = strings.TrimSpace(g.Must("systemctl", "show", "-p", "ControlGroup", "--value", name+".service"))
		return uuid, cg
	}

	uuid, cg := start("pod")
	// rkt run is in its leaf, the app in the pod's cgroup beside it, both in the unit's
	// cgroup, which has no process of its own left.
	mainPID := strings.TrimSpace(g.Must("systemctl", "show", "-p", "MainPID", "--value", "pod.service"))
	if got, want := strings.TrimSpace(g.Must("grep", "^0::", "/proc/"+mainPID+"/cgroup")), "0::"+cg+"/rkt-"+uuid+"-stage1"; got != want {
		t.Errorf("rkt run's cgroup %q, want %q", got, want)
	}
	if procs := strings.TrimSpace(g.Must("cat", "/sys/fs/cgroup"+cg+"/cgroup.procs")); procs != "" {
		t.Errorf("processes in the unit's own cgroup: %q", procs)
	}
	procs := g.Must("sh", "-c", "for p in $(cat /sys/fs/cgroup"+cg+"/rkt-"+uuid+"/busybox/cgroup.procs); do cat /proc/$p/comm 2>/dev/null; done; true")
	if !strings.Contains(procs, "sh") {
		t.Errorf("no app process in the unit's pod cgroup: %q", procs)
	}
	if out, err := g.Exec("machinectl", "show", "rkt-"+uuid); err != nil || !strings.Contains(out, "Unit=pod.service") {
		t.Errorf("machinectl show rkt-%s: %v\n%s", uuid, err, out)
	}

	g.Must("timeout", "30", "systemctl", "stop", "pod.service")
	if state, _ := g.Exec("systemctl", "is-failed", "pod.service"); strings.TrimSpace(state) != "inactive" {
		t.Errorf("unit after stop: %q, want inactive", state)
	}
	journal := g.Must("journalctl", "-u", "pod.service", "--no-pager", "-o", "cat")
	for _, want := range []string{"hello-journal", "0::" + cg + "/rkt-" + uuid + "/busybox", "got-term"} {
		if !strings.Contains(journal, want) {
			all, _ := g.Exec("journalctl", "--no-pager", "-o", "verbose", "-n", "40")
			t.Errorf("%q not in the unit's journal:\n%s\nwhole journal:\n%s", want, journal, all)
		}
	}
	if strings.Contains(journal, "placed beside") {
		t.Errorf("rkt run fell back:\n%s", journal)
	}
	if st := g.Must("rkt", "status", uuid); !strings.Contains(st, "state=exited") || !strings.Contains(st, "app-busybox=0") {
		t.Errorf("status after stop:\n%s", st)
	}
	if out, _ := g.Exec("sh", "-c", "ls /sys/fs/cgroup"+cg+" 2>/dev/null | grep rkt-"); strings.TrimSpace(out) != "" {
		t.Errorf("pod cgroups left in the unit's cgroup: %s", out)
	}

	// rkt run killed with SIGKILL: the unit's stop reaches the pod's processes, and gc
	// removes what is left (mounts, cgroups).
	uuid2, cg2 := start("pod2")
	g.Must("systemctl", "kill", "--kill-who=main", "--signal=KILL", "pod2.service")
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, _ := g.Exec("systemctl", "is-active", "pod2.service")
		if s := strings.TrimSpace(s); s == "inactive" || s == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod2.service still %q 20 s after rkt run was killed", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if left, _ := g.Exec("sh", "-c", "grep -l rkt-"+uuid2+" /proc/[0-9]*/cgroup"); strings.TrimSpace(left) != "" {
		t.Errorf("pod processes outlived their unit: %s", left)
	}
	g.Must("rkt", "gc", "--grace-period=0s")
	g.Must("rkt", "gc", "--grace-period=0s")
	if out, _ := g.Exec("sh", "-c", "grep "+uuid2+" /proc/self/mountinfo; ls /sys/fs/cgroup"+cg2+" 2>/dev/null | grep rkt-"); strings.TrimSpace(out) != "" {
		t.Errorf("left after gc: %s", out)
	}
}
