package store

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/runtime/aci"
	"github.com/cairn-os/cairn/runtime/image"
	"github.com/cairn-os/cairn/runtime/tarx"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// CatManifest returns the manifest of the image ref names, as stored: an ACI's appc image
// manifest or an OCI image's manifest.
func (s *Store) CatManifest(ctx context.Context, ref string) ([]byte, error) {
	r, err := s.resolve(ref)
	if err != nil {
		return nil, err
	}
	if r.Format == image.ACI {
		return readLimited(filepath.Join(s.TreePath(r.Trees[len(r.Trees)-1]), aci.ManifestName), aci.MaxManifestSize)
	}
	return readLimited(s.BlobPath(r.ID), 4<<20)
}

func readLimited(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// Export writes the image ref names to w: an ACI as the uncompressed ACI it holds (as rkt
// exported them), an OCI image as an OCI archive (a tar of an image layout).
func (s *Store) Export(ctx context.Context, ref string, w io.Writer) error {
	r, err := s.resolve(ref)
	if err != nil {
		return err
	}
	if r.Format == image.ACI {
		f, err := os.Open(s.BlobPath(r.Blobs[0]))
		if err != nil {
			return fmt.Errorf("export %s: %w", r.ID, err)
		}
		defer f.Close()
		zr, _, err := aci.Decompress(f)
		if err != nil {
			return fmt.Errorf("export %s: %w: %v", r.ID, ErrCorrupt, err)
		}
		defer zr.Close()
		_, err = io.Copy(w, zr)
		return err
	}
	raw, err := s.CatManifest(ctx, r.ID)
	if err != nil {
		return err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("export %s: %w", r.ID, err)
	}
	mt := m.MediaType
	if mt == "" {
		mt = "application/vnd.oci.image.manifest.v1+json"
	}
	d, _ := v1.NewHash(r.ID)
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json", Manifests: []v1.Descriptor{{
		MediaType: mt, Size: int64(len(raw)), Digest: d,
		Annotations: map[string]string{"org.opencontainers.image.ref.name": r.Name},
	}}}
	idxJSON, _ := json.Marshal(idx)
	tw := tar.NewWriter(w)
	add := func(name string, size int64, body io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
			return err
		}
		_, err := io.Copy(tw, body)
		return err
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return fmt.Errorf("export %s: %s: %w", r.ID, dir, err)
		}
	}
	if err := add("oci-layout", 30, strings.NewReader(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := add("index.json", int64(len(idxJSON)), bytes.NewReader(idxJSON)); err != nil {
		return err
	}
	for _, b := range r.Blobs {
		f, err := os.Open(s.BlobPath(b))
		if err != nil {
			return fmt.Errorf("export %s: %w: %v", r.ID, ErrCorrupt, err)
		}
		st, _ := f.Stat()
		err = add("blobs/sha256/"+strings.TrimPrefix(b, "sha256:"), st.Size(), f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// Verify re-reads every blob the image ref names uses, checks it against its digest, and
// checks the image's trees against the blobs they were extracted from. A problem is
// reported as ErrCorrupt naming the blob or the file.
func (s *Store) Verify(ctx context.Context, ref string) error {
	r, err := s.resolve(ref)
	if err != nil {
		return err
	}
	if r.Format == image.ACI {
		if err := s.verifyACI(ctx, r); err != nil {
			return fmt.Errorf("image %s: %w", r.ID, err)
		}
		return nil
	}
	for _, b := range r.Blobs {
		if err := verifyBlob(s.BlobPath(b), b); err != nil {
			return fmt.Errorf("image %s: %w", r.ID, err)
		}
	}
	for i, t := range r.Trees {
		b := r.Blobs[2+i]
		f, err := os.Open(s.BlobPath(b))
		if err != nil {
			return err
		}
		ur, err := decompress(f)
		if err != nil {
			f.Close()
			return err
		}
		err = verifyTree(ctx, ur, s.TreePath(t), r.Trusted || r.Privileged, true)
		f.Close()
		if err != nil {
			return fmt.Errorf("image %s: layer %s: %w", r.ID, b, err)
		}
	}
	return nil
}

// verifyACI checks an ACI's blob (compressed as it was fetched, or plain from an older
// store) against the image ID, the digest of the tar inside, and the image's tree against
// that tar, in one pass. A blob that does not match is reported before a tree that does not.
func (s *Store) verifyACI(ctx context.Context, r *record) error {
	digest := r.Blobs[0]
	f, err := os.Open(s.BlobPath(digest))
	if err != nil {
		return fmt.Errorf("%w: blob %s: %v", ErrCorrupt, digest, err)
	}
	defer f.Close()
	h := sha512.New()
	var treeErr error
	zr, _, err := aci.Decompress(f)
	if err == nil {
		defer zr.Close()
		tee := io.TeeReader(zr, h)
		treeErr = verifyTree(ctx, tee, s.TreePath(r.Trees[0]), r.Trusted || r.Privileged, false)
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, tee)
	}
	if err != nil {
		return fmt.Errorf("%w: blob %s: %v", ErrCorrupt, digest, err)
	}
	if got := "sha512:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return fmt.Errorf("%w: blob %s holds content with digest %s", ErrCorrupt, digest, got)
	}
	return treeErr
}

// noExtras reports a file in the tree that its archive does not hold (something added later).
func noExtras(tree string, seen map[string]bool) error {
	return filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		rel, _ := filepath.Rel(tree, p)
		if rel != "." && !seen[filepath.ToSlash(rel)] {
			return fmt.Errorf("%w: %s is not in the image", ErrCorrupt, filepath.ToSlash(rel))
		}
		return nil
	})
}

func verifyBlob(p, digest string) error {
	alg, want, _ := strings.Cut(digest, ":")
	var h hash.Hash
	switch alg {
	case "sha512":
		h = sha512.New()
	case "sha256":
		h = sha256.New()
	default:
		return fmt.Errorf("%w: blob %s: unknown digest algorithm", ErrCorrupt, digest)
	}
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("%w: blob %s: %v", ErrCorrupt, digest, err)
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%w: blob %s: %v", ErrCorrupt, digest, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("%w: blob %s holds content with digest %s:%s", ErrCorrupt, digest, alg, got)
	}
	return nil
}

// verifyTree compares a tree with the tar it came from: every directory, symlink and regular
// file (by content) must be there as the archive says, and nothing else may be. Device nodes
// and modes that an untrusted import drops are not compared.
func verifyTree(ctx context.Context, r io.Reader, tree string, trusted, whiteouts bool) error {
	tr := tar.NewReader(r)
	h := sha256.New()
	seen := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return noExtras(tree, seen)
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		name, err := tarx.CleanName(hdr.Name)
		if err != nil || name == "." {
			continue
		}
		for d := name; d != "."; d = path.Dir(d) {
			seen[d] = true
		}
		p := filepath.Join(tree, name)
		if whiteouts {
			if base := path.Base(name); strings.HasPrefix(base, ".wh.") {
				if base == ".wh..wh..opq" {
					continue
				}
				p = filepath.Join(tree, path.Dir(name), strings.TrimPrefix(base, ".wh."))
				seen[path.Join(path.Dir(name), strings.TrimPrefix(base, ".wh."))] = true
				var st unix.Stat_t
				if err := unix.Lstat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
					return fmt.Errorf("%w: whiteout %s missing", ErrCorrupt, name)
				}
				continue
			}
		}
		st, err := os.Lstat(p)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err != nil || !st.IsDir() {
				return fmt.Errorf("%w: directory %s missing", ErrCorrupt, name)
			}
		case tar.TypeSymlink:
			l, lerr := os.Readlink(p)
			if err != nil || lerr != nil || l != hdr.Linkname {
				return fmt.Errorf("%w: symlink %s missing or changed", ErrCorrupt, name)
			}
		case tar.TypeReg: // tar.Reader turns the legacy TypeRegA into this
			if err != nil || !st.Mode().IsRegular() || st.Size() != hdr.Size {
				return fmt.Errorf("%w: file %s missing or resized", ErrCorrupt, name)
			}
			h.Reset()
			if _, rerr := io.Copy(h, tr); rerr != nil {
				return fmt.Errorf("%w: file %s: %v", ErrCorrupt, name, rerr)
			}
			want := h.Sum(nil)
			f, err := os.Open(p)
			if err != nil {
				return fmt.Errorf("%w: file %s: %v", ErrCorrupt, name, err)
			}
			h.Reset()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil || !bytes.Equal(h.Sum(nil), want) {
				return fmt.Errorf("%w: file %s content changed", ErrCorrupt, name)
			}
		case tar.TypeLink:
			if err != nil {
				return fmt.Errorf("%w: hardlink %s missing", ErrCorrupt, name)
			}
		case tar.TypeChar, tar.TypeBlock:
			if trusted && err != nil {
				return fmt.Errorf("%w: device %s missing", ErrCorrupt, name)
			}
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
		}
	}
}
