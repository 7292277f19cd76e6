// Package tarx extracts untrusted tar streams (appc ACIs, OCI layers) into a directory without
// ever touching anything outside it. Names with ".." or a leading "/" are refused, every path is
// resolved beneath the root with openat2(RESOLVE_BENEATH), so a symlink or hardlink from the
// archive can never lead a later entry out of it, and device nodes, setuid/setgid bits and file
// capabilities are dropped unless the caller vouches for the source. OCI whiteouts become
// overlayfs whiteouts, so extracted layers stack as overlay lower dirs. A Limit, consulted
// before anything is written, bounds what an archive may expand to.
package tarx

import (
	"errors"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrUnsafe marks an entry that would reach outside the root: "..", an absolute name,
	// a symlink or hardlink escape.
	ErrUnsafe = errors.New("unsafe tar entry")
	// ErrTruncated marks an archive that ends in the middle of an entry.
	ErrTruncated = errors.New("archive truncated")
	// ErrInvalid marks an archive that is not a valid tar stream.
	ErrInvalid = errors.New("invalid tar archive")
)

// Options says how much to trust the archive and how to map it.
type Options struct {
	// Trusted keeps device nodes, setuid/setgid bits of files and security.capability xattrs.
	// Set it only for a source whose signature was verified.
	Trusted bool
	// Whiteouts turns OCI whiteout entries (".wh.NAME", ".wh..wh..opq") into overlayfs
	// whiteouts (a 0/0 character device, the trusted.overlay.opaque xattr).
	Whiteouts bool
	// Owners applies the entries' uid/gid (needs CAP_CHOWN). Without it files belong to the caller.
	Owners bool
	// Limit, when set, is charged for every entry before it is written.
	Limit Limit
}

// Limit bounds what an extraction writes. Extract charges it before each entry with the
// entry's name and, for a regular file, the size its header declares (a sparse file counts
// whole: its holes are written out as zeros), and before each directory it creates for an
// entry's missing parents, with size 0. So every name and every byte of file content that
// lands beneath the root was charged first. An error from Charge stops the extraction;
// Extract's error wraps it.
type Limit interface {
	Charge(name string, size int64) error
}

// WriteLimit is a Limit that is also told of file content as it is written (n bytes more
// of the entry name), for a bound that compares what was written with how much of the
// archive was read: a header declares its whole size before its data is read, so only
// the writes show how far a large file's data has come. An error stops the extraction.
type WriteLimit interface {
	Limit
	Wrote(name string, n int64) error
}

// Result counts what was extracted and names what was dropped.
type Result struct {
	Files, Dirs, Symlinks, Hardlinks, Whiteouts int
	Bytes                                       int64 // regular file content
	// Dropped lists entries that were left out (device nodes from an untrusted source) or
	// lost privileges (setuid/setgid bits, file capabilities), as "name: why".
	Dropped []string
}
