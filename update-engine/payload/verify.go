package payload

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// NewDecoder returns a streaming zstd decoder sized for payload parts: single-threaded and
// with a bounded window, so that applying a 1 GiB part stays within a few MiB of memory.
func NewDecoder(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20), zstd.WithDecoderLowmem(true))
}

// CheckCompressed hashes a part's compressed bytes from r (positioned at the part's offset)
// and compares them with the manifest.
func CheckCompressed(r io.Reader, p Part) error {
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r, p.CompressedSize))
	if err != nil {
		return fmt.Errorf("part %s: %w", p.Name, err)
	}
	if n != p.CompressedSize {
		return fmt.Errorf("part %s: %d of %d bytes: %w", p.Name, n, p.CompressedSize, ErrTruncated)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.CompressedSHA256 {
		return fmt.Errorf("part %s: compressed sha256 %s, manifest says %s: %w", p.Name, got, p.CompressedSHA256, ErrHashMismatch)
	}
	return nil
}

// errTooLong stops a part that decompresses to more bytes than its manifest says.
var errTooLong = errors.New("part decompresses to more bytes than the manifest says")

// limitWriter fails a write that would go past max bytes.
type limitWriter struct {
	w      io.Writer
	n, max int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n+int64(len(p)) > l.max {
		return 0, errTooLong
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	return n, err
}

// Extract decompresses part p from r (positioned at the part's offset) into w, hashing what
// it writes, and fails unless exactly p.Size bytes with p.SHA256 came out.
func Extract(w io.Writer, r io.Reader, p Part) error {
	h := sha256.New()
	if err := Decode(io.MultiWriter(w, h), r, p); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("part %s: sha256 %s, manifest says %s: %w", p.Name, got, p.SHA256, ErrHashMismatch)
	}
	return nil
}

// Decode decompresses part p into w and fails unless exactly p.Size bytes came out. It does
// not hash: a caller that uses it must check p.SHA256 some other way (apply hashes what the
// device gives back after writing, so that the /usr image is hashed once). The decoder
// writes its blocks straight to w: no intermediate copy of the output.
func Decode(w io.Writer, r io.Reader, p Part) error {
	dec, err := NewDecoder(io.LimitReader(r, p.CompressedSize))
	if err != nil {
		return fmt.Errorf("part %s: %w", p.Name, err)
	}
	defer dec.Close()
	lw := &limitWriter{w: w, max: p.Size}
	if _, err := dec.WriteTo(lw); err != nil {
		switch {
		case errors.Is(err, errTooLong):
			err = fmt.Errorf("%w: %v", ErrHashMismatch, err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			err = ErrTruncated
		}
		return fmt.Errorf("part %s: decompress: %w", p.Name, err)
	}
	if lw.n != p.Size {
		return fmt.Errorf("part %s: %d bytes decompressed, manifest says %d: %w", p.Name, lw.n, p.Size, ErrHashMismatch)
	}
	return nil
}

// VerifyAll checks a whole payload read from r: the header's signature, then every part's
// compressed and uncompressed hash. It returns the verified header.
func VerifyAll(r io.ReaderAt, size int64, keys []ed25519.PublicKey) (*Header, error) {
	h, err := ReadHeader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, err
	}
	if err := h.Verify(keys); err != nil {
		return nil, err
	}
	if size < h.Size() {
		return nil, fmt.Errorf("payload is %d bytes, manifest describes %d: %w", size, h.Size(), ErrTruncated)
	}
	if size > h.Size() {
		return nil, fmtErr("%d bytes after the last part", size-h.Size())
	}
	for _, p := range h.Manifest.Parts {
		if err := CheckCompressed(io.NewSectionReader(r, p.Offset, p.CompressedSize), p); err != nil {
			return nil, err
		}
		if err := Extract(io.Discard, io.NewSectionReader(r, p.Offset, p.CompressedSize), p); err != nil {
			return nil, err
		}
	}
	return h, nil
}
