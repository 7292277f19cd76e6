package initramfs

import (
	"testing"
	"unicode/utf16"

	"github.com/cairn-os/cairn/internal/disklayout"
)

func efiString(s string) []byte {
	b := []byte{6, 0, 0, 0}
	for _, u := range utf16.Encode([]rune(s + "\x00")) {
		b = append(b, byte(u), byte(u>>8))
	}
	return b
}

func TestSelectedSlot(t *testing.T) {
	for _, c := range []struct {
		v    []byte
		slot disklayout.Slot
		ok   bool
	}{
		{efiString("cairn-1.0.1-B.efi"), disklayout.SlotB, true},
		{efiString("cairn-1.0.2-A+2-1.efi"), disklayout.SlotA, true},
		{efiString("cairn-1.0.2-A+0-3.efi"), disklayout.SlotA, true},
		// As systemd-boot writes them: IDs folded to lower case.
		{efiString("cairn-1.0.1-b.efi"), disklayout.SlotB, true},
		{efiString("cairn-1.0.2-a+2-1.efi"), disklayout.SlotA, true},
		{efiString("CAIRN-1.0.2-A.EFI"), disklayout.SlotA, true},
		{efiString("cairn-1.0.0-c.efi"), "", false},
		{efiString("cairn-1.0.0-C.efi"), "", false},
		{efiString("auto-efi-shell"), "", false},
		{efiString("cairn-1.0.1-B.conf"), "", false},
		{efiString(""), "", false},
		{[]byte{6, 0, 0}, "", false},
		{[]byte{6, 0, 0, 0, 'c'}, "", false},
		{nil, "", false},
	} {
		s, ok := SelectedSlot(c.v)
		if s != c.slot || ok != c.ok {
			t.Errorf("%q: %q %v, want %q %v", c.v, s, ok, c.slot, c.ok)
		}
	}
}

func FuzzSelectedSlot(f *testing.F) {
	f.Add(efiString("cairn-1.0.1-B.efi"))
	f.Add(efiString("cairn-1.0.2-A+2-1.efi"))
	f.Add([]byte{7, 0, 0, 0, 0xff, 0xd8})
	f.Fuzz(func(t *testing.T, v []byte) {
		s, ok := SelectedSlot(v)
		if ok != (s == disklayout.SlotA || s == disklayout.SlotB) {
			t.Fatalf("%q: slot %q ok %v", v, s, ok)
		}
	})
}
