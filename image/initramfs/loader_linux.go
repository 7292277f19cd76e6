package initramfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/internal/mount"
)

// mountEFIVars mounts efivarfs at dir when the machine booted through UEFI.
func mountEFIVars(dir string) error {
	if _, err := os.Stat("/sys/firmware/efi"); err != nil {
		return errors.New("not booted through UEFI")
	}
	m := mount.Mount{Source: "efivarfs", Target: dir, FSType: "efivarfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY}
	if err := m.Apply(); err != nil {
		return fmt.Errorf("efivarfs: %w", err)
	}
	return nil
}

// loaderSlot reads LoaderEntrySelected from efivarfs (mounting it if needed). Its error says
// why the loader named no slot.
func loaderSlot() (disklayout.Slot, error) {
	dir := "/sys/firmware/efi/efivars"
	if _, err := os.Stat(filepath.Join(dir, LoaderEntrySelected)); err != nil {
		if err := mountEFIVars(dir); err != nil {
			return "", err
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, LoaderEntrySelected))
	if err != nil {
		return "", err
	}
	slot, ok := SelectedSlot(b)
	if !ok {
		return "", fmt.Errorf("%s names no Cairn slot's entry", LoaderEntrySelected)
	}
	return slot, nil
}
