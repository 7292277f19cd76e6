package disk

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/internal/gpt"
	"github.com/cairn-os/cairn/internal/testenv"
)

func TestPlanFollowsTheLayout(t *testing.T) {
	tab, size, err := Plan(0, "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if size != disklayout.MinDiskSize() {
		t.Fatalf("size %d", size)
	}
	for _, want := range disklayout.Partitions {
		p, ok := tab.FindName(want.Label)
		if !ok || p.Number != want.Number || p.Type.String() != want.Type {
			t.Fatalf("%s: %+v", want.Label, p)
		}
		if want.GUID != "" && p.GUID.String() != want.GUID {
			t.Errorf("%s GUID %s", want.Label, p.GUID)
		}
		if want.Size != 0 && p.Size(512) != want.Size {
			t.Errorf("%s size %d", want.Label, p.Size(512))
		}
		if p.FirstLBA%2048 != 0 {
			t.Errorf("%s not MiB-aligned", want.Label)
		}
	}
	root, _ := tab.FindName("ROOT")
	if root.Size(512) < 255*disklayout.MiB {
		t.Errorf("ROOT only %d MiB", root.Size(512)>>20)
	}
	again, _, _ := Plan(0, "1.0.0")
	other, _, _ := Plan(0, "1.0.1")
	if again.DiskGUID != tab.DiskGUID || other.DiskGUID == tab.DiskGUID {
		t.Error("disk GUID is not a function of the seed")
	}
	if _, _, err := Plan(100*disklayout.MiB, "x"); err == nil {
		t.Error("a 100 MiB disk was planned")
	}
}

func TestWriteIsSparseAndReadable(t *testing.T) {
	dir := t.TempDir()
	tab, size, err := Plan(0, "t")
	if err != nil {
		t.Fatal(err)
	}
	usr := filepath.Join(dir, "usr.img")
	content := bytes.Repeat([]byte("cairn"), 300000)
	if err := os.WriteFile(usr, content, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "disk.bin")
	if err := Write(out, tab, size, map[string]string{"USR-A": usr}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	back, err := gpt.Read(f, size, 512)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := back.Find(gpt.MustParseGUID(disklayout.GUIDUSRA))
	if !ok {
		t.Fatal("USR-A not found by its GUID")
	}
	got := make([]byte, len(content))
	if _, err := f.ReadAt(got, p.Offset(512)); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("USR-A content differs: %v", err)
	}
	big := filepath.Join(dir, "big.img")
	if err := os.Truncate(big, 0); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	bf, _ := os.Create(big)
	bf.Truncate(3 * disklayout.MiB)
	bf.Close()
	if err := Write(filepath.Join(dir, "d2"), tab, size, map[string]string{"BIOS-BOOT": big}); !errors.Is(err, ErrTooBig) {
		t.Fatalf("oversize content: %v", err)
	}
}

func TestExt4Reproducible(t *testing.T) {
	testenv.RequireCommand(t, "mkfs.ext4")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc", "hostname"), []byte("cairn\n"), 0o644)
	var imgs [][]byte
	for _, n := range []string{"a", "b"} {
		out := filepath.Join(dir, n)
		if err := Ext4(context.Background(), out, 32*disklayout.MiB, "ROOT", tree, 1700000000, "s"); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(out)
		imgs = append(imgs, b)
	}
	if !bytes.Equal(imgs[0], imgs[1]) {
		t.Error("two ext4 images from the same inputs differ")
	}
}
