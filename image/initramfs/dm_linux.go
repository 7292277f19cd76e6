package initramfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The device-mapper ioctl interface (linux/dm-ioctl.h), enough to create one read-only
// device with one target: what veritysetup open does, without libcryptsetup in early boot.
const (
	dmIoctlSize   = 312 // sizeof(struct dm_ioctl)
	dmSpecSize    = 40  // sizeof(struct dm_target_spec)
	dmReadOnly    = 1 << 0
	dmDevCreate   = 3
	dmDevSuspend  = 6
	dmTableLoad   = 9
	dmControlPath = "/dev/mapper/control"
)

func dmCmd(nr uintptr) uintptr { return 3<<30 | dmIoctlSize<<16 | 0xfd<<8 | nr }

// Target is one line of a device-mapper table.
type Target struct {
	Start, Length uint64 // 512-byte sectors
	Type          string
	Params        string
}

// dmHeader lays out struct dm_ioctl.
func dmHeader(name string, flags uint32, targets uint32, size int) []byte {
	b := make([]byte, size)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 4) // version 4.0.0
	le.PutUint32(b[12:], uint32(size))
	le.PutUint32(b[16:], dmIoctlSize)
	le.PutUint32(b[20:], targets)
	le.PutUint32(b[28:], flags)
	copy(b[48:48+127], name)
	return b
}

func dmIoctl(fd int, nr uintptr, b []byte) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), dmCmd(nr), uintptr(unsafe.Pointer(&b[0]))); e != 0 {
		return e
	}
	return nil
}

// CreateDevice creates a read-only device-mapper device with the targets and activates it.
// It returns the device number (major, minor).
func CreateDevice(name string, targets []Target) (uint32, uint32, error) {
	fd, err := unix.Open(dmControlPath, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("device-mapper control %s: %w (is dm_mod loaded?)", dmControlPath, err)
	}
	defer unix.Close(fd)

	b := dmHeader(name, dmReadOnly, 0, 16384)
	if err := dmIoctl(fd, dmDevCreate, b); err != nil {
		return 0, 0, fmt.Errorf("create dm device %s: %w", name, err)
	}
	dev := binary.LittleEndian.Uint64(b[40:])
	major := uint32((dev & 0xfff00) >> 8)
	minor := uint32((dev & 0xff) | ((dev >> 12) & 0xfff00))

	var specs bytes.Buffer
	for _, t := range targets {
		params := append([]byte(t.Params), 0)
		for (dmSpecSize+len(params))%8 != 0 {
			params = append(params, 0)
		}
		s := make([]byte, dmSpecSize)
		binary.LittleEndian.PutUint64(s[0:], t.Start)
		binary.LittleEndian.PutUint64(s[8:], t.Length)
		binary.LittleEndian.PutUint32(s[20:], uint32(dmSpecSize+len(params))) // next
		copy(s[24:24+15], t.Type)
		specs.Write(s)
		specs.Write(params)
	}
	b = dmHeader(name, dmReadOnly, uint32(len(targets)), dmIoctlSize+specs.Len())
	copy(b[dmIoctlSize:], specs.Bytes())
	if err := dmIoctl(fd, dmTableLoad, b); err != nil {
		return 0, 0, fmt.Errorf("load dm table of %s (%s): %w", name, targets[0].Type, err)
	}
	b = dmHeader(name, 0, 0, 16384) // DM_DEV_SUSPEND without DM_SUSPEND_FLAG resumes
	if err := dmIoctl(fd, dmDevSuspend, b); err != nil {
		return 0, 0, fmt.Errorf("activate dm device %s: %w", name, err)
	}
	return major, minor, nil
}

// blockNode makes a device node for (major, minor) at path, whether or not devtmpfs did.
func blockNode(path string, major, minor uint32) error {
	os.Remove(path)
	return unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor)))
}
