package initramfs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/image/bootparams"
	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/internal/gpt"
	"github.com/cairn-os/cairn/internal/mount"
)

// ErrVerity is returned when the /usr partition does not hold the /usr the command line names.
var ErrVerity = errors.New("/usr does not match its verity root hash")

// EarlyMounts are the API filesystems early boot needs, moved into the new root at the end.
var EarlyMounts = []mount.Mount{
	{Source: "proc", Target: "/proc", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
	{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
}

// Init is early boot. Its fields are the paths it works on, so tests can point it elsewhere.
type Init struct {
	Log     io.Writer
	Sysroot string        // where the new root is assembled: /sysroot
	Wait    time.Duration // how long to wait for the /usr disk to appear

	params  bootparams.Params
	disk    *gpt.Table
	diskDev string // /dev/<disk> holding the slot
	usrDev  string // the slot's partition or loop device
	usrNode string // the verity device node
}

func (i *Init) logf(format string, args ...any) {
	fmt.Fprintf(i.Log, "cairn-init: "+format+"\n", args...)
}

// Step is one named step of early boot.
type Step struct {
	Name string
	Run  func(context.Context) error
}

// Steps is early boot, in order.
func (i *Init) Steps() []Step {
	return []Step{
		{"mount API filesystems", i.mountEarly},
		{"load modules", i.loadModules},
		{"read boot parameters", i.readParams},
		{"find /usr", i.findUSR},
		{"check /usr root hash", i.checkRootHash},
		{"open dm-verity", i.openVerity},
		{"mount /usr", i.mountUSR},
		{"mount ROOT", i.mountRoot},
		{"move /usr into ROOT", i.moveUSR},
		{"populate ROOT", i.populateRoot},
		{"first-boot hook", i.firstBoot},
		{"switch root", i.switchRoot},
	}
}

// Run runs the steps; it returns only on failure (switch root execs systemd).
func (i *Init) Run(ctx context.Context) error {
	for _, s := range i.Steps() {
		start := time.Now()
		if err := s.Run(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		i.logf("%s: ok (%v)", s.Name, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func (i *Init) mountEarly(context.Context) error {
	for _, m := range EarlyMounts {
		if err := m.Apply(); err != nil && !errors.Is(err, unix.EBUSY) {
			return err
		}
	}
	return nil
}

func (i *Init) loadModules(context.Context) error {
	list, err := os.ReadFile(ModuleList)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for p := range strings.FieldsSeq(string(list)) {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			// A driver for hardware that is not there may refuse; say so and go on.
			i.logf("module %s: %v", filepath.Base(p), err)
		}
	}
	return nil
}

func (i *Init) readParams(context.Context) error {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	extra, _ := os.ReadFile(ExtraCmdline)
	i.params, err = bootparams.Parse(string(extra) + " " + string(cmdline))
	if err != nil {
		return err
	}
	slot := i.params.Slot
	if slot == "" {
		slot = "-"
	}
	i.logf("slot %s, usrhash %s", slot, i.params.RootHash)
	return nil
}

func (i *Init) findUSR(ctx context.Context) error {
	if f := i.params.USRFile; f != "" {
		dev, err := attachLoop(f)
		if err != nil {
			return fmt.Errorf("loop device for %s: %w", f, err)
		}
		i.usrDev = dev
		return nil
	}
	match := func(p gpt.Partition, dev string) bool { return p.GUID.String() == i.params.USRPartUUID }
	what := "partition " + i.params.USRPartUUID
	if i.params.USRAuto {
		usrType := gpt.MustParseGUID(disklayout.TypeUSR)
		match = func(p gpt.Partition, dev string) bool {
			return p.Type == usrType && i.topHashOf(dev) == i.params.RootHash
		}
		what = "a USR partition with root hash " + i.params.RootHash
		// Both slots can carry the same /usr (the same release installed twice, or an update
		// whose data is damaged but whose hash tree is not): the slot of the entry the loader
		// booted decides, so that boot counting and the running slot stay the same thing.
		if slot, err := loaderSlot(); err == nil {
			guid := gpt.MustParseGUID(slot.Partition().GUID)
			match = func(p gpt.Partition, dev string) bool {
				return p.Type == usrType && p.GUID == guid && i.topHashOf(dev) == i.params.RootHash
			}
			what = "USR-" + string(slot) + " (the loader booted its entry) with root hash " + i.params.RootHash
			i.logf("the loader booted slot %s's entry", slot)
		} else {
			i.logf("the loader did not say which entry it booted (%v): taking the USR partition with the root hash", err)
		}
	}
	deadline := time.Now().Add(i.Wait)
	for {
		dev, disk, tab, err := findPartition(match)
		if err == nil {
			i.usrDev, i.diskDev, i.disk = dev, disk, tab
			i.logf("/usr is %s", dev)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no disk has %s after %v: %w", what, i.Wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findPartition scans the whole disks the kernel knows for a GPT entry that matches.
func findPartition(match func(p gpt.Partition, dev string) bool) (dev, disk string, tab *gpt.Table, err error) {
	ents, err := os.ReadDir("/sys/class/block")
	if err != nil {
		return "", "", nil, err
	}
	err = errors.New("no disk yet")
	for _, e := range ents {
		name := e.Name()
		if _, perr := os.Stat(filepath.Join("/sys/class/block", name, "partition")); perr == nil {
			continue
		}
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "dm-") {
			continue
		}
		t, rerr := readTable("/dev/" + name)
		if rerr != nil {
			continue
		}
		for _, p := range t.Partitions {
			part, perr := partitionName(name, p.Number)
			if perr != nil {
				err = perr
				continue
			}
			if match(p, "/dev/"+part) {
				return "/dev/" + part, "/dev/" + name, t, nil
			}
		}
	}
	return "", "", nil, err
}

func readTable(dev string) (*gpt.Table, error) {
	f, err := os.Open(dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
	if err != nil {
		return nil, err
	}
	ss, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKSSZGET)
	if err != nil {
		return nil, err
	}
	return gpt.Read(f, int64(size), ss)
}

// partitionName finds the kernel's name of partition n of disk (vda3, nvme0n1p3) in sysfs.
func partitionName(disk string, n int) (string, error) {
	ents, err := os.ReadDir(filepath.Join("/sys/class/block", disk))
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/sys/class/block", disk, e.Name(), "partition"))
		if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(n) {
			if _, err := os.Stat("/dev/" + e.Name()); err == nil {
				return e.Name(), nil
			}
		}
	}
	return "", fmt.Errorf("partition %d of %s has no device node yet", n, disk)
}

// checkRootHash compares the hash of the tree's top block with usrhash before anything is
// mounted, so that a slot holding other bytes fails here with a clear message.
func (i *Init) checkRootHash(context.Context) error {
	if got := i.topHashOf(i.usrDev); got != i.params.RootHash {
		return fmt.Errorf("%s: top hash block gives %s, command line says %s: %w", i.usrDev, got, i.params.RootHash, ErrVerity)
	}
	info := "CAIRN_USR_ROOTHASH=" + i.params.RootHash + "\n"
	if i.disk != nil {
		for _, p := range i.disk.Partitions {
			if name, err := partitionName(filepath.Base(i.diskDev), p.Number); err == nil && "/dev/"+name == i.usrDev {
				info += "CAIRN_USR_PARTUUID=" + p.GUID.String() + "\n"
				if s, err := disklayout.SlotOfGUID(p.GUID.String()); err == nil {
					info += "CAIRN_SLOT=" + string(s) + "\n"
				}
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(BootInfo), 0o755); err != nil {
		return err
	}
	return os.WriteFile(BootInfo, []byte(info), 0o644)
}

// topHashOf reads the top block of the hash tree on dev and returns the root hash it gives
// ("" when it cannot be read).
func (i *Init) topHashOf(dev string) string {
	f, err := os.Open(dev)
	if err != nil {
		return ""
	}
	defer f.Close()
	top := make([]byte, bootparams.BlockSize)
	if _, err := f.ReadAt(top, i.params.HashOffset()); err != nil {
		return ""
	}
	return TopHash(i.params.Salt, top)
}

// TopHash is the dm-verity (format 1) root hash of a tree whose top block is top: sha256 over
// the salt followed by the block.
func TopHash(saltHex string, top []byte) string {
	salt, _ := hex.DecodeString(saltHex)
	h := sha256.New()
	h.Write(salt)
	h.Write(top)
	return hex.EncodeToString(h.Sum(nil))
}

// VerityTarget is the dm-verity table line for p on device dev ("major:minor"). A corrupted
// block read later restarts the machine, so that boot counting can pick the other slot.
func VerityTarget(p bootparams.Params, dev string) Target {
	salt := p.Salt
	if salt == "" {
		salt = "-"
	}
	return Target{Start: 0, Length: uint64(p.DataBlocks) * (bootparams.BlockSize / 512), Type: "verity",
		Params: fmt.Sprintf("1 %s %s %d %d %d %d sha256 %s %s 1 restart_on_corruption",
			dev, dev, bootparams.BlockSize, bootparams.BlockSize, p.DataBlocks, p.DataBlocks, p.RootHash, salt)}
}

func (i *Init) openVerity(context.Context) error {
	var st unix.Stat_t
	if err := unix.Stat(i.usrDev, &st); err != nil {
		return err
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	major, minor, err := CreateDevice("usr", []Target{VerityTarget(i.params, dev)})
	if err != nil {
		return err
	}
	i.usrNode = "/dev/cairn-usr"
	return blockNode(i.usrNode, major, minor)
}

func (i *Init) mountRoot(ctx context.Context) error {
	if i.disk == nil { // PXE: the root is a tmpfs, filled from /usr's skeleton
		return mount.Mount{Source: "tmpfs", Target: i.Sysroot, FSType: "tmpfs", Data: "mode=0755"}.Apply()
	}
	p, ok := i.disk.FindName("ROOT")
	if !ok {
		return fmt.Errorf("disk %s has no partition labelled ROOT", i.diskDev)
	}
	var grown int64
	if f, err := os.Open(i.diskDev); err == nil {
		size, serr := unix.IoctlGetUint64(int(f.Fd()), unix.BLKGETSIZE64)
		f.Close()
		if g, ok := PlanGrow(i.disk, int64(size)); serr == nil && ok {
			// A failure to grow is reported, not fatal: the machine still boots, smaller.
			if grown, err = growRoot(i.diskDev, i.disk, g); err != nil {
				i.logf("grow ROOT: %v", err)
				grown = 0
			}
		}
	}
	dev, err := partitionName(filepath.Base(i.diskDev), p.Number)
	if err != nil {
		return err
	}
	root := mount.Mount{Source: "/dev/" + dev, Target: i.Sysroot, FSType: "ext4"}
	if err := root.Apply(); err != nil {
		blank, berr := isBlank(root.Source)
		if berr != nil || !blank {
			return err
		}
		i.logf("ROOT %s is blank: making an ext4 filesystem", root.Source)
		if err := i.mkfsROOT(ctx, root.Source); err != nil {
			return err
		}
		if err := root.Apply(); err != nil {
			return err
		}
	}
	if grown > 0 {
		if err := growExt4(i.Sysroot, grown); err != nil {
			i.logf("grow ROOT filesystem: %v", err)
		} else {
			i.logf("grew ROOT to %d MiB", grown>>20)
		}
	}
	return nil
}

// stagedUSR is where /usr is mounted before ROOT is: its mkfs can then make a blank ROOT.
const stagedUSR = "/run/cairn/usr"

func (i *Init) mountUSR(context.Context) error {
	err := mount.Mount{Source: i.usrNode, Target: stagedUSR, FSType: "erofs", Flags: unix.MS_RDONLY | unix.MS_NODEV}.Apply()
	if err != nil {
		return fmt.Errorf("%w (a verity error here means the slot's /usr is damaged)", err)
	}
	return nil
}

func (i *Init) moveUSR(context.Context) error {
	return mount.Mount{Source: stagedUSR, Target: filepath.Join(i.Sysroot, "usr"), Flags: unix.MS_MOVE}.Apply()
}

// isBlank reports whether the first MiB of dev is all zeros: a partition nothing was ever
// written to. Only such a partition is formatted; anything else that fails to mount is an
// error, never wiped.
func isBlank(dev string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, err
	}
	defer f.Close()
	b := make([]byte, 1<<20)
	if _, err := io.ReadFull(f, b); err != nil {
		return false, err
	}
	for _, c := range b {
		if c != 0 {
			return false, nil
		}
	}
	return true, nil
}

// mkfsROOT makes ext4 on a blank ROOT with /usr's own mkfs.ext4, run through /usr's dynamic
// loader since the initramfs has no libc.
func (i *Init) mkfsROOT(ctx context.Context, dev string) error {
	u := stagedUSR
	// (/usr/lib64/ld-linux-x86-64.so.2 is an absolute symlink, meaningless from here.)
	cmd := exec.CommandContext(ctx, u+"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "--library-path", u+"/lib/x86_64-linux-gnu",
		u+"/sbin/mke2fs", "-q", "-t", "ext4", "-L", "ROOT", dev)
	cmd.Env = []string{"MKE2FS_CONFIG=" + filepath.Join(u, strings.TrimPrefix(RootSkeleton, "/usr"), "etc/mke2fs.conf")}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mke2fs %s: %w: %s", dev, err, out)
	}
	return nil
}

// populateRoot fills a ROOT that has no /etc yet (first boot, or a wiped ROOT) from /usr.
func (i *Init) populateRoot(context.Context) error {
	if _, err := os.Lstat(filepath.Join(i.Sysroot, "etc")); err == nil {
		return nil
	}
	i.logf("ROOT has no /etc: filling it from %s", RootSkeleton)
	return copyTree(filepath.Join(i.Sysroot, RootSkeleton), i.Sysroot)
}

func (i *Init) firstBoot(ctx context.Context) error {
	hook := filepath.Join(i.Sysroot, FirstBootHook)
	if _, err := os.Stat(hook); err != nil {
		return nil
	}
	if i.disk != nil {
		if p, ok := i.disk.FindName("OEM"); ok {
			if dev, err := partitionName(filepath.Base(i.diskDev), p.Number); err == nil {
				oem := mount.Mount{Source: "/dev/" + dev, Target: OEMMount, FSType: "ext4", Flags: unix.MS_RDONLY}
				if err := oem.Apply(); err != nil {
					i.logf("OEM partition: %v", err)
				} else {
					defer func() {
						// The boot goes on: a mount left behind holds the partition
						// read-only under the old root, and the log says why.
						if err := oem.Unmount(0); err != nil {
							i.logf("OEM partition: %v", err)
						}
					}()
				}
			}
		}
	}
	cmd := exec.CommandContext(ctx, hook, "--root="+i.Sysroot)
	cmd.Stdout, cmd.Stderr = i.Log, i.Log
	cmd.Env = []string{"PATH=/usr/bin:/usr/sbin", "CAIRN_ROOT=" + i.Sysroot}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", FirstBootHook, err)
	}
	return nil
}

func (i *Init) switchRoot(context.Context) error {
	for _, m := range EarlyMounts {
		if err := (mount.Mount{Source: m.Target, Target: filepath.Join(i.Sysroot, m.Target), Flags: unix.MS_MOVE}).Apply(); err != nil {
			return err
		}
	}
	if err := unix.Chdir(i.Sysroot); err != nil {
		return err
	}
	// "." is the new root's mount, entered by the chdir.
	if err := (mount.Mount{Source: ".", Target: "/", Flags: unix.MS_MOVE}).Apply(); err != nil {
		return fmt.Errorf("%s: %w", i.Sysroot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	i.logf("switching root to systemd")
	return syscall.Exec("/sbin/init", []string{"/sbin/init"}, os.Environ())
}

// attachLoop backs a read-only loop device with file.
func attachLoop(file string) (string, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer ctl.Close()
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	if err != nil {
		return "", fmt.Errorf("LOOP_CTL_GET_FREE: %w", err)
	}
	dev := fmt.Sprintf("/dev/loop%d", n)
	var lf *os.File
	for try := 0; ; try++ {
		if lf, err = os.OpenFile(dev, os.O_RDWR, 0); err == nil || try > 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return "", err
	}
	defer lf.Close()
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY
	if err := unix.IoctlLoopConfigure(int(lf.Fd()), &cfg); err != nil {
		return "", fmt.Errorf("LOOP_CONFIGURE %s: %w", dev, err)
	}
	return dev, nil
}

// copyTree copies a directory tree (files, dirs, symlinks, modes, owners).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "usr" {
			return fs.SkipDir // the mount point, already there
		}
		target := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.IsDir():
			if err := os.MkdirAll(target, fi.Mode().Perm()); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(target, b, fi.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil
		}
		if st != nil {
			if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		if fi.Mode()&fs.ModeSymlink == 0 { // after chown, which clears set-id bits
			return os.Chmod(target, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		return nil
	})
}

// Fail reports a failed boot and restarts the machine after a pause, so that boot counting
// (systemd-boot's tries) moves on to the other slot.
func (i *Init) Fail(err error) {
	i.logf("BOOT FAILED: %v", err)
	i.logf("this slot does not boot; restarting in 5 seconds")
	time.Sleep(5 * time.Second)
	// PID 1 must not return: its exit is a kernel panic that, without panic=, hangs the
	// machine with no word of why. reboot(2) returns only when it failed (no CAP_SYS_BOOT,
	// say): the machine says so and tries again.
	for {
		unix.Sync()
		err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		i.logf("restart: %v; trying again in a minute", err)
		time.Sleep(time.Minute)
	}
}
