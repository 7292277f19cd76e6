package vmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/e2e/fleet"
	"github.com/cairn-os/cairn/e2e/fleettest"
	"github.com/cairn-os/cairn/image/build"
	"github.com/cairn-os/cairn/image/qemu"
	"github.com/cairn-os/cairn/internal/gpt"
	"github.com/cairn-os/cairn/internal/testenv"
)

const (
	cacheRoot = "/var/cache/cairn-image"
	marker    = "CAIRN-BOOTED"
	bootLimit = 8 * time.Minute // TCG on a loaded 2-core machine; a normal boot takes far less
)

// image returns the directory of the built release the VM tests boot: the end-to-end tests'
// old release (e2e/fleet), built once per set of inputs and cached.
func image(t *testing.T) string { return fleettest.Images(t).Old }

// overlay makes a qcow2 on top of the built raw disk, so a test can write (or damage) its
// disk without touching the cached image.
func overlay(t *testing.T, dir string) string {
	p := filepath.Join(t.TempDir(), "disk.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
		filepath.Join(dir, build.DiskImage), p).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	return p
}

func boot(t *testing.T, m qemu.Machine) *qemu.VM {
	testenv.HeavyLock(t)
	var log io.Writer
	if testing.Verbose() {
		log = os.Stderr
	}
	vm, err := qemu.Start(context.Background(), m, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		vm.Stop()
		if t.Failed() {
			c := vm.Console()
			if len(c) > 6000 {
				c = c[len(c)-6000:]
			}
			t.Logf("console (last 6000 bytes):\n%s", c)
		}
	})
	return vm
}

// TestBlankROOTIsMade zeroes ROOT, as a disk written with only the /usr slot would have it:
// early boot must make the filesystem (with /usr's mke2fs) and fill it.
func TestBlankROOTIsMade(t *testing.T) {
	dir := image(t)
	disk := overlay(t, dir)
	root := partition(t, dir, "ROOT")
	out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -z %d %d", root.Offset(512), root.Size(512)), disk).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	vm := boot(t, qemu.Machine{Disk: disk, VarsDir: t.TempDir(), MemoryMB: 1024})
	ctx, cancel := context.WithTimeout(context.Background(), bootLimit)
	defer cancel()
	_, took, err := vm.WaitFor(ctx, marker+" version="+fleet.Old+" slot=A")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(vm.Console(), "is blank: making an ext4 filesystem") {
		t.Error("console does not say ROOT was made")
	}
	t.Logf("blank ROOT made and filled: marker after %v", took.Round(100*time.Millisecond))
}

// partition reads the built disk's GPT entry labelled label.
func partition(t *testing.T, dir, label string) gpt.Partition {
	f, err := os.Open(filepath.Join(dir, build.DiskImage))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	tab, err := gpt.Read(f, fi.Size(), 512)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := tab.FindName(label)
	if !ok {
		t.Fatalf("no partition %s", label)
	}
	return p
}

// TestCorruptUSRDoesNotBoot flips bits in one block of USR-A's filesystem: dm-verity must
// refuse it, and the slot must not come up.
func TestCorruptUSRDoesNotBoot(t *testing.T) {
	dir := image(t)
	disk := overlay(t, dir)
	usrA := partition(t, dir, "USR-A")
	// Block 0 holds the erofs superblock (at 1024): mounting reads it through dm-verity.
	off := usrA.Offset(512) + 1024
	out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", fmt.Sprintf("write -P 0x5a %d 512", off), disk).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-io: %v\n%s", err, out)
	}
	vm := boot(t, qemu.Machine{Disk: disk, VarsDir: t.TempDir(), MemoryMB: 1024})
	ctx, cancel := context.WithTimeout(context.Background(), bootLimit)
	defer cancel()
	got, took, err := vm.WaitFor(ctx, marker, "cairn-init: BOOT FAILED", "verity: data block 0 is corrupted", "is corrupted")
	if err != nil {
		t.Fatal(err)
	}
	if got == marker {
		t.Fatal("a slot with a damaged /usr booted")
	}
	t.Logf("damaged USR-A refused after %v: %q", took.Round(100*time.Millisecond), got)
	// And it stays down: no marker while qemu winds down.
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	if got, _, _ := vm.WaitFor(wctx, marker); got == marker {
		t.Fatal("marker appeared after the verity failure")
	}
}

// TestRealBuildIsReproducible builds the test image a second time from the same (cached)
// Debian tree and compares every output file by its hash. It costs a whole pipeline run, so it
// runs only when CAIRN_IMAGE_REPRO=1 (the fake-tree pipeline test in image/build always runs).
func TestRealBuildIsReproducible(t *testing.T) {
	if os.Getenv("CAIRN_IMAGE_REPRO") != "1" {
		t.Skip("set CAIRN_IMAGE_REPRO=1 to rebuild the real image and compare")
	}
	dir := image(t)
	testenv.HeavyLock(t)
	out := filepath.Join(t.TempDir(), "again")
	b := &build.Builder{Out: out, Config: build.Config{Version: fleet.Old, BinDir: os.Getenv("CAIRN_BIN"), CacheDir: cacheRoot}}
	start := time.Now()
	if err := b.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("second build in %v", time.Since(start).Round(time.Second))
	var first, second build.Manifest
	for p, m := range map[string]*build.Manifest{dir: &first, out: &second} {
		raw, err := os.ReadFile(filepath.Join(p, build.ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, m); err != nil {
			t.Fatal(err)
		}
	}
	if len(first.Files) != len(second.Files) {
		t.Fatalf("%d files, then %d", len(first.Files), len(second.Files))
	}
	for i, f := range first.Files {
		if f != second.Files[i] {
			t.Errorf("%s differs: %s, then %s", f.Name, f.SHA256, second.Files[i].SHA256)
		}
	}
}

// TestIPXEBoots boots the PXE pair the way a data centre does: the firmware's iPXE gets an
// iPXE script from qemu's built-in TFTP server, and the script fetches the pair over HTTP from
// a server on the host's loopback (10.0.2.2 from inside the user-mode network).
func TestIPXEBoots(t *testing.T) {
	dir := image(t)
	testenv.RequireFile(t, "/usr/lib/ipxe/qemu/efi-virtio.rom")
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	tftp := t.TempDir()
	script := fmt.Sprintf("#!ipxe\nkernel http://10.0.2.2:%d/%s console=ttyS0,115200n8\ninitrd http://10.0.2.2:%d/%s\nboot\n",
		port, build.PXEKernel, port, build.PXEInitrd)
	if err := os.WriteFile(filepath.Join(tftp, "boot.ipxe"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	vm := boot(t, qemu.Machine{NetBoot: true, TFTPDir: tftp, BootFile: "boot.ipxe", MemoryMB: 2048})
	ctx, cancel := context.WithTimeout(context.Background(), bootLimit)
	defer cancel()
	_, took, err := vm.WaitFor(ctx, marker+" version="+fleet.Old+" slot=pxe")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("iPXE (TFTP script, HTTP pair): marker after %v", took.Round(100*time.Millisecond))
}
