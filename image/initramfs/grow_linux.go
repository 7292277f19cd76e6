package initramfs

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/gpt"
)

// ext4ResizeFS is EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64): online growth to a block count.
const ext4ResizeFS = 0x40086610

// GrowPlan is what growing ROOT would change: the partition's new last LBA, or nothing.
type GrowPlan struct {
	Number   int
	OldLast  uint64
	NewLast  uint64
	DiskSize int64
}

// PlanGrow decides whether the last partition, ROOT, can take more of the disk: when the disk
// is larger than the table was written for (a cloud disk resized, an image written to a
// bigger disk), ROOT grows to the last whole MiB. It is pure, for tests.
func PlanGrow(t *gpt.Table, diskSize int64) (GrowPlan, bool) {
	root, ok := t.FindName("ROOT")
	if !ok {
		return GrowPlan{}, false
	}
	for _, p := range t.Partitions {
		if p.FirstLBA > root.FirstLBA {
			return GrowPlan{}, false // not the last partition
		}
	}
	_, last := t.Usable(diskSize)
	const mib = (1 << 20) / 512
	newLast := (last+1)/mib*mib - 1
	if newLast < root.LastLBA+mib { // less than a MiB to gain
		return GrowPlan{}, false
	}
	return GrowPlan{Number: root.Number, OldLast: root.LastLBA, NewLast: newLast, DiskSize: diskSize}, true
}

// growRoot rewrites the GPT (both copies, the backup moving to the disk's real end), tells
// the kernel the partition's new size, and returns the new size in bytes.
func growRoot(diskDev string, t *gpt.Table, g GrowPlan) (int64, error) {
	var root gpt.Partition
	for i := range t.Partitions {
		if t.Partitions[i].Number == g.Number {
			t.Partitions[i].LastLBA = g.NewLast
			root = t.Partitions[i]
		}
	}
	f, err := os.OpenFile(diskDev, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := t.Write(f, g.DiskSize); err != nil {
		return 0, fmt.Errorf("rewrite GPT of %s: %w", diskDev, err)
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	part := unix.BlkpgPartition{Start: root.Offset(512), Length: root.Size(512), Pno: int32(root.Number)}
	arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_RESIZE_PARTITION, Datalen: int32(unsafe.Sizeof(part)), Data: (*byte)(unsafe.Pointer(&part))}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); e != 0 {
		return 0, fmt.Errorf("BLKPG resize partition %d of %s: %w", root.Number, diskDev, e)
	}
	return root.Size(512), nil
}

// growExt4 grows the ext4 filesystem mounted at mnt to fill size bytes, online.
func growExt4(mnt string, size int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		return err
	}
	blocks := uint64(size) / uint64(st.Bsize)
	f, err := os.Open(mnt)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), ext4ResizeFS, uintptr(unsafe.Pointer(&blocks))); e != 0 {
		return fmt.Errorf("EXT4_IOC_RESIZE_FS %s to %d blocks: %w", mnt, blocks, e)
	}
	return nil
}
