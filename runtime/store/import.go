package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/appc/spec/schema"
	"github.com/cairn-os/cairn/runtime/aci"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/oci"
	"github.com/cairn-os/cairn/runtime/tarx"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// ImportACI adds the ACI read from r (plain tar, or gzip, bzip2 or xz compressed) to the
// store, keeping it as it came. Importing an image that is already there changes nothing and
// returns it.
func (s *Store) ImportACI(ctx context.Context, r io.Reader, opts ImportOptions) (*image.Image, error) {
	what := "ACI"
	if opts.Source != "" {
		what = "ACI " + opts.Source
	}
	id, err := s.importACI(ctx, r, opts)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", what, err)
	}
	return s.getImported(ctx, id)
}

// getImported returns a just imported image. An ACI's dependencies may not be in the store
// yet (the fetcher brings them next): then Layers holds only the image's own tree.
func (s *Store) getImported(ctx context.Context, id string) (*image.Image, error) {
	img, err := s.Get(ctx, id)
	if errors.Is(err, ErrDependency) {
		r, rerr := s.readRecord(id)
		if rerr != nil {
			return nil, rerr
		}
		return s.image(nil, r, nil)
	}
	return img, err
}

func (s *Store) importACI(ctx context.Context, r io.Reader, opts ImportOptions) (string, error) {
	l, err := s.lock(ctx, unix.LOCK_SH)
	if err != nil {
		return "", err
	}
	defer l.Unlock()
	tmp, err := os.MkdirTemp(s.path("tmp"), "aci-")
	if err != nil {
		return "", err
	}
	defer s.removeTemp(tmp)

	// The blob is the ACI as it came, compressed or not; its ID is the digest of the tar
	// inside, so the stream is hashed after decompression.
	blob, err := os.Create(filepath.Join(tmp, "blob"))
	if err != nil {
		return "", err
	}
	defer blob.Close()
	bw := bufio.NewWriterSize(blob, 1<<20)
	raw := &countingReader{r: io.TeeReader(r, bw)}
	zr, _, err := aci.Decompress(raw)
	if err != nil {
		return "", err
	}
	defer zr.Close()
	h := sha512.New()
	tee := io.TeeReader(zr, h)
	tree := filepath.Join(tmp, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return "", err
	}
	limit := newBudget(opts.Limits).layer(func() int64 { return raw.n })
	res, err := tarx.Extract(ctx, tee, tree, tarx.Options{Trusted: opts.Trusted || opts.Privileged, Owners: s.owners, Limit: limit})
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(io.Discard, tee); err != nil { // tar padding after the end marker
		return "", trailerErr(err)
	}
	if _, err := io.Copy(io.Discard, raw); err != nil { // what the decompressor left unread
		return "", err
	}
	if err := bw.Flush(); err != nil {
		return "", err
	}
	if err := blob.Close(); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	id := "sha512-" + sum

	m, err := readTreeManifest(tree)
	if err != nil {
		return "", err
	}
	if r, err := s.readRecord(id); err == nil {
		// Already imported. A verified signature now vouches for an image imported without
		// one: its tree is exact when nothing was dropped then; otherwise it stays as it is.
		if opts.Trusted && !r.Trusted {
			if r.Dropped > 0 {
				s.Log.Warn("image was imported unverified and lost privileged entries; rkt image rm it and fetch it again to keep them",
					"image", id, "dropped", r.Dropped)
				return id, nil
			}
			r.Trusted, r.Signer = true, opts.Signer
			if err := s.writeRecord(r); err != nil {
				return "", err
			}
		}
		return id, nil
	}
	s.logDropped(id, res.Dropped)

	s.crashPoint("aci-staged")
	if err := os.Rename(blob.Name(), s.BlobPath("sha512:"+sum)); err != nil {
		return "", err
	}
	if err := renameTree(tree, s.TreePath(id)); err != nil {
		return "", err
	}
	s.crashPoint("aci-committed")
	now := s.Now().UTC()
	labels := map[string]string{}
	for _, lb := range m.Labels {
		labels[lb.Name.String()] = lb.Value
	}
	rec := &record{
		ID: id, Format: image.ACI, Name: m.Name.String(), Labels: labels,
		ImportTime: now, LastUsed: now, Source: opts.Source, Trusted: opts.Trusted, Signer: opts.Signer, Privileged: opts.Privileged && !opts.Trusted,
		Size:    raw.n + res.Bytes,
		Dropped: len(res.Dropped),
		Blobs:   []string{"sha512:" + sum},
		Trees:   []string{id},
	}
	if err := s.writeRecord(rec); err != nil {
		return "", err
	}
	s.Log.Debug("imported ACI", "id", id, "name", rec.Name, "files", res.Files)
	return id, nil
}

// readTreeManifest reads an extracted ACI's manifest and checks that rootfs is a real
// directory: both were written by the archive, so neither may be a symlink.
func readTreeManifest(tree string) (m *schema.ImageManifest, err error) {
	// O_NONBLOCK: a manifest that is a FIFO must not hang the import in open(2).
	f, err := os.OpenFile(filepath.Join(tree, aci.ManifestName), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, aci.ErrNoManifest
	}
	if err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", aci.ErrInvalidManifest, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: manifest is not a regular file", aci.ErrInvalidManifest)
	}
	m, err = aci.ReadManifest(f)
	if err != nil {
		return nil, err
	}
	st, err := os.Lstat(filepath.Join(tree, aci.RootfsDir))
	if err != nil || !st.IsDir() {
		return nil, fmt.Errorf("ACI has no rootfs directory")
	}
	return m, nil
}

// renameTree moves a finished tree into place. Another process may have made the same tree
// meanwhile; then ours is redundant and is left for the caller to discard.
func renameTree(from, to string) error {
	err := os.Rename(from, to)
	if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func (s *Store) logDropped(id string, dropped []string) {
	for _, d := range dropped {
		s.Log.Warn("untrusted image: entry dropped or stripped", "image", id, "entry", d)
	}
}

// trailerErr classifies an error met reading what follows a tar's end marker (padding, the
// compressor's trailer).
func trailerErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %v", tarx.ErrTruncated, err)
	}
	return fmt.Errorf("after the end of the archive: %w", err)
}

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

func checkHash(h v1.Hash) error {
	if h.Algorithm != "sha256" || !hexDigest.MatchString(h.Hex) {
		return fmt.Errorf("%w: unsupported digest %q", ErrDigest, h.String())
	}
	return nil
}

// ImportOCI adds an OCI image (from a layout, an archive, a registry) to the store, each
// layer extracted once into a tree named by its diffID. Importing an image that is already
// there reads nothing but its digest and returns it.
func (s *Store) ImportOCI(ctx context.Context, img v1.Image, opts ImportOptions) (*image.Image, error) {
	what := "OCI image"
	if opts.Name != "" {
		what += " " + opts.Name
	} else if opts.Source != "" {
		what += " " + opts.Source
	}
	id, err := s.importOCI(ctx, img, opts)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", what, err)
	}
	return s.Get(ctx, id)
}

func (s *Store) importOCI(ctx context.Context, img v1.Image, opts ImportOptions) (string, error) {
	digest, err := img.Digest()
	if err != nil {
		return "", err
	}
	if err := checkHash(digest); err != nil {
		return "", err
	}
	id := digest.String()
	l, err := s.lock(ctx, unix.LOCK_SH)
	if err != nil {
		return "", err
	}
	defer l.Unlock()
	if r, err := s.readRecord(id); err == nil {
		// Already imported: a second fetch reads nothing more. The same image fetched under
		// another reference (busybox:1.36 after busybox:latest) keeps that name too.
		if opts.Name != "" && opts.Name != r.Name && !slices.Contains(r.Aliases, opts.Name) {
			r.Aliases = append(r.Aliases, opts.Name)
			if err := s.writeRecord(r); err != nil {
				return "", err
			}
		}
		return id, nil
	}

	rawManifest, err := img.RawManifest()
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	if got := sha256Hex(rawManifest); got != digest.Hex {
		return "", fmt.Errorf("%w: manifest is sha256:%s, expected %s", ErrDigest, got, digest)
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	if err := checkHash(m.Config.Digest); err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	if got := sha256Hex(rawConfig); got != m.Config.Digest.Hex {
		return "", fmt.Errorf("%w: config is sha256:%s, manifest says %s", ErrDigest, got, m.Config.Digest)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil {
		return "", fmt.Errorf("config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return "", fmt.Errorf("layers: %w", err)
	}
	if len(layers) != len(m.Layers) || len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return "", fmt.Errorf("%w: manifest has %d layers, config %d diffIDs", ErrCorrupt, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i := range m.Layers {
		if err := checkHash(m.Layers[i].Digest); err != nil {
			return "", fmt.Errorf("layer %d: %w", i, err)
		}
		if err := checkHash(cfg.RootFS.DiffIDs[i]); err != nil {
			return "", fmt.Errorf("layer %d diffID: %w", i, err)
		}
	}

	// Lock every tree the image needs, in a fixed order so that two imports cannot deadlock,
	// for the whole import: the trees are staged under tmp/ and renamed into place together
	// once every layer is verified, so a failed import leaves nothing behind.
	keys := map[string]bool{}
	for _, d := range cfg.RootFS.DiffIDs {
		keys[treeKey(d)] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		tl, err := lockFile(ctx, s.path("treelock", k+".lock"), unix.LOCK_EX)
		if err != nil {
			return "", err
		}
		defer tl.Unlock()
	}
	stage, err := os.MkdirTemp(s.path("tmp"), "oci-")
	if err != nil {
		return "", err
	}
	defer s.removeTemp(stage)

	// One job per distinct blob; a tree is extracted by the first job that needs it.
	var jobs []*layerJob
	seenBlob, seenTree := map[string]bool{}, map[string]bool{}
	for i := range m.Layers {
		j := &layerJob{layer: layers[i], digest: m.Layers[i].Digest, diffID: cfg.RootFS.DiffIDs[i], dir: filepath.Join(stage, strconv.Itoa(i))}
		key := treeKey(j.diffID)
		if seenBlob[j.digest.String()] {
			continue
		}
		seenBlob[j.digest.String()] = true
		if _, err := os.Stat(s.TreePath(key)); err != nil && !seenTree[key] {
			j.extract = true
		}
		seenTree[key] = true
		if _, err := os.Stat(s.BlobPath(j.digest.String())); err != nil {
			j.fetch = true
		}
		if j.extract || j.fetch {
			jobs = append(jobs, j)
		}
	}
	// Layers are independent: stage two at a time (decompression and hashing are CPU-bound).
	b := newBudget(opts.Limits)
	errs := make([]error, len(jobs))
	sem := make(chan struct{}, min(2, runtime.GOMAXPROCS(0)))
	var wg sync.WaitGroup
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, j := range jobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if lctx.Err() != nil {
				errs[i] = lctx.Err()
				return
			}
			if errs[i] = s.stageLayer(lctx, j, opts.Trusted || opts.Privileged, b); errs[i] != nil {
				errs[i] = fmt.Errorf("layer %s: %w", j.digest, errs[i])
				cancel()
			}
		})
	}
	wg.Wait()
	for _, err := range errs { // the first real failure, not the cancellations it caused
		if err != nil && !errors.Is(err, context.Canceled) {
			return "", err
		}
	}
	for _, err := range errs {
		if err != nil {
			return "", err
		}
	}
	s.crashPoint("staged")
	for _, j := range jobs {
		s.crashPoint("commit-layer")
		if j.fetch {
			if err := os.Rename(filepath.Join(j.dir, "blob"), s.BlobPath(j.digest.String())); err != nil {
				return "", err
			}
		}
		if j.extract {
			if err := renameTree(filepath.Join(j.dir, "tree"), s.TreePath(treeKey(j.diffID))); err != nil {
				return "", err
			}
		}
	}
	sizes := make([]int64, len(m.Layers))
	for i := range m.Layers {
		ts, err := dirSize(s.TreePath(treeKey(cfg.RootFS.DiffIDs[i])))
		if err != nil {
			return "", fmt.Errorf("%w: layer %s: %v", ErrCorrupt, m.Layers[i].Digest, err)
		}
		sizes[i] = ts
		if st, err := os.Stat(s.BlobPath(m.Layers[i].Digest.String())); err == nil {
			sizes[i] += st.Size()
		}
	}
	if err := s.putBlob(digest, rawManifest); err != nil {
		return "", err
	}
	if err := s.putBlob(m.Config.Digest, rawConfig); err != nil {
		return "", err
	}

	now := s.Now().UTC()
	rec := &record{
		ID: id, Format: image.OCI, Name: opts.Name, Labels: ociLabels(opts.Name, cfg),
		ImportTime: now, LastUsed: now, Source: opts.Source, Trusted: opts.Trusted, Signer: opts.Signer, Privileged: opts.Privileged && !opts.Trusted,
		Size:   int64(len(rawManifest) + len(rawConfig)),
		Blobs:  []string{digest.String(), m.Config.Digest.String()},
		Config: m.Config.Digest.String(),
	}
	if rec.Name == "" {
		rec.Name = opts.Source
	}
	for i := range m.Layers {
		rec.Blobs = append(rec.Blobs, m.Layers[i].Digest.String())
		rec.Trees = append(rec.Trees, treeKey(cfg.RootFS.DiffIDs[i]))
		rec.Size += sizes[i]
	}
	s.crashPoint("record")
	if err := s.writeRecord(rec); err != nil {
		return "", err
	}
	s.crashPoint("done")
	s.Log.Debug("imported OCI image", "id", id, "name", rec.Name, "layers", len(m.Layers))
	return id, nil
}

func treeKey(diffID v1.Hash) string { return "sha256-" + diffID.Hex }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ociLabels gives an OCI image appc-style labels: version from the tag, os and arch.
func ociLabels(ref string, cfg *v1.ConfigFile) map[string]string {
	ls := map[string]string{}
	if t, err := name.NewTag(ref); err == nil && ref != "" {
		ls["version"] = t.TagStr()
	}
	if cfg.OS != "" {
		ls["os"] = cfg.OS
	}
	if cfg.Architecture != "" {
		ls["arch"] = cfg.Architecture
	}
	return ls
}

// putBlob stores small content (manifest, config) under its digest.
func (s *Store) putBlob(d v1.Hash, b []byte) error {
	p := s.BlobPath(d.String())
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	f, err := os.CreateTemp(s.path("tmp"), "blob-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), p)
}

// layerJob is one layer blob to fetch into dir/blob and, when extract is set, to unpack into
// dir/tree.
type layerJob struct {
	layer          v1.Layer
	digest, diffID v1.Hash
	dir            string
	fetch, extract bool
}

// stageLayer reads a layer's compressed blob once, storing it, hashing it and (when the tree
// is missing) extracting it within the import's budget, and checks both digests before
// anything is committed.
func (s *Store) stageLayer(ctx context.Context, j *layerJob, trusted bool, b *budget) error {
	if err := os.Mkdir(j.dir, 0o700); err != nil {
		return err
	}
	rc, err := j.layer.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	blob, err := os.Create(filepath.Join(j.dir, "blob"))
	if err != nil {
		return err
	}
	defer blob.Close()
	ch := sha256.New()
	bw := bufio.NewWriterSize(blob, 1<<20)
	in := &countingReader{r: rc}
	tee := io.TeeReader(in, io.MultiWriter(bw, ch))

	if j.extract {
		tree := filepath.Join(j.dir, "tree")
		if err := os.Mkdir(tree, 0o755); err != nil {
			return err
		}
		ur, err := decompress(tee)
		if err != nil {
			return err
		}
		defer ur.Close()
		dh := sha256.New()
		uTee := io.TeeReader(ur, dh)
		limit := b.layer(func() int64 { return in.n })
		res, err := tarx.Extract(ctx, uTee, tree, tarx.Options{Trusted: trusted, Whiteouts: true, Owners: s.owners, Limit: limit})
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.Discard, uTee); err != nil {
			return trailerErr(err)
		}
		if got := hex.EncodeToString(dh.Sum(nil)); got != j.diffID.Hex {
			return fmt.Errorf("%w: uncompressed layer is sha256:%s, config says %s", ErrDigest, got, j.diffID)
		}
		s.logDropped(j.digest.String(), res.Dropped)
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return trailerErr(err)
	}
	if got := hex.EncodeToString(ch.Sum(nil)); got != j.digest.Hex {
		return fmt.Errorf("%w: blob is sha256:%s", ErrDigest, got)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return blob.Close()
}

// decompress undoes a layer's compression, recognised by its magic bytes.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// dirSize sums the sizes of the regular files under dir (an error when dir does not exist).
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n, err
}

// ImportFile imports a local image file, recognising its kind: an ACI (.aci, any appc
// compression), an OCI image layout directory, an OCI archive or a docker-archive tarball.
// opts.Name picks one image from a file that holds several.
func (s *Store) ImportFile(ctx context.Context, path string, opts ImportOptions) (*image.Image, error) {
	if opts.Source == "" {
		if abs, err := filepath.Abs(path); err == nil {
			opts.Source = abs
		}
	}
	kind, err := oci.Sniff(path)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	// Held across the import so that no other process clears tmp/ under an unpacked archive.
	l, err := s.lock(ctx, unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	if kind == oci.ACI {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", path, err)
		}
		defer f.Close()
		return s.ImportACI(ctx, f, opts)
	}
	// An archive is unpacked under its own budget: its blobs are counted again as layers.
	var size int64
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	o, err := oci.Open(ctx, path, opts.Name, s.path("tmp"), newBudget(opts.Limits).layer(func() int64 { return size }))
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	defer o.Close()
	if opts.Name == "" || !strings.ContainsAny(opts.Name, "/:") {
		if o.Name != "" && strings.ContainsAny(o.Name, "/:") {
			opts.Name = o.Name
		} else if opts.Name == "" {
			opts.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		}
	}
	return s.ImportOCI(ctx, o.Image, opts)
}
