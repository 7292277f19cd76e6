// Package aci reads appc Application Container Images: the (optionally compressed) tar
// stream, and the image manifest, which is bounded in size and validated against the appc
// spec before anything trusts it. It also writes ACIs, for tests and image tools.
package aci

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"
)

// MaxManifestSize bounds an image manifest: anything bigger is refused unread.
const MaxManifestSize = 1 << 20

// ManifestName and RootfsDir are the two members of an ACI.
const (
	ManifestName = "manifest"
	RootfsDir    = "rootfs"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrManifestTooLarge = errors.New("image manifest larger than 1 MiB")
	ErrInvalidManifest  = errors.New("invalid image manifest")
	ErrNoManifest       = errors.New("ACI has no manifest")
)

// ParseManifest decodes and validates an appc image manifest.
func ParseManifest(b []byte) (*schema.ImageManifest, error) {
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%w (%d bytes)", ErrManifestTooLarge, len(b))
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%w: not JSON", ErrInvalidManifest)
	}
	var m schema.ImageManifest
	// UnmarshalJSON runs the spec's checks: acKind, acVersion, name, labels, app, dependencies.
	if err := unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidManifest, err)
	}
	// Decoding skips some checks that encoding runs (an unnamed label passes one, not the
	// other): a manifest must survive both.
	if err := remarshal(&m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidManifest, err)
	}
	// The spec requires an absolute exec path; the schema package leaves that to runtimes.
	if m.App != nil && len(m.App.Exec) > 0 && !strings.HasPrefix(m.App.Exec[0], "/") {
		return nil, fmt.Errorf("%w: app exec %q is not an absolute path", ErrInvalidManifest, m.App.Exec[0])
	}
	return &m, nil
}

// unmarshal decodes with the appc schema, turning its panics (an isolator without a value
// dereferences nil) into errors: the bytes are an attacker's.
func unmarshal(b []byte, m *schema.ImageManifest) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed manifest (%v)", r)
		}
	}()
	return json.Unmarshal(b, m)
}

func remarshal(m *schema.ImageManifest) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed manifest (%v)", r)
		}
	}()
	if _, err := json.Marshal(m); err != nil {
		if u := errors.Unwrap(err); u != nil {
			return u
		}
		return err
	}
	return nil
}

// ReadManifest reads a manifest from r, refusing more than MaxManifestSize bytes.
func ReadManifest(r io.Reader) (*schema.ImageManifest, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read image manifest: %w", err)
	}
	if len(b) > MaxManifestSize {
		return nil, ErrManifestTooLarge
	}
	return ParseManifest(b)
}

// Compression names an ACI's compression, as the appc spec allows them.
type Compression string

const (
	None  Compression = "none"
	Gzip  Compression = "gzip"
	Bzip2 Compression = "bzip2"
	Xz    Compression = "xz"
)

// Detect names the compression of the stream that starts with head (at least 6 bytes).
func Detect(head []byte) Compression {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return Gzip
	case bytes.HasPrefix(head, []byte("BZh")):
		return Bzip2
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return Xz
	}
	return None
}

// Decompress returns the uncompressed tar stream of an ACI read from r.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	head, err := br.Peek(6)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, None, fmt.Errorf("read ACI: %w", err)
	}
	switch c := Detect(head); c {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("read ACI: gzip: %w", err)
		}
		return zr, c, nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(br)), c, nil
	case Xz:
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, c, fmt.Errorf("read ACI: xz: %w", err)
		}
		return io.NopCloser(zr), c, nil
	default:
		return io.NopCloser(br), None, nil
	}
}

// ManifestFromTar scans an uncompressed ACI tar stream for its manifest.
func ManifestFromTar(r io.Reader) (*schema.ImageManifest, error) {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, ErrNoManifest
		}
		if err != nil {
			return nil, fmt.Errorf("read ACI: %w", err)
		}
		if hdr.Name == ManifestName || hdr.Name == "./"+ManifestName {
			if hdr.Typeflag != tar.TypeReg { // tar.Reader turns the legacy TypeRegA into TypeReg
				return nil, fmt.Errorf("%w: manifest is not a regular file", ErrInvalidManifest)
			}
			if hdr.Size > MaxManifestSize {
				return nil, fmt.Errorf("%w (%d bytes)", ErrManifestTooLarge, hdr.Size)
			}
			return ReadManifest(tr)
		}
	}
}
