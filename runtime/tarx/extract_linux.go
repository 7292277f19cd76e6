package tarx

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Extract unpacks the tar stream r into dir, which must exist (normally empty: a fresh
// temporary directory that the caller renames into place when Extract succeeds). On error
// dir holds a partial tree that the caller discards.
func Extract(ctx context.Context, r io.Reader, dir string, opts Options) (Result, error) {
	root, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Result{}, fmt.Errorf("extract into %s: %w", dir, err)
	}
	x := &extractor{
		ctx:     ctx,
		root:    root,
		opts:    opts,
		buf:     make([]byte, 1<<20),
		dropped: map[string]bool{},
		cache:   dirCache{fd: -1},
	}
	defer x.close()
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return x.res, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return x.res, readErr(err)
		}
		if err := x.charge(hdr.Name, declaredSize(hdr)); err != nil {
			return x.res, err
		}
		if err := x.entry(hdr, tr); err != nil {
			return x.res, err
		}
	}
	if err := x.finish(); err != nil {
		return x.res, err
	}
	return x.res, nil
}

// declaredSize is what an entry's content will occupy once written: a regular file's size
// from its header, which for a sparse file is its logical size, holes included.
func declaredSize(hdr *tar.Header) int64 {
	if hdr.Typeflag == tar.TypeReg {
		return hdr.Size
	}
	return 0
}

func (x *extractor) charge(name string, size int64) error {
	if x.opts.Limit == nil {
		return nil
	}
	return x.opts.Limit.Charge(name, size)
}

// readErr classifies an error from the tar reader; errors of the underlying stream (a digest
// mismatch, a corrupt gzip member) pass through unchanged.
func readErr(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %v", ErrTruncated, err)
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong), errors.Is(err, tar.ErrInsecurePath):
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return err
}

type dirCache struct {
	path string
	fd   int
}

type dirMeta struct {
	name string
	hdr  *tar.Header
	mode uint32
}

type extractor struct {
	ctx     context.Context
	root    int
	opts    Options
	buf     []byte
	res     Result
	dropped map[string]bool // names of entries left out, so hardlinks to them are left out too
	dirs    []dirMeta       // directories' metadata, applied last so that 0555 dirs can be filled
	cache   dirCache        // the last parent directory opened
}

func (x *extractor) close() {
	x.dropCache("")
	unix.Close(x.root)
}

// dropCache closes the cached parent fd if it is p or lies beneath p ("" drops it always).
func (x *extractor) dropCache(p string) {
	if x.cache.fd < 0 {
		return
	}
	if p == "" || x.cache.path == p || strings.HasPrefix(x.cache.path, p+"/") {
		unix.Close(x.cache.fd)
		x.cache = dirCache{fd: -1}
	}
}

func (x *extractor) drop(name, why string) {
	x.res.Dropped = append(x.res.Dropped, name+": "+why)
}

func (x *extractor) entry(hdr *tar.Header, tr *tar.Reader) error {
	name, err := CleanName(hdr.Name)
	if err != nil {
		return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	if name == "." {
		return nil // the root itself: its mode is the store's business
	}
	parent, base := path.Dir(name), path.Base(name)

	if x.opts.Whiteouts {
		if hidden, opaque, ok := whiteout(base); ok {
			return x.whiteout(name, parent, hidden, opaque)
		}
	}

	pfd, err := x.dirfd(parent)
	if err != nil {
		return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	mode := uint32(hdr.Mode) & 0o7777
	// setuid/setgid raise privileges on files only; on a directory setgid just passes the
	// group on to new entries, so it is kept.
	if !x.opts.Trusted && mode&(unix.S_ISUID|unix.S_ISGID) != 0 && hdr.Typeflag != tar.TypeDir {
		mode &^= unix.S_ISUID | unix.S_ISGID
		x.drop(name, "setuid/setgid bits dropped (untrusted image)")
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.mkdir(pfd, name, base, hdr, mode)
	case tar.TypeReg: // tar.Reader turns the legacy TypeRegA into this
		return x.file(pfd, name, base, hdr, tr, mode)
	case tar.TypeSymlink:
		if err := x.clear(pfd, name, base); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("tar entry %q: symlink: %w", hdr.Name, err)
		}
		x.res.Symlinks++
		return x.meta(pfd, base, hdr, 0, false)
	case tar.TypeLink:
		return x.hardlink(pfd, name, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return x.node(pfd, name, base, hdr, mode)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		x.drop(name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
		x.dropped[name] = true
		return nil
	}
}

// dirfd returns an fd (O_PATH) of the directory p beneath the root, creating missing
// directories. The fd belongs to the cache: callers must not close it.
func (x *extractor) dirfd(p string) (int, error) {
	if p == "." {
		return x.root, nil
	}
	if x.cache.fd >= 0 && x.cache.path == p {
		return x.cache.fd, nil
	}
	x.dropCache("")
	fd, err := x.openDir(p, true)
	if err != nil {
		return -1, err
	}
	x.cache = dirCache{path: p, fd: fd}
	return fd, nil
}

// openDir opens the directory p beneath the root. RESOLVE_BENEATH makes any symlink that
// leads out of the root (absolute, or climbing with "..") fail with EXDEV instead of being
// followed; symlinks that stay inside are followed, as tar would.
func (x *extractor) openDir(p string, create bool) (int, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(x.root, p, how)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN):
			continue
		case errors.Is(err, unix.ENOENT) && create:
			if err := x.mkdirAll(p); err != nil {
				return -1, err
			}
			create = false
			continue
		case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
			return -1, fmt.Errorf("%w: directory %q leads outside the root through a symlink", ErrUnsafe, p)
		case errors.Is(err, unix.ENOTDIR):
			return -1, fmt.Errorf("%w: %q is not a directory", ErrUnsafe, p)
		case errors.Is(err, unix.ENOSYS):
			return -1, fmt.Errorf("open %q: openat2 is needed (Linux 5.6 or later): %w", p, err)
		default:
			return -1, fmt.Errorf("open directory %q: %w", p, err)
		}
	}
}

// mkdirAll creates p and its missing parents (mode 0755, as tar does for implied directories).
func (x *extractor) mkdirAll(p string) error {
	pfd := x.root
	if parent := path.Dir(p); parent != "." {
		fd, err := x.openDir(parent, true)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		pfd = fd
	}
	// Implied directories are charged too: one entry with a deep name could otherwise create
	// thousands of them.
	if err := x.charge(p+"/", 0); err != nil {
		return err
	}
	if err := unix.Mkdirat(pfd, path.Base(p), 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create directory %q: %w", p, err)
	}
	return nil
}

// clear removes whatever is at base in pfd so that a new entry can take its place. It never
// follows a symlink: the link itself is removed.
func (x *extractor) clear(pfd int, name, base string) error {
	err := unix.Unlinkat(pfd, base, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if errors.Is(err, unix.EISDIR) {
		x.dropCache(name)
		if err := unix.Unlinkat(pfd, base, unix.AT_REMOVEDIR); err != nil {
			return fmt.Errorf("replace directory: %w", err)
		}
		return nil
	}
	return fmt.Errorf("replace existing entry: %w", err)
}

func (x *extractor) mkdir(pfd int, name, base string, hdr *tar.Header, mode uint32) error {
	err := unix.Mkdirat(pfd, base, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = nil // a directory named twice: the last entry's metadata wins
		} else {
			if err := x.clear(pfd, name, base); err != nil {
				return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
			}
			err = unix.Mkdirat(pfd, base, 0o700)
		}
	}
	if err != nil {
		return fmt.Errorf("tar entry %q: mkdir: %w", hdr.Name, err)
	}
	x.res.Dirs++
	x.dirs = append(x.dirs, dirMeta{name: name, hdr: hdr, mode: mode})
	return nil
}

func (x *extractor) file(pfd int, name, base string, hdr *tar.Header, tr *tar.Reader, mode uint32) error {
	if err := x.clear(pfd, name, base); err != nil {
		return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("tar entry %q: create: %w", hdr.Name, err)
	}
	defer unix.Close(fd)
	for {
		n, rerr := tr.Read(x.buf)
		if n > 0 {
			if err := writeAll(fd, x.buf[:n]); err != nil {
				return fmt.Errorf("tar entry %q: write: %w", hdr.Name, err)
			}
			x.res.Bytes += int64(n)
			if wl, ok := x.opts.Limit.(WriteLimit); ok {
				if err := wl.Wrote(hdr.Name, int64(n)); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, readErr(rerr))
		}
		if err := x.ctx.Err(); err != nil {
			return err
		}
	}
	x.res.Files++
	if err := x.fdMeta(fd, name, hdr, mode); err != nil {
		return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	return nil
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return err
		}
		b = b[n:]
	}
	return nil
}

func (x *extractor) hardlink(pfd int, name, base string, hdr *tar.Header) error {
	target, err := CleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("tar entry %q: hardlink target %q: %w", hdr.Name, hdr.Linkname, err)
	}
	if x.dropped[target] {
		x.drop(name, "hardlink to a dropped entry")
		x.dropped[name] = true
		return nil
	}
	tpfd := x.root
	if tp := path.Dir(target); tp != "." {
		fd, err := x.openDir(tp, false)
		if err != nil {
			return fmt.Errorf("tar entry %q: hardlink target %q: %w", hdr.Name, hdr.Linkname, err)
		}
		defer unix.Close(fd)
		tpfd = fd
	}
	if target == name {
		return fmt.Errorf("tar entry %q: %w: hardlink to itself", hdr.Name, ErrInvalid)
	}
	if err := x.clear(pfd, name, base); err != nil {
		return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	// Flags 0: a symlink target is linked as the symlink itself, never followed.
	if err := unix.Linkat(tpfd, path.Base(target), pfd, base, 0); err != nil {
		return fmt.Errorf("tar entry %q: hardlink to %q: %w", hdr.Name, hdr.Linkname, err)
	}
	x.res.Hardlinks++
	return nil
}

func (x *extractor) node(pfd int, name, base string, hdr *tar.Header, mode uint32) error {
	var typ uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = unix.S_IFCHR
	case tar.TypeBlock:
		typ = unix.S_IFBLK
	default:
		typ = unix.S_IFIFO
	}
	if typ != unix.S_IFIFO && !x.opts.Trusted {
		x.drop(name, "device node dropped (untrusted image)")
		x.dropped[name] = true
		return nil
	}
	if err := x.clear(pfd, name, base); err != nil {
		return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := unix.Mknodat(pfd, base, typ|mode, int(dev)); err != nil {
		return fmt.Errorf("tar entry %q: mknod: %w", hdr.Name, err)
	}
	x.res.Files++
	return x.meta(pfd, base, hdr, mode, true)
}

// whiteout records an OCI whiteout as overlayfs understands it.
func (x *extractor) whiteout(name, parent, hidden string, opaque bool) error {
	pfd, err := x.dirfd(parent)
	if err != nil {
		return fmt.Errorf("tar entry %q: %w", name, err)
	}
	x.res.Whiteouts++
	if opaque {
		if err := unix.Setxattr(procFD(pfd), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("tar entry %q: mark %q opaque: %w", name, parent, err)
		}
		return nil
	}
	if hidden == "" || hidden == "." || hidden == ".." {
		return fmt.Errorf("tar entry %q: %w: whiteout of %q", name, ErrUnsafe, hidden)
	}
	if err := x.clear(pfd, path.Join(parent, hidden), hidden); err != nil {
		return fmt.Errorf("tar entry %q: %w", name, err)
	}
	if err := unix.Mknodat(pfd, hidden, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("tar entry %q: whiteout: %w", name, err)
	}
	return nil
}

func procFD(fd int) string { return fmt.Sprintf("/proc/self/fd/%d", fd) }

// meta applies owner, mode and mtime to a non-directory that cannot be opened for writing
// (symlinks, device nodes), through its parent and without following it.
func (x *extractor) meta(pfd int, base string, hdr *tar.Header, mode uint32, chmod bool) error {
	if x.opts.Owners {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("tar entry %q: chown: %w", hdr.Name, err)
		}
	}
	if chmod {
		// fchmodat cannot refuse to follow symlinks on older kernels; the node was just
		// created by us, so it is not one.
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return fmt.Errorf("tar entry %q: chmod: %w", hdr.Name, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("tar entry %q: set mtime: %w", hdr.Name, err)
	}
	return nil
}

// fdMeta applies owner, mode, xattrs and mtime through an open fd. Owner goes first: chown
// clears setuid bits.
func (x *extractor) fdMeta(fd int, name string, hdr *tar.Header, mode uint32) error {
	if x.opts.Owners {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(attr, "user."):
		case attr == "security.capability" && x.opts.Trusted:
		default:
			x.drop(name, fmt.Sprintf("xattr %s dropped", attr))
			continue
		}
		if err := unix.Fsetxattr(fd, attr, []byte(v), 0); err != nil {
			return fmt.Errorf("set xattr %s: %w", attr, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(fd, "", ts, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("set mtime: %w", err)
	}
	return nil
}

// finish applies directories' metadata, deepest first, so that a read-only directory's
// mtime is set after its last child was written.
func (x *extractor) finish() error {
	x.dropCache("")
	for _, d := range slices.Backward(x.dirs) {
		how := &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_SYMLINKS,
		}
		fd, err := unix.Openat2(x.root, d.name, how)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				continue // replaced by a later entry
			}
			return fmt.Errorf("tar entry %q: %w", d.hdr.Name, err)
		}
		err = x.fdMeta(fd, d.name, d.hdr, d.mode)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("tar entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}
