// Package oci opens OCI images kept in local files, in the three shapes people hand to rkt
// fetch: an OCI image layout directory, the same layout packed in a tar archive, and a
// docker-archive tarball (`docker save`). Each becomes a go-containerregistry v1.Image
// with the name it was saved under, ready for the store to import.
package oci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/runtime/aci"
	"github.com/cairn-os/cairn/runtime/tarx"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Kind says what shape a local image file has.
type Kind string

const (
	Layout        Kind = "oci-layout"     // an OCI image layout directory
	Archive       Kind = "oci-archive"    // an OCI image layout in a tar archive
	DockerArchive Kind = "docker-archive" // `docker save` output
	ACI           Kind = "aci"            // an appc ACI (not opened by this package)
	Unknown       Kind = ""               // none of the above
	refNameAnno        = "org.opencontainers.image.ref.name"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrUnknownFormat  = errors.New("not an ACI, OCI layout, OCI archive or docker-archive")
	ErrNoImage        = errors.New("no matching image in the archive")
	ErrInvalidArchive = errors.New("invalid OCI archive")
)

// Sniff says what kind of image path holds, reading at most the first entries of a tar.
func Sniff(path string) (Kind, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Unknown, err
	}
	if st.IsDir() {
		if _, err := os.Stat(filepath.Join(path, "oci-layout")); err != nil {
			return Unknown, fmt.Errorf("%s: %w: directory without an oci-layout file", path, ErrUnknownFormat)
		}
		return Layout, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return Unknown, err
	}
	defer f.Close()
	zr, _, err := aci.Decompress(f)
	if err != nil {
		return Unknown, fmt.Errorf("%s: %w", path, err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for range 4096 {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		switch strings.TrimPrefix(hdr.Name, "./") {
		case "oci-layout":
			return Archive, nil
		case "manifest.json", "repositories":
			return DockerArchive, nil
		case aci.ManifestName, aci.RootfsDir, aci.RootfsDir + "/":
			return ACI, nil
		}
	}
	return Unknown, fmt.Errorf("%s: %w", path, ErrUnknownFormat)
}

// Opened is an image read from a local file. Close releases what opening it took (an
// archive is unpacked into a temporary directory).
type Opened struct {
	Image v1.Image
	Kind  Kind
	// Name is the reference the image was saved under ("" when the file does not say).
	Name    string
	cleanup func()
}

// Close removes temporary files.
func (o *Opened) Close() {
	if o.cleanup != nil {
		o.cleanup()
	}
}

// Open opens the OCI image at path. ref picks one image when the file holds several (by
// reference name or tag); tmpDir receives an unpacked OCI archive, bounded by limit when it
// is set.
func Open(ctx context.Context, path, ref, tmpDir string, limit tarx.Limit) (*Opened, error) {
	kind, err := Sniff(path)
	if err != nil {
		return nil, err
	}
	switch kind {
	case Layout:
		img, n, err := fromLayout(path, ref)
		if err != nil {
			return nil, fmt.Errorf("OCI layout %s: %w", path, err)
		}
		return &Opened{Image: img, Kind: kind, Name: n}, nil
	case Archive:
		dir, err := os.MkdirTemp(tmpDir, "oci-archive-")
		if err != nil {
			return nil, err
		}
		cleanup := func() { os.RemoveAll(dir) }
		if err := unpack(ctx, path, dir, limit); err != nil {
			cleanup()
			return nil, fmt.Errorf("OCI archive %s: %w", path, err)
		}
		img, n, err := fromLayout(dir, ref)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("OCI archive %s: %w", path, err)
		}
		return &Opened{Image: img, Kind: kind, Name: n, cleanup: cleanup}, nil
	case DockerArchive:
		img, n, err := fromDockerArchive(path, ref)
		if err != nil {
			return nil, fmt.Errorf("docker archive %s: %w", path, err)
		}
		return &Opened{Image: img, Kind: kind, Name: n}, nil
	}
	return nil, fmt.Errorf("%s: %w", path, ErrUnknownFormat)
}

func unpack(ctx context.Context, path, dir string, limit tarx.Limit) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, _, err := aci.Decompress(f)
	if err != nil {
		return err
	}
	defer zr.Close()
	if _, err := tarx.Extract(ctx, zr, dir, tarx.Options{Limit: limit}); err != nil {
		return err
	}
	// A layout holds files and directories only: a symlink would make the layout reader
	// follow it out of the archive, a FIFO would block it.
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			return fmt.Errorf("%w: entry %s is not a regular file or directory", ErrInvalidArchive, rel)
		}
		return nil
	})
}

// fromLayout picks the image in a layout: the only one, or the one whose ref.name
// annotation equals ref or ends in ":"+ref.
func fromLayout(dir, ref string) (v1.Image, string, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, "", err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	var picked []v1.Descriptor
	for _, d := range im.Manifests {
		if !d.MediaType.IsImage() {
			continue
		}
		n := d.Annotations[refNameAnno]
		if ref == "" || n == ref || strings.HasSuffix(n, ":"+ref) || strings.HasSuffix(ref, ":"+n) {
			picked = append(picked, d)
		}
	}
	switch {
	case len(picked) == 0:
		return nil, "", fmt.Errorf("%w (%d manifests, none named %q)", ErrNoImage, len(im.Manifests), ref)
	case len(picked) > 1:
		return nil, "", fmt.Errorf("%w: %d images; name one", ErrNoImage, len(picked))
	}
	img, err := idx.Image(picked[0].Digest)
	if err != nil {
		return nil, "", err
	}
	return img, picked[0].Annotations[refNameAnno], nil
}

func fromDockerArchive(path, ref string) (v1.Image, string, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, "", err
	}
	var tag *name.Tag
	n := ""
	switch {
	case ref != "":
		t, err := name.NewTag(ref)
		if err != nil {
			return nil, "", fmt.Errorf("reference %q: %w", ref, err)
		}
		tag, n = &t, t.Name()
	case len(m) == 1 && len(m[0].RepoTags) > 0:
		n = m[0].RepoTags[0]
	case len(m) > 1:
		return nil, "", fmt.Errorf("%w: %d images; name one", ErrNoImage, len(m))
	}
	img, err := tarball.Image(opener, tag)
	if err != nil {
		return nil, "", err
	}
	return img, n, nil
}
