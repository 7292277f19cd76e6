package stage1

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/testenv"
)

// A block another pod holds, in any phase, is drawn again.
func TestNewPrivateUsersSkipsTakenBlocks(t *testing.T) {
	pods := t.TempDir()
	for ph, shift := range map[string]uint32{"run": 3 << 16, "exited-garbage": 5 << 16} {
		d := filepath.Join(pods, ph, "pod-"+ph)
		os.MkdirAll(d, 0o700)
		o := &Options{PrivateUsers: &PrivateUsers{Shift: shift, Count: UIDRangeSize}}
		if err := o.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	draws := []uint32{3 << 16, 5 << 16, 7 << 16}
	defer func(old func() uint32) { drawShift = old }(drawShift)
	drawShift = func() uint32 { d := draws[0]; draws = draws[1:]; return d }
	u, err := NewPrivateUsers(pods)
	if err != nil || u.Shift != 7<<16 {
		t.Fatalf("got %+v, %v; want the first free block, %d", u, err, 7<<16)
	}
}

// --no-overlay's shifted copy: a file with two names is moved once (not on to nobody by its
// second name), and set-ID bits and file capabilities survive the chown.
func TestShiftTree(t *testing.T) {
	testenv.RequireRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	suid := filepath.Join(bin, "su")
	ping := filepath.Join(bin, "ping")
	for _, err := range []error{
		os.MkdirAll(bin, 0o755),
		os.WriteFile(suid, []byte("x"), 0o755),
		os.Chown(suid, 0, 5),
		unix.Chmod(suid, 0o4755),
		os.Link(suid, filepath.Join(bin, "su2")),
		os.WriteFile(ping, []byte("y"), 0o755),
		os.Symlink("su", filepath.Join(bin, "link")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// cap_net_raw=ep, as setcap writes it (VFS_CAP_REVISION_2).
	capNetRaw := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	testenv.Require(t, unix.Lsetxattr(ping, "security.capability", capNetRaw, 0) == nil, "this file system keeps no file capabilities")

	u := &PrivateUsers{Shift: 9 << 16, Count: UIDRangeSize}
	if err := u.shiftTree(dir); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		uid, gid uint32
		mode     uint32
	}{
		{"bin", 9 << 16, 9 << 16, 0o755},
		{"bin/su", 9 << 16, 9<<16 + 5, 0o4755},
		{"bin/su2", 9 << 16, 9<<16 + 5, 0o4755},
		{"bin/ping", 9 << 16, 9 << 16, 0o755},
	} {
		fi, err := os.Lstat(filepath.Join(dir, c.name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != c.uid || st.Gid != c.gid || st.Mode&0o7777 != c.mode {
			t.Errorf("%s: %d:%d %o, want %d:%d %o", c.name, st.Uid, st.Gid, st.Mode&0o7777, c.uid, c.gid, c.mode)
		}
	}
	if fi, err := os.Lstat(filepath.Join(bin, "link")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 9<<16 {
		t.Error("the symlink itself was not moved")
	}
	got := make([]byte, 64)
	n, err := unix.Lgetxattr(ping, "security.capability", got)
	if err != nil || string(got[:n]) != string(capNetRaw) {
		t.Fatalf("file capabilities after the shift: %x, %v", got[:max(n, 0)], err)
	}
}
