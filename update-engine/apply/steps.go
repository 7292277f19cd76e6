package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/update-engine/extensions"
	"github.com/cairn-os/cairn/update-engine/omaha"
	"github.com/cairn-os/cairn/update-engine/payload"
	"github.com/cairn-os/cairn/update-engine/slots"
)

// Files in StateDir.
const (
	partialFile  = "payload.partial"
	payloadFile  = "payload.cairn"
	identityFile = "download.json"
	// PendingFile records an applied update until the engine has reported how the reboot
	// into it went.
	PendingFile = "pending.json"
)

// Pending is the record of an applied update, read after the reboot.
type Pending struct {
	PreviousVersion string          `json:"previous_version"`
	PreviousSlot    disklayout.Slot `json:"previous_slot"`
	NewVersion      string          `json:"new_version"`
	NewSlot         disklayout.Slot `json:"new_slot"`
	NewSize         int64           `json:"new_size"`
	Applied         time.Time       `json:"applied"`
}

// ReadPending returns the pending record in dir, or nil if there is none.
func ReadPending(dir string) (*Pending, error) {
	b, err := os.ReadFile(filepath.Join(dir, PendingFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Pending
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, PendingFile), err)
	}
	return &p, nil
}

// pool returns the run's I/O buffers, made on first use and shared by the steps.
func (r *run) pool() (*bufPool, error) {
	if r.bufs == nil {
		p, err := newBufPool()
		if err != nil {
			return nil, err
		}
		r.bufs = p
	}
	return r.bufs, nil
}

func (r *run) path(name string) string { return filepath.Join(r.a.StateDir, name) }

// progressWriter counts the running step's bytes and reports at most every 250 ms, and at
// the end.
type progressWriter struct {
	r          *run
	done, tot  int64
	lastReport time.Time
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.at(p.done + int64(len(b)))
	return len(b), nil
}

// at reports that done bytes of the step are done.
func (p *progressWriter) at(done int64) {
	p.done = done
	if now := time.Now(); now.Sub(p.lastReport) > 250*time.Millisecond || p.done == p.tot {
		p.lastReport = now
		p.r.progress(p.done, p.tot)
	}
}

func (r *run) download(ctx context.Context) error {
	req := r.req
	if req.Size <= 0 || req.Size > MaxPayloadSize || len(req.SHA256) != 64 || req.URL == "" {
		return coded(omaha.ErrorCodeOmahaResponseInvalid, fmt.Errorf("%w: url %q size %d sha256 %q", ErrMismatch, req.URL, req.Size, req.SHA256))
	}
	r.file = r.path(payloadFile)
	id, _ := json.Marshal(req)
	if old, err := os.ReadFile(r.path(identityFile)); err != nil || string(old) != string(id) {
		// Another payload (or none) was being fetched: start from zero.
		os.Remove(r.path(partialFile))
		os.Remove(r.file)
		if err := atomicfile.WriteFile(r.path(identityFile), id, 0o600); err != nil {
			return err
		}
	}
	if st, err := os.Stat(r.file); err == nil && st.Size() == req.Size {
		r.a.log().Info("payload already downloaded", "path", r.file)
		return r.checkDownload()
	}
	f, err := os.OpenFile(r.path(partialFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if have > req.Size {
		if err := f.Truncate(0); err != nil {
			return err
		}
		have, _ = f.Seek(0, io.SeekStart)
	}
	// Hash while the bytes arrive instead of reading the file again afterwards; a resumed
	// download first hashes the part it already has.
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, have)); err != nil {
		return fmt.Errorf("%s: %w", r.path(partialFile), err)
	}
	if have < req.Size {
		if err := r.fetch(ctx, f, have, h); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(r.path(partialFile), r.file); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(r.a.StateDir); err != nil {
		return err
	}
	return r.compareDownload(req.Size, h.Sum(nil))
}

// MaxPayloadSize bounds what a server may announce: two parts at their maximum and a header.
const MaxPayloadSize = 2*payload.MaxPartSize + payload.MaxManifestLen + 1024

// StallTimeout ends a download that has received nothing for this long; the next run
// resumes it.
var StallTimeout = 2 * time.Minute

// stallReader cancels the request when no bytes arrive for a while.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.d)
	}
	return n, err
}

// fetch appends the payload from offset have to f, and what it appends to h.
func (r *run) fetch(ctx context.Context, f *os.File, have int64, h hash.Hash) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(StallTimeout, func() { cancel(fmt.Errorf("no data for %s", StallTimeout)) })
	defer stall.Stop()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, r.req.URL, nil)
	if err != nil {
		return err
	}
	if have > 0 {
		hreq.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		r.a.log().Info("resuming download", "url", r.req.URL, "offset", have, "size", r.req.Size)
	}
	hc := r.a.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(hreq)
	if err != nil {
		return fmt.Errorf("download %s: %w", r.req.URL, err)
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusPartialContent && have > 0:
		start, err := contentRangeStart(res.Header.Get("Content-Range"))
		if err != nil || start != have {
			return fmt.Errorf("download %s: server answered range %q for offset %d", r.req.URL, res.Header.Get("Content-Range"), have)
		}
	case res.StatusCode == http.StatusOK:
		if have > 0 {
			r.a.log().Info("server ignored the range; downloading from the start", "url", r.req.URL)
		}
		if err := f.Truncate(0); err != nil {
			return err
		}
		if have, err = f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		h.Reset()
	default:
		return fmt.Errorf("download %s: HTTP %s", r.req.URL, res.Status)
	}
	pw := &progressWriter{r: r, done: have, tot: r.req.Size}
	body := &stallReader{r: res.Body, timer: stall, d: StallTimeout}
	n, err := io.CopyBuffer(io.MultiWriter(f, h, pw), io.LimitReader(body, r.req.Size-have+1), make([]byte, 1<<20))
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		return fmt.Errorf("download %s: after %d bytes: %w", r.req.URL, have+n, err)
	}
	if have+n != r.req.Size {
		return coded(omaha.ErrorCodePayloadSizeMismatch, fmt.Errorf("download %s: got %d bytes, server announced %d: %w", r.req.URL, have+n, r.req.Size, payload.ErrTruncated))
	}
	return nil
}

func contentRangeStart(v string) (int64, error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, fmt.Errorf("content-range %q", v)
	}
	first, _, _ := strings.Cut(rest, "-")
	return strconv.ParseInt(first, 10, 64)
}

// checkDownload compares a payload downloaded by an earlier run with what the server
// announced.
func (r *run) checkDownload() error {
	f, err := os.Open(r.file)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return err
	}
	return r.compareDownload(n, h.Sum(nil))
}

// compareDownload compares the downloaded file's size and hash with what the server
// announced, and removes a file that differs.
func (r *run) compareDownload(n int64, sum []byte) error {
	if got := hex.EncodeToString(sum); n != r.req.Size || got != r.req.SHA256 {
		os.Remove(r.file)
		return coded(omaha.ErrorCodePayloadHashMismatch, fmt.Errorf("payload %s: %d bytes sha256 %s, server announced %d bytes sha256 %s: %w",
			r.req.URL, n, got, r.req.Size, r.req.SHA256, payload.ErrHashMismatch))
	}
	return nil
}

func (r *run) verifyPayload(ctx context.Context) error {
	f, err := os.Open(r.file)
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := payload.ReadHeader(f)
	if err != nil {
		return coded(omaha.ErrorCodePayloadVerification, fmt.Errorf("payload %s: %w", r.file, err))
	}
	if err := h.Verify(r.a.Keys); err != nil {
		return fmt.Errorf("payload %s: %w", r.file, err)
	}
	m := &h.Manifest
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() != h.Size() {
		return coded(omaha.ErrorCodePayloadSizeMismatch, fmt.Errorf("payload %s: %d bytes, manifest describes %d: %w", r.file, st.Size(), h.Size(), payload.ErrTruncated))
	}
	if m.Version != r.req.Version {
		return coded(omaha.ErrorCodeOmahaResponseInvalid, fmt.Errorf("%w: server announced version %s, signed manifest says %s", ErrMismatch, r.req.Version, m.Version))
	}
	if m.Board != r.a.Board {
		return coded(omaha.ErrorCodeWrongBoard, fmt.Errorf("%w: payload board %s, this machine is %s", ErrWrongBoard, m.Board, r.a.Board))
	}
	if payload.CompareVersions(m.Version, r.a.CurrentVersion) <= 0 && !r.opts.Force {
		return coded(omaha.ErrorCodeNotNewer, fmt.Errorf("%w: payload %s, running %s (an operator can force it)", ErrNotNewer, m.Version, r.a.CurrentVersion))
	}
	if m.MinSourceVersion != "" && payload.CompareVersions(r.a.CurrentVersion, m.MinSourceVersion) < 0 && !r.opts.Force {
		return coded(omaha.ErrorCodeNotNewer, fmt.Errorf("%w: running %s, payload needs at least %s", ErrTooOld, r.a.CurrentVersion, m.MinSourceVersion))
	}
	if !slots.ValidVersion(m.Version) {
		return coded(omaha.ErrorCodePayloadVerification, fmt.Errorf("payload version %q cannot name a boot entry", m.Version))
	}
	for _, p := range m.Parts {
		if err := payload.CheckCompressed(io.NewSectionReader(f, p.Offset, p.CompressedSize), p); err != nil {
			return coded(omaha.ErrorCodePayloadHashMismatch, fmt.Errorf("payload %s: %w", r.file, err))
		}
	}
	r.header, r.manifest = h, m
	return nil
}

func (r *run) invalidate(ctx context.Context) error {
	return r.a.Slots.Invalidate(ctx, r.target)
}

func (r *run) usrDevice() (string, payload.Part, error) {
	dev, err := r.a.Slots.PartitionOf(r.target)
	if err != nil {
		return "", payload.Part{}, err
	}
	p, _ := r.manifest.Part(payload.PartUSR)
	return dev, p, nil
}

func (r *run) writeUSR(ctx context.Context) error {
	dev, part, err := r.usrDevice()
	if err != nil {
		return err
	}
	src, err := os.Open(r.file)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, direct, err := openDevice(dev, os.O_WRONLY)
	if err != nil {
		return coded(omaha.ErrorCodeInstallDeviceOpenError, fmt.Errorf("slot %s partition %s: %w", r.target, dev, err))
	}
	defer dst.Close()
	capacity, err := dst.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if capacity < part.Size {
		return fmt.Errorf("slot %s partition %s: %d bytes, the /usr image needs %d", r.target, dev, capacity, part.Size)
	}
	pool, err := r.pool()
	if err != nil {
		return err
	}
	// The decoder hands its blocks to dw, which copies them into large aligned buffers that
	// a goroutine writes while the next one fills. Nothing is hashed here: the compressed
	// bytes were checked against the signed manifest in verify-payload, the decoder checks
	// the exact size (and zstd's frame checksum), and verify-usr hashes what the device
	// gives back before anything can make the slot bootable. Hashing the decoder's output
	// as well would hash the same gigabyte twice.
	pw := &progressWriter{r: r, tot: part.Size}
	dw := newDeviceWriter(ctx, dst, direct, pool, pw.at)
	err = payload.Decode(dw, io.NewSectionReader(src, part.Offset, part.CompressedSize), part)
	if cerr := dw.Close(); err == nil && cerr != nil {
		return fmt.Errorf("slot %s partition %s: %w", r.target, dev, cerr)
	}
	if err != nil {
		if ctx.Err() != nil { // stopped, not a bad payload
			return fmt.Errorf("slot %s partition %s: %w", r.target, dev, err)
		}
		return coded(omaha.ErrorCodePayloadHashMismatch, fmt.Errorf("slot %s partition %s: %w", r.target, dev, err))
	}
	// O_DIRECT bypasses the page cache, not the disk's own cache: flush that too.
	if err := dst.Sync(); err != nil {
		return fmt.Errorf("slot %s partition %s: sync: %w", r.target, dev, err)
	}
	return dst.Close()
}

func (r *run) verifyUSR(ctx context.Context) error {
	dev, part, err := r.usrDevice()
	if err != nil {
		return err
	}
	f, direct, err := openDevice(dev, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer f.Close()
	if !direct {
		// Drop cached pages so that the hash is of what reached the device, not of the cache,
		// and again after, to leave the running system no pages of a /usr it does not use.
		// fadvise fails only on a bad descriptor or advice.
		_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
		defer func() { _ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) }()
	}
	pool, err := r.pool()
	if err != nil {
		return err
	}
	h := sha256.New()
	pw := &progressWriter{r: r, tot: part.Size}
	n, err := hashDevice(ctx, f, part.Size, h, pool, pw.at)
	if err != nil {
		return fmt.Errorf("slot %s partition %s: read back: %w", r.target, dev, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != part.Size || got != part.SHA256 {
		return fmt.Errorf("slot %s partition %s: read back %d bytes sha256 %s, want %s: %w", r.target, dev, n, got, part.SHA256, payload.ErrHashMismatch)
	}
	return nil
}

func (r *run) writeUKI(ctx context.Context) error {
	part, _ := r.manifest.Part(payload.PartUKI)
	src, err := os.Open(r.file)
	if err != nil {
		return err
	}
	defer src.Close()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(payload.Extract(pw, io.NewSectionReader(src, part.Offset, part.CompressedSize), part))
	}()
	err = r.a.Slots.StageUKI(ctx, r.manifest.Version, r.target, pr)
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return fmt.Errorf("slot %s: write UKI: %w", r.target, err)
	}
	// Read it back from the ESP before it may become bootable.
	rc, err := r.a.Slots.OpenStaged(ctx, r.manifest.Version, r.target)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return fmt.Errorf("slot %s: read back UKI: %w", r.target, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != part.Size || got != part.SHA256 {
		return fmt.Errorf("slot %s: UKI on the ESP is %d bytes sha256 %s, want %s: %w", r.target, n, got, part.SHA256, payload.ErrHashMismatch)
	}
	return nil
}

// stageExtensions fetches, for the new version, the image of every system extension the host
// activated, as the payload's manifest names them (update-engine/extensions).
func (r *run) stageExtensions(ctx context.Context) error {
	x := r.a.Extensions
	if x == nil || r.manifest.Version == r.a.CurrentVersion {
		// Reinstalling the running version: the extensions staged for it fit already.
		return nil
	}
	var images []extensions.Image
	for _, e := range r.manifest.Extensions {
		images = append(images, extensions.Image{Name: e.Name, URL: e.URL, Size: e.Size, SHA256: e.SHA256, USRHash: e.USRHash})
	}
	ops, err := x.Stage(ctx, r.a.CurrentVersion, r.manifest.Version, images)
	switch {
	case errors.Is(err, extensions.ErrMissing):
		return coded(omaha.ErrorCodeError, err)
	case errors.Is(err, extensions.ErrImage):
		return coded(omaha.ErrorCodePayloadHashMismatch, err)
	case err != nil:
		return err
	}
	for _, op := range ops {
		r.a.log().Info("extension staged", "step", op.String())
	}
	return nil
}

func (r *run) record(ctx context.Context) error {
	now := time.Now
	if r.a.Now != nil {
		now = r.a.Now
	}
	p := Pending{PreviousVersion: r.a.CurrentVersion, PreviousSlot: r.target.Other(), NewVersion: r.manifest.Version,
		NewSlot: r.target, NewSize: r.req.Size, Applied: now().UTC()}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(r.path(PendingFile), append(b, '\n'), 0o600)
}

func (r *run) setNext(ctx context.Context) error {
	tries := r.a.Tries
	if tries == 0 {
		tries = 3
	}
	return r.a.Slots.SetNext(ctx, r.manifest.Version, r.target, tries)
}

func (r *run) cleanup(ctx context.Context) error {
	for _, n := range []string{payloadFile, partialFile, identityFile} {
		if err := os.Remove(r.path(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}
