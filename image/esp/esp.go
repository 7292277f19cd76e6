// Package esp makes the EFI system partition as a FAT32 image file, without mounting it
// (mkfs.vfat and mtools): systemd-boot as the default loader (EFI/BOOT/BOOTX64.EFI), its
// loader.conf, and the slots' UKIs under EFI/Linux where systemd-boot finds them (Boot Loader
// Specification, type 2 entries).
package esp

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// File is one file to put on the ESP: its path there and where its bytes are.
type File struct {
	Path   string // "EFI/BOOT/BOOTX64.EFI"
	Source string
}

// Spec is the whole ESP.
type Spec struct {
	Out             string
	Size            int64
	Label           string
	Files           []File
	SourceDateEpoch int64
}

// LoaderConf is systemd-boot's loader/loader.conf for Cairn: no menu unless a key is held,
// no editor. No "default": the loader's own order (newest version first, entries out of tries
// last) decides, which is the order the update engine reasons with (update-engine/slots).
func LoaderConf() string {
	return "timeout 0\nconsole-mode keep\neditor no\n"
}

// Commands is the plan: the mkfs.vfat call, then one mmd per directory and one mcopy per file.
func (s Spec) Commands() [][]string {
	volid := strconv.FormatInt(s.SourceDateEpoch&0xffffffff, 16)
	cmds := [][]string{{"mkfs.vfat", "-F", "32", "-n", s.Label, "-i", volid, "--invariant", s.Out}}
	dirs := map[string]bool{}
	for _, f := range s.Files {
		for d := path.Dir(f.Path); d != "." && d != "/"; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	ds := make([]string, 0, len(dirs))
	for d := range dirs {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { // parents first
		if a, b := strings.Count(ds[i], "/"), strings.Count(ds[j], "/"); a != b {
			return a < b
		}
		return ds[i] < ds[j]
	})
	for _, d := range ds {
		cmds = append(cmds, []string{"mmd", "-i", s.Out, "::/" + d})
	}
	for _, f := range s.Files {
		cmds = append(cmds, []string{"mcopy", "-m", "-i", s.Out, f.Source, "::/" + f.Path})
	}
	return cmds
}

// Make writes the ESP image. File times are set to SourceDateEpoch first (mcopy -m keeps them).
func Make(ctx context.Context, s Spec) error {
	os.Remove(s.Out)
	f, err := os.Create(s.Out)
	if err != nil {
		return err
	}
	if err := f.Truncate(s.Size); err != nil {
		f.Close()
		return err
	}
	f.Close()
	t := time.Unix(s.SourceDateEpoch, 0)
	for _, file := range s.Files {
		if err := os.Chtimes(file.Source, t, t); err != nil {
			return fmt.Errorf("ESP file %s: %w", file.Path, err)
		}
	}
	env := append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(s.SourceDateEpoch, 10), "MTOOLS_SKIP_CHECK=1", "TZ=UTC")
	for _, c := range s.Commands() {
		cmd := exec.CommandContext(ctx, c[0], c[1:]...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("ESP %s: %s: %w\n%s", s.Out, strings.Join(c, " "), err, out)
		}
	}
	return nil
}
