package mount

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// propagation are the flags that change a mount's propagation type; mount(2) does that in a
// call of its own, which ignores source, fstype and data.
const propagation = unix.MS_SHARED | unix.MS_PRIVATE | unix.MS_SLAVE | unix.MS_UNBINDABLE

// bindRemount are the per-mount flags that a bind mount ignores: they take effect through a
// remount of the bind.
const bindRemount = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
	unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME

// call is one mount(2).
type call struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// calls are the mount(2) calls that make m: the mount itself, a remount when a bind asks for
// per-mount flags, and a propagation change when m asks for one.
func (m Mount) calls() []call {
	prop := m.Flags & propagation
	flags := m.Flags &^ propagation
	var cs []call
	if prop == 0 || flags&(unix.MS_BIND|unix.MS_MOVE|unix.MS_REMOUNT) != 0 || m.FSType != "" {
		cs = append(cs, call{m.Source, m.Target, m.FSType, flags, m.Data})
		if flags&unix.MS_BIND != 0 && flags&unix.MS_REMOUNT == 0 && flags&bindRemount != 0 {
			cs = append(cs, call{"", m.Target, "", unix.MS_REMOUNT | unix.MS_BIND | flags&bindRemount, ""})
		}
	}
	if prop != 0 {
		cs = append(cs, call{"", m.Target, "", prop | flags&unix.MS_REC, ""})
	}
	return cs
}

// what names a call in an error.
func (c call) what() string {
	switch {
	case c.flags&unix.MS_REMOUNT != 0:
		return "remount " + c.target
	case c.flags&unix.MS_BIND != 0:
		return "bind " + c.source + " to " + c.target
	case c.flags&unix.MS_MOVE != 0:
		return "move " + c.source + " to " + c.target
	case c.flags&propagation != 0 && c.fstype == "":
		return "set propagation of " + c.target
	}
	return fmt.Sprintf("mount %s on %s (%s)", c.source, c.target, c.fstype)
}

// Apply makes the mount. A missing target directory is made first (0755), except for a remount
// or a propagation change, which need a mount there already. A bind's target may be a file
// (a namespace file bound onto an empty one), so failing to make a directory there is left
// for the mount to report.
func (m Mount) Apply() error {
	cs := m.calls()
	if len(cs) > 0 && cs[0].flags&unix.MS_REMOUNT == 0 && cs[0].flags&propagation == 0 {
		if err := os.MkdirAll(m.Target, 0o755); err != nil && m.Flags&unix.MS_BIND == 0 {
			return err
		}
	}
	for _, c := range cs {
		if err := unix.Mount(c.source, c.target, c.fstype, c.flags, c.data); err != nil {
			return fmt.Errorf("%s: %w", c.what(), err)
		}
	}
	return nil
}

// Unmount unmounts m's target; see Unmount.
func (m Mount) Unmount(flags int) error { return Unmount(m.Target, flags) }

// Unmount unmounts target with umount2(2)'s flags (MNT_DETACH, UMOUNT_NOFOLLOW, ...). A target
// that does not exist or is no mount point (EINVAL) is already unmounted: running it twice is
// harmless.
func Unmount(target string, flags int) error {
	if err := unix.Unmount(target, flags); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", target, err)
	}
	return nil
}

// Table reads a mount table in mountinfo form (proc(5)) from path, with the entries filter
// keeps (nil keeps all). An empty path reads the calling thread's own table,
// /proc/thread-self/mountinfo: a process whose threads are not all in one mount namespace
// (libcontainer leaves a thread in a container's and wedges it when that is the main thread)
// cannot trust /proc/self, which is the main thread's.
func Table(path string, filter mountinfo.FilterFunc) ([]*mountinfo.Info, error) {
	if path == "" {
		return mountinfo.GetMounts(filter)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := mountinfo.GetMountsFromReader(f, filter)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Beneath lists the mount points strictly inside dir in the calling thread's table, the last
// mounted first: the order to unmount them in. dir must be absolute, clean and free of
// symlinks.
func Beneath(dir string) ([]string, error) {
	t, err := Table("", Inside(dir))
	if err != nil {
		return nil, err
	}
	return unmountOrder(t), nil
}

// UnmountBeneath detaches every mount strictly inside dir but those named in keep, last
// mounted first, and reads the table again for what propagation brought in meanwhile (three
// rounds at most). A missing dir has nothing inside; running it twice is harmless.
func UnmountBeneath(dir string, keep ...string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	kept := map[string]bool{}
	for _, k := range keep {
		if rel, err := filepath.Rel(dir, k); err == nil {
			kept[filepath.Join(real, rel)] = true
		}
	}
	var errs []error
	for range 3 {
		mps, err := Beneath(real)
		if err != nil {
			return err
		}
		mps = slices.DeleteFunc(mps, func(mp string) bool { return kept[mp] })
		if len(mps) == 0 {
			return nil
		}
		errs = errs[:0]
		for _, mp := range mps {
			if err := Unmount(mp, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
