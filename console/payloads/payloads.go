// Package payloads keeps the payload files a console hosts: each stored once by its SHA-256
// in one directory, verified against the console's ed25519 keys as it is stored (the
// signed manifest, then every part against its signed hash), and served with Range so that
// an interrupted download resumes.
package payloads

import (
	"context"
	"crypto/ed25519"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// DefaultMaxSize bounds an upload: a /usr slot is 1 GiB, its payload less.
const DefaultMaxSize = 4 << 30

// Sentinel errors, checked with errors.Is.
var (
	// ErrNotPayload: the bytes are no Cairn payload (no version to file them under).
	ErrNotPayload = errors.New("not a Cairn payload")
	// ErrTooLarge: the upload is longer than the limit.
	ErrTooLarge = errors.New("payload larger than the limit")
)

// Dir is the payload directory.
type Dir struct {
	Path string
	// Keys verify uploads; a payload no key verifies is stored as unverified.
	Keys []ed25519.PublicKey
	// MaxSize bounds an upload (DefaultMaxSize when 0).
	MaxSize int64
}

// Stored is a payload written to the directory, with what its header says and whether it
// verified.
type Stored struct {
	File    string // the name in the directory: <sha256>.cairn
	Size    int64
	SHA256  string // hex
	SHA1    string // base64
	Version string
	Board   string
	// Signature is store.SignatureVerified or store.SignatureUnverified; SignatureError
	// says why it did not verify.
	Signature      string
	SignatureError string
}

// Package is the stored payload as a package of app, named filename for the machines.
func (s *Stored) Package(appID, filename, notes, by string) store.Package {
	if filename == "" {
		filename = "cairn-" + s.Version + ".cairn"
	}
	return store.Package{AppID: appID, Version: s.Version, Board: s.Board, Filename: filename, File: s.File, Size: s.Size,
		SHA256: s.SHA256, SHA1: s.SHA1, Signature: s.Signature, SignatureError: s.SignatureError, ReleaseNotes: notes, CreatedBy: by}
}

// Store reads a payload from r into the directory and verifies it. Bytes that are no
// payload are refused (ErrNotPayload) and leave nothing behind; a payload that does not
// verify is stored, as unverified, with the reason.
func (d *Dir) Store(ctx context.Context, r io.Reader) (*Stored, error) {
	if err := os.MkdirAll(d.Path, 0o755); err != nil {
		return nil, fmt.Errorf("payload directory %s: %w", d.Path, err)
	}
	tmp, err := os.CreateTemp(d.Path, ".upload-*")
	if err != nil {
		return nil, fmt.Errorf("payload directory %s: %w", d.Path, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	limit := d.MaxSize
	if limit <= 0 {
		limit = DefaultMaxSize
	}
	h256, h1 := sha256.New(), sha1.New()
	n, err := io.Copy(io.MultiWriter(tmp, h256, h1), io.LimitReader(ctxReader{ctx, r}, limit+1))
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	if n > limit {
		return nil, fmt.Errorf("upload: %w (%d bytes)", ErrTooLarge, limit)
	}
	st := &Stored{Size: n, SHA256: hex.EncodeToString(h256.Sum(nil)), SHA1: base64.StdEncoding.EncodeToString(h1.Sum(nil))}
	hdr, err := payload.ReadHeader(io.NewSectionReader(tmp, 0, n))
	if err != nil {
		return nil, fmt.Errorf("upload of %d bytes: %w: %w", n, ErrNotPayload, err)
	}
	st.Version, st.Board = hdr.Manifest.Version, hdr.Manifest.Board
	st.Signature = store.SignatureVerified
	if _, err := payload.VerifyAll(tmp, n, d.Keys); err != nil {
		st.Signature, st.SignatureError = store.SignatureUnverified, err.Error()
		if errors.Is(err, payload.ErrSignature) && len(d.Keys) > 0 {
			st.SignatureError = "signed by none of the console's keys: " + err.Error()
		}
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	st.File = st.SHA256 + ".cairn"
	if err := os.Rename(tmp.Name(), filepath.Join(d.Path, st.File)); err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	if err := syncDir(d.Path); err != nil {
		return nil, err
	}
	return st, nil
}

// StoreFile stores the payload file at path.
func (d *Dir) StoreFile(ctx context.Context, path string) (*Stored, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := d.Store(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("payload %s: %w", path, err)
	}
	return st, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// validFile reports whether name is a file Store writes (no path, no dot files).
func validFile(name string) bool {
	return strings.HasSuffix(name, ".cairn") && !strings.ContainsAny(name, "/\\\x00") && !strings.HasPrefix(name, ".")
}

// Remove deletes a stored file.
func (d *Dir) Remove(name string) error {
	if !validFile(name) {
		return fmt.Errorf("payload file %q: %w", name, os.ErrNotExist)
	}
	err := os.Remove(filepath.Join(d.Path, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Serve writes a package's file to the response, with Range and conditional requests
// (http.ServeContent).
func (d *Dir) Serve(w http.ResponseWriter, r *http.Request, p *store.Package) {
	if !validFile(p.File) {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(filepath.Join(d.Path, p.File))
	if err != nil {
		http.Error(w, "payload file missing", http.StatusNotFound)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	// The file's name is its SHA-256: it never changes under a URL.
	w.Header().Set("ETag", `"`+p.SHA256+`"`)
	http.ServeContent(w, r, p.Filename, st.ModTime(), f)
}

// ctxReader stops reading when ctx ends (a client that went away mid-upload).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
