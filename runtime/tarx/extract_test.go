package tarx

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
	"golang.org/x/sys/unix"
)

type ent struct {
	name, link string
	typ        byte
	mode       int64
	body       string
	uid        int
	major      int64
	pax        map[string]string
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, mode: 0o644, body: body} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: to, mode: 0o777}
}
func hardlink(name, to string) ent { return ent{name: name, typ: tar.TypeLink, link: to} }

func mkTar(t testing.TB, es ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.uid,
			Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0), Devmajor: e.major, PAXRecords: e.pax}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("entry %s: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// sandbox is a root to extract into, beside an "outside" directory with one file in it, so
// that a test can check that nothing beyond the root was touched.
type sandbox struct{ parent, root, outside string }

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	p := t.TempDir()
	sb := sandbox{parent: p, root: filepath.Join(p, "root"), outside: filepath.Join(p, "outside")}
	for _, d := range []string{sb.root, sb.outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(sb.outside, "secret"), []byte("secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return sb
}

// untouched fails the test if anything beside root changed.
func (sb sandbox) untouched(t testing.TB) {
	t.Helper()
	ents, _ := os.ReadDir(sb.parent)
	if len(ents) != 2 {
		var ns []string
		for _, e := range ents {
			ns = append(ns, e.Name())
		}
		t.Fatalf("entries beside the root: %v", ns)
	}
	ents, _ = os.ReadDir(sb.outside)
	b, err := os.ReadFile(filepath.Join(sb.outside, "secret"))
	if len(ents) != 1 || err != nil || string(b) != "secret\n" {
		t.Fatalf("outside changed: %d entries, secret %q %v", len(ents), b, err)
	}
}

func TestHostileArchives(t *testing.T) {
	outside := "../outside"
	for _, tc := range []struct {
		name    string
		entries func(sb sandbox) []ent
		want    error
		inMsg   string
	}{
		{"dotdot", func(sandbox) []ent { return []ent{file("../outside/pwned", "x")} }, ErrUnsafe, `"../outside/pwned": unsafe tar entry: path contains ".."`},
		{"dotdot inside", func(sandbox) []ent { return []ent{file("a/../../outside/pwned", "x")} }, ErrUnsafe, "contains"},
		{"absolute", func(sb sandbox) []ent { return []ent{file(sb.outside+"/pwned", "x")} }, ErrUnsafe, "absolute path"},
		{"symlink then write through it (relative)", func(sandbox) []ent {
			return []ent{symlink("link", outside), file("link/pwned", "x")}
		}, ErrUnsafe, "leads outside the root"},
		{"symlink then write through it (absolute)", func(sb sandbox) []ent {
			return []ent{symlink("link", sb.outside), file("link/pwned", "x")}
		}, ErrUnsafe, "leads outside the root"},
		{"symlink chain escape", func(sandbox) []ent {
			return []ent{dir("a/"), symlink("a/up", ".."), symlink("b", "a/up/.."), file("b/outside/pwned", "x")}
		}, ErrUnsafe, "leads outside the root"},
		{"symlink then directory through it", func(sandbox) []ent {
			return []ent{symlink("link", outside), dir("link/sub/")}
		}, ErrUnsafe, "leads outside the root"},
		{"directory replaced by symlink", func(sandbox) []ent {
			return []ent{dir("d/"), symlink("d", outside), file("d/pwned", "x")}
		}, ErrUnsafe, "leads outside the root"},
		{"hardlink escape", func(sandbox) []ent { return []ent{hardlink("h", "../outside/secret")} }, ErrUnsafe, "hardlink target"},
		{"hardlink absolute", func(sb sandbox) []ent { return []ent{hardlink("h", sb.outside+"/secret")} }, ErrUnsafe, "absolute path"},
		{"hardlink through symlink", func(sandbox) []ent {
			return []ent{symlink("l", outside), hardlink("h", "l/secret")}
		}, ErrUnsafe, "leads outside the root"},
		{"whiteout of dotdot", func(sandbox) []ent { return []ent{file(".wh...", "")} }, ErrUnsafe, "whiteout"},
		{"empty name", func(sandbox) []ent { return []ent{file("", "x")} }, ErrUnsafe, "empty name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := newSandbox(t)
			_, err := Extract(context.Background(), bytes.NewReader(mkTar(t, tc.entries(sb)...)), sb.root, Options{Whiteouts: true})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.inMsg) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v; want %v mentioning %q on one line", err, tc.want, tc.inMsg)
			}
			sb.untouched(t)
		})
	}
}

func TestSafeReplacements(t *testing.T) {
	sb := newSandbox(t)
	tr := mkTar(t,
		symlink("f", "../outside/secret"), file("f", "inside\n"), // a file replaces a symlink: never written through
		symlink("abs", "/etc/passwd"), hardlink("h", "abs"), // a hardlink to a symlink links the symlink
		dir("lib/"), file("lib/x", "x"), symlink("usr", "lib"), file("usr/y", "y"), // in-root symlinks are followed
		file("implied/parent/z", "z"),
	)
	res, err := Extract(context.Background(), bytes.NewReader(tr), sb.root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sb.untouched(t)
	if b, _ := os.ReadFile(filepath.Join(sb.root, "f")); string(b) != "inside\n" {
		t.Fatalf("f = %q", b)
	}
	if st, err := os.Lstat(filepath.Join(sb.root, "h")); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("h: %v %v; want a symlink", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(sb.root, "lib/y")); string(b) != "y" {
		t.Fatalf("lib/y = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(sb.root, "implied/parent/z")); string(b) != "z" {
		t.Fatalf("implied/parent/z = %q", b)
	}
	if res.Files != 4 || res.Symlinks != 3 || res.Hardlinks != 1 || res.Dirs != 1 {
		t.Fatalf("result %+v", res)
	}
}

func TestTruncatedAndInvalid(t *testing.T) {
	full := mkTar(t, file("a", strings.Repeat("x", 4000)), file("b", "y"))
	for _, cut := range []int{700, 1024 + 100} {
		sb := newSandbox(t)
		_, err := Extract(context.Background(), bytes.NewReader(full[:cut]), sb.root, Options{})
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("cut at %d: err %v; want ErrTruncated", cut, err)
		}
	}
	sb := newSandbox(t)
	junk := bytes.Repeat([]byte("not a tar archive "), 64)
	if _, err := Extract(context.Background(), bytes.NewReader(junk), sb.root, Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("junk: err %v; want ErrInvalid", err)
	}
}

func TestMetadata(t *testing.T) {
	sb := newSandbox(t)
	ro := dir("ro/")
	ro.mode = 0o555
	tr := mkTar(t, ro, file("ro/f", "f"), ent{name: "exe", typ: tar.TypeReg, mode: 0o750, body: "#!"})
	if _, err := Extract(context.Background(), bytes.NewReader(tr), sb.root, Options{}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{"ro": 0o555 | fs.ModeDir, "exe": 0o750, "ro/f": 0o644} {
		st, err := os.Lstat(filepath.Join(sb.root, p))
		if err != nil || st.Mode() != want || st.ModTime().Unix() != 1700000000 {
			t.Errorf("%s: %v %v; want mode %v, mtime 1700000000", p, st.Mode(), err, want)
		}
	}
	os.Chmod(filepath.Join(sb.root, "ro"), 0o755)
}

func TestContextCancel(t *testing.T) {
	sb := newSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Extract(ctx, bytes.NewReader(mkTar(t, file("a", "a"))), sb.root, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v; want context.Canceled", err)
	}
}

// TestPrivilegedEntries covers what only root can create: device nodes, setuid files, owners,
// and overlayfs whiteouts, for trusted and untrusted sources.
func TestPrivilegedEntries(t *testing.T) {
	testenv.RequireRoot(t)
	entries := []ent{
		{name: "dev/null", typ: tar.TypeChar, mode: 0o666, major: 1},
		{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, major: 8},
		hardlink("dev/null2", "dev/null"),
		{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
		{name: "suid", typ: tar.TypeReg, mode: 0o4755, body: "x", uid: 1234},
		{name: "sgid", typ: tar.TypeReg, mode: 0o2755, body: "x"},
		{name: "mail/", typ: tar.TypeDir, mode: 0o2775},
		{name: "cap", typ: tar.TypeReg, mode: 0o755, body: "x", pax: map[string]string{
			"SCHILY.xattr.security.capability":    "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
			"SCHILY.xattr.user.note":              "kept",
			"SCHILY.xattr.trusted.overlay.opaque": "y",
		}},
	}
	t.Run("untrusted", func(t *testing.T) {
		sb := newSandbox(t)
		res, err := Extract(context.Background(), bytes.NewReader(mkTar(t, entries...)), sb.root, Options{Owners: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"dev/null", "dev/sda", "dev/null2"} {
			if _, err := os.Lstat(filepath.Join(sb.root, p)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s exists from an untrusted source: %v", p, err)
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(sb.root, "fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
			t.Errorf("fifo: %v", err)
		}
		for _, p := range []string{"suid", "sgid"} {
			if err := unix.Lstat(filepath.Join(sb.root, p), &st); err != nil || st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 || st.Mode&0o777 != 0o755 {
				t.Errorf("%s: mode %o %v; want 0755 without setuid/setgid", p, st.Mode, err)
			}
		}
		if err := unix.Lstat(filepath.Join(sb.root, "mail"), &st); err != nil || st.Mode&0o7777 != 0o2775 {
			t.Errorf("setgid directory: mode %o %v; want 2775 kept", st.Mode&0o7777, err)
		}
		if unix.Lstat(filepath.Join(sb.root, "suid"), &st); st.Uid != 1234 {
			t.Errorf("suid owner %d; want 1234", st.Uid)
		}
		if _, err := unix.Lgetxattr(filepath.Join(sb.root, "cap"), "security.capability", make([]byte, 64)); err == nil {
			t.Errorf("file capability kept from an untrusted source")
		}
		if _, err := unix.Lgetxattr(filepath.Join(sb.root, "cap"), "trusted.overlay.opaque", make([]byte, 64)); err == nil {
			t.Errorf("trusted.* xattr taken from the archive")
		}
		buf := make([]byte, 16)
		if n, err := unix.Lgetxattr(filepath.Join(sb.root, "cap"), "user.note", buf); err != nil || string(buf[:n]) != "kept" {
			t.Errorf("user xattr: %q %v", buf[:n], err)
		}
		if len(res.Dropped) < 5 {
			t.Errorf("dropped %v; want the devices, the link to one, setuid, setgid, capability", res.Dropped)
		}
	})
	t.Run("trusted", func(t *testing.T) {
		sb := newSandbox(t)
		if _, err := Extract(context.Background(), bytes.NewReader(mkTar(t, entries...)), sb.root, Options{Owners: true, Trusted: true}); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(sb.root, "dev/null"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 {
			t.Errorf("dev/null: mode %o rdev %d %v", st.Mode, st.Rdev, err)
		}
		if err := unix.Lstat(filepath.Join(sb.root, "dev/null2"), &st); err != nil || st.Nlink != 2 {
			t.Errorf("dev/null2: nlink %d %v", st.Nlink, err)
		}
		if err := unix.Lstat(filepath.Join(sb.root, "suid"), &st); err != nil || st.Mode&0o7777 != 0o4755 || st.Uid != 1234 {
			t.Errorf("suid: mode %o uid %d %v; want 4755 owned by 1234", st.Mode&0o7777, st.Uid, err)
		}
		if _, err := unix.Lgetxattr(filepath.Join(sb.root, "cap"), "security.capability", make([]byte, 64)); err != nil {
			t.Errorf("file capability from a trusted source: %v", err)
		}
	})
}

func TestWhiteouts(t *testing.T) {
	testenv.RequireRoot(t)
	sb := newSandbox(t)
	tr := mkTar(t, dir("etc/"), file("etc/.wh.passwd", ""), dir("opq/"), file("opq/.wh..wh..opq", ""), file("opq/new", "n"), file(".wh.gone", ""))
	res, err := Extract(context.Background(), bytes.NewReader(tr), sb.root, Options{Whiteouts: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"etc/passwd", "gone"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(sb.root, p), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s: mode %o rdev %d %v; want a 0/0 char device", p, st.Mode, st.Rdev, err)
		}
	}
	buf := make([]byte, 4)
	if n, err := unix.Lgetxattr(filepath.Join(sb.root, "opq"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opq: opaque xattr %q %v", buf[:n], err)
	}
	ents, _ := os.ReadDir(sb.root)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "etc,gone,opq" || res.Whiteouts != 3 {
		t.Errorf("root holds %v, %d whiteouts; want etc,gone,opq and 3 (no .wh. names)", names, res.Whiteouts)
	}
	// Without Whiteouts (an ACI) such names are ordinary files.
	sb2 := newSandbox(t)
	if _, err := Extract(context.Background(), bytes.NewReader(tr), sb2.root, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(sb2.root, "etc/.wh.passwd")); err != nil {
		t.Errorf("without Whiteouts: %v", err)
	}
}
