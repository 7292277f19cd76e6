// Package imagesig signs and verifies Cairn disk images. A signature is a small text file
// beside the image (cairn_production_image.bin.sig) that states the image's size and SHA-512
// and signs that statement with ed25519, using the same PEM keys as update payloads. Stating
// the size makes a truncated image fail, and signing a digest lets the installer verify while
// it streams the image to a disk.
package imagesig

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
)

const header = "cairn-image-signature-v1"

// MaxSize bounds a signature file.
const MaxSize = 4096

// ErrBadSignature is returned when no trusted key made the signature, or the image is not the
// one signed.
var ErrBadSignature = errors.New("image signature does not verify")

// Statement is what a signature vouches for.
type Statement struct {
	Size   int64
	SHA512 [sha512.Size]byte
}

func (s Statement) message() []byte {
	return []byte(fmt.Sprintf("%s\nsize %d\nsha512 %s\n", header, s.Size, hex.EncodeToString(s.SHA512[:])))
}

// Sign returns the signature file for an image described by s.
func Sign(key ed25519.PrivateKey, s Statement) []byte {
	msg := s.message()
	sig := ed25519.Sign(key, msg)
	return append(msg, []byte("ed25519 "+base64.StdEncoding.EncodeToString(sig)+"\n")...)
}

// Parse reads a signature file without checking it.
func Parse(b []byte) (Statement, []byte, error) {
	var s Statement
	if len(b) > MaxSize {
		return s, nil, fmt.Errorf("image signature: %d bytes, more than %d", len(b), MaxSize)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) != 5 || lines[4] != "" || lines[0] != header {
		return s, nil, fmt.Errorf("image signature: not a %s file", header)
	}
	v, ok := strings.CutPrefix(lines[1], "size ")
	n, err := strconv.ParseInt(v, 10, 64)
	if !ok || err != nil || n <= 0 || strconv.FormatInt(n, 10) != v {
		return s, nil, fmt.Errorf("image signature: bad size line %q", lines[1])
	}
	s.Size = n
	v, ok = strings.CutPrefix(lines[2], "sha512 ")
	d, err := hex.DecodeString(v)
	if !ok || err != nil || len(d) != sha512.Size || hex.EncodeToString(d) != v {
		return s, nil, fmt.Errorf("image signature: bad sha512 line")
	}
	copy(s.SHA512[:], d)
	v, ok = strings.CutPrefix(lines[3], "ed25519 ")
	sig, err := base64.StdEncoding.DecodeString(v)
	if !ok || err != nil || len(sig) != ed25519.SignatureSize {
		return s, nil, fmt.Errorf("image signature: bad ed25519 line")
	}
	if !bytes.Equal(s.message(), b[:len(s.message())]) {
		return s, nil, fmt.Errorf("image signature: not in canonical form")
	}
	return s, sig, nil
}

// Verify checks that one of keys signed the file b, and returns the statement it vouches for.
func Verify(keys []ed25519.PublicKey, b []byte) (Statement, error) {
	s, sig, err := Parse(b)
	if err != nil {
		return s, err
	}
	for _, k := range keys {
		if ed25519.Verify(k, s.message(), sig) {
			return s, nil
		}
	}
	return s, fmt.Errorf("%w: no trusted key (of %d) made it", ErrBadSignature, len(keys))
}

// Hasher computes the statement of the bytes written to it.
type Hasher struct {
	h hash.Hash
	n int64
}

// NewHasher returns a Hasher for streaming an image.
func NewHasher() *Hasher { return &Hasher{h: sha512.New()} }

func (h *Hasher) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	return h.h.Write(p)
}

// Statement returns the size and digest of what was written so far.
func (h *Hasher) Statement() Statement {
	var s Statement
	s.Size = h.n
	copy(s.SHA512[:], h.h.Sum(nil))
	return s
}

// Of computes the statement of everything r yields.
func Of(r io.Reader) (Statement, error) {
	h := NewHasher()
	if _, err := io.Copy(h, r); err != nil {
		return Statement{}, err
	}
	return h.Statement(), nil
}

// Check compares what was received with what was signed.
func (s Statement) Check(got Statement) error {
	if got.Size != s.Size {
		return fmt.Errorf("%w: image is %d bytes, signature is for %d", ErrBadSignature, got.Size, s.Size)
	}
	if got.SHA512 != s.SHA512 {
		return fmt.Errorf("%w: image SHA-512 %x is not the signed %x", ErrBadSignature, got.SHA512[:8], s.SHA512[:8])
	}
	return nil
}
