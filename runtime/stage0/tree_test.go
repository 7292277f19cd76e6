package stage0

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/runtime/stage1"
)

// layer makes a layer directory from a spec: "path" a directory (trailing /), "path=content"
// a file (mode 0755 if content starts with #!), "path->target" a symlink, "path!" a whiteout,
// "path/!" an opaque directory.
func layer(t *testing.T, entries ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, e := range entries {
		switch {
		case strings.Contains(e, "->"):
			p, target, _ := strings.Cut(e, "->")
			mkParent(t, root, p)
			if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
				t.Fatal(err)
			}
		case strings.Contains(e, "="):
			p, content, _ := strings.Cut(e, "=")
			mkParent(t, root, p)
			mode := os.FileMode(0o644)
			if strings.HasPrefix(content, "#!") {
				mode = 0o755
			}
			if err := os.WriteFile(filepath.Join(root, p), []byte(content), mode); err != nil {
				t.Fatal(err)
			}
		case strings.HasSuffix(e, "/!"):
			p := filepath.Join(root, strings.TrimSuffix(e, "/!"))
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Lsetxattr(p, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				t.Skipf("trusted xattrs need root: %v", err)
			}
		case strings.HasSuffix(e, "!"):
			p := strings.TrimSuffix(e, "!")
			mkParent(t, root, p)
			if err := unix.Mknod(filepath.Join(root, p), unix.S_IFCHR, 0); err != nil {
				t.Skipf("whiteouts need root: %v", err)
			}
		default:
			if err := os.MkdirAll(filepath.Join(root, e), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func mkParent(t *testing.T, root, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestTreeLookup(t *testing.T) {
	base := layer(t, "bin/busybox=#!busybox", "bin/sh->busybox", "usr/bin/env->/bin/busybox",
		"etc/passwd=root:x:0:0::/:/bin/sh\n", "lib/old=x", "opt/keep=1", "var/hidden/file=x", "loop/a->b", "loop/b->a",
		"abs->/etc", "data")
	top := layer(t, "bin/tool=#!top", "lib/old!", "opt/!", "opt/new=2", "var/hidden=now a file", "usr/local/bin/up->../../../bin/tool")
	tr := tree{base, top}
	for _, c := range []struct {
		name string
		in   string // the layer the entry should come from, "" for an error
		err  error
	}{
		{"/bin/busybox", base, nil},
		{"/bin/sh", base, nil},          // relative symlink
		{"/usr/bin/env", base, nil},     // absolute symlink
		{"/bin/tool", top, nil},         // upper layer's file in a merged directory
		{"/usr/local/bin/up", top, nil}, // .. through a symlink
		{"/abs/passwd", base, nil},
		{"/bin/../etc/passwd", base, nil},
		{"/../../etc/passwd", base, nil},  // .. stops at the root
		{"/lib/old", "", fs.ErrNotExist},  // whiteout
		{"/opt/keep", "", fs.ErrNotExist}, // opaque directory above it
		{"/opt/new", top, nil},
		{"/var/hidden/file", "", errNotDir}, // a file over the lower directory
		{"/loop/a", "", errLoop},
		{"/nope", "", fs.ErrNotExist},
		{"/etc/passwd/x", "", errNotDir},
		{"/data", base, nil},
		{"/", top, nil},
	} {
		host, _, err := tr.lookup(c.name)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s: err %v, want %v", c.name, err, c.err)
			}
			continue
		}
		if err != nil || !strings.HasPrefix(host, c.in) {
			t.Errorf("%s: %s %v, want an entry of %s", c.name, host, err, c.in)
		}
	}
}

func TestCheckExecAndUser(t *testing.T) {
	base := layer(t, "bin/busybox=#!busybox", "bin/sh->busybox", "bin/data=not executable", "srv/run=#!x",
		"etc/passwd=root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n", "etc/group=root:x:0:\napp:x:1000:\n")
	tr := tree{base}
	app := func(exec, user, group string) *types.App {
		return &types.App{Exec: types.Exec{exec}, User: user, Group: group, WorkingDirectory: "/srv"}
	}
	for _, c := range []struct {
		app  *types.App
		exec bool // the command is found
		user bool // the user and group resolve
	}{
		{app("/bin/sh", "0", "0"), true, true},
		{app("sh", "app", ""), true, true}, // on the default PATH; the group from passwd
		{app("./run", "app", "app"), true, true},
		{app("run", "1000", "1000"), false, true}, // not on PATH
		{app("/bin/data", "root", "root"), false, true},
		{app("/bin", "0", "0"), false, true},
		{app("/bin/nope", "nobody", "0"), false, false},
		{app("/bin/sh", "0", "nogroup"), true, false},
		{app("/bin/sh", "4242", "4242"), true, true}, // numbers need no entry
	} {
		err := tr.checkExec(c.app)
		if c.exec != (err == nil) || err != nil && !errors.Is(err, stage1.ErrExecNotFound) {
			t.Errorf("exec %q: %v", c.app.Exec[0], err)
		}
		if err := tr.checkUser(c.app); c.user != (err == nil) {
			t.Errorf("user %q group %q: %v", c.app.User, c.app.Group, err)
		}
	}
	onPath := app("busybox", "0", "0")
	onPath.Environment.Set("PATH", "/srv:/bin")
	if err := tr.checkExec(onPath); err != nil {
		t.Errorf("the app's own PATH: %v", err)
	}
}
