package payload

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// Source is one input part to Build: its name and where to read its uncompressed bytes.
type Source struct {
	Name string
	Open func() (io.ReadCloser, error)
}

// FileSource reads a part from a file.
func FileSource(name, path string) Source {
	return Source{Name: name, Open: func() (io.ReadCloser, error) { return os.Open(path) }}
}

// BuildOptions are the unsigned facts of a payload to build.
type BuildOptions struct {
	Version          string
	Board            string
	MinSourceVersion string
	USR, UKI         Source
	// TempDir holds the compressed parts while their sizes are not yet known.
	TempDir string
	// Level is the zstd encoder level; zero means zstd.SpeedDefault.
	Level zstd.EncoderLevel
	// Extensions are the system extension images built for Version; with any, the manifest
	// is FormatExtensions.
	Extensions []Extension
}

type hashCounter struct {
	n int64
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (c *hashCounter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}

// Build compresses the parts, signs the manifest with key and writes the payload to w.
// It returns the manifest written.
func Build(w io.Writer, o BuildOptions, key ed25519.PrivateKey) (*Manifest, error) {
	level := o.Level
	if level == 0 {
		level = zstd.SpeedDefault
	}
	m := Manifest{Format: Format, Version: o.Version, Board: o.Board, MinSourceVersion: o.MinSourceVersion}
	if len(o.Extensions) > 0 {
		m.Format, m.Extensions = FormatExtensions, o.Extensions
	}
	var tmps []*os.File
	defer func() {
		for _, f := range tmps {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	for _, src := range []Source{o.USR, o.UKI} {
		tmp, err := os.CreateTemp(o.TempDir, ".payload-part-*")
		if err != nil {
			return nil, fmt.Errorf("build payload: %w", err)
		}
		tmps = append(tmps, tmp)
		p, err := compressPart(src, tmp, level)
		if err != nil {
			return nil, fmt.Errorf("build payload: part %s: %w", src.Name, err)
		}
		m.Parts = append(m.Parts, p)
	}
	// Offsets depend on the manifest length, which depends on the offsets' digits: iterate
	// until the length is stable (twice is enough in practice).
	var raw []byte
	for range 4 {
		hlen := int64(prefixLen) + int64(len(raw)) + ed25519.SignatureSize
		off := hlen
		for j := range m.Parts {
			m.Parts[j].Offset = off
			off += m.Parts[j].CompressedSize
		}
		next, err := json.Marshal(&m)
		if err != nil {
			return nil, err
		}
		if len(next) == len(raw) {
			raw = next
			break
		}
		raw = next
	}
	if err := m.check(int64(prefixLen) + int64(len(raw)) + ed25519.SignatureSize); err != nil {
		return nil, fmt.Errorf("build payload: %w", err)
	}
	sig := ed25519.Sign(key, signedBytes(raw))
	hdr := append([]byte(Magic), 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(hdr[len(Magic):], uint32(len(raw)))
	binary.BigEndian.PutUint16(hdr[len(Magic)+4:], uint16(len(sig)))
	hdr = append(hdr, raw...)
	hdr = append(hdr, sig...)
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("write payload header: %w", err)
	}
	for i, f := range tmps {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		if _, err := io.Copy(w, f); err != nil {
			return nil, fmt.Errorf("write payload part %s: %w", m.Parts[i].Name, err)
		}
	}
	return &m, nil
}

func compressPart(src Source, dst io.Writer, level zstd.EncoderLevel) (Part, error) {
	in, err := src.Open()
	if err != nil {
		return Part{}, err
	}
	defer in.Close()
	raw := &hashCounter{h: sha256.New()}
	comp := &hashCounter{h: sha256.New()}
	enc, err := zstd.NewWriter(io.MultiWriter(dst, comp), zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return Part{}, err
	}
	if _, err := io.Copy(io.MultiWriter(enc, raw), in); err != nil {
		enc.Close()
		return Part{}, err
	}
	if err := enc.Close(); err != nil {
		return Part{}, err
	}
	return Part{
		Name:             src.Name,
		CompressedSize:   comp.n,
		CompressedSHA256: hex.EncodeToString(comp.h.Sum(nil)),
		Size:             raw.n,
		SHA256:           hex.EncodeToString(raw.h.Sum(nil)),
	}, nil
}
