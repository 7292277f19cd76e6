package sysext

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/cairn-os/cairn/image/disk"
)

// Builder makes one extension image from a Spec.
type Builder struct {
	Spec Spec
	// Out is the directory that receives Name.raw and Name.usrhash.
	Out string
	// Progress receives a line per step (stderr in cairn-image); nil discards them.
	Progress io.Writer

	work       string
	tree       string
	treeDigest [32]byte
	usrImg     string
	verityImg  string
	rootHash   string
	result     Image
}

// Image is what Build made.
type Image struct {
	Path       string `json:"path"`      // Name.raw
	HashPath   string `json:"hash_path"` // Name.usrhash: the root hash in hex
	RootHash   string `json:"root_hash"`
	Size       int64  `json:"size"`        // the whole disk image
	USRSize    int64  `json:"usr_size"`    // the erofs file system
	VeritySize int64  `json:"verity_size"` // its hash tree with the superblock
}

// Step is one named step of a build.
type Step struct {
	Name string
	Run  func(*Builder, context.Context) error
}

// Steps is the build, in order.
func Steps() []Step {
	return []Step{
		{"check spec and tools", (*Builder).check},
		{"stage tree", (*Builder).stage},
		{"erofs", (*Builder).erofs},
		{"verity", (*Builder).verity},
		{"disk image", (*Builder).disk},
	}
}

// Build runs the steps in a temporary directory under Out and leaves only the image and its
// hash file there.
func (b *Builder) Build(ctx context.Context) (*Image, error) {
	if err := os.MkdirAll(b.Out, 0o755); err != nil {
		return nil, fmt.Errorf("extension %s: %w", b.Spec.Name, err)
	}
	work, err := os.MkdirTemp(b.Out, ".sysext-")
	if err != nil {
		return nil, fmt.Errorf("extension %s: %w", b.Spec.Name, err)
	}
	defer os.RemoveAll(work)
	b.work = work
	for _, st := range Steps() {
		start := time.Now()
		b.progress("%s ...", st.Name)
		if err := st.Run(b, ctx); err != nil {
			return nil, fmt.Errorf("extension %s: %s: %w", b.Spec.Name, st.Name, err)
		}
		b.progress("%s done (%v)", st.Name, time.Since(start).Round(time.Millisecond))
	}
	r := b.result
	return &r, nil
}

func (b *Builder) progress(format string, args ...any) {
	if b.Progress != nil {
		fmt.Fprintf(b.Progress, "sysext %s: "+format+"\n", append([]any{b.Spec.Name}, args...)...)
	}
}

// Tools are the programs a build runs, with the Debian package of each.
var Tools = map[string]string{"mkfs.erofs": "erofs-utils", "veritysetup": "cryptsetup-bin"}

func (b *Builder) check(context.Context) error {
	if err := b.Spec.Check(); err != nil {
		return err
	}
	names := make([]string, 0, len(Tools))
	for n := range Tools {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			return fmt.Errorf("%s not found (apt-get install %s): %w", n, Tools[n], err)
		}
	}
	for _, f := range b.Spec.Files {
		if f.Source == "" {
			continue
		}
		if _, err := os.Stat(f.Source); err != nil {
			return fmt.Errorf("%s: source %w", f.Path, err)
		}
	}
	return nil
}

// stage writes the tree and hashes what it wrote, in path order: the hash seeds the
// file system's UUID, so the same content gives the same image.
func (b *Builder) stage(context.Context) error {
	b.tree = filepath.Join(b.work, "tree")
	files := append([]File{}, b.Spec.Files...)
	files = append(files, File{Path: b.Spec.ReleasePath(), Mode: 0o644, Data: []byte(b.Spec.Release())})
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	h := sha256.New()
	for _, f := range files {
		p := filepath.Join(b.tree, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%o\x00%s\x00", f.Path, f.Mode.Perm(), f.Link)
		switch {
		case f.Link != "":
			if err := os.Symlink(f.Link, p); err != nil {
				return err
			}
		case f.Source != "":
			if err := copyFile(f.Source, p, f.Mode.Perm(), h); err != nil {
				return fmt.Errorf("%s: %w", f.Path, err)
			}
		default:
			h.Write(f.Data)
			if err := os.WriteFile(p, f.Data, f.Mode.Perm()); err != nil {
				return err
			}
			// WriteFile's mode passes through the umask.
			if err := os.Chmod(p, f.Mode.Perm()); err != nil {
				return err
			}
		}
	}
	copy(b.treeDigest[:], h.Sum(nil))
	return nil
}

func copyFile(src, dst string, mode os.FileMode, h io.Writer) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(mode); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (b *Builder) derive(what string) [32]byte {
	return sha256.Sum256([]byte("cairn sysext " + what + " " + b.Spec.Name + " " + hex.EncodeToString(b.treeDigest[:])))
}

func (b *Builder) uuid(what string) string {
	d := b.derive(what)
	d[6] = d[6]&0x0f | 0x40
	d[8] = d[8]&0x3f | 0x80
	return uuidText(d[:16])
}

// ErofsCommand is the mkfs.erofs command line: lz4hc as the base /usr, every file owned by
// root with the spec's timestamp, no extended attributes. A usr partition holds what is below
// /usr: systemd mounts it there.
func (b *Builder) ErofsCommand() []string {
	return []string{"mkfs.erofs", "--quiet", "-zlz4hc", "-T" + strconv.FormatInt(b.Spec.SourceDateEpoch, 10),
		"--all-root", "-U" + b.uuid("erofs uuid"), "-x-1", b.usrImg, filepath.Join(b.tree, "usr")}
}

func (b *Builder) erofs(ctx context.Context) error {
	b.usrImg = filepath.Join(b.work, "usr.erofs")
	if err := run(ctx, b.ErofsCommand()); err != nil {
		return err
	}
	fi, err := os.Stat(b.usrImg)
	if err != nil {
		return err
	}
	b.result.USRSize = fi.Size()
	b.progress("erofs %d KiB", fi.Size()>>10)
	return nil
}

// VerityCommand is the veritysetup command that writes the hash tree, with its superblock (the
// form systemd opens a usr-verity partition in), salt and UUID derived from the content.
func (b *Builder) VerityCommand() []string {
	salt := b.derive("verity salt")
	return []string{"veritysetup", "format", "--hash=sha256", "--data-block-size=4096", "--hash-block-size=4096",
		"--salt=" + hex.EncodeToString(salt[:]), "--uuid=" + b.uuid("verity uuid"), b.usrImg, b.verityImg}
}

var rootHashRE = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})\s*$`)

func (b *Builder) verity(ctx context.Context) error {
	b.verityImg = filepath.Join(b.work, "usr.verity")
	cmd := b.VerityCommand()
	out, err := exec.CommandContext(ctx, cmd[0], cmd[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", cmd[0], err, out)
	}
	m := rootHashRE.FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("veritysetup printed no root hash:\n%s", out)
	}
	b.rootHash = string(m[1])
	fi, err := os.Stat(b.verityImg)
	if err != nil {
		return err
	}
	b.result.VeritySize = fi.Size()
	b.progress("root hash %s, hash tree %d KiB", b.rootHash, fi.Size()>>10)
	return nil
}

func (b *Builder) disk(context.Context) error {
	t, size, err := Layout(b.result.USRSize, b.result.VeritySize, b.rootHash)
	if err != nil {
		return err
	}
	tmp := filepath.Join(b.work, "image.raw")
	if err := disk.Write(tmp, t, size, map[string]string{LabelUSR: b.usrImg, LabelUSRVerity: b.verityImg}); err != nil {
		return err
	}
	raw := filepath.Join(b.Out, b.Spec.Name+".raw")
	hashPath := filepath.Join(b.Out, b.Spec.Name+".usrhash")
	// systemd reads the sidecar as one line of hex.
	if err := os.WriteFile(hashPath+".tmp", []byte(b.rootHash+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, raw); err != nil {
		return err
	}
	if err := os.Rename(hashPath+".tmp", hashPath); err != nil {
		return err
	}
	b.result.Path, b.result.HashPath, b.result.RootHash, b.result.Size = raw, hashPath, b.rootHash, size
	return nil
}

func run(ctx context.Context, argv []string) error {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", argv[0], err, out)
	}
	return nil
}
