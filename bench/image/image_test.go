// Package image benchmarks the Cairn image build and boot on this machine: a cold build
// (mmdebstrap runs; downloaded .debs are reused from the package cache), a warm build (the
// Debian tree is cached), the sizes of /usr and the disk against Flatcar's ~1 GiB /usr, and the
// time from qemu start to the boot marker for the disk (OVMF, TCG) and the PXE pair.
// Run it with `make bench` (go test -bench); `go test` alone does not.
package image

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/image/build"
	"github.com/cairn-os/cairn/image/qemu"
	"github.com/cairn-os/cairn/internal/testenv"
)

// flatcarUSR is the size of Flatcar Container Linux's /usr partition image (stable 3975,
// amd64): the peer Cairn's /usr is compared with.
const flatcarUSR = 1024 << 20

func heavyLock(b *testing.B) {
	if os.Getenv("CAIRN_HEAVY_LOCK_HELD") != "" {
		return
	}
	f, err := os.OpenFile("/tmp/cairn-heavy.lock", os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		b.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
}

func allocated(path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Blocks * 512
}

func BenchmarkImage(b *testing.B) {
	testenv.RequireRoot(b)
	for _, c := range []string{"mmdebstrap", "qemu-system-x86_64", "mkfs.erofs", "veritysetup"} {
		testenv.RequireCommand(b, c)
	}
	heavyLock(b)
	ctx := context.Background()
	// A cache of its own for the trees (so the first build is cold), sharing the .deb cache.
	cache := b.TempDir()
	debs := "/var/cache/cairn-image/debs"
	os.MkdirAll(debs, 0o755)
	if err := os.Symlink(debs, filepath.Join(cache, "debs")); err != nil {
		b.Fatal(err)
	}
	cfg := build.Config{Version: "0.0.1", CacheDir: cache, BinDir: filepath.Join(cache, "no-bin")}
	run := func(name string) (string, time.Duration) {
		out := filepath.Join(b.TempDir(), name)
		start := time.Now()
		bl := &build.Builder{Config: cfg, Out: out, Progress: io.Discard}
		if err := bl.Run(ctx); err != nil {
			b.Fatalf("%s build: %v", name, err)
		}
		return out, time.Since(start)
	}
	b.ResetTimer()
	_, cold := run("cold")
	out, warm := run("warm")
	b.StopTimer()

	for _, f := range []string{build.DiskImage, build.QCOW2Image, build.PXEInitrd} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			b.Fatal(err)
		}
	}
	disk := filepath.Join(out, build.DiskImage)
	fi, _ := os.Stat(disk)
	q, _ := os.Stat(filepath.Join(out, build.QCOW2Image))
	pxe, _ := os.Stat(filepath.Join(out, build.PXEInitrd))

	boot := func(mach qemu.Machine, want string) time.Duration {
		vm, err := qemu.Start(ctx, mach, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer vm.Stop()
		c, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		_, took, err := vm.WaitFor(c, want)
		if err != nil {
			b.Fatalf("%v\n%s", err, vm.Console())
		}
		return took
	}
	diskBoot := boot(qemu.Machine{Disk: disk, Snapshot: true, VarsDir: b.TempDir()}, "CAIRN-BOOTED version=0.0.1 slot=A")
	pxeBoot := boot(qemu.Machine{Kernel: filepath.Join(out, build.PXEKernel), Initrd: filepath.Join(out, build.PXEInitrd),
		Append: "console=ttyS0,115200n8", MemoryMB: 2048}, "CAIRN-BOOTED version=0.0.1 slot=pxe")

	usrSize := usrBytes(b, out)
	b.ReportMetric(cold.Seconds(), "cold-build-s")
	b.ReportMetric(warm.Seconds(), "warm-build-s")
	b.ReportMetric(float64(usrSize)/(1<<20), "usr-MiB")
	b.ReportMetric(diskBoot.Seconds(), "disk-boot-s")
	b.ReportMetric(pxeBoot.Seconds(), "pxe-boot-s")
	b.Logf("build: cold %v (mmdebstrap, .debs from the cache), warm %v (tree cached): warm/cold %.2f",
		cold.Round(time.Second), warm.Round(time.Second), warm.Seconds()/cold.Seconds())
	b.Logf("/usr image with hash tree: %d MiB; Flatcar's /usr: %d MiB; Cairn/Flatcar %.2f",
		usrSize>>20, flatcarUSR>>20, float64(usrSize)/flatcarUSR)
	b.Logf("disk: %d MiB raw (%d MiB allocated), qcow2 %d MiB; PXE initramfs %d MiB",
		fi.Size()>>20, allocated(disk)>>20, q.Size()>>20, pxe.Size()>>20)
	b.Logf("boot to marker under TCG: disk (OVMF + systemd-boot + UKI) %v, PXE pair %v",
		diskBoot.Round(100*time.Millisecond), pxeBoot.Round(100*time.Millisecond))
}

func usrBytes(b *testing.B, out string) int64 {
	man, err := os.ReadFile(filepath.Join(out, build.ManifestFile))
	if err != nil {
		b.Fatal(err)
	}
	var m build.Manifest
	if err := json.Unmarshal(man, &m); err != nil {
		b.Fatal(err)
	}
	return m.USR.Size
}
