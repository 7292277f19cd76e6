package aci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"
)

type entry struct {
	typ      byte
	mode     int64
	uid, gid int
	body     string
	link     string
	xattr    string
}

// A tree becomes the ACI's rootfs entry for entry, in lexical order, hard links as links to
// the first name, owners through the mapping, sockets left out.
func TestAddTree(t *testing.T) {
	root := t.TempDir()
	mustWrite := func(p, s string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/conf.d"), 0o750); err != nil {
		t.Fatal(err)
	}
	mustWrite("etc/hostname", "pod\n", 0o644)
	mustWrite("run.sh", "#!/bin/sh\n", 0o755)
	if err := os.Link(filepath.Join(root, "etc/hostname"), filepath.Join(root, "hostname.link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../etc/hostname", filepath.Join(root, "etc/conf.d/name")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(root, "sock"), unix.S_IFSOCK|0o600, 0); err != nil {
		t.Fatal(err)
	}
	xattrs := unix.Lsetxattr(filepath.Join(root, "run.sh"), "user.note", []byte("kept"), 0) == nil
	if err := unix.Lsetxattr(filepath.Join(root, "etc"), "trusted.overlay.opaque", []byte("y"), 0); err != nil && !errors.Is(err, unix.EPERM) {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	for _, p := range []string{"", "etc", "etc/hostname", "run.sh"} {
		if err := os.Lchown(filepath.Join(root, p), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	// After the chown, which clears it.
	if err := unix.Chmod(filepath.Join(root, "run.sh"), 0o4755); err != nil {
		t.Fatal(err)
	}

	m := schema.BlankImageManifest()
	m.Name = "example.com/tree"
	var buf bytes.Buffer
	w, err := NewWriter(&buf, m, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddTree(context.Background(), root, func(id int) int { return id + 7 }); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	want := map[string]entry{
		"rootfs/etc/":            {typ: tar.TypeDir, mode: 0o750, uid: uid + 7, gid: gid + 7},
		"rootfs/etc/conf.d/":     {typ: tar.TypeDir, mode: 0o750},
		"rootfs/etc/conf.d/name": {typ: tar.TypeSymlink, link: "../etc/hostname"},
		"rootfs/etc/hostname":    {typ: tar.TypeReg, mode: 0o644, uid: uid + 7, gid: gid + 7, body: "pod\n"},
		"rootfs/fifo":            {typ: tar.TypeFifo, mode: 0o600},
		"rootfs/hostname.link":   {typ: tar.TypeLink, link: "rootfs/etc/hostname"},
		"rootfs/run.sh":          {typ: tar.TypeReg, mode: 0o4755, body: "#!/bin/sh\n"},
		"manifest":               {typ: tar.TypeReg},
		"rootfs/":                {typ: tar.TypeDir},
	}
	if xattrs {
		e := want["rootfs/run.sh"]
		e.xattr = "kept"
		want["rootfs/run.sh"] = e
	}
	var order []string
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		order = append(order, hdr.Name)
		e, ok := want[hdr.Name]
		if !ok {
			t.Errorf("unexpected entry %s", hdr.Name)
			continue
		}
		delete(want, hdr.Name)
		if hdr.Name == "manifest" || hdr.Name == "rootfs/" {
			continue
		}
		body, _ := io.ReadAll(tr)
		if hdr.Typeflag != e.typ || string(body) != e.body || hdr.Linkname != e.link {
			t.Errorf("%s: type %c body %q link %q, want %c %q %q", hdr.Name, hdr.Typeflag, body, hdr.Linkname, e.typ, e.body, e.link)
		}
		if e.mode != 0 && hdr.Mode != e.mode {
			t.Errorf("%s: mode %o, want %o", hdr.Name, hdr.Mode, e.mode)
		}
		if e.uid != 0 && (hdr.Uid != e.uid || hdr.Gid != e.gid) {
			t.Errorf("%s: owner %d:%d, want %d:%d (mapped)", hdr.Name, hdr.Uid, hdr.Gid, e.uid, e.gid)
		}
		if got := hdr.PAXRecords["SCHILY.xattr.user.note"]; got != e.xattr {
			t.Errorf("%s: xattr user.note %q, want %q", hdr.Name, got, e.xattr)
		}
		if _, ok := hdr.PAXRecords["SCHILY.xattr.trusted.overlay.opaque"]; ok {
			t.Errorf("%s: overlayfs's own xattr written", hdr.Name)
		}
	}
	for name := range want {
		t.Errorf("missing entry %s", name)
	}
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] && order[i-1] != "manifest" {
			t.Errorf("entries out of order: %s after %s", order[i], order[i-1])
		}
	}
}

func TestAddTreeCancelled(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m := schema.BlankImageManifest()
	m.Name = "example.com/tree"
	w, err := NewWriter(io.Discard, m, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.AddTree(ctx, root, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("AddTree with a cancelled context: %v", err)
	}
}
