package install_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/installer/cli"
	"github.com/cairn-os/cairn/installer/imagesig"
	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/internal/gpt"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/payload"
)

const mib = 1 << 20

// smallImage writes a 40 MiB disk image with Cairn's partition labels and types (small
// sizes) and an ext4 OEM partition, signs it, and returns the image path and public key path.
func smallImage(t *testing.T) (img, pubPath string) {
	t.Helper()
	testenv.RequireCommand(t, "mkfs.ext4")
	dir := t.TempDir()
	img = filepath.Join(dir, "cairn_production_image.bin")
	const size = 40 * mib
	sizes := map[string]int64{"EFI-SYSTEM": 2 * mib, "BIOS-BOOT": mib, "USR-A": 4 * mib, "USR-B": 4 * mib, "OEM": 16 * mib}
	tab := &gpt.Table{DiskGUID: gpt.MustParseGUID("11111111-2222-3333-4444-555555555555")}
	first, last := tab.Usable(size)
	lba := (first + 2047) &^ 2047
	for i, p := range disklayout.Partitions {
		n := uint64(sizes[p.Label] / 512)
		if p.Size == 0 {
			n = last - lba + 1
		}
		g := fmt.Sprintf("%08X-0000-4000-8000-%012X", i+1, i+1)
		if p.GUID != "" {
			g = p.GUID
		}
		tab.Partitions = append(tab.Partitions, gpt.Partition{Number: p.Number, Type: gpt.MustParseGUID(p.Type),
			GUID: gpt.MustParseGUID(g), FirstLBA: lba, LastLBA: lba + n - 1, Name: p.Label})
		lba += n
	}
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f, size); err != nil {
		t.Fatal(err)
	}
	// Something recognisable in USR-A, for the tamper test.
	usr, _ := tab.FindName("USR-A")
	f.WriteAt(bytes.Repeat([]byte("usr-a"), 1000), usr.Offset(512))
	f.Close()
	oem, _ := tab.FindName("OEM")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "OEM", "-E", fmt.Sprintf("offset=%d", oem.Offset(512)),
		img, fmt.Sprintf("%dk", oem.Size(512)/1024)).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	priv, pub, err := payload.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	key, _ := payload.ParsePrivateKey(priv)
	pubPath = filepath.Join(dir, "key.pub.pem")
	os.WriteFile(pubPath, pub, 0o644)
	r, _ := os.Open(img)
	st, err := imagesig.Of(r)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(img+".sig", imagesig.Sign(key, st), 0o644)
	return img, pubPath
}

// targetDisk attaches a 64 MiB loop device, full of a non-zero pattern, and detaches it (and
// its partitions) at the end.
func targetDisk(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "losetup")
	testenv.RequireCommand(t, "partx")
	backing := filepath.Join(t.TempDir(), "disk")
	// Not zeros: what the install leaves must be the image's, zero runs included, whatever the
	// disk held before.
	if err := os.WriteFile(backing, bytes.Repeat([]byte{0xa5}, 64*mib), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", backing).Output()
	testenv.Require(t, err == nil, "losetup: %v", err)
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		exec.Command("partx", "-d", dev).Run()
		exec.Command("losetup", "-d", dev).Run()
	})
	return dev
}

func run(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// readOEM mounts partition 6 of dev through a loop device over its range and reads a file.
func readOEM(t *testing.T, dev, name string) string {
	t.Helper()
	d, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	size, _ := d.Seek(0, 2)
	tab, err := gpt.Read(d, size, 512)
	if err != nil {
		t.Fatalf("installed disk has no readable GPT: %v", err)
	}
	oem, _ := tab.FindName("OEM")
	out, err := exec.Command("losetup", "--find", "--show", "--read-only", "--offset", fmt.Sprint(oem.Offset(512)),
		"--sizelimit", fmt.Sprint(oem.Size(512)), dev).Output()
	if err != nil {
		t.Fatal(err)
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	mnt := t.TempDir()
	if err := unix.Mount(loop, mnt, "ext4", unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, 0)
	b, err := os.ReadFile(filepath.Join(mnt, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const config = `{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["ssh-ed25519 AAAA test"]}]}}`

func TestInstallWritesImageAndConfig(t *testing.T) {
	img, pub := smallImage(t)
	dev := targetDisk(t)
	ign := filepath.Join(t.TempDir(), "config.ign")
	os.WriteFile(ign, []byte(config), 0o600)

	out, errOut, code := run("-d", dev, "-f", img, "-i", ign, "-o", "qemu", "-k", pub)
	if code != 0 {
		t.Fatalf("install: %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "Success") || !strings.Contains(errOut, "writing image: 40/40 MiB (100%)") {
		t.Fatalf("stdout %q, progress %q", out, errOut)
	}
	if got := readOEM(t, dev, "config.ign"); got != config {
		t.Fatalf("config.ign on OEM = %q", got)
	}
	if got := readOEM(t, dev, "oem-release"); !strings.Contains(got, "ID=qemu") {
		t.Fatalf("oem-release = %q", got)
	}
	// Every byte outside OEM is the image's.
	want, _ := os.ReadFile(img)
	d, _ := os.Open(dev)
	got := make([]byte, len(want))
	d.ReadAt(got, 0)
	d.Close()
	tab, _ := gpt.Read(bytes.NewReader(want), int64(len(want)), 512)
	oem, _ := tab.FindName("OEM")
	if !bytes.Equal(got[:oem.Offset(512)], want[:oem.Offset(512)]) {
		t.Fatal("disk differs from the image before the OEM partition")
	}

	// The kernel now knows the partitions (partx); with one mounted, the disk is in use.
	node := ""
	for _, c := range []string{dev + "p6", dev + "6"} {
		if _, err := os.Stat(c); err == nil {
			node = c
		}
	}
	testenv.Require(t, node != "", "no partition node for %s after install (partx)", dev)
	mnt := t.TempDir()
	if err := unix.Mount(node, mnt, "ext4", unix.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, 0)
	_, errOut, code = run("-d", dev, "-f", img, "-k", pub)
	if code == 0 || !strings.Contains(errOut, "disk is in use") || !strings.Contains(errOut, node) {
		t.Fatalf("install over a mounted partition: code %d, %s", code, errOut)
	}
}

func TestInstallRefusesTamperedImageAndWipes(t *testing.T) {
	img, pub := smallImage(t)
	dev := targetDisk(t)
	// Tamper with USR-A after signing.
	b, _ := os.ReadFile(img)
	i := bytes.Index(b, []byte("usr-a"))
	b[i] = 'U'
	os.WriteFile(img, b, 0o644)

	_, errOut, code := run("-d", dev, "-f", img, "-k", pub)
	if code == 0 || !strings.Contains(errOut, "signature does not verify") || !strings.Contains(errOut, "wiped") {
		t.Fatalf("tampered image: code %d, %s", code, errOut)
	}
	d, _ := os.Open(dev)
	defer d.Close()
	if _, err := gpt.Read(d, 64*mib, 512); err == nil {
		t.Fatal("a partition table survived the failed install")
	}
}

func TestInstallRefusesBeforeWriting(t *testing.T) {
	img, pub := smallImage(t)
	dev := targetDisk(t)
	other := filepath.Join(t.TempDir(), "other.pem")
	_, otherPub, _ := payload.GenerateKey()
	os.WriteFile(other, otherPub, 0o644)
	bad := filepath.Join(t.TempDir(), "bad.ign")
	os.WriteFile(bad, []byte(`{"ignition":{"version":"3.4.0"},"storage":{"disks":[{"device":"/dev/vda","wipeTable":true}]}}`), 0o600)
	// Mark the disk so that we can tell it was not touched.
	d, _ := os.OpenFile(dev, os.O_RDWR, 0)
	d.WriteAt([]byte("untouched"), 0)
	d.Close()

	for name, args := range map[string][]string{
		"untrusted key":      {"-d", dev, "-f", img, "-k", other},
		"unsupported config": {"-d", dev, "-f", img, "-k", pub, "-i", bad},
		"not a block device": {"-d", img, "-f", img, "-k", pub},
	} {
		_, errOut, code := run(args...)
		if code == 0 {
			t.Errorf("%s: installed", name)
		}
		t.Logf("%s: %s", name, strings.TrimSpace(errOut))
	}
	d, _ = os.Open(dev)
	buf := make([]byte, 9)
	d.ReadAt(buf, 0)
	d.Close()
	if string(buf) != "untouched" {
		t.Fatalf("a refused install wrote to the disk: %q", buf)
	}
}

func TestValidate(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good.ign")
	os.WriteFile(good, []byte(config), 0o600)
	if out, _, code := run("validate", good); code != 0 || !strings.Contains(out, "valid") {
		t.Fatalf("validate good: %d %q", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.ign")
	os.WriteFile(bad, []byte(`{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"rel"}]}}`), 0o600)
	out, errOut, code := run("validate", bad)
	if code == 0 || !strings.Contains(out+errOut, "path") {
		t.Fatalf("validate bad: %d %q %q", code, out, errOut)
	}
}
