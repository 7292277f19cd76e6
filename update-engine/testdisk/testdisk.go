// Package testdisk makes a Cairn disk for root-tier tests and benchmarks: a sparse file with
// the GPT layout of internal/disklayout (written by sgdisk), attached to a loop device whose
// partitions partx adds, and an EFI-SYSTEM partition formatted vfat. Everything is undone in
// t.Cleanup.
package testdisk

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/slots"
)

// Disk is an attached test disk.
type Disk struct {
	Loop string // /dev/loopN
	ESP  slots.MtoolsESP
}

// Part returns the device of partition number n.
func (d *Disk) Part(n int) string { return fmt.Sprintf("%sp%d", d.Loop, n) }

// SgdiskArgs are the sgdisk arguments that write the layout.
func SgdiskArgs() []string {
	args := []string{"-o"}
	for _, p := range disklayout.Partitions {
		size := "0"
		if p.Size > 0 {
			size = fmt.Sprintf("+%dK", p.Size/1024)
		}
		args = append(args, fmt.Sprintf("-n=%d:0:%s", p.Number, size), fmt.Sprintf("-t=%d:%s", p.Number, p.Type), fmt.Sprintf("-c=%d:%s", p.Number, p.Label))
		if p.GUID != "" {
			args = append(args, fmt.Sprintf("-u=%d:%s", p.Number, p.GUID))
		}
	}
	return args
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// undo runs a cleanup command; a failure leaves a device behind, which fails the test.
func undo(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// New makes and attaches a disk (root only; skips or, under CI, fails without prerequisites).
func New(t testing.TB) *Disk {
	testenv.RequireRoot(t)
	for _, c := range []string{"sgdisk", "losetup", "partx", "mkfs.vfat", "mcopy"} {
		testenv.RequireCommand(t, c)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Truncate(disklayout.MinDiskSize())
	f.Close()
	if err != nil {
		t.Fatalf("disk image %s: %v", img, err)
	}
	// Direct I/O on the backing file, as a partition has no second page cache under it.
	loop := run(t, "losetup", "--direct-io=on", "-f", "--show", img)
	d := &Disk{Loop: loop}
	t.Cleanup(func() { undo(t, "losetup", "-d", loop) })
	// sgdisk on the loop device, not the file: the kernel must see the same bytes.
	run(t, "sgdisk", append(SgdiskArgs(), loop)...)
	run(t, "partx", "-a", loop)
	// Before losetup -d (cleanups run last first), and only once there are partitions:
	// partx -d fails on a disk that has none.
	t.Cleanup(func() { undo(t, "partx", "-d", loop) })
	for _, p := range disklayout.Partitions {
		if _, err := os.Stat(d.Part(p.Number)); err != nil {
			t.Fatalf("partition %s: %v", p.Label, err)
		}
	}
	run(t, "mkfs.vfat", "-n", "EFI-SYSTEM", d.Part(1))
	d.ESP = slots.MtoolsESP{Image: d.Part(1), TmpDir: t.TempDir()}
	return d
}
