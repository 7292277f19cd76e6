package initramfs

import (
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf16"

	"github.com/cairn-os/cairn/internal/disklayout"
)

// LoaderEntrySelected is systemd-boot's EFI variable naming the entry it booted.
const LoaderEntrySelected = "LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

// entrySlot matches a slot's UKI: cairn-<version>-<A|B>[+tries[-done]].efi (update-engine/slots).
// systemd-boot folds entry IDs to lower case (the ESP's FAT is case-insensitive), so the
// variable names cairn-1.0.1-b.efi for the file cairn-1.0.1-B.efi.
var entrySlot = regexp.MustCompile(`(?i)^cairn-[^/]+-([AB])(\+[0-9]+(-[0-9]+)?)?\.efi$`)

// SelectedSlot is the slot whose entry the loader booted, read from an efivarfs file's
// contents (4 bytes of attributes, then a NUL-terminated UTF-16LE string). ok is false when
// the contents do not name a Cairn slot entry.
func SelectedSlot(v []byte) (disklayout.Slot, bool) {
	if len(v) < 6 || len(v)%2 != 0 {
		return "", false
	}
	v = v[4:]
	u := make([]uint16, 0, len(v)/2)
	for i := 0; i+1 < len(v); i += 2 {
		c := uint16(v[i]) | uint16(v[i+1])<<8
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	m := entrySlot.FindStringSubmatch(filepath.Base(string(utf16.Decode(u))))
	if m == nil {
		return "", false
	}
	return disklayout.Slot(strings.ToUpper(m[1])), true
}
