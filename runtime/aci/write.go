package aci

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/appc/spec/schema"
)

// Writer writes an uncompressed ACI: the manifest, then the rootfs entries added to it.
type Writer struct {
	tw    *tar.Writer
	mtime time.Time
}

// NewWriter starts an ACI on w with manifest m (validated as it is marshalled).
func NewWriter(w io.Writer, m *schema.ImageManifest, mtime time.Time) (*Writer, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("marshal image manifest: %w", err)
	}
	aw := &Writer{tw: tar.NewWriter(w), mtime: mtime}
	if err := aw.tw.WriteHeader(&tar.Header{Name: ManifestName, Mode: 0o644, Size: int64(len(b)), ModTime: mtime, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := aw.tw.Write(b); err != nil {
		return nil, err
	}
	if err := aw.tw.WriteHeader(&tar.Header{Name: RootfsDir + "/", Mode: 0o755, ModTime: mtime, Typeflag: tar.TypeDir}); err != nil {
		return nil, err
	}
	return aw, nil
}

// Add writes one rootfs entry; hdr.Name is relative to rootfs/ and body is read for regular files.
func (w *Writer) Add(hdr *tar.Header, body io.Reader) error {
	h := *hdr
	h.Name = path.Join(RootfsDir, hdr.Name)
	if hdr.Typeflag == tar.TypeDir {
		h.Name += "/"
	}
	if hdr.Typeflag == tar.TypeLink {
		h.Linkname = path.Join(RootfsDir, hdr.Linkname)
	}
	if h.ModTime.IsZero() {
		h.ModTime = w.mtime
	}
	if h.Typeflag == 0 {
		// The zero value is tar's legacy TypeRegA, a regular file (tar.Writer writes it so).
		h.Typeflag = tar.TypeReg
	}
	if err := w.tw.WriteHeader(&h); err != nil {
		return fmt.Errorf("ACI entry %s: %w", h.Name, err)
	}
	if body != nil && h.Typeflag == tar.TypeReg {
		if _, err := io.CopyN(w.tw, body, h.Size); err != nil {
			return fmt.Errorf("ACI entry %s: %w", h.Name, err)
		}
	}
	return nil
}

// Close finishes the tar stream (it does not close the underlying writer).
func (w *Writer) Close() error { return w.tw.Close() }
