package mount

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/testenv"
)

func TestCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Mount
		want []call
	}{
		{"new mount", Mount{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
			[]call{{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"}}},
		{"bind", Mount{"/a", "/b", "", unix.MS_BIND | unix.MS_REC, ""},
			[]call{{"/a", "/b", "", unix.MS_BIND | unix.MS_REC, ""}}},
		{"read-only bind takes a remount", Mount{"/a", "/b", "", unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID, ""},
			[]call{
				{"/a", "/b", "", unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID, ""},
				{"", "/b", "", unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY | unix.MS_NOSUID, ""},
			}},
		{"remount of a bind is one call", Mount{"", "/b", "", unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY, ""},
			[]call{{"", "/b", "", unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY, ""}}},
		{"propagation only", Mount{"", "/", "", unix.MS_REC | unix.MS_PRIVATE, ""},
			[]call{{"", "/", "", unix.MS_REC | unix.MS_PRIVATE, ""}}},
		{"propagation only, source ignored", Mount{"none", "/", "", unix.MS_SLAVE, ""},
			[]call{{"", "/", "", unix.MS_SLAVE, ""}}},
		{"mount, then its propagation", Mount{"tmpfs", "/t", "tmpfs", unix.MS_SHARED, "size=1m"},
			[]call{{"tmpfs", "/t", "tmpfs", 0, "size=1m"}, {"", "/t", "", unix.MS_SHARED, ""}}},
		{"recursive bind made private", Mount{"/a", "/b", "", unix.MS_BIND | unix.MS_REC | unix.MS_PRIVATE, ""},
			[]call{{"/a", "/b", "", unix.MS_BIND | unix.MS_REC, ""}, {"", "/b", "", unix.MS_PRIVATE | unix.MS_REC, ""}}},
		{"move", Mount{"/run/cairn/usr", "/sysroot/usr", "", unix.MS_MOVE, ""},
			[]call{{"/run/cairn/usr", "/sysroot/usr", "", unix.MS_MOVE, ""}}},
		{"nothing to say is still passed on", Mount{"x", "/y", "", 0, ""},
			[]call{{"x", "/y", "", 0, ""}}},
	} {
		if got := tc.m.calls(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

func TestCallWhat(t *testing.T) {
	for _, tc := range []struct {
		c    call
		want string
	}{
		{call{"proc", "/proc", "proc", unix.MS_NOSUID, ""}, "mount proc on /proc (proc)"},
		{call{"/a", "/b", "", unix.MS_BIND | unix.MS_REC, ""}, "bind /a to /b"},
		{call{"", "/b", "", unix.MS_REMOUNT | unix.MS_BIND | unix.MS_RDONLY, ""}, "remount /b"},
		{call{"/proc", "/sysroot/proc", "", unix.MS_MOVE, ""}, "move /proc to /sysroot/proc"},
		{call{"", "/", "", unix.MS_REC | unix.MS_PRIVATE, ""}, "set propagation of /"},
	} {
		if got := tc.c.what(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.c, got, tc.want)
		}
	}
}

// table is a mount table as the kernel writes it: escapes in paths, optional fields, a bind
// of a subdirectory.
const table = `22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
27 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 27 0:40 / /var/lib/rkt/pods/run/a/apps/x/rootfs rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
31 27 0:4 net:[4026532301] /var/lib/rkt/pods/run/a/ns/net rw - nsfs nsfs rw
32 27 8:1 /srv/my\040data /var/lib/rkt/pods/run/a/vol\040ume rw,relatime shared:1 master:3 - ext4 /dev/sda1 rw
33 27 0:41 / /var/lib/rkt/pods/run/ab rw - tmpfs tmpfs rw
`

func TestTable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	all, err := Table(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 {
		t.Fatalf("%d entries, want 6", len(all))
	}
	vol := all[4]
	if vol.Mountpoint != "/var/lib/rkt/pods/run/a/vol ume" || vol.Root != "/srv/my data" || vol.Major != 8 || vol.Minor != 1 ||
		vol.Optional != "shared:1 master:3" || vol.FSType != "ext4" || vol.Source != "/dev/sda1" {
		t.Errorf("escaped bind: %+v", vol)
	}
	under, err := Table(p, Inside("/var/lib/rkt/pods/run/a"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/var/lib/rkt/pods/run/a/vol ume", "/var/lib/rkt/pods/run/a/ns/net", "/var/lib/rkt/pods/run/a/apps/x/rootfs"}
	if got := unmountOrder(under); !reflect.DeepEqual(got, want) {
		t.Errorf("inside the pod, last first: %q, want %q", got, want)
	}
	one, err := Table(p, mountinfo.SingleEntryFilter("/proc"))
	if err != nil || len(one) != 1 || one[0].FSType != "proc" || one[0].Options != "rw,nosuid,nodev,noexec,relatime" {
		t.Errorf("/proc alone: %+v %v", one, err)
	}
	os.WriteFile(p, []byte("22 27 0:21 / /proc\n"), 0o644)
	if _, err := Table(p, nil); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("a truncated line: %v", err)
	}
	if _, err := Table(filepath.Join(t.TempDir(), "none"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing table: %v", err)
	}
}

// TestApply mounts in a mount namespace of its own (TestApplyInPrivateHost), so that nothing
// it does reaches the machine's table.
func TestApply(t *testing.T) {
	testenv.InPrivateHost(t, "TestApplyInPrivateHost", "CAIRN_MOUNT_PRIVATE_HOST=1")
}

func TestApplyInPrivateHost(t *testing.T) {
	if os.Getenv("CAIRN_MOUNT_PRIVATE_HOST") == "" {
		t.Skip("run by TestApply in a private mount namespace")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // before TempDir's removal, which cannot remove mount points
		if err := UnmountBeneath(dir); err != nil {
			t.Error(err)
		}
	})
	entry := func(target string) *mountinfo.Info {
		t.Helper()
		mi, err := Table("", mountinfo.SingleEntryFilter(target))
		if err != nil {
			t.Fatal(err)
		}
		if len(mi) != 1 {
			t.Fatalf("%s: %d entries in the table, want 1", target, len(mi))
		}
		return mi[0]
	}

	// A new mount, its target made on the way.
	tmp := Mount{Source: "tmpfs", Target: filepath.Join(dir, "tmp", "fs"), FSType: "tmpfs",
		Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "size=1m,mode=0711"}
	if err := tmp.Apply(); err != nil {
		t.Fatal(err)
	}
	e := entry(tmp.Target)
	if e.FSType != "tmpfs" || !hasOpt(e.Options, "nosuid") || !hasOpt(e.Options, "nodev") ||
		!hasOpt(e.VFSOptions, "size=1024k") || !hasOpt(e.VFSOptions, "mode=711") {
		t.Errorf("tmpfs: %+v", e)
	}
	if err := os.WriteFile(filepath.Join(tmp.Target, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	// A read-only bind: the bind, then the remount that makes it read-only. The space in the
	// name is \040 in the table.
	ro := Mount{Source: tmp.Target, Target: filepath.Join(dir, "read only"), Flags: unix.MS_BIND | unix.MS_RDONLY}
	if err := ro.Apply(); err != nil {
		t.Fatal(err)
	}
	e = entry(ro.Target)
	if e.FSType != "tmpfs" || !hasOpt(e.Options, "ro") {
		t.Errorf("read-only bind: %+v", e)
	}
	if b, err := os.ReadFile(filepath.Join(ro.Target, "f")); err != nil || string(b) != "x" {
		t.Errorf("through the bind: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(ro.Target, "g"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write through a read-only bind: %v", err)
	}

	// Propagation, changed on its own and back.
	if err := (Mount{Target: tmp.Target, Flags: unix.MS_SHARED}).Apply(); err != nil {
		t.Fatal(err)
	}
	if e = entry(tmp.Target); !strings.HasPrefix(e.Optional, "shared:") {
		t.Errorf("shared: optional fields %q", e.Optional)
	}
	if err := (Mount{Target: tmp.Target, Flags: unix.MS_PRIVATE}).Apply(); err != nil {
		t.Fatal(err)
	}
	if e = entry(tmp.Target); e.Optional != "" {
		t.Errorf("private: optional fields %q", e.Optional)
	}

	// A move, as early boot moves /usr into the new root.
	moved := Mount{Source: ro.Target, Target: filepath.Join(dir, "moved"), Flags: unix.MS_MOVE}
	if err := moved.Apply(); err != nil {
		t.Fatal(err)
	}
	if mi, _ := Table("", mountinfo.SingleEntryFilter(ro.Target)); len(mi) != 0 {
		t.Errorf("%s still mounted after the move", ro.Target)
	}
	entry(moved.Target)

	// Errors name the mount and keep the errno.
	bad := Mount{Source: "x", Target: filepath.Join(dir, "bad"), FSType: "no-such-fs"}
	if err := bad.Apply(); !errors.Is(err, unix.ENODEV) || !strings.Contains(err.Error(), bad.Target) {
		t.Errorf("unknown filesystem type: %v", err)
	}

	// What is inside dir, last mounted first, and taking it apart.
	got, err := Beneath(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{moved.Target, tmp.Target}; !reflect.DeepEqual(got, want) {
		t.Errorf("Beneath: %q, want %q", got, want)
	}
	if err := UnmountBeneath(dir, tmp.Target); err != nil {
		t.Fatal(err)
	}
	if got, _ := Beneath(dir); !reflect.DeepEqual(got, []string{tmp.Target}) {
		t.Errorf("after UnmountBeneath keeping %s: %q", tmp.Target, got)
	}
	if err := tmp.Unmount(0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tmp.Target, filepath.Join(dir, "none")} {
		if err := Unmount(p, 0); err != nil {
			t.Errorf("unmount %s, not mounted: %v", p, err)
		}
	}
	if err := UnmountBeneath(filepath.Join(dir, "none")); err != nil {
		t.Errorf("UnmountBeneath of a missing dir: %v", err)
	}
}

func hasOpt(opts, o string) bool { return slices.Contains(strings.Split(opts, ","), o) }
