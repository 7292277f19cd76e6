package initramfs

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/internal/mount"
)

// mountEFIVars mounts efivarfs at dir when the machine booted through UEFI; errors mean there
// is nothing to read.
func mountEFIVars(dir string) {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return
	}
	mount.Mount{Source: "efivarfs", Target: dir, FSType: "efivarfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY}.Apply()
}

// loaderSlot reads LoaderEntrySelected from efivarfs (mounting it if needed).
func loaderSlot() (disklayout.Slot, bool) {
	dir := "/sys/firmware/efi/efivars"
	if _, err := os.Stat(filepath.Join(dir, LoaderEntrySelected)); err != nil {
		mountEFIVars(dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, LoaderEntrySelected))
	if err != nil {
		return "", false
	}
	return SelectedSlot(b)
}
