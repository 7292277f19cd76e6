package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/cairn-os/cairn/runtime/aci"
	"github.com/cairn-os/cairn/runtime/image"
	"golang.org/x/sys/unix"
)

// RenderOptions say what to write out of an image.
type RenderOptions struct {
	// Dependencies includes an ACI's dependencies (rkt image render); without it only the
	// image's own tree is written (rkt image extract). OCI layers are always all applied.
	Dependencies bool
	// RootfsOnly writes the root filesystem itself into the directory; otherwise an ACI is
	// written as manifest + rootfs/.
	RootfsOnly bool
	// Overwrite allows a non-empty target directory.
	Overwrite bool
}

// ErrExists marks a target that exists and may not be overwritten.
var ErrExists = errors.New("target exists")

// Render writes the image that ref names into dir, its layers applied in order as overlayfs
// would show them: whiteouts delete, opaque directories hide what is below them.
func (s *Store) Render(ctx context.Context, ref, dir string, opts RenderOptions) error {
	rs, err := s.records()
	if err != nil {
		return err
	}
	r, err := resolveIn(rs, ref)
	if err != nil {
		return err
	}
	deps := rs
	if !opts.Dependencies {
		deps = nil
	}
	img, err := s.image(deps, r, nil)
	if err != nil {
		return err
	}
	if err := prepareTarget(dir, opts.Overwrite); err != nil {
		return err
	}
	root := dir
	if img.Format == image.ACI && !opts.RootfsOnly {
		root = filepath.Join(dir, aci.RootfsDir)
		if err := copyFile(filepath.Join(filepath.Dir(img.Layers[len(img.Layers)-1]), aci.ManifestName), filepath.Join(dir, aci.ManifestName)); err != nil {
			return fmt.Errorf("render %s: %w", img.ID, err)
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			return err
		}
	}
	for _, l := range img.Layers {
		if err := applyLayer(ctx, l, root); err != nil {
			return fmt.Errorf("render %s: layer %s: %w", img.ID, l, err)
		}
	}
	return nil
}

func prepareTarget(dir string, overwrite bool) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, 0o755)
	case err != nil:
		return err
	case len(ents) > 0 && !overwrite:
		return fmt.Errorf("%w: %s is not empty (use --overwrite)", ErrExists, dir)
	case len(ents) > 0:
		for _, e := range ents {
			if err := removeAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyLayer copies the tree src over dst with overlayfs semantics. Directories are created
// before their children and replace whatever non-directory dst had there, so no path below
// dst ever passes through a symlink.
func applyLayer(ctx context.Context, src, dst string) error {
	links := map[uint64]string{} // inode -> first path, to keep hardlinks within a layer
	var dirs []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		target := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			if st.Rdev == 0 { // an overlayfs whiteout
				return removeAll(target)
			}
		case unix.S_IFDIR:
			buf := make([]byte, 2)
			if n, err := unix.Lgetxattr(p, "trusted.overlay.opaque", buf); err == nil && string(buf[:n]) == "y" {
				if err := removeAll(target); err != nil {
					return err
				}
			}
			var dt unix.Stat_t
			if err := unix.Lstat(target, &dt); err == nil && dt.Mode&unix.S_IFMT != unix.S_IFDIR {
				if err := os.Remove(target); err != nil {
					return err
				}
			}
			if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			dirs = append(dirs, rel)
			return nil
		}
		if err := removeAll(target); err != nil {
			return err
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if first, ok := links[st.Ino]; ok {
				return os.Link(filepath.Join(dst, first), target)
			}
			links[st.Ino] = rel
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if err := copyFile(p, target); err != nil {
				return err
			}
		case unix.S_IFLNK:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
		default:
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return err
			}
		}
		return copyMeta(target, &st)
	})
	if err != nil {
		return err
	}
	for _, dir := range slices.Backward(dirs) {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(src, dir), &st); err != nil {
			return err
		}
		if err := copyMeta(filepath.Join(dst, dir), &st); err != nil {
			return err
		}
	}
	return nil
}

func copyMeta(p string, st *unix.Stat_t) error {
	if os.Geteuid() == 0 {
		if err := unix.Lchown(p, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if err := unix.Chmod(p, st.Mode&0o7777); err != nil {
			return err
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
