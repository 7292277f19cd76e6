package uki

import (
	"context"
	"debug/pe"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-os/cairn/internal/testenv"
)

const stub = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"

func TestBuildPlacesSectionsAfterTheStub(t *testing.T) {
	testenv.RequireFile(t, stub)
	testenv.RequireCommand(t, "objcopy")
	dir := t.TempDir()
	w := func(name string, n int) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s := Spec{Stub: stub, OSRelease: w("os-release", 100), Cmdline: "console=ttyS0 usrhash=00",
		Kernel: w("vmlinuz", 5<<20+3), Initrd: w("initrd", 1<<20), Out: filepath.Join(dir, "out.efi")}
	if err := Build(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	f, err := pe.Open(s.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := f.Section(".cmdline")
	if c == nil || f.Section(".linux") == nil || f.Section(".initrd") == nil || f.Section(".osrel") == nil {
		t.Fatal("missing sections")
	}
	b, _ := c.Data()
	if string(b[:len(s.Cmdline)]) != s.Cmdline {
		t.Fatalf("cmdline section %q", b)
	}
	var prevEnd uint32
	for _, sec := range f.Sections {
		if sec.VirtualAddress < prevEnd {
			t.Fatalf("section %s at %#x overlaps the previous one ending %#x", sec.Name, sec.VirtualAddress, prevEnd)
		}
		prevEnd = sec.VirtualAddress + sec.VirtualSize
	}
	// Reproducible: the same inputs give the same file, also a second later.
	first, _ := os.ReadFile(s.Out)
	time.Sleep(1100 * time.Millisecond)
	if err := Build(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(s.Out)
	if string(first) != string(second) {
		t.Fatal("two UKI builds differ")
	}
}
