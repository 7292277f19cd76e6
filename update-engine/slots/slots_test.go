package slots

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/internal/testenv"
)

func TestParseEntry(t *testing.T) {
	cases := []struct {
		name  string
		ok    bool
		state State
		left  int
		done  int
	}{
		{"cairn-1.2.3-A.efi", true, StateGood, 0, 0},
		{"cairn-1.2.3-B+3.efi", true, StateTrying, 3, 0},
		{"cairn-1.2.3-B+2-1.efi", true, StateTrying, 2, 1},
		{"cairn-1.2.3-B+0-3.efi", true, StateBad, 0, 3},
		{"cairn-1.2.3-C.efi", false, "", 0, 0},
		{"cairn-1.2.3-A.efi.new", false, "", 0, 0},
		{"cairn--A.efi", false, "", 0, 0},
		{"debian-6.1.efi", false, "", 0, 0},
		{"cairn-1.2.3-A+x.efi", false, "", 0, 0},
	}
	for _, c := range cases {
		e, ok := ParseEntry(c.name)
		if ok != c.ok {
			t.Errorf("%s: ok=%v", c.name, ok)
			continue
		}
		if ok && (e.State() != c.state || e.TriesLeft != c.left || e.TriesDone != c.done || e.Version != "1.2.3") {
			t.Errorf("%s: %+v state %s", c.name, e, e.State())
		}
	}
	if ValidVersion("1.2.3-rc1") || !ValidVersion("3975.2.0") {
		t.Error("ValidVersion")
	}
}

func TestActiveFromCmdline(t *testing.T) {
	for cmdline, want := range map[string]disklayout.Slot{
		"console=ttyS0 mount.usr=PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132 ro":                     disklayout.SlotA,
		"usr=PARTUUID=E03DD35C-7C2D-4A47-B3FE-27F15780A57C":                                            disklayout.SlotB,
		"mount.usr=/dev/disk/by-partuuid/e03dd35c-7c2d-4a47-b3fe-27f15780a57c mount.usrflags=ro quiet": disklayout.SlotB,
		"cairn.usr=PARTUUID=e03dd35c-7c2d-4a47-b3fe-27f15780a57c cairn.usrhash=00":                     disklayout.SlotB,
		"cairn.usr=auto cairn.usrhash=00 cairn.slot=A":                                                 disklayout.SlotA,
	} {
		got, err := ActiveFromCmdline(cmdline)
		if err != nil || got != want {
			t.Errorf("%q: %v %v", cmdline, got, err)
		}
	}
	for _, bad := range []string{"", "root=/dev/sda9", "cairn.usr=auto cairn.slot=C", "mount.usr=PARTUUID=0FC63DAF-8483-4772-8E79-3D69D8477DE4", "usr=/dev/sda3"} {
		if _, err := ActiveFromCmdline(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestActiveSlotPrefersBootEnv(t *testing.T) {
	dir := t.TempDir()
	cmdline, env := filepath.Join(dir, "cmdline"), filepath.Join(dir, "boot.env")
	// A slot-neutral payload UKI: the command line does not say which slot booted.
	os.WriteFile(cmdline, []byte("cairn.usr=auto cairn.usrhash=00\n"), 0o644)
	s := &Slots{Cmdline: cmdline, BootEnv: env}
	if _, err := s.ActiveSlot(); err == nil {
		t.Fatal("active slot found with neither a boot record nor a slot on the command line")
	}
	os.WriteFile(env, []byte("CAIRN_SLOT=A\nCAIRN_USR_PARTUUID=E03DD35C-7C2D-4A47-B3FE-27F15780A57C\n"), 0o644)
	if got, err := s.ActiveSlot(); err != nil || got != disklayout.SlotB {
		t.Fatalf("boot.env: %v %v, want B (the partition GUID decides)", got, err)
	}
	os.WriteFile(env, []byte("CAIRN_SLOT=\"A\"\n"), 0o644)
	if got, err := s.ActiveSlot(); err != nil || got != disklayout.SlotA {
		t.Fatalf("boot.env slot name: %v %v", got, err)
	}
}

func newSlots(t *testing.T, esp ESP, active disklayout.Slot) *Slots {
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	os.WriteFile(cmdline, []byte("mount.usr=PARTUUID="+active.Partition().GUID+"\n"), 0o644)
	return &Slots{ESP: esp, Cmdline: cmdline, BootEnv: filepath.Join(t.TempDir(), "no-boot.env"), EFIVars: filepath.Join(t.TempDir(), "no-efivars")}
}

// exercise runs the life of an update against any ESP implementation.
func exercise(t *testing.T, esp ESP) {
	ctx := context.Background()
	s := newSlots(t, esp, disklayout.SlotA)
	if err := esp.Create(ctx, EntryDir+"/"+EntryName("1.0.0", disklayout.SlotA, -1), strings.NewReader("uki A")); err != nil {
		t.Fatal(err)
	}
	// A stale entry of B from an older update: it must go before B is written.
	esp.Create(ctx, EntryDir+"/"+EntryName("0.9.0", disklayout.SlotB, -1), strings.NewReader("old B"))
	esp.Create(ctx, EntryDir+"/other.efi", strings.NewReader("not ours"))
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Active != disklayout.SlotA || st.Next != disklayout.SlotA || st.Slot(disklayout.SlotB).State != StateGood {
		t.Fatalf("before: %+v", st)
	}
	if err := s.Invalidate(ctx, disklayout.SlotA); err == nil {
		t.Fatal("invalidated the active slot")
	}
	if err := s.Invalidate(ctx, disklayout.SlotB); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(ctx); st.Slot(disklayout.SlotB).State != StateEmpty {
		t.Fatalf("B after invalidate: %+v", st.Slot(disklayout.SlotB))
	}
	if err := s.StageUKI(ctx, "2.0.0", disklayout.SlotB, strings.NewReader("uki B")); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(ctx); st.Slot(disklayout.SlotB).State != StateEmpty || st.Next != disklayout.SlotA {
		t.Fatalf("a staged UKI is bootable: %+v", st)
	}
	r, err := s.OpenStaged(ctx, "2.0.0", disklayout.SlotB)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "uki B" {
		t.Fatalf("staged content %q", b)
	}
	if err := s.SetNext(ctx, "2.0.0", disklayout.SlotB, 2); err != nil {
		t.Fatal(err)
	}
	st, _ = s.Status(ctx)
	if b := st.Slot(disklayout.SlotB); st.Next != disklayout.SlotB || b.State != StateTrying || b.TriesLeft != 2 || b.Version != "2.0.0" {
		t.Fatalf("after SetNext: %+v", st)
	}
	// Two failed boots: B runs out of tries and A is next again.
	s.CountBootAttempt(ctx, disklayout.SlotB)
	s.CountBootAttempt(ctx, disklayout.SlotB)
	st, _ = s.Status(ctx)
	if b := st.Slot(disklayout.SlotB); st.Next != disklayout.SlotA || b.State != StateBad || b.TriesDone != 2 {
		t.Fatalf("after two failed boots: %+v", st)
	}
	// Or a good boot: blessed, B stays next.
	s.Invalidate(ctx, disklayout.SlotB)
	s.StageUKI(ctx, "2.0.1", disklayout.SlotB, strings.NewReader("uki B2"))
	s.SetNext(ctx, "2.0.1", disklayout.SlotB, 3)
	s.CountBootAttempt(ctx, disklayout.SlotB)
	s.MarkGood(ctx, disklayout.SlotB)
	st, _ = s.Status(ctx)
	if b := st.Slot(disklayout.SlotB); st.Next != disklayout.SlotB || b.State != StateGood || b.Entry != "cairn-2.0.1-B.efi" {
		t.Fatalf("after a good boot: %+v", st)
	}
	// A forced downgrade cannot become next by order alone, and there is no efivarfs here.
	s2 := newSlots(t, esp, disklayout.SlotB)
	s2.Invalidate(ctx, disklayout.SlotA)
	s2.StageUKI(ctx, "0.5.0", disklayout.SlotA, strings.NewReader("old"))
	if err := s2.SetNext(ctx, "0.5.0", disklayout.SlotA, 1); err == nil {
		t.Fatal("downgrade reported as next boot without a one-shot pin")
	}
	efivars := t.TempDir()
	s2.EFIVars = efivars
	s2.Invalidate(ctx, disklayout.SlotA)
	s2.StageUKI(ctx, "0.5.0", disklayout.SlotA, strings.NewReader("old"))
	if err := s2.SetNext(ctx, "0.5.0", disklayout.SlotA, 1); err != nil {
		t.Fatal(err)
	}
	v, _ := os.ReadFile(filepath.Join(efivars, "LoaderEntryOneShot-"+loaderGUID))
	if !bytes.HasPrefix(v, []byte{7, 0, 0, 0, 'c', 0, 'a', 0}) || !bytes.HasSuffix(v, []byte{0, 0}) {
		t.Fatalf("one-shot variable % x", v)
	}
	names, _ := esp.List(ctx, EntryDir)
	if slices.Contains(names, "other.efi") {
		return
	}
	t.Fatal("a foreign entry was removed")
}

func TestDirESP(t *testing.T) { exercise(t, DirESP{Root: t.TempDir()}) }

func TestMtoolsESP(t *testing.T) {
	mkfs := testenv.RequireCommand(t, "mkfs.vfat")
	testenv.RequireCommand(t, "mcopy")
	img := filepath.Join(t.TempDir(), "esp.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Truncate(img, 64<<20)
	if out, err := exec.Command(mkfs, "-n", "EFI-SYSTEM", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v %s", err, out)
	}
	exercise(t, MtoolsESP{Image: img, TmpDir: t.TempDir()})
}

func FuzzParseEntry(f *testing.F) {
	f.Add("cairn-1.2.3-B+2-1.efi")
	f.Add("cairn-1.2.3-A.efi")
	f.Add("cairn-1-A+99999.efi")
	f.Fuzz(func(t *testing.T, name string) {
		e, ok := ParseEntry(name)
		if !ok {
			return
		}
		if e.Slot != disklayout.SlotA && e.Slot != disklayout.SlotB || e.TriesLeft < 0 || e.TriesDone < 0 {
			t.Fatalf("%q parsed as %+v", name, e)
		}
		// The counter-free id parses back to the same slot and version.
		back, ok := ParseEntry(e.ID())
		if !ok || back.Slot != e.Slot || back.Version != e.Version || back.Counting {
			t.Fatalf("%q: id %q parses as %+v", name, e.ID(), back)
		}
	})
}

func FuzzActiveFromCmdline(f *testing.F) {
	f.Add("mount.usr=PARTUUID=7130c94a-213a-4e5a-8e26-6cce9662f132 ro")
	f.Add("usr=/dev/disk/by-partuuid/E03DD35C-7C2D-4A47-B3FE-27F15780A57C")
	f.Fuzz(func(t *testing.T, cmdline string) {
		s, err := ActiveFromCmdline(cmdline)
		if err == nil && s != disklayout.SlotA && s != disklayout.SlotB {
			t.Fatalf("%q gave slot %q", cmdline, s)
		}
	})
}
