// Package initramfs is Cairn's early boot: the archive format and content the builder packs
// (a newc cpio with a static Go init and the few kernel modules early boot needs), and the
// init itself (init_linux.go), which opens the slot's /usr through dm-verity, mounts ROOT,
// runs the first-boot hook and switches root to systemd.
package initramfs

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Entry is one member of the archive. Paths are relative ("init", "lib/modules/...").
type Entry struct {
	Path     string
	Mode     fs.FileMode // type bits and permissions
	Data     []byte      // regular files
	Source   string      // regular files: read from here when Data is nil
	Link     string      // symlinks
	Major    uint32      // device nodes
	Minor    uint32
	UID, GID uint32
}

// Archive is an ordered set of entries written as a newc cpio with fixed times and inode
// numbers, so the same entries always give the same bytes.
type Archive struct {
	MTime   int64
	entries map[string]Entry
}

// Add adds e and any missing parent directories.
func (a *Archive) Add(e Entry) {
	if a.entries == nil {
		a.entries = map[string]Entry{}
	}
	e.Path = strings.TrimPrefix(path.Clean("/"+e.Path), "/")
	for d := path.Dir(e.Path); d != "." && d != "/"; d = path.Dir(d) {
		if _, ok := a.entries[d]; !ok {
			a.entries[d] = Entry{Path: d, Mode: fs.ModeDir | 0o755}
		}
	}
	a.entries[e.Path] = e
}

// AddTree adds every file, directory and symlink under dir at prefix, keeping modes and owners.
func (a *Archive) AddTree(dir, prefix string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := Entry{Path: path.Join(prefix, filepath.ToSlash(rel)), Mode: fi.Mode()}
		e.UID, e.GID = owner(fi)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			e.Source = p
		case fi.IsDir():
		default:
			return nil // sockets, fifos, devices: early boot makes its own
		}
		a.Add(e)
		return nil
	})
}

// Write writes the archive in path order.
func (a *Archive) Write(w io.Writer) error {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	ino := uint32(1)
	for _, n := range names {
		e := a.entries[n]
		data := e.Data
		if e.Mode.IsRegular() && data == nil && e.Source != "" {
			b, err := os.ReadFile(e.Source)
			if err != nil {
				return fmt.Errorf("initramfs member %s: %w", e.Path, err)
			}
			data = b
		}
		if e.Mode&fs.ModeSymlink != 0 {
			data = []byte(e.Link)
		}
		nlink := uint32(1)
		if e.Mode.IsDir() {
			nlink, data = 2, nil
		}
		if err := writeHeader(w, ino, unixMode(e.Mode), e.UID, e.GID, nlink, a.MTime, len(data), e.Major, e.Minor, e.Path); err != nil {
			return err
		}
		if _, err := w.Write(pad(data)); err != nil {
			return err
		}
		ino++
	}
	return writeHeader(w, 0, 0, 0, 0, 1, 0, 0, 0, 0, "TRAILER!!!")
}

func writeHeader(w io.Writer, ino, mode, uid, gid, nlink uint32, mtime int64, size int, major, minor uint32, name string) error {
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, uid, gid, nlink, uint32(mtime), size, 0, 0, major, minor, len(name)+1, 0)
	// The name is NUL-terminated and padded so the data starts on a 4-byte boundary.
	b := append([]byte(h), name...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	_, err := w.Write(b)
	return err
}

func pad(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func unixMode(m fs.FileMode) uint32 {
	perm := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		perm |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		perm |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		perm |= 0o1000
	}
	switch {
	case m.IsDir():
		return 0o040000 | perm
	case m&fs.ModeSymlink != 0:
		return 0o120000 | perm
	case m&fs.ModeCharDevice != 0:
		return 0o020000 | perm
	case m&fs.ModeDevice != 0:
		return 0o060000 | perm
	}
	return 0o100000 | perm
}
