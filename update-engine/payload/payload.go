// Package payload is Cairn's signed update payload: a small signed manifest that names the
// version, board and the size and SHA-256 of each part (the /usr image and the UKI), followed by
// the zstd-compressed parts. The format is specified in update-engine/PAYLOAD.md. This package
// parses and verifies payloads (hardened against hostile input) and builds them; it does no
// device I/O.
package payload

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Magic opens every payload (format 1).
const Magic = "CAIRNUP1"

// Format is the manifest format number this package writes and accepts.
const Format = 1

// FormatExtensions is the manifest format of a payload that also names system extension
// images for its version (Manifest.Extensions). An engine that knows only Format refuses it:
// it could not keep a host's extensions matched to the version it installs.
const FormatExtensions = 2

// MaxExtensions bounds the extensions one manifest names.
const MaxExtensions = 32

// Fixed sizes of the header.
const (
	prefixLen = len(Magic) + 4 + 2 // magic, manifest length (u32 BE), signature length (u16 BE)
	// MaxManifestLen bounds the manifest: it is read into memory before it is verified.
	MaxManifestLen = 64 << 10
	// MaxPartSize bounds a part's uncompressed size (a /usr slot is 1 GiB; leave room).
	MaxPartSize = 16 << 30
)

// Part names, in payload order.
const (
	PartUSR = "usr"
	PartUKI = "uki"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrFormat       = errors.New("malformed payload")
	ErrSignature    = errors.New("payload signature does not verify")
	ErrHashMismatch = errors.New("payload content hash mismatch")
	ErrTruncated    = errors.New("payload truncated")
)

// Part describes one compressed part of the payload. Offsets are from the start of the file.
type Part struct {
	Name             string `json:"name"`
	Offset           int64  `json:"offset"`
	CompressedSize   int64  `json:"compressed_size"`
	CompressedSHA256 string `json:"compressed_sha256"`
	Size             int64  `json:"size"`
	SHA256           string `json:"sha256"`
}

// Extension names a system extension image built for the payload's version (image/sysext).
// It is not part of the file: a host that activated the extension fetches it from URL while
// installing the payload (update-engine/extensions), and the signed manifest vouches for it.
type Extension struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	USRHash string `json:"usrhash"` // the image's dm-verity root hash, hex
}

// Manifest is the signed description of a payload.
type Manifest struct {
	Format           int         `json:"format"`
	Version          string      `json:"version"`
	Board            string      `json:"board"`
	MinSourceVersion string      `json:"min_source_version,omitempty"`
	Parts            []Part      `json:"parts"`
	Extensions       []Extension `json:"extensions,omitempty"` // FormatExtensions only
}

// Part returns the named part.
func (m *Manifest) Part(name string) (Part, bool) {
	for _, p := range m.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return Part{}, false
}

// Header is a parsed, not yet verified, payload header.
type Header struct {
	Manifest  Manifest
	raw       []byte // the manifest bytes as signed
	Signature []byte
	Len       int64 // bytes of the header; the first part starts here
}

var tokenRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+~-]{0,63}$`)

func fmtErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// ReadHeader reads and checks the header (magic, lengths, manifest syntax and consistency)
// from r. It does not verify the signature: call Verify before trusting anything in it.
func ReadHeader(r io.Reader) (*Header, error) {
	var prefix [prefixLen]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read header: %w", ErrTruncated)
		}
		return nil, fmt.Errorf("read header: %w", err)
	}
	if string(prefix[:len(Magic)]) != Magic {
		return nil, fmtErr("bad magic %q", prefix[:len(Magic)])
	}
	mlen := binary.BigEndian.Uint32(prefix[len(Magic):])
	slen := binary.BigEndian.Uint16(prefix[len(Magic)+4:])
	if mlen == 0 || mlen > MaxManifestLen {
		return nil, fmtErr("manifest length %d out of range (1..%d)", mlen, MaxManifestLen)
	}
	if slen != ed25519.SignatureSize {
		return nil, fmtErr("signature length %d, want %d", slen, ed25519.SignatureSize)
	}
	buf := make([]byte, int(mlen)+int(slen))
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("read manifest: %w", ErrTruncated)
		}
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	h := &Header{raw: buf[:mlen], Signature: buf[mlen:], Len: int64(prefixLen) + int64(mlen) + int64(slen)}
	if err := parseManifest(h.raw, &h.Manifest); err != nil {
		return nil, err
	}
	if err := h.Manifest.check(h.Len); err != nil {
		return nil, err
	}
	return h, nil
}

func parseManifest(b []byte, m *Manifest) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		return fmtErr("manifest: %v", err)
	}
	if dec.More() {
		return fmtErr("manifest: trailing data")
	}
	return nil
}

// check validates a manifest whose parts start at headerLen.
func (m *Manifest) check(headerLen int64) error {
	if m.Format != Format && m.Format != FormatExtensions {
		return fmtErr("manifest format %d, want %d or %d", m.Format, Format, FormatExtensions)
	}
	if err := m.checkExtensions(); err != nil {
		return err
	}
	if !tokenRE.MatchString(m.Version) {
		return fmtErr("version %q is not a version", m.Version)
	}
	if !tokenRE.MatchString(m.Board) {
		return fmtErr("board %q is not a board name", m.Board)
	}
	if m.MinSourceVersion != "" && !tokenRE.MatchString(m.MinSourceVersion) {
		return fmtErr("min_source_version %q is not a version", m.MinSourceVersion)
	}
	want := []string{PartUSR, PartUKI}
	if len(m.Parts) != len(want) {
		return fmtErr("%d parts, want %d (usr, uki)", len(m.Parts), len(want))
	}
	off := headerLen
	for i, p := range m.Parts {
		if p.Name != want[i] {
			return fmtErr("part %d is %q, want %q", i, p.Name, want[i])
		}
		if p.Offset != off {
			return fmtErr("part %s at offset %d, want %d", p.Name, p.Offset, off)
		}
		if p.Size <= 0 || p.Size > MaxPartSize {
			return fmtErr("part %s size %d out of range", p.Name, p.Size)
		}
		if p.CompressedSize <= 0 || p.CompressedSize > MaxPartSize+MaxPartSize/16 {
			return fmtErr("part %s compressed size %d out of range", p.Name, p.CompressedSize)
		}
		if !isSHA256(p.SHA256) || !isSHA256(p.CompressedSHA256) {
			return fmtErr("part %s: sha256 must be 64 lower-case hex digits", p.Name)
		}
		off += p.CompressedSize
	}
	return nil
}

var (
	extNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	rootHashRE = regexp.MustCompile(`^[0-9a-f]{64,128}$`)
)

func (m *Manifest) checkExtensions() error {
	if m.Format == Format && m.Extensions != nil {
		return fmtErr("extensions in a format %d manifest (they need format %d)", Format, FormatExtensions)
	}
	if len(m.Extensions) > MaxExtensions {
		return fmtErr("%d extensions, at most %d", len(m.Extensions), MaxExtensions)
	}
	seen := map[string]bool{}
	for _, e := range m.Extensions {
		switch {
		case !extNameRE.MatchString(e.Name):
			return fmtErr("extension name %q", e.Name)
		case seen[e.Name]:
			return fmtErr("extension %s named twice", e.Name)
		case !strings.HasPrefix(e.URL, "https://") && !strings.HasPrefix(e.URL, "http://"):
			return fmtErr("extension %s: URL %q is not http(s)", e.Name, e.URL)
		case e.Size <= 0 || e.Size > MaxPartSize:
			return fmtErr("extension %s: size %d out of range", e.Name, e.Size)
		case !isSHA256(e.SHA256):
			return fmtErr("extension %s: sha256 must be 64 lower-case hex digits", e.Name)
		case !rootHashRE.MatchString(e.USRHash):
			return fmtErr("extension %s: usrhash must be 64 to 128 lower-case hex digits", e.Name)
		}
		seen[e.Name] = true
	}
	return nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && s == lower(s)
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Size is the total length of the payload file the header describes.
func (h *Header) Size() int64 {
	last := h.Manifest.Parts[len(h.Manifest.Parts)-1]
	return last.Offset + last.CompressedSize
}

// signedBytes is what the signature covers: the magic, both lengths and the manifest.
func signedBytes(manifest []byte) []byte {
	b := make([]byte, 0, prefixLen+len(manifest))
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(manifest)))
	b = binary.BigEndian.AppendUint16(b, ed25519.SignatureSize)
	return append(b, manifest...)
}

// Verify checks the header's signature against any of keys.
func (h *Header) Verify(keys []ed25519.PublicKey) error {
	if len(keys) == 0 {
		return fmt.Errorf("%w: no public keys configured", ErrSignature)
	}
	msg := signedBytes(h.raw)
	for _, k := range keys {
		if len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, h.Signature) {
			return nil
		}
	}
	return ErrSignature
}

// RawManifest returns the manifest bytes exactly as signed.
func (h *Header) RawManifest() []byte { return append([]byte(nil), h.raw...) }
