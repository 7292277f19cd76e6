package install

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/internal/gpt"
	"github.com/cairn-os/cairn/internal/mount"
)

// blockName returns the kernel's name (sysfs) of a block device node and its major:minor.
func blockName(dev string) (string, string, error) {
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return "", "", err
	}
	mm := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	link, err := filepath.EvalSymlinks("/sys/dev/block/" + mm)
	if err != nil {
		return "", "", fmt.Errorf("%s: no sysfs entry for %s: %w", dev, mm, err)
	}
	return filepath.Base(link), mm, nil
}

// inUse names what uses the disk: a mount of it or of one of its partitions (in the mount
// table at path table), a swap on it, or a holder (device-mapper, md). "" means free.
func inUse(disk, table string) (string, error) {
	name, mm, err := blockName(disk)
	if err != nil {
		return "", err
	}
	ours := map[string]string{mm: disk}
	parts, _ := filepath.Glob("/sys/class/block/" + name + "/" + name + "*")
	for _, p := range parts {
		if b, err := os.ReadFile(filepath.Join(p, "dev")); err == nil {
			ours[strings.TrimSpace(string(b))] = "/dev/" + filepath.Base(p)
		}
		if h, _ := os.ReadDir(filepath.Join(p, "holders")); len(h) > 0 {
			return fmt.Sprintf("%s is held by %s", filepath.Base(p), h[0].Name()), nil
		}
	}
	if h, _ := os.ReadDir("/sys/class/block/" + name + "/holders"); len(h) > 0 {
		return fmt.Sprintf("%s is held by %s", name, h[0].Name()), nil
	}
	dev := func(m *mountinfo.Info) string { return fmt.Sprintf("%d:%d", m.Major, m.Minor) }
	mounted, err := mount.Table(table, func(m *mountinfo.Info) (skip, stop bool) {
		_, ok := ours[dev(m)]
		return !ok, ok // one mount is enough to refuse the disk
	})
	if err != nil {
		return "", err
	}
	if len(mounted) > 0 {
		return fmt.Sprintf("%s is mounted on %s", ours[dev(mounted[0])], mounted[0].Mountpoint), nil
	}
	if b, err := os.ReadFile("/proc/swaps"); err == nil {
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if fs := strings.Fields(line); len(fs) > 0 {
				for _, node := range ours {
					if fs[0] == node {
						return node + " is used as swap", nil
					}
				}
			}
		}
	}
	return "", nil
}

// rereadPartitions asks the kernel for the new table. Loop devices without partition
// scanning refuse BLKRRPART; partx then adds the partitions one by one.
func (in *installation) rereadPartitions(ctx context.Context) error {
	err := unix.IoctlSetInt(int(in.disk.Fd()), unix.BLKRRPART, 0)
	if err == nil {
		return nil
	}
	in.o.Log.Debug("BLKRRPART refused, trying partx", "err", err)
	if _, lerr := exec.LookPath("partx"); lerr != nil {
		in.o.Log.Warn("the kernel did not re-read the partition table; reboot before using the disk", "err", err)
		return nil
	}
	// Drop stale entries of an earlier table. This fails on a disk that has none, the usual
	// case; an entry it could not drop shows as partx -a's failure.
	if out, derr := exec.CommandContext(ctx, "partx", "-d", in.o.Device).CombinedOutput(); derr != nil {
		in.o.Log.Debug("partx removed no partitions", "err", derr, "output", strings.TrimSpace(string(out)))
	}
	if out, perr := exec.CommandContext(ctx, "partx", "-a", in.o.Device).CombinedOutput(); perr != nil {
		in.o.Log.Warn("partx could not add the partitions", "err", perr, "output", strings.TrimSpace(string(out)))
	}
	return nil
}

// partitionNode returns the device node of partition n of the disk, if the kernel has one.
func partitionNode(dev string, n int) (string, bool) {
	name, _, err := blockName(dev)
	if err != nil {
		return "", false
	}
	for _, cand := range []string{fmt.Sprintf("%sp%d", name, n), fmt.Sprintf("%s%d", name, n)} {
		if _, err := os.Stat("/sys/class/block/" + cand); err == nil {
			if _, err := os.Stat("/dev/" + cand); err == nil {
				return "/dev/" + cand, true
			}
		}
	}
	return "", false
}

// writeOEM puts config.ign (and oem-release) on the OEM partition.
func (in *installation) writeOEM(ctx context.Context) error {
	if in.o.Ignition == nil && in.o.OEM == "" {
		return nil
	}
	// The exclusive open that kept others off the disk while it was written would make its
	// partitions busy: reopen it shared.
	if err := in.disk.Close(); err != nil {
		return err
	}
	var err error
	if in.disk, err = os.OpenFile(in.o.Device, os.O_RDWR, 0); err != nil {
		return err
	}
	t, err := gpt.Read(in.disk, in.diskSize, 512)
	if err != nil {
		return fmt.Errorf("read the new partition table: %w", err)
	}
	p, ok := t.FindName("OEM")
	if !ok {
		return errors.New("the image has no partition labelled OEM")
	}
	node, ok := partitionNode(in.o.Device, p.Number)
	if !ok {
		// No partition node (kernel without a GPT parser): reach the partition through a
		// loop device over its byte range instead.
		out, err := exec.CommandContext(ctx, "losetup", "--find", "--show",
			"--offset", fmt.Sprint(p.Offset(512)), "--sizelimit", fmt.Sprint(p.Size(512)), in.o.Device).Output()
		if err != nil {
			return fmt.Errorf("no node for partition %d and losetup failed: %w", p.Number, err)
		}
		node = strings.TrimSpace(string(out))
		defer func() {
			if out, err := exec.Command("losetup", "-d", node).CombinedOutput(); err != nil {
				in.o.Log.Warn("loop device over the OEM partition left attached", "device", node, "err", err,
					"output", strings.TrimSpace(string(out)))
			}
		}()
	}
	mnt, err := os.MkdirTemp("", "cairn-install-oem-")
	if err != nil {
		return err
	}
	defer os.Remove(mnt)
	oem := mount.Mount{Source: node, Target: mnt, FSType: "ext4"}
	if err := oem.Apply(); err != nil {
		return fmt.Errorf("OEM partition: %w", err)
	}
	defer func() {
		// What was written is synced below: the disk is installed all the same.
		if err := oem.Unmount(0); err != nil {
			in.o.Log.Warn("OEM partition left mounted", "device", node, "err", err)
		}
	}()
	if in.o.Ignition != nil {
		if err := atomicfile.WriteFile(filepath.Join(mnt, "config.ign"), in.o.Ignition, 0o600); err != nil {
			return err
		}
	}
	if in.o.OEM != "" {
		rel := fmt.Sprintf("ID=%s\nNAME=%q\n", in.o.OEM, in.o.OEM)
		if err := atomicfile.WriteFile(filepath.Join(mnt, "oem-release"), []byte(rel), 0o644); err != nil {
			return err
		}
	}
	unix.Sync()
	return nil
}

// wipe zeroes what was written (and the backup GPT at the end), so that a failed install
// leaves no table that firmware or the kernel would act on.
func (in *installation) wipe() error {
	end := (in.written + 511) &^ 511
	if err := zeroRange(in.disk, 0, min(end, in.diskSize)); err != nil {
		return err
	}
	tail := int64(1 << 20)
	if err := zeroRange(in.disk, in.diskSize-tail, tail); err != nil {
		return err
	}
	return in.disk.Sync()
}

// zeroRange makes n bytes at off of the block device read as zeros: BLKZEROOUT (a virtual or
// thin disk, or a loop device, zeroes without data crossing from user space, and often without
// writing it), else, for a range the ioctl refuses (not 512-byte aligned), writes of zeros.
func zeroRange(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	r := [2]uint64{uint64(off), uint64(n)}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r[0]))); e == 0 {
		return nil
	}
	for done := int64(0); done < n; {
		c := min(int64(len(zeros)), n-done)
		if _, err := f.WriteAt(zeros[:c], off+done); err != nil {
			return err
		}
		done += c
	}
	return nil
}
