// Package uki assembles a Unified Kernel Image: systemd's EFI stub with the kernel, the
// initramfs, the command line and os-release added as PE sections, placed after the stub's
// own sections the way systemd documents for objcopy (systemd-stub(7)). The section plan is a
// plain value; objcopy (binutils) writes it.
package uki

import (
	"context"
	"debug/pe"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Spec names the inputs of one UKI.
type Spec struct {
	Stub      string // linuxx64.efi.stub
	OSRelease string // os-release file
	Cmdline   string // the command line itself
	Kernel    string // vmlinuz
	Initrd    string // initramfs (compressed cpio)
	Out       string
}

// Section is one PE section objcopy adds, at an absolute virtual address.
type Section struct {
	Name string
	File string
	VMA  uint64
}

const align = 1 << 12

// Plan computes where the sections go: after the stub's last section, each aligned to 4 KiB
// and placed after the previous one, so no section overlaps whatever the kernel's size.
func Plan(stub string, files []Section) ([]Section, error) {
	f, err := pe.Open(stub)
	if err != nil {
		return nil, fmt.Errorf("EFI stub %s: %w", stub, err)
	}
	defer f.Close()
	var base uint64
	switch oh := f.OptionalHeader.(type) {
	case *pe.OptionalHeader64:
		base = oh.ImageBase
	case *pe.OptionalHeader32:
		base = uint64(oh.ImageBase)
	default:
		return nil, fmt.Errorf("EFI stub %s: no PE optional header", stub)
	}
	var end uint64
	for _, s := range f.Sections {
		if e := uint64(s.VirtualAddress) + uint64(max(s.VirtualSize, s.Size)); e > end {
			end = e
		}
	}
	if end == 0 {
		return nil, fmt.Errorf("EFI stub %s: no sections", stub)
	}
	next := roundUp(base+end, align)
	out := make([]Section, len(files))
	for i, s := range files {
		fi, err := os.Stat(s.File)
		if err != nil {
			return nil, fmt.Errorf("UKI section %s: %w", s.Name, err)
		}
		s.VMA = next
		out[i] = s
		next = roundUp(next+uint64(fi.Size()), align)
	}
	return out, nil
}

func roundUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// Build writes the UKI.
func Build(ctx context.Context, s Spec) error {
	cmdline := filepath.Join(filepath.Dir(s.Out), "."+filepath.Base(s.Out)+".cmdline")
	if err := os.WriteFile(cmdline, []byte(s.Cmdline+"\x00"), 0o644); err != nil {
		return err
	}
	defer os.Remove(cmdline)
	secs, err := Plan(s.Stub, []Section{
		{Name: ".osrel", File: s.OSRelease},
		{Name: ".cmdline", File: cmdline},
		{Name: ".linux", File: s.Kernel},
		{Name: ".initrd", File: s.Initrd},
	})
	if err != nil {
		return err
	}
	args := []string{}
	for _, sec := range secs {
		args = append(args, "--add-section", sec.Name+"="+sec.File,
			"--change-section-vma", fmt.Sprintf("%s=%#x", sec.Name, sec.VMA))
	}
	args = append(args, s.Stub, s.Out)
	if out, err := exec.CommandContext(ctx, "objcopy", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("objcopy UKI %s: %w\n%s", s.Out, err, out)
	}
	return Normalize(s.Out)
}

// Normalize makes a PE file reproducible: objcopy stamps the current time into the COFF
// header; Normalize sets it to 0, as systemd's stub ships, and recomputes the checksum.
func Normalize(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) < 0x40 || string(b[:2]) != "MZ" {
		return fmt.Errorf("%s: not a PE file", path)
	}
	pe := int(binary.LittleEndian.Uint32(b[0x3c:]))
	if pe+24+68 > len(b) || string(b[pe:pe+4]) != "PE\x00\x00" {
		return fmt.Errorf("%s: no PE header", path)
	}
	binary.LittleEndian.PutUint32(b[pe+8:], 0) // TimeDateStamp
	sumAt := pe + 24 + 64                      // OptionalHeader.CheckSum (same offset in PE32 and PE32+)
	binary.LittleEndian.PutUint32(b[sumAt:], 0)
	binary.LittleEndian.PutUint32(b[sumAt:], peChecksum(b, sumAt))
	return os.WriteFile(path, b, 0o644)
}

// peChecksum is the image checksum of the PE format (16-bit one's-complement style sum of
// the file without the checksum field, plus the file length).
func peChecksum(b []byte, skip int) uint32 {
	var sum uint64
	for i := 0; i+1 < len(b); i += 2 {
		if i == skip || i == skip+2 {
			continue
		}
		sum += uint64(binary.LittleEndian.Uint16(b[i:]))
		sum = (sum & 0xffff) + (sum >> 16)
	}
	if len(b)%2 == 1 {
		sum += uint64(b[len(b)-1])
		sum = (sum & 0xffff) + (sum >> 16)
	}
	sum = (sum & 0xffff) + (sum >> 16)
	return uint32(sum) + uint32(len(b))
}
