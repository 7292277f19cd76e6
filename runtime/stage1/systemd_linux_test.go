package stage1_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/internal/testenv/sdguest"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/store"
)

// bootSystemd boots a systemd guest (internal/testenv/sdguest) on the machine's cgroup v1
// hybrid layout, with rktBin and the rkt-fetch beside it in its /usr/local/bin, as installed.
func bootSystemd(t *testing.T, rktBin string) *sdguest.Guest {
	t.Helper()
	return sdguest.Boot(t, sdguest.Options{Name: "cairn-pods-sd", Files: rktFiles(rktBin)})
}

// rktFiles is rkt and the full binary it executes to fetch, for a guest's /usr/local/bin.
func rktFiles(rktBin string) map[string]string {
	files := map[string]string{}
	for _, name := range []string{"rkt", "rkt-fetch"} {
		files["/usr/local/bin/"+name] = filepath.Join(filepath.Dir(rktBin), name)
	}
	return files
}

// importFixture imports the busybox fixture ACI (app /bin/true, run as root) into the guest's
// /var/lib/rkt, for units to run with --exec.
func importFixture(t *testing.T, g *sdguest.Guest) {
	t.Helper()
	st, err := store.Open(filepath.Join(g.Root, "var/lib/rkt"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := fixture.WriteACI(&buf, fixture.ACIOptions{Name: fixture.ACIName,
		App: &types.App{Exec: types.Exec{"/bin/true"}, User: "0", Group: "0"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ImportACI(context.Background(), &buf, store.ImportOptions{Name: fixture.ACIName, Trusted: true}); err != nil {
		t.Fatal(err)
	}
}

func TestSystemdUnit(t *testing.T) {
	rkt := rktBinary(t)
	testenv.RequireFile(t, fixture.BusyboxPath)
	g := bootSystemd(t, rkt)

	importFixture(t, g)
	app := `echo hello-journal; trap "echo got-term; exit 0" TERM; while :; do sleep 0.1; done`
	unit := "[Unit]\nDescription=pod\n[Service]\nType=notify\nKillMode=mixed\nTimeoutStopSec=20\n" +
		"ExecStart=/usr/local/bin/rkt --debug run --pull-policy=never --net=none --uuid-file-save=/run/pod.uuid " +
		fixture.ACIName + " --exec=/bin/sh -- -c '" + app + "'\n"
	if err := os.WriteFile(filepath.Join(g.Root, "etc/systemd/system/pod.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	g.Must("systemctl", "daemon-reload")
	// Type=notify: start returns only once rkt run has sent READY=1.
	if out, err := g.Exec("timeout", "30", "systemctl", "start", "pod.service"); err != nil {
		j, _ := g.Exec("journalctl", "-u", "pod.service", "--no-pager")
		t.Fatalf("start: %v %s\n%s", err, out, j)
	}
	uuid := strings.TrimSpace(g.Must("cat", "/run/pod.uuid"))
	if !strings.Contains(g.Must("rkt", "status", uuid), "state=running") {
		t.Fatal("pod not running after the unit started")
	}

	// The pod's processes are in the unit's cgroup, under its own rkt-<uuid> cgroup.
	cg := g.Must("systemctl", "show", "-p", "ControlGroup", "--value", "pod.service")
	procs := g.Must("sh", "-c", "for p in $(cat /sys/fs/cgroup/systemd"+strings.TrimSpace(cg)+"/rkt-"+uuid+"/busybox/cgroup.procs); do cat /proc/$p/comm 2>/dev/null; done; true") // short-lived children may exit between the two reads
	if !strings.Contains(procs, "sh") {
		t.Errorf("no app process in the unit's pod cgroup: %q", procs)
	}

	// machined knows the pod.
	if out, err := g.Exec("machinectl", "show", "rkt-"+uuid); err != nil || !strings.Contains(out, "Class=container") || !strings.Contains(out, "Unit=pod.service") {
		j, _ := g.Exec("journalctl", "--no-pager", "-o", "short", "-n", "30")
		t.Errorf("machinectl show rkt-%s: %v\n%s\n%s", uuid, err, out, j)
	}

	// SIGTERM to rkt run (KillMode=mixed) stops the pod cleanly: the app sees SIGTERM, the
	// unit ends inactive, not failed, and nothing is left in its cgroup.
	g.Must("timeout", "30", "systemctl", "stop", "pod.service")
	state, _ := g.Exec("systemctl", "is-failed", "pod.service")
	if strings.TrimSpace(state) != "inactive" {
		t.Errorf("unit after stop: %q, want inactive", state)
	}
	journal := g.Must("journalctl", "-u", "pod.service", "--no-pager", "-o", "cat")
	if !strings.Contains(journal, "hello-journal") || !strings.Contains(journal, "got-term") {
		all, _ := g.Exec("journalctl", "--no-pager", "-o", "verbose", "-n", "30")
		t.Errorf("app output not in the unit's journal:\n%s\nwhole journal:\n%s", journal, all)
	}
	st2 := g.Must("rkt", "status", uuid)
	if !strings.Contains(st2, "state=exited") || !strings.Contains(st2, "app-busybox=0") {
		t.Errorf("status after stop:\n%s", st2)
	}
	if out, _ := g.Exec("sh", "-c", "ls /sys/fs/cgroup/*"+strings.TrimSpace(cg)+" 2>/dev/null | grep rkt-"); strings.TrimSpace(out) != "" {
		t.Errorf("pod cgroups left in the unit's cgroup: %s", out)
	}
}
