package extensions

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cairn-os/cairn/internal/gpt"
	"github.com/cairn-os/cairn/update-engine/osrelease"
)

// usrTypes are the Discoverable Partitions Specification's usr partition types, by systemd's
// architecture name: the partition of an extension image that systemd-sysext mounts on /usr.
var usrTypes = map[string]gpt.GUID{
	"x86-64": gpt.TypeUSR,
}

// rootTypes are the Discoverable Partitions Specification's root partition types: an
// extension image may carry its /usr in a root partition, which this reader does not open.
var rootTypes = map[string]gpt.GUID{
	"x86-64": gpt.MustParseGUID("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"),
}

// errUnsupported: an extension image this reader cannot read, which systemd-sysext may merge
// all the same. Such errors are *unsupportedError, which also match ErrRelease.
var errUnsupported = errors.New("not checked")

type unsupportedError struct{ why string }

func (e *unsupportedError) Error() string { return errUnsupported.Error() + ": " + e.why }

func (e *unsupportedError) Is(target error) bool {
	return target == errUnsupported || target == ErrRelease
}

func unsupported(format string, a ...any) error {
	return &unsupportedError{why: fmt.Sprintf(format, a...)}
}

// uncheckedWhy is why err's image was not checked, or "" when err is no errUnsupported.
func uncheckedWhy(err error) string {
	if u, ok := errors.AsType[*unsupportedError](err); ok {
		return u.why
	}
	return ""
}

// An extension image (NAME.raw) is read from its erofs file system without mounting it: the
// usr partition for the host's architecture of a Discoverable Disk Image (image/sysext builds
// those), or an image that is one bare erofs holding usr/. dm-verity is not checked:
// systemd-sysext opens the image through it when it merges, and this only reads what the image
// says it fits. An image that systemd can mount and this reader cannot (another file system, a
// root partition, a compressed file) is errUnsupported.

// hasOSRelease reports whether the image carries /usr/lib/os-release.
func (e *erofs) hasOSRelease() (bool, error) {
	p := e.usrPath("lib/os-release")
	_, in, err := e.walk(p)
	switch {
	case errors.Is(err, errAbsent):
		return false, nil
	case err != nil:
		return false, err
	case in.mode&modeType == modeLink:
		// systemd follows it, and a dangling one does not count.
		return false, unsupported("%s is a symbolic link, which the check does not follow", e.show(p))
	}
	return true, nil
}

// release reads the image's /usr/lib/extension-release.d/extension-release.NAME. Without
// it, systemd 252 takes the one other extension-release file whose extended attribute
// user.extension-release.strict is "false" (an image renamed when it was deployed), which
// this reader, knowing no extended attributes, cannot tell: an image with such candidates is
// errUnsupported.
func (e *erofs) release(name string) ([]byte, error) {
	b, err := e.readFile(e.usrPath("lib/extension-release.d/extension-release."+name), osrelease.MaxSize)
	if !errors.Is(err, errAbsent) {
		return b, err
	}
	ents, derr := e.readDir(e.usrPath("lib/extension-release.d"))
	switch {
	case errors.Is(derr, errAbsent):
		return nil, err
	case derr != nil:
		return nil, derr
	}
	var others []string
	for _, d := range ents {
		if n, ok := strings.CutPrefix(d.name, "extension-release."); ok && d.ftype == ftypeReg && validImageName(n) {
			others = append(others, d.name)
		}
	}
	if len(others) == 0 {
		return nil, err
	}
	return nil, unsupported("no extension-release.%s but %s, which systemd-sysext takes when its extended attribute user.extension-release.strict is false; the check does not read extended attributes in images",
		name, strings.Join(others, ", "))
}

// openImage opens the erofs that systemd-sysext would merge from an image of size bytes: its
// usr partition for arch, or the image itself when it has no partition table.
func openImage(r io.ReaderAt, size int64, arch string) (*erofs, error) {
	t, err := gpt.Read(r, size, 0)
	if err != nil {
		fs, err := openErofs(r, size)
		if err != nil {
			if kind := otherFS(r, size); kind != "" {
				return nil, unsupported("a bare %s, which the check does not read", kind)
			}
			return nil, fmt.Errorf("%w: neither a disk image nor an erofs: %w", ErrRelease, err)
		}
		return fs, nil
	}
	want, ok := usrTypes[arch]
	if !ok {
		return nil, unsupported("no usr partition type known to the check for architecture %s", arch)
	}
	for _, p := range t.Partitions {
		if p.Type != want {
			continue
		}
		// gpt.Read keeps every partition inside the disk.
		off, n := p.Offset(t.SectorSize), p.Size(t.SectorSize)
		part := io.NewSectionReader(r, off, n)
		fs, err := openErofs(part, n)
		if err != nil {
			if kind := otherFS(part, n); kind != "" {
				return nil, unsupported("its usr partition is a %s, which the check does not read", kind)
			}
			return nil, fmt.Errorf("%w: usr partition: %w", ErrRelease, err)
		}
		fs.usr = true
		return fs, nil
	}
	for _, p := range t.Partitions {
		if p.Type == rootTypes[arch] {
			return nil, unsupported("a root partition instead of a usr partition, which the check does not read")
		}
	}
	return nil, fmt.Errorf("%w: no usr partition (%s) for %s", ErrRelease, want, arch)
}

// otherFS names the file system that r holds by its magic number, of those systemd mounts and
// this reader does not; "" for none of them.
func otherFS(r io.ReaderAt, size int64) string {
	for _, m := range []struct {
		off   int64
		magic string
		name  string
	}{
		{0, "hsqs", "squashfs"},
		{1024 + 56, "\x53\xef", "ext4"},
		{0, "XFSB", "xfs"},
		{65536 + 64, "_BHRfS_M", "btrfs"},
	} {
		b := make([]byte, len(m.magic))
		if m.off+int64(len(b)) > size {
			continue
		}
		if _, err := r.ReadAt(b, m.off); err == nil && string(b) == m.magic {
			return m.name
		}
	}
	return ""
}

// erofs reads files from an erofs file system (the kernel's erofs_fs.h): uncompressed
// directories and files, plain or with their tail inline, which is how mkfs.erofs stores
// directories and files too small to gain from compression, such as an extension-release.
type erofs struct {
	r       io.ReaderAt
	size    int64
	blkBits uint
	meta    int64 // byte offset of the inode area
	root    uint64
	usr     bool // a usr partition, mounted on /usr, rather than a tree holding usr/
}

// usrPath is where the file at /usr/p is in the file system.
func (e *erofs) usrPath(p string) string {
	if e.usr {
		return p
	}
	return "usr/" + p
}

// show is how path is named in messages: as it is in the merged tree.
func (e *erofs) show(path string) string {
	if e.usr {
		return "/usr/" + path
	}
	return "/" + path
}

const (
	erofsMagic       = 0xE0F5E1E2
	erofsSuperOffset = 1024
	erofsSlot        = 32 // an inode number counts slots of this size from the inode area
	direntSize       = 12
	maxDir           = 4 << 20

	layoutPlain   = 0
	layoutInline  = 2
	layoutChunked = 4 // the last known layout; 1 and 3 are compressed

	modeType = 0o170000
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeLink = 0o120000
)

var (
	errCorrupt = errors.New("corrupt erofs")
	// errPacked: data stored compressed or in chunks, which systemd reads through the kernel.
	errPacked = errors.New("compressed or chunked")
)

func openErofs(r io.ReaderAt, size int64) (*erofs, error) {
	sb := make([]byte, 128)
	if size < erofsSuperOffset+int64(len(sb)) {
		return nil, fmt.Errorf("%d bytes are too few", size)
	}
	if _, err := r.ReadAt(sb, erofsSuperOffset); err != nil {
		return nil, fmt.Errorf("superblock: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint32(sb[0:]) != erofsMagic {
		return nil, errors.New("no erofs superblock")
	}
	bits := uint(sb[12])
	if bits < 9 || bits > 16 {
		return nil, fmt.Errorf("%w: block size 2^%d", errCorrupt, bits)
	}
	return &erofs{r: r, size: size, blkBits: bits, meta: int64(le.Uint32(sb[40:])) << bits, root: uint64(le.Uint16(sb[14:]))}, nil
}

// inode is what readFile needs of one.
type inode struct {
	mode     uint16
	layout   int
	size     uint64
	blkaddr  uint32
	inlineAt int64 // where an inline tail starts: after the inode and its extended attributes
}

func (e *erofs) inode(nid uint64) (inode, error) {
	var in inode
	if nid > uint64(e.size)/erofsSlot {
		return in, fmt.Errorf("%w: inode %d beyond the image", errCorrupt, nid)
	}
	at := e.meta + int64(nid)*erofsSlot
	if at < 0 || at+erofsSlot > e.size {
		return in, fmt.Errorf("%w: inode %d beyond the image", errCorrupt, nid)
	}
	b := make([]byte, 64)
	n := min(int64(len(b)), e.size-at)
	if _, err := e.r.ReadAt(b[:n], at); err != nil {
		return in, fmt.Errorf("inode %d: %w", nid, err)
	}
	le := binary.LittleEndian
	format := le.Uint16(b[0:])
	in.layout = int(format>>1) & 7
	in.mode = le.Uint16(b[4:])
	isize := int64(32)
	if format&1 == 1 {
		if n < 64 {
			return in, fmt.Errorf("%w: inode %d beyond the image", errCorrupt, nid)
		}
		isize = 64
		in.size = le.Uint64(b[8:])
	} else {
		in.size = uint64(le.Uint32(b[8:]))
	}
	in.blkaddr = le.Uint32(b[16:])
	var xattrs int64
	if c := int64(le.Uint16(b[2:])); c > 0 {
		xattrs = 12 + (c-1)*4
	}
	in.inlineAt = at + isize + xattrs
	return in, nil
}

// data reads an inode's content, refused past limit bytes.
func (e *erofs) data(nid uint64, in inode, limit int64) ([]byte, error) {
	if in.size > uint64(limit) {
		return nil, fmt.Errorf("inode %d: %d bytes, more than the %d read", nid, in.size, limit)
	}
	size := int64(in.size)
	blk := int64(1) << e.blkBits
	var head int64 // bytes in whole blocks at blkaddr
	switch in.layout {
	case layoutPlain:
		head = size
	case layoutInline:
		if size > 0 {
			head = (size - 1) / blk * blk
		}
	case 1, 3, layoutChunked:
		return nil, fmt.Errorf("inode %d: data layout %d: %w", nid, in.layout, errPacked)
	default:
		return nil, fmt.Errorf("%w: inode %d: data layout %d", errCorrupt, nid, in.layout)
	}
	out := make([]byte, size)
	if head > 0 {
		at := int64(in.blkaddr) << e.blkBits
		if at > e.size || head > e.size-at {
			return nil, fmt.Errorf("%w: inode %d: data beyond the image", errCorrupt, nid)
		}
		if _, err := e.r.ReadAt(out[:head], at); err != nil {
			return nil, fmt.Errorf("inode %d: %w", nid, err)
		}
	}
	if tail := size - head; tail > 0 {
		// The tail shares the inode's block and must end in it.
		if in.inlineAt%blk+tail > blk || in.inlineAt+tail > e.size {
			return nil, fmt.Errorf("%w: inode %d: inline data crosses its block", errCorrupt, nid)
		}
		if _, err := e.r.ReadAt(out[head:], in.inlineAt); err != nil {
			return nil, fmt.Errorf("inode %d: %w", nid, err)
		}
	}
	return out, nil
}

// dirent is one entry of a directory.
type dirent struct {
	name  string
	nid   uint64
	ftype byte // erofs's file type: 1 a regular file, 2 a directory, 7 a symlink
}

const ftypeReg = 1

// entries calls fn for each entry of directory data, until it returns false: blocks, each an
// array of 12-byte entries (nid, name offset, type) followed by the names, the first entry's
// name offset giving their number.
func (e *erofs) entries(dir []byte, fn func(dirent) bool) error {
	le := binary.LittleEndian
	blk := 1 << e.blkBits
	for start := 0; start < len(dir); start += blk {
		b := dir[start:min(start+blk, len(dir))]
		if len(b) < direntSize {
			return fmt.Errorf("%w: directory block of %d bytes", errCorrupt, len(b))
		}
		first := int(le.Uint16(b[8:]))
		if first < direntSize || first%direntSize != 0 || first > len(b) {
			return fmt.Errorf("%w: directory block with names at %d", errCorrupt, first)
		}
		n := first / direntSize
		for i := range n {
			off := int(le.Uint16(b[i*direntSize+8:]))
			end := len(b)
			if i+1 < n {
				end = int(le.Uint16(b[(i+1)*direntSize+8:]))
			}
			if off < first || end < off || end > len(b) {
				return fmt.Errorf("%w: directory entry %d's name at %d..%d", errCorrupt, i, off, end)
			}
			got := b[off:end]
			if i+1 == n {
				// The last name runs to the block's end or to a NUL.
				if z := strings.IndexByte(string(got), 0); z >= 0 {
					got = got[:z]
				}
			}
			if !fn(dirent{name: string(got), nid: le.Uint64(b[i*direntSize:]), ftype: b[i*direntSize+10]}) {
				return nil
			}
		}
	}
	return nil
}

// lookup finds name in directory data.
func (e *erofs) lookup(dir []byte, name string) (uint64, bool, error) {
	var nid uint64
	var found bool
	err := e.entries(dir, func(d dirent) bool {
		if d.name == name {
			nid, found = d.nid, true
		}
		return !found
	})
	return nid, found, err
}

// readDir lists the directory at path.
func (e *erofs) readDir(path string) ([]dirent, error) {
	nid, in, err := e.walk(path)
	if err != nil {
		return nil, err
	}
	if in.mode&modeType != modeDir {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrRelease, e.show(path))
	}
	dir, err := e.data(nid, in, maxDir)
	if errors.Is(err, errPacked) {
		return nil, unsupported("directory %s is compressed or chunked, which the check does not read", e.show(path))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRelease, e.show(path), err)
	}
	var ents []dirent
	err = e.entries(dir, func(d dirent) bool {
		ents = append(ents, d)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRelease, e.show(path), err)
	}
	return ents, nil
}

// walk finds the inode at path (slash-separated, from the root), following no symlink: one
// on the way is errUnsupported.
func (e *erofs) walk(path string) (uint64, inode, error) {
	nid := e.root
	parts := strings.Split(path, "/")
	for i := 0; ; i++ {
		in, err := e.inode(nid)
		if err != nil {
			return 0, in, fmt.Errorf("%w: %s: %w", ErrRelease, e.show(path), err)
		}
		if i == len(parts) {
			return nid, in, nil
		}
		here := strings.Join(parts[:i], "/")
		switch in.mode & modeType {
		case modeDir:
		case modeLink:
			return 0, in, unsupported("%s is a symbolic link, which the check does not follow", e.show(here))
		default:
			return 0, in, fmt.Errorf("%w: %s: %s is not a directory", ErrRelease, e.show(path), e.show(here))
		}
		dir, err := e.data(nid, in, maxDir)
		if errors.Is(err, errPacked) {
			return 0, in, unsupported("directory %s is compressed or chunked, which the check does not read", e.show(here))
		}
		if err != nil {
			return 0, in, fmt.Errorf("%w: %s: %w", ErrRelease, e.show(path), err)
		}
		child, ok, err := e.lookup(dir, parts[i])
		if err != nil {
			return 0, in, fmt.Errorf("%w: %s: %w", ErrRelease, e.show(path), err)
		}
		if !ok {
			return 0, in, fmt.Errorf("%w: %s: %w", ErrRelease, e.show(path), errAbsent)
		}
		nid = child
	}
}

// readFile reads the regular file at path (slash-separated, from the root, no symlinks
// followed), at most limit bytes.
func (e *erofs) readFile(path string, limit int64) ([]byte, error) {
	nid, in, err := e.walk(path)
	if err != nil {
		return nil, err
	}
	switch in.mode & modeType {
	case modeReg:
	case modeLink:
		return nil, unsupported("%s is a symbolic link, which the check does not follow", e.show(path))
	default:
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrRelease, e.show(path))
	}
	b, err := e.data(nid, in, limit)
	if errors.Is(err, errPacked) {
		return nil, unsupported("%s is compressed or chunked, which the check does not read", e.show(path))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRelease, e.show(path), err)
	}
	return b, nil
}

// errAbsent: a file the check looks for is not in the extension.
var errAbsent = errors.New("not in the extension")
