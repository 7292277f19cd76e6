package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// EarlyModules are the kernel modules early boot may need, by name; the ones a kernel has
// built in or lacks are skipped. Disks (virtio, SCSI, NVMe, AHCI), dm-verity, erofs, loop
// (PXE), qemu's fw_cfg (first-boot config), efivarfs (the entry the loader booted).
var EarlyModules = []string{
	"virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "nvme", "ahci", "ata_piix",
	"dm_mod", "dm_verity", "erofs", "loop", "qemu_fw_cfg", "efivarfs",
}

// ModuleIndex is a kernel's modules.dep: module name -> path and dependencies.
type ModuleIndex struct {
	path map[string]string   // name -> path relative to /lib/modules/<version>
	deps map[string][]string // name -> dependency names
}

// ModName is the module name of a path: base name without .ko(.xz|.zst|.gz), '-' as '_'.
func ModName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// ParseModulesDep parses modules.dep ("kernel/a/b.ko: kernel/c.ko kernel/d.ko").
func ParseModulesDep(r io.Reader) (*ModuleIndex, error) {
	ix := &ModuleIndex{path: map[string]string{}, deps: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		mod, deps, ok := strings.Cut(line, ":")
		if !ok || mod == "" || strings.Contains(mod, "..") || strings.HasPrefix(mod, "/") {
			return nil, fmt.Errorf("modules.dep line %d: %q", n, line)
		}
		name := ModName(mod)
		ix.path[name] = mod
		for d := range strings.FieldsSeq(deps) {
			ix.deps[name] = append(ix.deps[name], ModName(d))
		}
	}
	return ix, sc.Err()
}

// LoadOrder returns the paths of the wanted modules and their dependencies, each after its
// dependencies. Names the index does not know are skipped (built in or absent).
func (ix *ModuleIndex) LoadOrder(wanted []string) []string {
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string)
	visit = func(n string) {
		if state[n] != 0 {
			return
		}
		p, ok := ix.path[n]
		if !ok {
			state[n] = 2
			return
		}
		state[n] = 1
		for _, d := range ix.deps[n] {
			visit(d)
		}
		state[n] = 2
		out = append(out, p)
	}
	for _, w := range wanted {
		visit(strings.ReplaceAll(w, "-", "_"))
	}
	return out
}
