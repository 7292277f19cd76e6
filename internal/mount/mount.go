// Package mount is mount(2) as data. A Mount is one mount as a plain value that tests can
// compare; Apply makes it (with the extra calls a read-only bind or a propagation change
// takes) and Unmount undoes it. The mount table is read through github.com/moby/sys/mountinfo,
// which undoes mountinfo's escapes and reads the calling thread's own table. The pod runtime
// (app roots, pinned namespaces, per-pod sysfs) and early boot (API filesystems, /usr, ROOT)
// both mount through this package, and the installer reads the table with it to tell whether
// a disk is in use.
package mount

import (
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// Mount is one mount: Source, Target, FSType, Flags (MS_*) and Data are mount(2)'s arguments.
// Flags may combine a mount with a propagation change (MS_PRIVATE, MS_SHARED, MS_SLAVE,
// MS_UNBINDABLE, with MS_REC for the whole subtree): Apply makes the mount, then changes its
// propagation. A Mount with only propagation flags and no FSType changes the propagation of
// what is mounted at Target.
type Mount struct {
	Source string
	Target string
	FSType string
	Flags  uintptr
	Data   string
}

// Inside is a mountinfo filter that keeps the mount points strictly inside dir, an absolute
// clean path with its symlinks resolved: neither dir itself nor a sibling that merely shares
// its prefix (/a/bc for /a/b).
func Inside(dir string) mountinfo.FilterFunc {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	return func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint == dir || !strings.HasPrefix(m.Mountpoint, prefix), false
	}
}

// unmountOrder returns the mount points of a table in mountinfo order (the order they were
// mounted in) last first: a mount made on top of another comes off before it.
func unmountOrder(table []*mountinfo.Info) []string {
	out := make([]string, 0, len(table))
	for _, m := range table {
		out = append(out, m.Mountpoint)
	}
	slices.Reverse(out)
	return out
}
