package extensions

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/gpt"
	"github.com/cairn-os/cairn/internal/testenv"
)

// hostTree makes a host of Cairn version with /usr/lib/extensions linked to its store
// directory, as image/build lays it out.
func hostTree(t *testing.T, version string) string {
	root := t.TempDir()
	mk := func(p string, b []byte) {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if b != nil {
			if err := os.WriteFile(full, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("usr/lib/os-release", []byte("NAME=\"Cairn\"\nID=cairn\nVERSION_ID="+version+"\n"))
	mk("var/lib/cairn/extensions/"+version+"/x", nil)
	for old, new := range map[string]string{"../usr/lib/os-release": "etc/os-release", "../../var/lib/cairn/extensions/" + version: "usr/lib/extensions"} {
		mk(new, nil)
		if err := os.Symlink(old, filepath.Join(root, new)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// misfits names the findings that do not fit.
func misfits(rep Report) []string {
	var names []string
	for _, f := range rep.Findings {
		if f.Misfit != "" {
			names = append(names, f.Name)
		}
	}
	return names
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	demo := ddi(t, fixture(t, "usr.erofs"), gpt.TypeUSR) // extension-release.demo: cairn 1.2.0
	root := hostTree(t, "1.3.0")
	etc := filepath.Join(root, "etc/extensions")
	store := filepath.Join(root, "var/lib/cairn/extensions/1.3.0")
	write(t, filepath.Join(etc, "demo.raw"), demo)
	// The same name in a later directory is hidden: systemd-sysext takes /etc's.
	write(t, filepath.Join(store, "demo.raw"), []byte("not looked at"))
	write(t, filepath.Join(store, "tools/usr/lib/extension-release.d/extension-release.tools"), []byte("ID=cairn\nVERSION_ID=1.3.0\n"))
	write(t, filepath.Join(root, "run/extensions/anyos/usr/lib/extension-release.d/extension-release.anyos"), []byte("ID=_any\n"))
	write(t, filepath.Join(root, "var/lib/extensions/bare/usr/bin/x"), []byte("no extension-release"))
	write(t, filepath.Join(root, "var/lib/extensions/broken.raw"), []byte("neither a disk nor an erofs"))
	write(t, filepath.Join(etc, ".#demo2.raw"), demo)          // being written
	write(t, filepath.Join(etc, "README"), []byte("not .raw")) // not an image
	if err := os.Symlink("demo.raw", filepath.Join(etc, "link.raw")); err != nil {
		t.Fatal(err)
	}

	rep, err := (&Checker{Root: root, Arch: "x86-64"}).Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ name, path, misfit, line string }
	var got []row
	for _, f := range rep.Findings {
		got = append(got, row{f.Name, f.Path, f.Misfit, rep.Line(f)})
	}
	const stage = ": not merged; update_engine stages matching extensions under /var/lib/cairn/extensions"
	want := []row{
		{"demo", "/etc/extensions/demo.raw", "another OS version", "demo.raw fits cairn 1.2.0, this host is cairn 1.3.0" + stage},
		{"anyos", "/run/extensions/anyos", "", ""},
		{"bare", "/var/lib/extensions/bare", "it carries no extension-release.bare", "bare: it carries no extension-release.bare" + stage},
		{"broken", "/var/lib/extensions/broken.raw", "", "broken.raw: cannot check what it fits: unreadable release file: neither a disk image nor an erofs: 27 bytes are too few"},
		{"tools", "/usr/lib/extensions/tools", "", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings:\n%q\nwant\n%q", got, want)
	}
	if !rep.Failed() || !reflect.DeepEqual(misfits(rep), []string{"demo", "bare"}) {
		t.Errorf("Failed() = %v, misfits %q; want true, demo and bare", rep.Failed(), misfits(rep))
	}

	// On the version it fits, from the store, only the broken one is left.
	root = hostTree(t, "1.2.0")
	write(t, filepath.Join(root, "var/lib/cairn/extensions/1.2.0/demo.raw"), demo)
	write(t, filepath.Join(root, "etc/extensions/broken.raw"), nil)
	rep, err = (&Checker{Root: root, Arch: "x86-64"}).Check(context.Background())
	if err != nil || len(rep.Findings) != 2 || rep.Findings[1].Misfit != "" || rep.Findings[1].Err != nil {
		t.Fatalf("%+v, %v", rep, err)
	}
	if f := rep.Findings[0]; !rep.Failed() || f.Name != "broken" || !errors.Is(f.Err, ErrRelease) {
		t.Errorf("Failed() = %v, %+v; want true for broken's unreadable extension-release", rep.Failed(), f)
	}
	if err := os.Remove(filepath.Join(root, "etc/extensions/broken.raw")); err != nil {
		t.Fatal(err)
	}
	rep, err = (&Checker{Root: root, Arch: "x86-64"}).Check(context.Background())
	if err != nil || rep.Failed() || len(rep.Findings) != 1 {
		t.Errorf("%+v, %v", rep, err)
	}

	// An image in a form the check does not read, which systemd may merge: named, not failed.
	write(t, filepath.Join(root, "run/extensions/squash.raw"), blankFS(0, "hsqs"))
	rep, err = (&Checker{Root: root, Arch: "x86-64"}).Check(context.Background())
	if err != nil || rep.Failed() || len(rep.Findings) != 2 {
		t.Fatalf("%+v, %v", rep, err)
	}
	if l := rep.Line(rep.Findings[0]); l != "squash.raw: not checked (a bare squashfs, which the check does not read)" {
		t.Errorf("line %q", l)
	}
}

func TestCheckHostRelease(t *testing.T) {
	root := t.TempDir()
	if _, err := (&Checker{Root: root}).Check(context.Background()); !errors.Is(err, ErrRelease) {
		t.Errorf("no os-release: %v", err)
	}
	write(t, filepath.Join(root, "usr/lib/os-release"), []byte("NAME=x\n"))
	if _, err := (&Checker{Root: root}).Check(context.Background()); !errors.Is(err, ErrRelease) || !strings.Contains(err.Error(), "no ID") {
		t.Errorf("os-release without ID: %v", err)
	}
	// /etc/os-release wins over /usr/lib/os-release, as for systemd.
	write(t, filepath.Join(root, "etc/os-release"), []byte("ID=other\nVERSION_ID=1\n"))
	r, err := (&Checker{Root: root}).hostRelease()
	if err != nil || r["ID"] != "other" {
		t.Errorf("%v, %v", r, err)
	}
	// No search directory at all: nothing to check.
	rep, err := (&Checker{Root: root}).Check(context.Background())
	if err != nil || len(rep.Findings) != 0 || rep.Failed() {
		t.Errorf("%+v, %v", rep, err)
	}
}

// mkErofs packs files (path: content) into an erofs with mkfs.erofs, as image/sysext does.
func mkErofs(t *testing.T, files map[string]string) []byte {
	testenv.RequireCommand(t, "mkfs.erofs")
	tree := t.TempDir()
	for p, b := range files {
		write(t, filepath.Join(tree, p), []byte(b))
	}
	img := filepath.Join(t.TempDir(), "fs.erofs")
	if o, err := exec.Command("mkfs.erofs", "--quiet", "-zlz4hc", "-T1", "--all-root", "-x-1", img, tree).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.erofs: %v\n%s", err, o)
	}
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An extension carrying /usr/lib/os-release makes systemd-sysext 252 refuse the whole merge
// ("Extension image contains /usr/lib/os-release file, which is not allowed"), whether it fits
// or not: it is a misfit that says so. /etc/os-release in an extension is allowed, and a
// dangling link is no file, as systemd resolves it.
func TestCheckOSRelease(t *testing.T) {
	const fits = "ID=cairn\nVERSION_ID=1.3.0\n"
	root := hostTree(t, "1.3.0")
	ext := filepath.Join(root, "var/lib/extensions")
	write(t, filepath.Join(ext, "carrier/usr/lib/os-release"), []byte("ID=cairn\nVERSION_ID=1.3.0\n"))
	write(t, filepath.Join(ext, "carrier/usr/lib/extension-release.d/extension-release.carrier"), []byte(fits))
	write(t, filepath.Join(ext, "dangling/usr/lib/extension-release.d/extension-release.dangling"), []byte(fits))
	if err := os.Symlink("../../nowhere", filepath.Join(ext, "dangling/usr/lib/os-release")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(ext, "etc/etc/os-release"), []byte("ID=cairn\n"))
	write(t, filepath.Join(ext, "etc/usr/lib/extension-release.d/extension-release.etc"), []byte(fits))
	// Another version as well: the os-release is what it is named for.
	write(t, filepath.Join(ext, "old/usr/lib/os-release"), []byte("ID=cairn\n"))
	write(t, filepath.Join(ext, "old/usr/lib/extension-release.d/extension-release.old"), []byte("ID=cairn\nVERSION_ID=1.2.0\n"))

	rep, got := nameLines(t, root)
	want := []string{"carrier: carrier" + refused, "dangling: ", "etc: ", "old: old" + refused}
	if !reflect.DeepEqual(got, want) || !rep.Failed() {
		t.Errorf("failed %v, lines\n%q\nwant\n%q", rep.Failed(), got, want)
	}
}

// refused is the line's end for an extension carrying an os-release.
const refused = ": it carries /usr/lib/os-release, which systemd-sysext refuses: it merges no extension at all while this one is there"

// nameLines checks root's extensions for an x86-64 host: the report, and "NAME: LINE" for
// each finding.
func nameLines(t *testing.T, root string) (Report, []string) {
	t.Helper()
	rep, err := (&Checker{Root: root, Arch: "x86-64"}).Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range rep.Findings {
		lines = append(lines, f.Name+": "+rep.Line(f))
	}
	return rep, lines
}

func TestCheckOSReleaseInImages(t *testing.T) {
	const fits = "ID=cairn\nVERSION_ID=1.3.0\n"
	root := hostTree(t, "1.3.0")
	ext := filepath.Join(root, "var/lib/extensions")
	write(t, filepath.Join(ext, "ddi.raw"), ddi(t, mkErofs(t, map[string]string{
		"lib/os-release": "ID=cairn\n", "lib/extension-release.d/extension-release.ddi": fits}), gpt.TypeUSR))
	write(t, filepath.Join(ext, "bare.raw"), mkErofs(t, map[string]string{
		"usr/lib/os-release": "ID=cairn\n", "usr/lib/extension-release.d/extension-release.bare": fits}))
	// The same without the os-release: fits.
	write(t, filepath.Join(ext, "fine.raw"), ddi(t, mkErofs(t, map[string]string{
		"lib/extension-release.d/extension-release.fine": fits, "etc/os-release": "ID=x\n"}), gpt.TypeUSR))

	rep, got := nameLines(t, root)
	want := []string{"bare: bare.raw" + refused, "ddi: ddi.raw" + refused, "fine: "}
	if !reflect.DeepEqual(got, want) || !rep.Failed() {
		t.Errorf("failed %v, lines\n%q\nwant\n%q", rep.Failed(), got, want)
	}
}

func TestValidImageName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"kubernetes-v1.37.2", true},
		{"a", true},
		{"ünïcode", true},
		{"", false},
		{".", false},
		{"..", false},
		{".#kubernetes", false},
		{"a/b", false},
		{"tab\there", false},
		{"del\x7f", false},
		{"\xff", false},
		{strings.Repeat("n", 255), true},
		{strings.Repeat("n", 256), false},
	} {
		if got := validImageName(tc.name); got != tc.want {
			t.Errorf("validImageName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
