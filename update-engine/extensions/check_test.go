package extensions

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/gpt"
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
