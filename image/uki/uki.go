// Package uki assembles a Unified Kernel Image: systemd's EFI stub with the kernel, the
// initramfs, the command line and os-release added as PE sections, placed after the stub's
// own sections the way systemd documents for objcopy (systemd-stub(7)). The section plan is a
// plain value; objcopy (binutils) writes it.
package uki

import (
	"context"
	"debug/pe"
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
	return nil
}
