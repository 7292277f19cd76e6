package aci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// AddTree writes the tree under root as the ACI's rootfs, in lexical order: directories,
// regular files, symlinks, hard links (a link to the first name seen), device nodes and
// fifos, with their owners, modes, times and extended attributes (overlayfs's own,
// trusted.overlay.*, left out). Sockets are skipped: a tar cannot hold them. owner, when
// set, maps each uid and gid before they are written. root's own entry is the rootfs/
// directory that NewWriter wrote.
func (w *Writer) AddTree(ctx context.Context, root string, owner func(id int) int) error {
	type fileID struct{ dev, ino uint64 }
	links := map[fileID]string{}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		hdr := &tar.Header{
			Name: filepath.ToSlash(rel), Mode: int64(st.Mode & 0o7777),
			Uid: int(st.Uid), Gid: int(st.Gid),
			ModTime: time.Unix(st.Mtim.Unix()), Format: tar.FormatPAX,
		}
		if owner != nil {
			hdr.Uid, hdr.Gid = owner(hdr.Uid), owner(hdr.Gid)
		}
		id := fileID{st.Dev, st.Ino}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			hdr.Typeflag = tar.TypeDir
		case unix.S_IFREG:
			if first, ok := links[id]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return w.Add(hdr, nil)
			}
			if st.Nlink > 1 {
				links[id] = hdr.Name
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case unix.S_IFCHR, unix.S_IFBLK:
			hdr.Typeflag = tar.TypeChar
			if st.Mode&unix.S_IFMT == unix.S_IFBLK {
				hdr.Typeflag = tar.TypeBlock
			}
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		case unix.S_IFIFO:
			hdr.Typeflag = tar.TypeFifo
		default:
			return nil
		}
		if err := addXattrs(hdr, p); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return w.Add(hdr, nil)
		}
		// O_NOFOLLOW: the file was a regular file when it was looked at, and nothing else
		// is opened in its place.
		f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		defer f.Close()
		return w.Add(hdr, f)
	})
}

// addXattrs records p's extended attributes in hdr as PAX records (SCHILY.xattr.NAME), the
// form the store's extraction reads back.
func addXattrs(hdr *tar.Header, p string) error {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		return err
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(p, buf); err != nil {
		return err
	}
	for name := range strings.SplitSeq(strings.TrimRight(string(buf[:size]), "\x00"), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		n, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
		v := make([]byte, n)
		if n, err = unix.Lgetxattr(p, name, v); err != nil {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+name] = string(v[:n])
	}
	return nil
}
