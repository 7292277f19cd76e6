package stage1

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/runtime/podapi"
)

// ErrNotDevice says a device an app asked for is not a device node (nor a directory of them).
var ErrNotDevice = errors.New("not a device node")

// ResolveDevices reads the host devices an app gets: each one it names (a directory
// stands for the device nodes beneath it, at the same places under the app's path), and
// with Privileged every device under the host's /dev.
func ResolveDevices(l *podapi.Linux) ([]specs.LinuxDevice, error) {
	if l == nil {
		return nil, nil
	}
	var out []specs.LinuxDevice
	seen := map[string]bool{}
	add := func(d specs.LinuxDevice) {
		if !seen[d.Path] {
			seen[d.Path] = true
			out = append(out, d)
		}
	}
	for _, d := range l.Devices {
		fi, err := os.Stat(d.HostPath)
		if err != nil {
			return nil, fmt.Errorf("device %s: %w", d.HostPath, err)
		}
		if !fi.IsDir() {
			dev, err := deviceAt(d.HostPath, d.Path)
			if err != nil {
				return nil, err
			}
			add(dev)
			continue
		}
		devs, err := devicesUnder(d.HostPath, d.Path)
		if err != nil {
			return nil, err
		}
		for _, dev := range devs {
			add(dev)
		}
	}
	if l.Privileged {
		devs, err := devicesUnder("/dev", "/dev")
		if err != nil {
			return nil, err
		}
		for _, dev := range devs {
			add(dev)
		}
	}
	return out, nil
}

// devicesUnder lists the device nodes under dir as they appear under target, skipping the
// filesystems a container has of its own (/dev/pts, /dev/shm, /dev/mqueue).
func devicesUnder(dir, target string) ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			if p != dir && slices.Contains([]string{"pts", "shm", "mqueue", "fd"}, e.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		d, err := deviceAt(p, filepath.Join(target, rel))
		if err != nil {
			return nil // gone meanwhile, or not a device after all
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("devices under %s: %w", dir, err)
	}
	return out, nil
}

// deviceAt describes the device node at hostPath, to be made at path in the app.
func deviceAt(hostPath, path string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(hostPath, &st); err != nil {
		return specs.LinuxDevice{}, fmt.Errorf("device %s: %w", hostPath, err)
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("device %s: %w", hostPath, ErrNotDevice)
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path: path, Type: typ,
		Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
		FileMode: &mode, UID: &uid, GID: &gid,
	}, nil
}
