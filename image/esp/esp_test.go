package esp

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
)

func TestMakeIsReadableAndReproducible(t *testing.T) {
	testenv.RequireCommand(t, "mkfs.vfat")
	testenv.RequireCommand(t, "mcopy")
	dir := t.TempDir()
	loader := filepath.Join(dir, "loader.conf")
	if err := os.WriteFile(loader, []byte(LoaderConf()), 0o644); err != nil {
		t.Fatal(err)
	}
	uki := filepath.Join(dir, "uki.efi")
	if err := os.WriteFile(uki, bytes.Repeat([]byte("MZ"), 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	mk := func(out string) []byte {
		s := Spec{Out: out, Size: 64 << 20, Label: "EFI-SYSTEM", SourceDateEpoch: 1700000000, Files: []File{
			{Path: "loader/loader.conf", Source: loader},
			{Path: "EFI/Linux/cairn-1.0-A.efi", Source: uki},
			{Path: "EFI/BOOT/BOOTX64.EFI", Source: uki},
		}}
		if err := Make(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := mk(filepath.Join(dir, "a.img"))
	time.Sleep(1100 * time.Millisecond) // a build a second later must not differ
	b := mk(filepath.Join(dir, "b.img"))
	if !bytes.Equal(a, b) {
		t.Error("two ESPs from the same inputs differ")
	}
	out, err := exec.Command("mtype", "-i", filepath.Join(dir, "a.img"), "::/loader/loader.conf").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "timeout 0") {
		t.Fatalf("mtype loader.conf: %v %s", err, out)
	}
	out, err = exec.Command("mdir", "-i", filepath.Join(dir, "a.img"), "-b", "::/EFI/Linux").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "cairn-1.0-A.efi") {
		t.Fatalf("mdir: %v %s", err, out)
	}
}
