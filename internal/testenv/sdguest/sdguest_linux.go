// Package sdguest boots systemd as PID 1 in namespaces on a copy of a small Debian, for tests
// of units under a real systemd on a machine whose own PID 1 is not systemd.
package sdguest

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	imgrootfs "github.com/cairn-os/cairn/image/rootfs"
	"github.com/cairn-os/cairn/internal/testenv"
)

var (
	//go:embed systemd-in-namespace.sh
	hybridRecipe []byte
	//go:embed systemd-in-namespace-cgroup2.sh
	cgroup2Recipe []byte
)

// cacheDir is where the Debian the guests boot is kept between runs ($CAIRN_CACHE or
// /var/cache/cairn-pods).
func cacheDir() string {
	if d := os.Getenv("CAIRN_CACHE"); d != "" {
		return d
	}
	return "/var/cache/cairn-pods"
}

// rootfs is a small Debian with systemd, dbus and machined, built once by image/rootfs (the
// image builder's mmdebstrap, with the machine's own apt sources) into cacheDir and reused
// (read-only: every boot copies it). A lock keeps test packages that boot guests at once
// from building it twice.
func rootfs(t testenv.TB) string {
	t.Helper()
	sources := aptSources()
	testenv.Require(t, sources != "", "needs the machine's apt sources (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list)")
	spec := imgrootfs.Spec{Suite: "bookworm", Sources: sources, Packages: []string{"systemd", "systemd-sysv", "dbus", "systemd-container"},
		DebCache: filepath.Join(cacheDir(), "debs")}
	key, err := spec.Key()
	if err != nil {
		t.Fatal(err)
	}
	if dir := filepath.Join(cacheDir(), "rootfs", key); exists(filepath.Join(dir, "lib/systemd/systemd")) {
		return dir
	}
	testenv.RequireCommand(t, "mmdebstrap")
	testenv.SkipShort(t, "building the systemd rootfs takes minutes")
	if err := os.MkdirAll(cacheDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(cacheDir(), ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	dir, _, err := imgrootfs.Build(t.Context(), spec, cacheDir(), io.Discard)
	if err != nil {
		t.Fatalf("systemd rootfs: %v", err)
	}
	return dir
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// aptSources returns the machine's apt sources file, which mmdebstrap takes as its mirror.
func aptSources() string {
	for _, p := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
			return p
		}
	}
	return ""
}

// Options says how to boot a guest.
type Options struct {
	// Cgroup2 boots the guest on cgroup v2 alone (a cgroup2 mount of a sub-cgroup of the
	// machine's unified hierarchy, in a cgroup namespace), as in a Cairn host; otherwise it
	// gets the machine's v1 hierarchies and the unified one, each confined to a sub-cgroup.
	Cgroup2 bool
	// Name names the guest's sub-cgroups (a unique suffix is added).
	Name string
	// NetNS is a network namespace (a path such as /var/run/netns/NAME) to boot the guest in;
	// empty, it shares the test's.
	NetNS string
	// Files are copied into the guest before it boots: guest path to host path, mode kept.
	Files map[string]string
	// Links are symbolic links made in the guest before it boots (guest path to target), such
	// as a unit's enablement in a target's .wants directory.
	Links map[string]string
	// Booting returns as soon as systemd answers, while the boot may still be waiting for
	// units (is-system-running says starting); otherwise Boot waits for running or degraded.
	Booting bool
}

// Guest is systemd booted as PID 1 in namespaces, on a copy of the cached Debian.
type Guest struct {
	T    testenv.TB
	Root string // the guest's root, on the host
	Pid  int    // systemd's pid on the host
}

// Boot starts a guest and waits until systemd says it is running (or degraded). The guest,
// and what it left in the cgroups, are removed when the test ends.
func Boot(t testenv.TB, o Options) *Guest {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "nsenter")
	testenv.RequireCommand(t, "unshare")
	name := o.Name
	if name == "" {
		name = "sdguest"
	}
	if o.NetNS != "" {
		if _, err := os.Stat(o.NetNS); err != nil {
			t.Fatalf("guest network namespace: %v", err)
		}
	}
	sub := fmt.Sprintf("%s-%d", name, time.Now().UnixNano())
	recipe, cleanup := hybridRecipe, func() { removeSandboxCgroups(t, sub) }
	if o.Cgroup2 {
		u, ok := unifiedHierarchy()
		testenv.Require(t, ok, "needs a cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
		own, _ := os.ReadFile("/proc/self/cgroup")
		cur := "/"
		for l := range strings.SplitSeq(string(own), "\n") {
			if p, ok := strings.CutPrefix(l, "0::"); ok {
				cur = p
			}
		}
		recipe, cleanup = cgroup2Recipe, func() { testenv.RemoveCgroupTree(t, filepath.Join(u, cur, sub)) }
	} else {
		_, err := os.Stat("/sys/fs/cgroup/systemd/cgroup.procs")
		testenv.Require(t, err == nil, "needs the cgroup v1 hybrid layout (a name=systemd hierarchy at /sys/fs/cgroup/systemd)")
	}
	cached := rootfs(t)
	work := t.TempDir()
	root := filepath.Join(work, "root")
	// A copy, not an overlay: pods' own overlays in the guest need a real upper filesystem.
	if out, err := exec.Command("cp", "-a", cached, root).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v %s", err, out)
	}
	if err := install(root, o.Files, o.Links); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(work, "boot.sh")
	if err := os.WriteFile(script, recipe, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"bash", script, root}
	if o.NetNS != "" {
		args = append([]string{"nsenter", "--net=" + o.NetNS, "--"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "SUB="+sub)
	logf, err := os.Create(filepath.Join(work, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	g := &Guest{T: t, Root: root}
	t.Cleanup(func() {
		cmd.Process.Kill() // unshare --kill-child takes systemd and the guest with it
		<-exited
		logf.Close()
		cleanup()
	})
	console := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("the guest's boot script exited: %v\n%s", cmd.ProcessState, console())
		default:
		}
		if g.Pid == 0 {
			g.Pid = systemdChild(cmd.Process.Pid)
		} else {
			out, _ := g.Exec("systemctl", "is-system-running")
			if s := strings.TrimSpace(out); s == "running" || s == "degraded" || o.Booting && s == "starting" {
				return g
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd not running after 30 s (pid %d):\n%s", g.Pid, console())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// install copies files (guest path to host path) into the guest's root, never through a
// symbolic link that leaves it, with the host files' modes, makes links (guest path to
// target), and masks the units a guest in namespaces has no use for or that would change the
// machine's own settings (sysctls such as kernel.pid_max are not all per namespace).
func install(root string, files, links map[string]string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	for dst, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		fi, err := os.Stat(src)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(filepath.Clean(dst), "/")
		if err := r.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
			return err
		}
		if err := r.WriteFile(rel, b, fi.Mode().Perm()); err != nil {
			return err
		}
		if err := r.Chmod(rel, fi.Mode().Perm()); err != nil {
			return err
		}
	}
	links = maps.Clone(links)
	if links == nil {
		links = map[string]string{}
	}
	// No consoles to serve in a namespace, no clock to set, and no machine-wide settings.
	for _, u := range []string{"console-getty.service", "getty@.service", "getty.target", "systemd-timesyncd.service",
		"systemd-sysctl.service", "systemd-binfmt.service"} {
		links[filepath.Join("/etc/systemd/system", u)] = "/dev/null"
	}
	for p, target := range links {
		rel := strings.TrimPrefix(filepath.Clean(p), "/")
		if err := r.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
			return err
		}
		if err := r.Remove(rel); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := r.Symlink(target, rel); err != nil {
			return err
		}
	}
	return nil
}

// systemdChild returns the pid of the systemd that is a child of pid (the boot script's
// process: nsenter, bash and unshare each exec in its place, and unshare forks systemd), or 0.
func systemdChild(pid int) int {
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for f := range strings.FieldsSeq(string(kids)) {
		kid, _ := strconv.Atoi(f)
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", kid)); strings.HasSuffix(exe, "/systemd") {
			return kid
		}
	}
	return 0
}

// Exec runs a command inside the guest, in all of systemd's namespaces.
func (g *Guest) Exec(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(g.Pid), "-m", "-u", "-i", "-p", "-C", "-n", "-r", "-w", "--"}, args...)...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Must is Exec that fails the test on an error.
func (g *Guest) Must(args ...string) string {
	g.T.Helper()
	out, err := g.Exec(args...)
	if err != nil {
		g.T.Fatalf("guest %v: %v\n%s", args, err, out)
	}
	return out
}

// unifiedHierarchy is where this machine mounts its cgroup2 hierarchy: /sys/fs/cgroup on a v2
// host, /sys/fs/cgroup/unified on a hybrid one.
func unifiedHierarchy() (string, bool) {
	for _, d := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(d, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return d, true
		}
	}
	return "", false
}

// removeSandboxCgroups removes the hybrid recipe's delegated sub-cgroup, in every hierarchy,
// and what systemd made in it.
func removeSandboxCgroups(t testenv.TB, sub string) {
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
		testenv.RemoveCgroupTree(t, filepath.Join("/sys/fs/cgroup", h, parts[2], sub))
	}
}
