package stage1_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cairn-os/cairn/runtime/stage1"
)

// --private-users: the pod's root is root in its own user namespace and an unprivileged range
// of host IDs outside it; its files are its own through idmapped layers (overlay) or a shifted
// copy (--no-overlay), with the store untouched; what it writes is owned by its range.
func TestPrivateUsers(t *testing.T) {
	for _, overlay := range []bool{true, false} {
		t.Run(fmt.Sprintf("overlay=%v", overlay), func(t *testing.T) {
			e := newEnv(t)
			host := t.TempDir()
			os.WriteFile(filepath.Join(host, "secret"), []byte("host root only\n"), 0o600)
			flags := []string{"--net=none", "--private-users", "--volume=scratch,kind=empty", "--volume=data,kind=host,source=" + host}
			if !overlay {
				flags = append(flags, "--no-overlay")
			}
			uf := filepath.Join(t.TempDir(), "uuid")
			script := "read -r in out n </proc/self/uid_map; echo map $in $out $n; echo uid $(id -u); " +
				"echo owner $(stat -c %u /bin/busybox); echo x >/newfile && echo wrote; echo s >/scratch/s && echo scratch; " +
				"cat /data/secret 2>/dev/null || echo secret-refused; ls /sys/class/net"
			r := e.run(append(append([]string{"run", "--uuid-file-save=" + uf}, flags...), e.aci, "--mount=volume=scratch,target=/scratch", "--exec=/bin/sh", "--", "-c", script)...)
			if r.code != 0 {
				t.Fatalf("code %d out %q err %q", r.code, r.out, r.err)
			}
			var shift, count uint64
			if _, err := fmt.Sscanf(r.out, "map 0 %d %d\n", &shift, &count); err != nil || shift == 0 || shift%65536 != 0 || count != 65536 {
				t.Fatalf("uid_map in the pod: %q (%v)", r.out, err)
			}
			want := fmt.Sprintf("map 0 %d 65536\nuid 0\nowner 0\nwrote\nscratch\nsecret-refused\nlo\n", shift)
			if r.out != want {
				t.Fatalf("pod saw\n%s\nwant\n%s", r.out, want)
			}
			uuid, _ := os.ReadFile(uf)
			podDir := filepath.Join(e.dir, "pods", "run", strings.TrimSpace(string(uuid)))
			// On the host, what the pod wrote belongs to its range, and the store is untouched.
			written := filepath.Join(podDir, "apps", "busybox", "upper", "newfile")
			if !overlay {
				written = filepath.Join(podDir, "apps", "busybox", "rootfs", "newfile")
			}
			if uid := ownerOf(t, written); uid != uint32(shift) {
				t.Fatalf("%s is owned by %d on the host, want %d", written, uid, shift)
			}
			if uid := ownerOf(t, filepath.Join(podDir, "volumes", "scratch", "s")); uid != uint32(shift) {
				t.Fatalf("the empty volume's file is owned by %d on the host, want %d", uid, shift)
			}
			var opts stage1.Options
			b, _ := os.ReadFile(filepath.Join(podDir, stage1.OptionsFile))
			if err := json.Unmarshal(b, &opts); err != nil || opts.PrivateUsers == nil || opts.PrivateUsers.Shift != uint32(shift) {
				t.Fatalf("pod options %s: %v", b, err)
			}
			for _, l := range opts.Apps[0].Layers {
				if uid := ownerOf(t, filepath.Join(l, "bin", "busybox")); uid != 0 {
					t.Fatalf("the store's %s/bin/busybox is owned by %d: the layer was changed", l, uid)
				}
			}
			if _, err := os.Stat(filepath.Join(stage1.UsernsRootDir, strings.TrimSpace(string(uuid)))); !os.IsNotExist(err) {
				t.Fatalf("the pod's path under %s is still there: %v", stage1.UsernsRootDir, err)
			}
			if left := e.podLeftovers(); len(left) > 0 {
				t.Fatalf("left on the host: %v", left)
			}
		})
	}
	// The app runs as the range's IDs on the host; rkt enter joins its user namespace.
	e := newEnv(t)
	uuid, wait := e.start("--net=none", "--private-users", e.aci, "--exec=/bin/sleep", "--", "31337")
	r := e.run("enter", uuid, "/bin/sh", "-c", "cat /proc/self/uid_map; id -u")
	f := strings.Fields(r.out)
	if r.code != 0 || len(f) != 4 || f[0] != "0" || f[2] != "65536" || f[3] != "0" {
		t.Fatalf("rkt enter: code %d out %q err %q", r.code, r.out, r.err)
	}
	shift, _ := strconv.Atoi(f[1])
	uid := sleeperUID(t, "31337")
	if uid != shift {
		t.Fatalf("the app runs as host uid %d, want %d", uid, shift)
	}
	// A killed rkt run leaves the roots' path under UsernsRootDir to gc, which removes it.
	if err := syscall.Kill(int(e.status(uuid)["pid"].(float64)), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wait() // the app runs on, orphaned, until gc
	if _, err := os.Stat(filepath.Join(stage1.UsernsRootDir, uuid)); err != nil {
		t.Fatalf("a killed pod's path under %s is gone before gc: %v", stage1.UsernsRootDir, err)
	}
	if r := e.run("gc", "--grace-period=0s"); r.code != 0 {
		t.Fatalf("gc: %d %s", r.code, r.err)
	}
	if _, err := os.Stat(filepath.Join(stage1.UsernsRootDir, uuid)); !os.IsNotExist(err) {
		t.Fatalf("gc left the pod's path under %s: %v", stage1.UsernsRootDir, err)
	}
	if left := e.podLeftovers(); len(left) > 0 {
		t.Fatalf("left after gc: %v", left)
	}
}

func ownerOf(t *testing.T, path string) uint32 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Uid
}

// sleeperUID is the host uid of the process running `sleep arg`.
func sleeperUID(t *testing.T, arg string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if string(b) != "/bin/sleep\x00"+arg+"\x00" {
			continue
		}
		f, err := os.Open(filepath.Join(filepath.Dir(p), "status"))
		if err != nil {
			continue
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if rest, ok := strings.CutPrefix(s.Text(), "Uid:"); ok {
				uid, _ := strconv.Atoi(strings.Fields(rest)[0])
				return uid
			}
		}
	}
	t.Fatalf("no process runs sleep %s", arg)
	return 0
}

func TestPrivateUsersRange(t *testing.T) {
	dir := t.TempDir()
	for range 1000 {
		u, err := stage1.NewPrivateUsers(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Validate(); err != nil {
			t.Fatalf("random range %+v: %v", u, err)
		}
	}
	// Ranges from a pod's options on disk that could map a pod's IDs onto the host's own, or
	// wrap around.
	for _, u := range []stage1.PrivateUsers{
		{Shift: 0, Count: 65536}, {Shift: 1, Count: 65536}, {Shift: 1000, Count: 65536}, {Shift: 65536 + 4096, Count: 65536},
		{Shift: 65536, Count: 0}, {Shift: 65536, Count: 1000}, {Shift: 65536, Count: 1 << 20},
		{Shift: 1 << 31, Count: 65536}, {Shift: 0xffff0000, Count: 65536},
	} {
		if err := u.Validate(); err == nil {
			t.Errorf("range %+v accepted", u)
		}
	}
}
