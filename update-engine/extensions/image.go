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

// readImageRelease returns the extension-release.NAME file that an extension image (NAME.raw)
// of size bytes carries, read from its erofs file system without mounting it: from the usr
// partition for arch of a Discoverable Disk Image (image/sysext builds those), or from
// usr/lib/extension-release.d of an image that is one bare erofs. dm-verity is not checked:
// systemd-sysext opens the image through it when it merges, and this only reads what the
// image says it fits.
func readImageRelease(r io.ReaderAt, size int64, name, arch string) ([]byte, error) {
	file := "extension-release." + name
	if t, err := gpt.Read(r, size, 0); err == nil {
		want, ok := usrTypes[arch]
		if !ok {
			return nil, fmt.Errorf("%w: no usr partition type known for architecture %s", ErrRelease, arch)
		}
		for _, p := range t.Partitions {
			if p.Type != want {
				continue
			}
			// gpt.Read keeps every partition inside the disk.
			off, n := p.Offset(t.SectorSize), p.Size(t.SectorSize)
			fs, err := openErofs(io.NewSectionReader(r, off, n), n)
			if err != nil {
				return nil, fmt.Errorf("%w: usr partition: %w", ErrRelease, err)
			}
			return fs.readFile("lib/extension-release.d/"+file, osrelease.MaxSize)
		}
		return nil, fmt.Errorf("%w: no usr partition (%s) for %s", ErrRelease, want, arch)
	}
	fs, err := openErofs(r, size)
	if err != nil {
		return nil, fmt.Errorf("%w: neither a disk image nor an erofs: %w", ErrRelease, err)
	}
	return fs.readFile("usr/lib/extension-release.d/"+file, osrelease.MaxSize)
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
}

const (
	erofsMagic       = 0xE0F5E1E2
	erofsSuperOffset = 1024
	erofsSlot        = 32 // an inode number counts slots of this size from the inode area
	direntSize       = 12
	maxDir           = 4 << 20

	layoutPlain  = 0
	layoutInline = 2

	modeType = 0o170000
	modeDir  = 0o040000
	modeReg  = 0o100000
)

var errCorrupt = errors.New("corrupt erofs")

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
	default:
		return nil, fmt.Errorf("inode %d: data layout %d (compressed or chunked) is not read here", nid, in.layout)
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

// lookup finds name in directory data: blocks, each an array of 12-byte entries (nid, name
// offset, type) followed by the names, the first entry's name offset giving their number.
func (e *erofs) lookup(dir []byte, name string) (uint64, bool, error) {
	le := binary.LittleEndian
	blk := 1 << e.blkBits
	for start := 0; start < len(dir); start += blk {
		b := dir[start:min(start+blk, len(dir))]
		if len(b) < direntSize {
			return 0, false, fmt.Errorf("%w: directory block of %d bytes", errCorrupt, len(b))
		}
		first := int(le.Uint16(b[8:]))
		if first < direntSize || first%direntSize != 0 || first > len(b) {
			return 0, false, fmt.Errorf("%w: directory block with names at %d", errCorrupt, first)
		}
		n := first / direntSize
		for i := range n {
			off := int(le.Uint16(b[i*direntSize+8:]))
			end := len(b)
			if i+1 < n {
				end = int(le.Uint16(b[(i+1)*direntSize+8:]))
			}
			if off < first || end < off || end > len(b) {
				return 0, false, fmt.Errorf("%w: directory entry %d's name at %d..%d", errCorrupt, i, off, end)
			}
			got := b[off:end]
			if i+1 == n {
				// The last name runs to the block's end or to a NUL.
				if z := strings.IndexByte(string(got), 0); z >= 0 {
					got = got[:z]
				}
			}
			if string(got) == name {
				return le.Uint64(b[i*direntSize:]), true, nil
			}
		}
	}
	return 0, false, nil
}

// readFile reads the regular file at path (slash-separated, from the root, no symlinks
// followed), at most limit bytes.
func (e *erofs) readFile(path string, limit int64) ([]byte, error) {
	nid := e.root
	parts := strings.Split(path, "/")
	for i, part := range parts {
		in, err := e.inode(nid)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRelease, path, err)
		}
		if in.mode&modeType != modeDir {
			return nil, fmt.Errorf("%w: %s: %s is not a directory", ErrRelease, path, strings.Join(parts[:i], "/"))
		}
		dir, err := e.data(nid, in, maxDir)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRelease, path, err)
		}
		child, ok, err := e.lookup(dir, part)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRelease, path, err)
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s: %w", ErrRelease, path, errNoRelease)
		}
		nid = child
	}
	in, err := e.inode(nid)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRelease, path, err)
	}
	if in.mode&modeType != modeReg {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrRelease, path)
	}
	b, err := e.data(nid, in, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRelease, path, err)
	}
	return b, nil
}

// errNoRelease: the image carries no extension-release of its name.
var errNoRelease = errors.New("not in the image")
