package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-os/cairn/image/build"
	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// The releases the scenarios use.
const (
	Old = "1.0.0" // what machines are installed with and boot first
	New = "1.0.1" // the update
	Bad = "1.0.2" // a signed release whose /usr fails dm-verity: it must be rolled back
)

// Images are the built releases.
type Images struct {
	Dir        string // the cache entry: <CacheDir>/e2e/<key>
	Old, New   string // build output directories
	BadBuild   string // the build the bad payload is made from
	Release    string // a release server's tree: <Release>/<version>/cairn_production_image.bin.zst + .sig
	BadPayload string
	Key        string // the private key the payloads and disk images are signed with
	Source     string // the module's root they were built from
}

// Options say where the inputs and the cache are.
type Options struct {
	Source   string // the module's root: the image builder's own files are part of the key
	BinDir   string // Cairn's binaries (make build)
	CacheDir string // default /var/cache/cairn-image
	Progress io.Writer
}

// key hashes everything the e2e images are made from: Cairn's binaries, the image builder's
// sources and package list, and this file (what Prepare makes). The same key is the same images: they are built once.
func key(o Options) (string, error) {
	var paths []string
	for _, b := range build.Binaries {
		paths = append(paths, filepath.Join(o.BinDir, b.Name))
	}
	for _, e := range build.Examples {
		paths = append(paths, filepath.Join(o.BinDir, e.Binary))
	}
	src, err := sourceFiles(o.Source, "e2e/fleet/images.go", "image/build", "image/initramfs", "image/usrfs", "image/uki", "image/esp", "image/disk", "image/rootfs", "image/packages.txt", "internal/disklayout", "go.sum")
	if err != nil {
		return "", fmt.Errorf("e2e image inputs: %w", err)
	}
	paths = append(paths, src...)
	sort.Strings(paths)
	h := sha256.New()
	if err := hashFiles(h, paths); err != nil {
		return "", fmt.Errorf("e2e image inputs: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// sourceFiles are the files of paths (files or directories under root) that a build reads:
// no tests, no test data.
func sourceFiles(root string, paths ...string) ([]string, error) {
	var files []string
	for _, p := range paths {
		err := filepath.WalkDir(filepath.Join(root, p), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && !strings.HasSuffix(p, "_test.go") && !strings.Contains(p, "/testdata/") {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return files, nil
}

// hashFiles writes each file's name, size and contents to h, in the order given.
func hashFiles(h io.Writer, paths []string) error {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(p), len(b))
		if _, err := h.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Prepare returns the e2e images, building what the cache lacks: the old and new releases, the
// old one's compressed disk image as a release server serves it, and the bad payload.
func Prepare(ctx context.Context, o Options) (*Images, error) {
	if o.CacheDir == "" {
		o.CacheDir = "/var/cache/cairn-image"
	}
	for _, b := range []string{"rkt", "rkt-fetch", "update_engine", "cairn-install", "cairn-firstboot", "cairn-hello", "flanneld"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("e2e images need Cairn's binaries (make build): %w", err)
		}
	}
	k, err := key(o)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(o.CacheDir, "e2e")
	im := &Images{Dir: filepath.Join(root, k), Key: filepath.Join(o.CacheDir, "dev-payload-key.pem"), Source: o.Source}
	im.Old, im.New, im.BadBuild = filepath.Join(im.Dir, Old), filepath.Join(im.Dir, New), filepath.Join(im.Dir, Bad)
	im.Release, im.BadPayload = filepath.Join(im.Dir, "release"), filepath.Join(im.Dir, "bad.payload")
	if _, err := os.Stat(filepath.Join(im.Dir, "complete")); err == nil {
		fmt.Fprintf(o.progress(), "using the cached e2e images %s\n", im.Dir)
		return im, nil
	}
	// Older inputs' images are dead weight (GiBs each): keep only this key's.
	if old, _ := filepath.Glob(filepath.Join(root, "*")); len(old) > 0 {
		for _, d := range old {
			if d != im.Dir {
				os.RemoveAll(d)
			}
		}
	}
	for _, v := range []struct{ version, dir string }{{Old, im.Old}, {New, im.New}, {Bad, im.BadBuild}} {
		if _, err := os.Stat(filepath.Join(v.dir, build.ManifestFile)); err == nil {
			continue
		}
		os.RemoveAll(v.dir)
		fmt.Fprintf(o.progress(), "building Cairn %s with the binaries of %s\n", v.version, o.BinDir)
		b := &build.Builder{Out: v.dir, Progress: o.Progress, Config: build.Config{Version: v.version, BinDir: o.BinDir, CacheDir: o.CacheDir}}
		if err := b.Run(ctx); err != nil {
			return nil, fmt.Errorf("build %s: %w", v.version, err)
		}
	}
	fmt.Fprintf(o.progress(), "compressing the %s disk image for the release server\n", Old)
	if err := releaseTree(im); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.progress(), "making the bad %s payload (its /usr's superblock damaged after the hash tree was made, signed)\n", Bad)
	if err := badPayload(im); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(im.Dir, "complete"), nil, 0o644); err != nil {
		return nil, err
	}
	return im, nil
}

func (o Options) progress() io.Writer {
	if o.Progress == nil {
		return io.Discard
	}
	return o.Progress
}

// releaseTree lays the old release out as cairn-install -b BASEURL -V VERSION downloads it.
func releaseTree(im *Images) error {
	dir := filepath.Join(im.Release, Old)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	src, err := os.Open(filepath.Join(im.Old, build.DiskImage))
	if err != nil {
		return err
	}
	defer src.Close()
	err = atomicfile.Write(filepath.Join(dir, build.DiskImage+".zst"), 0o644, func(w io.Writer) error {
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			return err
		}
		if _, err := io.Copy(zw, src); err != nil {
			zw.Close()
			return err
		}
		return zw.Close()
	})
	if err != nil {
		return fmt.Errorf("compress the disk image: %w", err)
	}
	sig, err := os.ReadFile(filepath.Join(im.Old, build.DiskSig))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, build.DiskSig), sig, 0o644)
}

// badPayload re-signs release Bad's payload with one block of its /usr overwritten: the
// signature and hashes are right (the update engine accepts and installs it) but the data no
// longer matches the hash tree the UKI's root hash covers, so the slot cannot boot. (A release
// of its own, not a damaged copy of New: two slots with one root hash are another case.)
func badPayload(im *Images) error {
	tmp, err := os.MkdirTemp(im.Dir, "bad-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	h, parts, err := extractParts(filepath.Join(im.BadBuild, build.PayloadFile), tmp)
	if err != nil {
		return err
	}
	usr, ok := parts[payload.PartUSR]
	if !ok || parts[payload.PartUKI] == "" {
		return fmt.Errorf("the %s payload lacks its usr or uki part", Bad)
	}
	uf, err := os.OpenFile(usr, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	// The erofs superblock is at 1024: mounting reads it, through dm-verity.
	_, err = uf.WriteAt([]byte(strings.Repeat("\x5a", 512)), 1024)
	if cerr := uf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	kb, err := os.ReadFile(im.Key)
	if err != nil {
		return err
	}
	priv, err := payload.ParsePrivateKey(kb)
	if err != nil {
		return err
	}
	return atomicfile.Write(im.BadPayload, 0o644, func(w io.Writer) error {
		_, err := payload.Build(w, payload.BuildOptions{Version: Bad, Board: h.Manifest.Board, TempDir: tmp,
			USR: payload.FileSource(payload.PartUSR, usr), UKI: payload.FileSource(payload.PartUKI, parts[payload.PartUKI])}, priv)
		return err
	})
}

// extractParts writes each part of the payload at path into dir and returns the payload's
// header and the parts' files by name.
func extractParts(path, dir string) (*payload.Header, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	h, err := payload.ReadHeader(f)
	if err != nil {
		return nil, nil, fmt.Errorf("payload %s: %w", path, err)
	}
	parts := map[string]string{}
	for _, p := range h.Manifest.Parts {
		out := filepath.Join(dir, p.Name)
		w, err := os.Create(out)
		if err != nil {
			return nil, nil, err
		}
		err = payload.Extract(w, io.NewSectionReader(f, p.Offset, p.CompressedSize), p)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, nil, fmt.Errorf("payload %s: part %s: %w", path, p.Name, err)
		}
		parts[p.Name] = out
	}
	return h, parts, nil
}
