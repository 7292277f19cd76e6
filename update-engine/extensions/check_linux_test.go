package extensions

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/testenv"
)

// Without extension-release.NAME, systemd 252 takes the one other regular extension-release
// file whose user.extension-release.strict is "false" (an extension renamed when deployed).
func TestCheckStrictFalse(t *testing.T) {
	root := hostTree(t, "1.3.0")
	ext := filepath.Join(root, "var/lib/extensions")
	probe := filepath.Join(root, "probe")
	write(t, probe, nil)
	err := unix.Lsetxattr(probe, strictAttr, []byte("false"), 0)
	testenv.Require(t, err == nil, "the file system of %s refuses user extended attributes: %v", root, err)

	rel := func(ext, file, content, attr string) {
		p := filepath.Join(ext, "usr/lib/extension-release.d", file)
		write(t, p, []byte(content))
		if attr != "" {
			if err := unix.Lsetxattr(p, strictAttr, []byte(attr), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	const fits, old = "ID=cairn\nVERSION_ID=1.3.0\n", "ID=cairn\nVERSION_ID=1.2.0\n"
	rel(filepath.Join(ext, "renamed"), "extension-release.original", fits, "false")
	rel(filepath.Join(ext, "renamedold"), "extension-release.original", old, "false")
	rel(filepath.Join(ext, "strict"), "extension-release.original", fits, "")
	rel(filepath.Join(ext, "truthy"), "extension-release.original", fits, "true")
	rel(filepath.Join(ext, "nul"), "extension-release.original", fits, "false\x00")
	rel(filepath.Join(ext, "two"), "extension-release.a", fits, "false")
	rel(filepath.Join(ext, "two"), "extension-release.b", fits, "false")
	rel(filepath.Join(ext, "tmp"), "extension-release..#original", fits, "false")
	rel(filepath.Join(ext, "link"), "target", fits, "false")
	if err := os.Symlink("target", filepath.Join(ext, "link/usr/lib/extension-release.d/extension-release.original")); err != nil {
		t.Fatal(err)
	}

	rep, err := (&Checker{Root: root, Arch: "x86-64"}).Check(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	type row struct{ name, misfit string }
	var got []row
	for _, f := range rep.Findings {
		got = append(got, row{f.Name, f.Misfit})
	}
	want := []row{
		{"link", "it carries no extension-release.link"}, // a symlink is not taken
		{"nul", ""},
		{"renamed", ""},
		{"renamedold", "another OS version"},
		{"strict", "it carries no extension-release.strict"},
		{"tmp", "it carries no extension-release.tmp"}, // no image name
		{"truthy", "it carries no extension-release.truthy"},
		{"two", "it carries no extension-release.two and more than one extension-release marked user.extension-release.strict=false"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings\n%q\nwant\n%q", got, want)
	}
	if l := rep.Line(rep.Findings[3]); l != "renamedold fits cairn 1.2.0, this host is cairn 1.3.0: not merged; update_engine stages matching extensions under /var/lib/cairn/extensions" {
		t.Errorf("line %q", l)
	}
}
