package initramfs

import (
	"bytes"
	"io/fs"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/gpt"
	"github.com/cairn-os/cairn/internal/testenv"
)

const dep = `kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko kernel/lib/reed_solomon/reed_solomon.ko
kernel/drivers/md/dm-bufio.ko:
kernel/drivers/md/dm-mod.ko:
kernel/lib/reed_solomon/reed_solomon.ko:
kernel/fs/erofs/erofs.ko: kernel/lib/lz4/lz4_decompress.ko
kernel/lib/lz4/lz4_decompress.ko:
`

func TestLoadOrder(t *testing.T) {
	ix, err := ParseModulesDep(strings.NewReader(dep))
	if err != nil {
		t.Fatal(err)
	}
	got := ix.LoadOrder([]string{"dm_mod", "dm-verity", "erofs", "virtio_blk"})
	want := []string{
		"kernel/drivers/md/dm-mod.ko",
		"kernel/drivers/md/dm-bufio.ko",
		"kernel/lib/reed_solomon/reed_solomon.ko",
		"kernel/drivers/md/dm-verity.ko",
		"kernel/lib/lz4/lz4_decompress.ko",
		"kernel/fs/erofs/erofs.ko",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order\n got %q\nwant %q", got, want)
	}
	for _, bad := range []string{"no colon here\n", "/abs.ko:\n", "../up.ko:\n"} {
		if _, err := ParseModulesDep(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func FuzzParseModulesDep(f *testing.F) {
	f.Add(dep)
	f.Add("a.ko: b.ko\nb.ko: a.ko\n") // a cycle must not hang LoadOrder
	f.Fuzz(func(t *testing.T, s string) {
		ix, err := ParseModulesDep(strings.NewReader(s))
		if err != nil {
			return
		}
		names := make([]string, 0, len(ix.path))
		for n := range ix.path {
			names = append(names, n)
		}
		order := ix.LoadOrder(names)
		if len(order) != len(ix.path) {
			t.Fatalf("%d modules, order has %d", len(ix.path), len(order))
		}
	})
}

func TestCpioIsReadByCpioAndReproducible(t *testing.T) {
	build := func() []byte {
		a := &Archive{MTime: 1700000000}
		a.Add(Entry{Path: "init", Mode: 0o755, Data: []byte("#!/bin/sh\n")})
		a.Add(Entry{Path: "lib/modules/x/a.ko", Mode: 0o644, Data: []byte("abc")})
		a.Add(Entry{Path: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1})
		a.Add(Entry{Path: "sbin", Mode: fs.ModeSymlink | 0o777, Link: "bin"})
		var b bytes.Buffer
		if err := a.Write(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	one, two := build(), build()
	if !bytes.Equal(one, two) {
		t.Fatal("same entries, different bytes")
	}
	cpio := testenv.RequireCommand(t, "cpio")
	cmd := exec.Command(cpio, "-t", "-v")
	cmd.Stdin = bytes.NewReader(one)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	for _, want := range []string{"lib/modules/x/a.ko", "dev/console", "sbin -> bin", "init"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cpio listing lacks %q:\n%s", want, out)
		}
	}
	_ = filepath.Join
}

func TestPlanGrow(t *testing.T) {
	const mib = 1 << 20
	tab := &gpt.Table{Partitions: []gpt.Partition{
		{Number: 3, Type: gpt.MustParseGUID("5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6"), FirstLBA: 2048, LastLBA: 4095, Name: "USR-A"},
		{Number: 9, Type: gpt.MustParseGUID("3884DD41-8582-4404-B9A8-E9B84F2DF50E"), FirstLBA: 4096, LastLBA: 8191, Name: "ROOT"},
	}}
	// The disk the table was written for: nothing to gain.
	if _, ok := PlanGrow(tab, 5*mib); ok {
		t.Error("grows on a disk of the size it was made for")
	}
	g, ok := PlanGrow(tab, 100*mib)
	if !ok || g.Number != 9 || g.OldLast != 8191 || (g.NewLast+1)%2048 != 0 || g.NewLast >= 100*mib/512-33 {
		t.Fatalf("plan %+v %v", g, ok)
	}
	// ROOT that is not last is left alone.
	tab.Partitions[0].FirstLBA, tab.Partitions[0].LastLBA = 10000, 12000
	if _, ok := PlanGrow(tab, 100*mib); ok {
		t.Error("grew a ROOT that is not the last partition")
	}
}
