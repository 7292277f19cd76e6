package gpt

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
)

const (
	typeESP   = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeUSR   = "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6"
	guidUSRA  = "7130C94A-213A-4E5A-8E26-6CCE9662F132"
	diskBytes = 64 << 20
)

// memDisk is an in-memory io.ReaderAt/io.WriterAt.
type memDisk []byte

func (m memDisk) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m[off:]), nil }
func (m memDisk) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

func sample() *Table {
	return &Table{
		DiskGUID: MustParseGUID("00000000-1111-2222-3333-444444444444"),
		Partitions: []Partition{
			{Number: 1, Type: MustParseGUID(typeESP), GUID: MustParseGUID("AAAAAAAA-0000-0000-0000-000000000001"), FirstLBA: 2048, LastLBA: 4095, Name: "EFI-SYSTEM"},
			{Number: 3, Type: MustParseGUID(typeUSR), GUID: MustParseGUID(guidUSRA), FirstLBA: 4096, LastLBA: 8191, Attributes: 1 << 56, Name: "USR-A"},
			{Number: 9, Type: MustParseGUID(typeUSR), GUID: MustParseGUID("AAAAAAAA-0000-0000-0000-000000000009"), FirstLBA: 8192, LastLBA: 20479, Name: "ROOT-ÄÖ"},
		},
	}
}

func TestGUIDText(t *testing.T) {
	g := MustParseGUID(strings.ToLower(typeESP))
	if g.String() != typeESP {
		t.Fatalf("round trip %s", g)
	}
	// The first three fields are little endian on disk.
	if g[0] != 0x28 || g[3] != 0xC1 || g[4] != 0x1F || g[6] != 0xD2 || g[8] != 0xBA {
		t.Fatalf("on-disk bytes % x", g[:])
	}
	for _, bad := range []string{"", "C12A7328F81F11D2BA4B00A0C93EC93B", "C12A7328-F81F-11D2-BA4B-00A0C93EC93G", "C12A7328-F81F-11D2-BA4B+00A0C93EC93B"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) accepted", bad)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	d := make(memDisk, diskBytes)
	want := sample()
	if err := want.Write(d, diskBytes); err != nil {
		t.Fatal(err)
	}
	if d[510] != 0x55 || d[511] != 0xAA || d[446+4] != 0xEE {
		t.Fatal("no protective MBR")
	}
	got, err := Read(d, diskBytes, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.DiskGUID != want.DiskGUID || len(got.Partitions) != 3 {
		t.Fatalf("got %+v", got)
	}
	for i, p := range got.Partitions {
		if p != want.Partitions[i] {
			t.Errorf("partition %d: got %+v want %+v", i, p, want.Partitions[i])
		}
	}
	if p, ok := got.Find(MustParseGUID(guidUSRA)); !ok || p.Name != "USR-A" || p.Offset(512) != 4096*512 || p.Size(512) != 4096*512 {
		t.Fatalf("Find USR-A: %+v %v", p, ok)
	}
}

func TestBackupUsedWhenPrimaryDamaged(t *testing.T) {
	for _, off := range []int64{512 + 20, 2*512 + 100} { // header CRC field, an entry
		d := make(memDisk, diskBytes)
		if err := sample().Write(d, diskBytes); err != nil {
			t.Fatal(err)
		}
		d[off] ^= 0xFF
		got, err := Read(d, diskBytes, 0)
		if err != nil {
			t.Fatalf("damage at %d: %v", off, err)
		}
		if _, ok := got.FindName("USR-A"); !ok {
			t.Fatalf("damage at %d: backup lost USR-A", off)
		}
	}
	d := make(memDisk, diskBytes)
	if err := sample().Write(d, diskBytes); err != nil {
		t.Fatal(err)
	}
	d[512] = 'X'
	d[diskBytes-512] = 'X'
	if _, err := Read(d, diskBytes, 0); !errors.Is(err, ErrNoTable) {
		t.Fatalf("both copies broken: %v", err)
	}
}

func TestValidateRefuses(t *testing.T) {
	cases := map[string]func(*Table){
		"overlap":      func(t *Table) { t.Partitions[1].FirstLBA = 4000 },
		"past end":     func(t *Table) { t.Partitions[2].LastLBA = diskBytes / 512 },
		"before first": func(t *Table) { t.Partitions[0].FirstLBA = 10 },
		"dup number":   func(t *Table) { t.Partitions[2].Number = 1 },
		"number 0":     func(t *Table) { t.Partitions[2].Number = 0 },
		"zero type":    func(t *Table) { t.Partitions[2].Type = GUID{} },
		"long name":    func(t *Table) { t.Partitions[2].Name = strings.Repeat("x", 37) },
		"reversed":     func(t *Table) { t.Partitions[2].FirstLBA, t.Partitions[2].LastLBA = 20479, 8192 },
	}
	for name, mutate := range cases {
		tb := sample()
		mutate(tb)
		if err := tb.Write(make(memDisk, diskBytes), diskBytes); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestSfdiskReadsIt cross-checks the writer against util-linux's independent GPT parser.
func TestSfdiskReadsIt(t *testing.T) {
	sfdisk := testenv.RequireCommand(t, "sfdisk")
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(diskBytes); err != nil {
		t.Fatal(err)
	}
	if err := sample().Write(f, diskBytes); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out, err := exec.Command(sfdisk, "--json", path).Output()
	if err != nil {
		t.Fatalf("sfdisk: %v", err)
	}
	var dump struct {
		PartitionTable struct {
			Label      string
			ID         string
			Partitions []struct {
				Node  string
				Start uint64
				Size  uint64
				Type  string
				UUID  string
				Name  string
			}
		}
	}
	if err := json.Unmarshal(out, &dump); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pt := dump.PartitionTable
	if pt.Label != "gpt" || pt.ID != "00000000-1111-2222-3333-444444444444" || len(pt.Partitions) != 3 {
		t.Fatalf("sfdisk sees %s", out)
	}
	p := pt.Partitions[1]
	if !strings.HasSuffix(p.Node, "3") || p.Start != 4096 || p.Size != 4096 || p.Type != typeUSR || p.UUID != guidUSRA || p.Name != "USR-A" {
		t.Fatalf("sfdisk sees USR-A as %+v", p)
	}
	if pt.Partitions[2].Name != "ROOT-ÄÖ" {
		t.Fatalf("name %q", pt.Partitions[2].Name)
	}
}

func FuzzRead(f *testing.F) {
	d := make(memDisk, 1<<20)
	tb := sample()
	tb.Partitions = tb.Partitions[:1]
	tb.Partitions[0].FirstLBA, tb.Partitions[0].LastLBA = 40, 1000
	if err := tb.Write(d, int64(len(d))); err != nil {
		f.Fatal(err)
	}
	// Seeds: the first 34 sectors of a valid disk, and that with a damaged header.
	f.Add([]byte(d[:34*512]))
	bad := bytes.Clone([]byte(d[:34*512]))
	bad[512+80] = 0xFF
	f.Add(bad)
	f.Add([]byte("EFI PART"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := Read(bytes.NewReader(b), int64(len(b)), 0)
		if err != nil {
			return
		}
		// Whatever parses must describe partitions inside the disk.
		for _, p := range tb.Partitions {
			if p.FirstLBA > p.LastLBA || p.Offset(512) >= int64(len(b)) {
				t.Fatalf("accepted partition %+v outside a %d-byte disk", p, len(b))
			}
		}
	})
}
