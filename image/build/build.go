package build

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/cairn-os/cairn/image/bootparams"
	"github.com/cairn-os/cairn/image/disk"
	"github.com/cairn-os/cairn/image/esp"
	"github.com/cairn-os/cairn/image/initramfs"
	"github.com/cairn-os/cairn/image/rootfs"
	"github.com/cairn-os/cairn/image/uki"
	"github.com/cairn-os/cairn/image/usrfs"
	"github.com/cairn-os/cairn/internal/disklayout"
)

// Sentinel errors of the pipeline, checked with errors.Is.
var (
	ErrNoKernel     = errors.New("no kernel in the root filesystem")
	ErrMissingTool  = errors.New("host tool missing")
	ErrOutputExists = errors.New("output directory exists and is not empty")
)

// Names of the artifacts, as Container Linux named its own.
const (
	DiskImage    = "cairn_production_image.bin"
	QCOW2Image   = "cairn_production_image.qcow2"
	PXEKernel    = "cairn_production_pxe.vmlinuz"
	PXEInitrd    = "cairn_production_pxe_image.cpio.gz"
	PayloadFile  = "cairn_production_update.payload"
	DiskSig      = DiskImage + ".sig" // installer/imagesig: what cairn-install verifies
	VersionTxt   = "version.txt"
	ManifestFile = "manifest.json"
)

// Step is one named step of the pipeline.
type Step struct {
	Name string
	Run  func(context.Context) error
}

// Builder runs the pipeline for one config into Out.
type Builder struct {
	Config   Config    // with Defaults applied by the caller or by Run
	Out      string    // final output directory
	Progress io.Writer // step lines; nil: silent
	Verbose  bool      // also pass tool output (mmdebstrap) to Progress

	work, tree, rootDir, usrDir, art string
	kernel, kver                     string
	initrd, initBin                  string
	usrImg                           string
	usr                              bootparams.Params
	ukis                             map[disklayout.Slot]string
	payloadUKI                       string
	keyPEM                           []byte
	rootfsCached                     bool
	manifest                         Manifest
	// usrLimit overrides the USR partition size as the /usr image's limit (tests).
	usrLimit int64
}

// Steps is the pipeline in order.
func (b *Builder) Steps() []Step {
	return []Step{
		{"check host tools", b.checkTools},
		{"prepare output", b.prepare},
		{"payload signing key", b.signingKey},
		{"debian rootfs (mmdebstrap)", b.rootfs},
		{"find kernel", b.findKernel},
		{"install cairn files", b.installCairn},
		{"split /usr and ROOT", b.split},
		{"initramfs", b.initramfs},
		{"/usr image (erofs + dm-verity)", b.usrImage},
		{"unified kernel images", b.ukiImages},
		{"EFI system partition", b.espImage},
		{"OEM and ROOT filesystems", b.ext4Images},
		{"GPT disk image", b.diskImage},
		{"disk image signature", b.signDisk},
		{"qcow2 image", b.qcow2},
		{"PXE kernel and initramfs", b.pxe},
		{"signed update payload", b.payload},
		{"version and manifest", b.writeManifest},
		{"publish", b.publish},
	}
}

// Run builds. On any failure the temporary directory is removed and Out is untouched.
func (b *Builder) Run(ctx context.Context) (err error) {
	b.Config = b.Config.Defaults()
	steps := b.Steps()
	defer func() {
		if b.work != "" {
			os.RemoveAll(b.work)
		}
	}()
	start := time.Now()
	for n, s := range steps {
		t := time.Now()
		b.progress("[%2d/%d] %s ...", n+1, len(steps), s.Name)
		if err := s.Run(ctx); err != nil {
			b.progress("[%2d/%d] %s: FAILED after %v", n+1, len(steps), s.Name, time.Since(t).Round(time.Millisecond))
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		b.progress("[%2d/%d] %s: done in %v", n+1, len(steps), s.Name, time.Since(t).Round(time.Millisecond))
	}
	b.progress("built Cairn %s in %v: %s", b.Config.Version, time.Since(start).Round(time.Second), b.Out)
	return nil
}

func (b *Builder) progress(format string, args ...any) {
	if b.Progress != nil {
		fmt.Fprintf(b.Progress, format+"\n", args...)
	}
}

// hostTools are the programs the pipeline runs, with the Debian package that has each.
var hostTools = [][2]string{
	{"mmdebstrap", "mmdebstrap"}, {"mkfs.erofs", "erofs-utils"}, {"veritysetup", "cryptsetup-bin"},
	{"objcopy", "binutils"}, {"mkfs.vfat", "dosfstools"}, {"mcopy", "mtools"}, {"mmd", "mtools"},
	{"mkfs.ext4", "e2fsprogs"}, {"qemu-img", "qemu-utils"},
}

// versionRE is what both the payload format and the ESP entry names accept.
var versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._~]{0,63}$`)

func (b *Builder) checkTools(context.Context) error {
	if !versionRE.MatchString(b.Config.Version) {
		return fmt.Errorf("version %q: want letters, digits, '.', '_' or '~' (it is part of the ESP entry name cairn-<version>-<slot>.efi)", b.Config.Version)
	}
	var missing []string
	for _, t := range hostTools {
		if _, err := exec.LookPath(t[0]); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", t[0], t[1]))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s; `make deps` installs them", ErrMissingTool, strings.Join(missing, ", "))
	}
	return nil
}

func (b *Builder) prepare(context.Context) error {
	if b.Out == "" {
		return errors.New("no output directory (-o DIR)")
	}
	if ents, err := os.ReadDir(b.Out); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s: %w (remove it or pick another)", b.Out, ErrOutputExists)
	}
	parent := filepath.Dir(filepath.Clean(b.Out))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	w, err := os.MkdirTemp(parent, ".cairn-image-")
	if err != nil {
		return err
	}
	b.work = w
	b.art = filepath.Join(w, "out")
	b.ukis = map[disklayout.Slot]string{}
	return os.Mkdir(b.art, 0o755)
}

func (b *Builder) rootfs(ctx context.Context) error {
	var log io.Writer
	if b.Verbose {
		log = b.Progress
	}
	spec := rootfs.Spec{Suite: b.Config.Suite, Sources: b.Config.AptSources, Packages: b.Config.Packages,
		SourceDateEpoch: b.Config.SourceDateEpoch, DebCache: filepath.Join(b.Config.CacheDir, "debs")}
	dir, cached := b.Config.RootfsDir, true
	if dir == "" {
		var err error
		if dir, cached, err = rootfs.Build(ctx, spec, b.Config.CacheDir, log); err != nil {
			return err
		}
	}
	b.rootfsCached = cached
	if cached {
		b.progress("        reusing cached tree %s", dir)
	}
	b.tree = filepath.Join(b.work, "tree")
	// The cached tree stays pristine; the build works on a copy.
	if out, err := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", dir, b.tree).CombinedOutput(); err != nil {
		return fmt.Errorf("copy %s: %w: %s", dir, err, out)
	}
	return nil
}

func (b *Builder) findKernel(context.Context) error {
	ks, _ := filepath.Glob(filepath.Join(b.tree, "boot", "vmlinuz-*"))
	if len(ks) == 0 {
		return fmt.Errorf("%w: /boot has no vmlinuz-* (the package list needs a linux-image-* package)", ErrNoKernel)
	}
	if len(ks) > 1 {
		return fmt.Errorf("more than one kernel in /boot: %v (list one linux-image-* package)", ks)
	}
	b.kver = strings.TrimPrefix(filepath.Base(ks[0]), "vmlinuz-")
	if _, err := os.Stat(filepath.Join(b.tree, "usr/lib/modules", b.kver, "modules.dep")); err != nil {
		return fmt.Errorf("%w: kernel %s has no modules.dep: %v", ErrNoKernel, b.kver, err)
	}
	b.kernel = filepath.Join(b.work, "vmlinuz")
	return copyFile(ks[0], b.kernel, 0o644)
}

// split makes /usr the whole OS: everything outside /usr and /boot (etc, var, the merged-/usr
// symlinks) moves to /usr/share/cairn/root, from which early boot fills an empty ROOT (or a
// PXE boot's tmpfs). ROOT itself ships empty, so it is the same bytes on every build, and a
// machine whose ROOT is wiped gets a fresh /etc and /var on its next boot.
func (b *Builder) split(context.Context) error {
	b.usrDir = filepath.Join(b.work, "usr")
	if err := os.Rename(filepath.Join(b.tree, "usr"), b.usrDir); err != nil {
		return err
	}
	// The kernel's configuration stays, where kubeadm's preflight (its system verification)
	// and other checkers of kernel features look once /boot is gone.
	if err := os.Rename(filepath.Join(b.tree, "boot", "config-"+b.kver), filepath.Join(b.usrDir, "lib/modules", b.kver, "config")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("keep the kernel's config: %w", err)
	}
	for _, p := range []string{"boot", "vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"} {
		if err := os.RemoveAll(filepath.Join(b.tree, p)); err != nil {
			return err
		}
	}
	skel := filepath.Join(b.usrDir, strings.TrimPrefix(initramfs.RootSkeleton, "/usr/"))
	if err := os.MkdirAll(filepath.Dir(skel), 0o755); err != nil {
		return err
	}
	if err := os.Rename(b.tree, skel); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(skel, "usr"), 0o755); err != nil {
		return err
	}
	b.rootDir = skel
	return nil
}

func (b *Builder) initramfs(ctx context.Context) error {
	initBin, err := b.initBinary(ctx)
	if err != nil {
		return err
	}
	a, err := b.earlyArchive(initBin)
	if err != nil {
		return err
	}
	b.initrd = filepath.Join(b.work, "initramfs.cpio.gz")
	return writeGzip(b.initrd, a)
}

// earlyArchive is the initramfs inside each UKI: the Go init, /dev/console and the early
// modules with their dependencies.
func (b *Builder) earlyArchive(initBin string) (*initramfs.Archive, error) {
	a := &initramfs.Archive{MTime: b.Config.SourceDateEpoch}
	a.Add(initramfs.Entry{Path: "init", Mode: 0o755, Source: initBin})
	a.Add(initramfs.Entry{Path: "dev/console", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Major: 5, Minor: 1})
	for _, d := range []string{"proc", "sys", "dev", "run", "sysroot", "usr/share/oem", "etc/cairn"} {
		a.Add(initramfs.Entry{Path: d, Mode: fs.ModeDir | 0o755})
	}
	moddir := filepath.Join(b.usrDir, "lib/modules", b.kver)
	f, err := os.Open(filepath.Join(moddir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	ix, err := initramfs.ParseModulesDep(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	var list []string
	for _, rel := range ix.LoadOrder(initramfs.EarlyModules) {
		p := filepath.ToSlash(filepath.Join("lib/modules", b.kver, rel))
		a.Add(initramfs.Entry{Path: p, Mode: 0o644, Source: filepath.Join(moddir, rel)})
		list = append(list, "/"+p)
	}
	a.Add(initramfs.Entry{Path: initramfs.ModuleList, Mode: 0o644, Data: []byte(strings.Join(list, "\n") + "\n")})
	return a, nil
}

// initBinary finds cairn-init: in BinDir when it is there (make build), else built from this
// source tree. It must be static: nothing else is in the initramfs.
func (b *Builder) initBinary(ctx context.Context) (string, error) {
	if b.initBin != "" {
		return b.initBin, nil
	}
	p := filepath.Join(b.Config.BinDir, "cairn-init")
	if _, err := os.Stat(p); err != nil {
		p = filepath.Join(b.work, "cairn-init")
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", p, "github.com/cairn-os/cairn/image/cmd/cairn-init")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("no %s/cairn-init and go build failed: %w\n%s", b.Config.BinDir, err, out)
		}
	}
	if err := checkStatic(p); err != nil {
		return "", err
	}
	b.initBin = p
	return p, nil
}

// checkStatic refuses a program that needs a dynamic loader: the initramfs has none.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked, but it runs in the initramfs; build it with CGO_ENABLED=0", p)
		}
	}
	return nil
}

func (b *Builder) usrImage(ctx context.Context) error {
	b.usrImg = filepath.Join(b.work, "usr.img")
	p, size, err := usrfs.Make(ctx, usrfs.Spec{Dir: b.usrDir, Out: b.usrImg, SourceDateEpoch: b.Config.SourceDateEpoch,
		Seed: b.Config.Version, Limit: b.usrLimitBytes()})
	if err != nil {
		return err
	}
	b.usr = p
	b.progress("        /usr: %d MiB with hash tree, root hash %s", size>>20, p.RootHash)
	return nil
}

func (b *Builder) usrLimitBytes() int64 {
	if b.usrLimit > 0 {
		return b.usrLimit
	}
	return disklayout.SlotA.Partition().Size
}

// SlotParams are the boot parameters of slot s for this build's /usr.
func (b *Builder) SlotParams(s disklayout.Slot) bootparams.Params {
	p := b.usr
	p.USRPartUUID, p.Slot = s.Partition().GUID, string(s)
	return p
}

// UKIName is the file name of slot s's UKI under EFI/Linux on the ESP, as the update engine
// names them (update-engine/slots): cairn-<version>-<slot>.efi, no boot counter (known good).
func UKIName(version string, s disklayout.Slot) string {
	return "cairn-" + version + "-" + string(s) + ".efi"
}

func (b *Builder) ukiImages(ctx context.Context) error {
	for _, s := range []disklayout.Slot{disklayout.SlotA, disklayout.SlotB} {
		out := filepath.Join(b.art, "cairn_production_uki_"+string(s)+".efi")
		if err := b.buildUKI(ctx, b.SlotParams(s), out); err != nil {
			return err
		}
		b.ukis[s] = out
	}
	return nil
}

func (b *Builder) buildUKI(ctx context.Context, p bootparams.Params, out string) error {
	return uki.Build(ctx, uki.Spec{Stub: filepath.Join(b.usrDir, "lib/systemd/boot/efi/linuxx64.efi.stub"),
		OSRelease: filepath.Join(b.usrDir, "lib/os-release"), Cmdline: b.Config.Cmdline + " " + p.Cmdline(),
		Kernel: b.kernel, Initrd: b.initrd, Out: out})
}

func (b *Builder) espImage(ctx context.Context) error {
	efi := filepath.Join(b.usrDir, "lib/systemd/boot/efi/systemd-bootx64.efi")
	if _, err := os.Stat(efi); err != nil {
		return fmt.Errorf("systemd-boot not in /usr (the package list needs systemd-boot-efi): %w", err)
	}
	conf := filepath.Join(b.work, "loader.conf")
	if err := os.WriteFile(conf, []byte(esp.LoaderConf()), 0o644); err != nil {
		return err
	}
	part, _ := disklayout.ByLabel("EFI-SYSTEM")
	return esp.Make(ctx, esp.Spec{Out: filepath.Join(b.work, "esp.img"), Size: part.Size, Label: "EFI-SYSTEM",
		SourceDateEpoch: b.Config.SourceDateEpoch, Files: []esp.File{
			{Path: "EFI/BOOT/BOOTX64.EFI", Source: efi},
			{Path: "EFI/systemd/systemd-bootx64.efi", Source: efi},
			{Path: "loader/loader.conf", Source: conf},
			// Only slot A is installed: slot B's partition is empty until the first update.
			{Path: "EFI/Linux/" + UKIName(b.Config.Version, disklayout.SlotA), Source: b.ukis[disklayout.SlotA]},
		}})
}

func (b *Builder) ext4Images(ctx context.Context) error {
	tab, _, err := disk.Plan(b.Config.DiskSize, b.Config.Version)
	if err != nil {
		return err
	}
	oem, _ := tab.FindName("OEM")
	if err := disk.Ext4(ctx, filepath.Join(b.work, "oem.img"), oem.Size(512), "OEM", "", b.Config.SourceDateEpoch, b.Config.Version); err != nil {
		return err
	}
	root, _ := tab.FindName("ROOT")
	return disk.Ext4(ctx, filepath.Join(b.work, "root.img"), root.Size(512), "ROOT", "", b.Config.SourceDateEpoch, b.Config.Version)
}

func (b *Builder) diskImage(context.Context) error {
	tab, size, err := disk.Plan(b.Config.DiskSize, b.Config.Version)
	if err != nil {
		return err
	}
	return disk.Write(filepath.Join(b.art, DiskImage), tab, size, map[string]string{
		"EFI-SYSTEM": filepath.Join(b.work, "esp.img"),
		"USR-A":      b.usrImg,
		"OEM":        filepath.Join(b.work, "oem.img"),
		"ROOT":       filepath.Join(b.work, "root.img"),
	})
}

func (b *Builder) qcow2(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2",
		filepath.Join(b.art, DiskImage), filepath.Join(b.art, QCOW2Image)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img convert: %w: %s", err, out)
	}
	return nil
}

// pxe writes the kernel and an initramfs that carries everything: the early archive, the
// /usr image (opened through a loop device and dm-verity), the ROOT skeleton for a tmpfs root,
// and the /usr parameters.
func (b *Builder) pxe(ctx context.Context) error {
	if err := copyFile(b.kernel, filepath.Join(b.art, PXEKernel), 0o644); err != nil {
		return err
	}
	initBin, err := b.initBinary(ctx)
	if err != nil {
		return err
	}
	a, err := b.earlyArchive(initBin)
	if err != nil {
		return err
	}
	a.Add(initramfs.Entry{Path: "usr.img", Mode: 0o400, Source: b.usrImg})
	p := b.usr
	p.USRFile = "/usr.img"
	a.Add(initramfs.Entry{Path: initramfs.ExtraCmdline, Mode: 0o644, Data: []byte(p.Cmdline() + "\n")})
	return writeGzip(filepath.Join(b.art, PXEInitrd), a)
}

func (b *Builder) publish(context.Context) error {
	if err := os.Remove(b.Out); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", b.Out, ErrOutputExists)
	}
	if err := os.Rename(b.art, b.Out); err != nil {
		return err
	}
	return nil
}

func writeGzip(path string, a *initramfs.Archive) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, _ := gzip.NewWriterLevel(bw, gzip.BestSpeed) // no name, no mtime: reproducible
	if err := a.Write(zw); err != nil {
		f.Close()
		return err
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func sha256File(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// Manifest describes a build's output (manifest.json).
type Manifest struct {
	Version         string            `json:"version"`
	Board           string            `json:"board"`
	SourceDateEpoch int64             `json:"source_date_epoch"`
	Kernel          string            `json:"kernel"`
	USR             USRInfo           `json:"usr"`
	Files           []FileInfo        `json:"files"`
	Packages        map[string]string `json:"packages"` // installed Debian packages and versions
	RootfsCached    bool              `json:"-"`
}

// USRInfo is the /usr image's verity facts.
type USRInfo struct {
	RootHash   string `json:"root_hash"`
	DataBlocks int64  `json:"data_blocks"`
	Salt       string `json:"salt"`
	Size       int64  `json:"size"`
}

// FileInfo is one artifact.
type FileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func (b *Builder) writeManifest(context.Context) error {
	m := Manifest{Version: b.Config.Version, Board: b.Config.Board, SourceDateEpoch: b.Config.SourceDateEpoch, Kernel: b.kver,
		USR: USRInfo{RootHash: b.usr.RootHash, DataBlocks: b.usr.DataBlocks, Salt: b.usr.Salt}}
	if fi, err := os.Stat(b.usrImg); err == nil {
		m.USR.Size = fi.Size()
	}
	pk, err := installedPackages(filepath.Join(b.rootDir, "var/lib/dpkg/status"))
	if err != nil {
		return err
	}
	m.Packages = pk
	ver := fmt.Sprintf("CAIRN_VERSION=%s\nCAIRN_VERSION_ID=%s\nCAIRN_BOARD=%s\nCAIRN_KERNEL=%s\nCAIRN_USR_ROOTHASH=%s\nSOURCE_DATE_EPOCH=%d\n",
		b.Config.Version, b.Config.Version, b.Config.Board, b.kver, b.usr.RootHash, b.Config.SourceDateEpoch)
	if err := os.WriteFile(filepath.Join(b.art, VersionTxt), []byte(ver), 0o644); err != nil {
		return err
	}
	ents, err := os.ReadDir(b.art)
	if err != nil {
		return err
	}
	for _, e := range ents {
		sum, n, err := sha256File(filepath.Join(b.art, e.Name()))
		if err != nil {
			return err
		}
		m.Files = append(m.Files, FileInfo{Name: e.Name(), Size: n, SHA256: sum})
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
	js, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	b.manifest = m
	return os.WriteFile(filepath.Join(b.art, ManifestFile), append(js, '\n'), 0o644)
}

// installedPackages reads dpkg's status file: installed package -> version.
func installedPackages(status string) (map[string]string, error) {
	b, err := os.ReadFile(status)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for para := range strings.SplitSeq(string(b), "\n\n") {
		var name, ver, st string
		for line := range strings.SplitSeq(para, "\n") {
			k, v, _ := strings.Cut(line, ": ")
			switch k {
			case "Package":
				name = v
			case "Version":
				ver = v
			case "Status":
				st = v
			}
		}
		if name != "" && strings.HasSuffix(st, " installed") {
			out[name] = ver
		}
	}
	return out, nil
}
