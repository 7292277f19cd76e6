package stage1

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/mount"
)

// PrivateUsers is a pod's user namespace (--private-users): IDs 0..Count-1 inside are
// Shift..Shift+Count-1 on the host, for every app of the pod.
type PrivateUsers struct {
	Shift uint32 `json:"shift"`
	Count uint32 `json:"count"`
}

// UIDRangeSize is the size of a pod's ID range, 65536 IDs as in rkt, so that every 16-bit ID an
// image may use has a host ID.
const UIDRangeSize = 1 << 16

// NewPrivateUsers picks a pod's block as rkt did, at random: a 65536-aligned block above the
// host's own first block and below 2^31 (IDs that tools treat as signed stay positive), and
// not one that an existing pod in podsDir holds. Nothing locks the draw: two pods prepared at
// the same moment could draw the same block, a chance of one in 32767, as with rkt.
func NewPrivateUsers(podsDir string) (*PrivateUsers, error) {
	taken, err := uidShiftsInUse(podsDir)
	if err != nil {
		return nil, fmt.Errorf("private users: the blocks of other pods: %w", err)
	}
	for range 1000 {
		u := &PrivateUsers{Shift: drawShift(), Count: UIDRangeSize}
		if !taken[u.Shift] {
			return u, nil
		}
	}
	return nil, fmt.Errorf("private users: no free block of %d IDs (%d pods hold one)", UIDRangeSize, len(taken))
}

// drawShift draws a block at random (tests replace it).
var drawShift = func() uint32 { return uint32(1+rand.IntN(1<<15-1)) * UIDRangeSize }

// Validate checks a block read from a pod's options: what NewPrivateUsers makes, nothing
// that could map a pod's IDs onto the host's own users.
func (u *PrivateUsers) Validate() error {
	if u.Shift < UIDRangeSize || u.Shift%UIDRangeSize != 0 || u.Count != UIDRangeSize || uint64(u.Shift)+uint64(u.Count) > 1<<31 {
		return fmt.Errorf("private users: shift %d count %d: want %d IDs at a multiple of %d from %d to 2^31", u.Shift, u.Count, UIDRangeSize, UIDRangeSize, UIDRangeSize)
	}
	return nil
}

// usernsFile returns an open user namespace with the range as its mapping, for idmapped mounts.
// It needs a process to make the namespace: the process is started traced, so that it stops at
// its exec before running anything, and is killed once its namespace is open.
func (u *PrivateUsers) usernsFile() (*os.File, error) {
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(u.Shift), Size: int(u.Count)}}
	// The child stops for its tracer, the thread that started it; were that thread to end
	// (Go ends a locked thread whose goroutine returns), the child would run on.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p, err := os.StartProcess("/proc/self/exe", []string{"cairn-userns"}, &os.ProcAttr{Sys: &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWUSER, UidMappings: m, GidMappings: m, Ptrace: true,
	}})
	if err != nil {
		return nil, fmt.Errorf("make a user namespace for %d:%d: %w", u.Shift, u.Count, err)
	}
	defer func() {
		p.Kill()
		_, _ = p.Wait() // reaps it: killed by design, its status says nothing
	}()
	f, err := os.Open("/proc/" + strconv.Itoa(p.Pid) + "/ns/user")
	if err != nil {
		return nil, fmt.Errorf("open the user namespace: %w", err)
	}
	return f, nil
}

// idmapLayers mounts each read-only layer at dir/<n> through the range's ID mapping, so that a
// file the image gives to uid 0 is, to the pod, owned by its own root, with nothing copied or
// chowned in the store. It returns the mounted paths in the order of layers.
func (u *PrivateUsers) idmapLayers(layers []string, dir string) ([]string, error) {
	ns, err := u.usernsFile()
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	out := make([]string, 0, len(layers))
	for i, l := range layers {
		target := filepath.Join(dir, strconv.Itoa(i))
		if err := os.MkdirAll(target, 0o755); err != nil {
			return nil, err
		}
		if err := idmapMount(l, target, ns); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l, err)
		}
		out = append(out, target)
	}
	return out, nil
}

func idmapMount(src, target string, userns *os.File) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY, Userns_fd: uint64(userns.Fd())}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, attr); err != nil {
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			return fmt.Errorf("idmapped mount: %w (the kernel or the store's filesystem does not support it; use --no-overlay)", err)
		}
		return fmt.Errorf("idmapped mount: %w", err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", target, err)
	}
	return nil
}

// shiftOwner gives path the owner that its source has, moved into the range: the root of an
// overlay's upper dir decides who owns the pod's "/".
func (u *PrivateUsers) shiftOwner(path, like string) error {
	var st unix.Stat_t
	if err := unix.Lstat(like, &st); err != nil {
		return err
	}
	return os.Lchown(path, int(u.hostID(st.Uid)), int(u.hostID(st.Gid)))
}

// shiftTree moves the owner of every file under dir into the range (--no-overlay, where the
// app's root is a copy of its own). A file with several names is moved once; set-ID bits and
// file capabilities, which chown clears, are put back.
func (u *PrivateUsers) shiftTree(dir string) error {
	type inode struct{ dev, ino uint64 }
	done := map[inode]bool{}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			id := inode{uint64(st.Dev), st.Ino}
			if done[id] {
				return nil
			}
			done[id] = true
		}
		isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
		var caps []byte
		if !isLink && st.Mode&unix.S_IFMT == unix.S_IFREG {
			if n, err := unix.Lgetxattr(p, "security.capability", nil); err == nil && n > 0 {
				caps = make([]byte, n)
				if n, err = unix.Lgetxattr(p, "security.capability", caps); err != nil {
					return fmt.Errorf("%s: file capabilities: %w", p, err)
				}
				caps = caps[:n]
			}
		}
		if err := os.Lchown(p, int(u.hostID(st.Uid)), int(u.hostID(st.Gid))); err != nil {
			return err
		}
		if !isLink && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			if err := unix.Chmod(p, st.Mode&0o7777); err != nil {
				return err
			}
		}
		if caps != nil {
			if err := unix.Lsetxattr(p, "security.capability", caps, 0); err != nil {
				return fmt.Errorf("%s: file capabilities: %w", p, err)
			}
		}
		return nil
	})
}

// hostID is the host ID of a pod's ID; IDs outside the range stay as nobody sees them.
func (u *PrivateUsers) hostID(id uint32) uint32 {
	if id >= u.Count {
		return 65534 + u.Shift
	}
	return id + u.Shift
}

// UsernsRootDir holds, for each pod in a user namespace, a path to its apps' roots that the
// pod's root can walk: the apps set up their roots from inside their user namespace, where the
// pod directory (mode 0700, under /var/lib/rkt, like every directory on the way) is closed to
// them. /run/rkt/userns is 0711; /run/rkt/userns/<uuid> belongs to the pod's host root, 0700,
// so no other pod and no other user can walk it; <uuid>/<app> is a bind mount of the app's root.
var UsernsRootDir = "/run/rkt/userns"

// exposeRoot bind-mounts an app's root where the pod's user namespace can reach it, and returns
// that path.
func (u *PrivateUsers) exposeRoot(uuid, app, rootfs string) (string, error) {
	if err := os.MkdirAll(UsernsRootDir, 0o711); err != nil {
		return "", err
	}
	if err := os.Chmod(UsernsRootDir, 0o711); err != nil {
		return "", err
	}
	dir := filepath.Join(UsernsRootDir, uuid)
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if err := os.Lchown(dir, int(u.Shift), int(u.Shift)); err != nil {
		return "", err
	}
	target := filepath.Join(dir, app)
	if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	if err := (mount.Mount{Source: rootfs, Target: target, Flags: unix.MS_BIND | unix.MS_REC}).Apply(); err != nil {
		return "", err
	}
	return target, nil
}

// cleanUsernsRoots undoes exposeRoot for a pod: nothing is left under UsernsRootDir.
func cleanUsernsRoots(uuid string) error {
	dir := filepath.Join(UsernsRootDir, uuid)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := mount.UnmountBeneath(dir); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// unexposeRoot undoes exposeRoot for one app (removed from its sandbox).
func unexposeRoot(uuid, app string) error {
	target := filepath.Join(UsernsRootDir, uuid, app)
	if _, err := os.Lstat(target); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := mount.UnmountBeneath(target); err != nil {
		return err
	}
	if err := mount.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return os.Remove(target)
}

// mountSysfs mounts a sysfs for the pod's network namespace (the host's when netns is "") at
// target, read-only. Apps in a user namespace cannot mount one themselves: the sandbox's network
// namespace belongs to the host's user namespace. The mount is made on a thread of its own that
// dies with it, so no other goroutine runs in the pod's namespace.
func mountSysfs(netns, target string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread goes when the goroutine ends
		if netns != "" {
			fd, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				errc <- err
				return
			}
			defer unix.Close(fd)
			if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
				errc <- fmt.Errorf("enter %s: %w", netns, err)
				return
			}
		}
		errc <- mount.Mount{Source: "sysfs", Target: target, FSType: "sysfs", Flags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC}.Apply()
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("sysfs for the pod: %w", err)
	}
	return nil
}
