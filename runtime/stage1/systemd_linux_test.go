package stage1_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/store"
)

// The recipe that boots systemd as PID 1 in namespaces (see MACHINE.md).
const systemdRecipe = "testdata/systemd-in-namespace.sh" // relative to the package, where go test runs

func cacheDir() string {
	if d := os.Getenv("CAIRN_CACHE"); d != "" {
		return d
	}
	return "/var/cache/cairn-pods"
}

// systemdRootfs is a minimal Debian with systemd, dbus and machined, built once with
// mmdebstrap into the cache and reused (read-only: every boot overlays it).
func systemdRootfs(t *testing.T) string {
	t.Helper()
	root := filepath.Join(cacheDir(), "systemd-rootfs")
	if _, err := os.Stat(filepath.Join(root, "lib/systemd/systemd")); err == nil {
		return root
	}
	testenv.RequireCommand(t, "mmdebstrap")
	sources := aptSources()
	testenv.Require(t, sources != "", "needs the machine's apt sources (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list)")
	testenv.SkipShort(t, "building the systemd rootfs takes minutes")
	lock, err := os.OpenFile(filepath.Join(cacheDir(), ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		os.MkdirAll(cacheDir(), 0o755)
		if lock, err = os.OpenFile(filepath.Join(cacheDir(), ".lock"), os.O_CREATE|os.O_RDWR, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defer lock.Close()
	unix.Flock(int(lock.Fd()), unix.LOCK_EX)
	if _, err := os.Stat(filepath.Join(root, "lib/systemd/systemd")); err == nil {
		return root
	}
	tmp := root + ".tmp"
	os.RemoveAll(tmp)
	// Packages come through the machine's own apt configuration, as for the OS image.
	cmd := exec.Command("mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory",
		"--include=systemd,systemd-sysv,dbus,systemd-container", "bookworm", tmp, sources)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	// No consoles to serve in a namespace.
	for _, u := range []string{"console-getty.service", "getty@.service", "getty.target", "systemd-timesyncd.service"} {
		os.Symlink("/dev/null", filepath.Join(tmp, "etc/systemd/system", u))
	}
	if err := os.Rename(tmp, root); err != nil {
		t.Fatal(err)
	}
	return root
}

// aptSources returns the machine's apt sources file, which mmdebstrap takes as its mirror.
func aptSources() string {
	for _, p := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
			return p
		}
	}
	return ""
}

// guest is systemd booted as PID 1 in namespaces, on a copy of the cached rootfs.
type guest struct {
	t    *testing.T
	root string // the overlay the guest runs on
	pid  int    // systemd's pid on the host
}

func bootSystemd(t *testing.T, rktBin string) *guest {
	t.Helper()
	testenv.RequireFile(t, systemdRecipe)
	sub := fmt.Sprintf("cairn-pods-sd-%d", time.Now().UnixNano())
	return startSystemd(t, rktBin, systemdRecipe, sub, func() { removeSandboxCgroups(t, sub) })
}

// startSystemd boots systemd as PID 1 with recipe on a copy of the cached Debian rootfs that
// carries rktBin, in cgroup SUB=sub; cleanup removes what the guest left in the cgroups.
func startSystemd(t *testing.T, rktBin, recipe, sub string, cleanup func()) *guest {
	t.Helper()
	testenv.RequireCommand(t, "nsenter")
	cached := systemdRootfs(t)
	work := t.TempDir()
	root := filepath.Join(work, "root")
	// A copy, not an overlay: the pods' own overlays need a real upper filesystem.
	if out, err := exec.Command("cp", "-a", cached, root).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v %s", err, out)
	}
	// rkt and the full binary it executes to fetch, side by side as installed.
	for _, name := range []string{"rkt", "rkt-fetch"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(rktBin), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "usr/local/bin", name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("bash", recipe, root)
	cmd.Env = append(os.Environ(), "SUB="+sub)
	logf, _ := os.Create(filepath.Join(work, "console.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	g := &guest{t: t, root: root}
	t.Cleanup(func() {
		cmd.Process.Kill() // unshare --kill-child takes systemd and the guest with it
		cmd.Wait()
		logf.Close()
		cleanup()
	})
	deadline := time.Now().Add(30 * time.Second)
	for g.pid == 0 {
		if time.Now().After(deadline) {
			con, _ := os.ReadFile(logf.Name())
			t.Fatalf("systemd did not start:\n%s", con)
		}
		time.Sleep(50 * time.Millisecond)
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		for f := range strings.FieldsSeq(string(kids)) {
			pid, _ := strconv.Atoi(f)
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); strings.HasSuffix(exe, "/systemd") {
				g.pid = pid
			}
		}
	}
	for {
		out, _ := g.exec("systemctl", "is-system-running")
		if s := strings.TrimSpace(out); s == "running" || s == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			con, _ := os.ReadFile(logf.Name())
			t.Fatalf("systemd not running: %q\n%s", out, con)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return g
}

// exec runs a command inside the guest, in all of systemd's namespaces.
func (g *guest) exec(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(g.pid), "-m", "-u", "-i", "-p", "-C", "-r", "-w", "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (g *guest) must(args ...string) string {
	g.t.Helper()
	out, err := g.exec(args...)
	if err != nil {
		g.t.Fatalf("guest %v: %v\n%s", args, err, out)
	}
	return out
}

// removeSandboxCgroups removes the recipe's delegated sub-cgroup and what systemd made in it.
func removeSandboxCgroups(t *testing.T, sub string) {
	own, _ := os.ReadFile("/proc/self/cgroup")
	for line := range strings.SplitSeq(strings.TrimSpace(string(own)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		h := strings.TrimPrefix(strings.Split(parts[1], ",")[0], "name=")
		if parts[1] == "" {
			h = "unified"
		}
		dir := filepath.Join("/sys/fs/cgroup", h, parts[2], sub)
		removeCgroupTree(t, dir)
	}
}

// removeCgroupTree removes a cgroup and everything below it, deepest first, waiting for each
// to empty; what cannot be removed is a test error (a leak).
func removeCgroupTree(t *testing.T, dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for _, dir := range slices.Backward(dirs) {
		for try := 0; ; try++ {
			err := unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				break
			}
			if busy := errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST); !busy || try == 99 {
				t.Errorf("cgroup left: %s: %v", dir, err)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// importFixture imports the busybox fixture ACI (app /bin/true, run as root) into the guest's
// /var/lib/rkt, for units to run with --exec.
func importFixture(t *testing.T, g *guest) {
	t.Helper()
	st, err := store.Open(filepath.Join(g.root, "var/lib/rkt"))
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
	if err := os.WriteFile(filepath.Join(g.root, "etc/systemd/system/pod.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	g.must("systemctl", "daemon-reload")
	// Type=notify: start returns only once rkt run has sent READY=1.
	if out, err := g.exec("timeout", "30", "systemctl", "start", "pod.service"); err != nil {
		j, _ := g.exec("journalctl", "-u", "pod.service", "--no-pager")
		t.Fatalf("start: %v %s\n%s", err, out, j)
	}
	uuid := strings.TrimSpace(g.must("cat", "/run/pod.uuid"))
	if !strings.Contains(g.must("rkt", "status", uuid), "state=running") {
		t.Fatal("pod not running after the unit started")
	}

	// The pod's processes are in the unit's cgroup, under its own rkt-<uuid> cgroup.
	cg := g.must("systemctl", "show", "-p", "ControlGroup", "--value", "pod.service")
	procs := g.must("sh", "-c", "for p in $(cat /sys/fs/cgroup/systemd"+strings.TrimSpace(cg)+"/rkt-"+uuid+"/busybox/cgroup.procs); do cat /proc/$p/comm 2>/dev/null; done; true") // short-lived children may exit between the two reads
	if !strings.Contains(procs, "sh") {
		t.Errorf("no app process in the unit's pod cgroup: %q", procs)
	}

	// machined knows the pod.
	if out, err := g.exec("machinectl", "show", "rkt-"+uuid); err != nil || !strings.Contains(out, "Class=container") || !strings.Contains(out, "Unit=pod.service") {
		j, _ := g.exec("journalctl", "--no-pager", "-o", "short", "-n", "30")
		t.Errorf("machinectl show rkt-%s: %v\n%s\n%s", uuid, err, out, j)
	}

	// SIGTERM to rkt run (KillMode=mixed) stops the pod cleanly: the app sees SIGTERM, the
	// unit ends inactive, not failed, and nothing is left in its cgroup.
	g.must("timeout", "30", "systemctl", "stop", "pod.service")
	state, _ := g.exec("systemctl", "is-failed", "pod.service")
	if strings.TrimSpace(state) != "inactive" {
		t.Errorf("unit after stop: %q, want inactive", state)
	}
	journal := g.must("journalctl", "-u", "pod.service", "--no-pager", "-o", "cat")
	if !strings.Contains(journal, "hello-journal") || !strings.Contains(journal, "got-term") {
		all, _ := g.exec("journalctl", "--no-pager", "-o", "verbose", "-n", "30")
		t.Errorf("app output not in the unit's journal:\n%s\nwhole journal:\n%s", journal, all)
	}
	st2 := g.must("rkt", "status", uuid)
	if !strings.Contains(st2, "state=exited") || !strings.Contains(st2, "app-busybox=0") {
		t.Errorf("status after stop:\n%s", st2)
	}
	if out, _ := g.exec("sh", "-c", "ls /sys/fs/cgroup/*"+strings.TrimSpace(cg)+" 2>/dev/null | grep rkt-"); strings.TrimSpace(out) != "" {
		t.Errorf("pod cgroups left in the unit's cgroup: %s", out)
	}
}
