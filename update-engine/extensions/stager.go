package extensions

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/internal/gpt"
)

// Stager carries out Plan on a host's directories.
type Stager struct {
	EtcDir   string       // DefaultEtcDir unless set
	StoreDir string       // DefaultStoreDir unless set
	HTTP     *http.Client // nil: http.DefaultClient
	Log      *slog.Logger // nil: discarded
}

func (s *Stager) etc() string {
	if s.EtcDir == "" {
		return DefaultEtcDir
	}
	return s.EtcDir
}

func (s *Stager) store() string {
	if s.StoreDir == "" {
		return DefaultStoreDir
	}
	return s.StoreDir
}

func (s *Stager) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Read returns what the host has. Only regular NAME.raw files in the etc directory count:
// renaming a symlink into the store would move the link, not its image, so a symlinked image
// (which systemd-sysext follows on the running host) stays where it is and is not staged.
func (s *Stager) Read() (State, error) {
	st := State{Store: map[string]map[string]string{}}
	ents, err := os.ReadDir(s.etc())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("extensions %s: %w", s.etc(), err)
	}
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".raw"); ok && e.Type().IsRegular() && nameRE.MatchString(n) {
			st.Etc = append(st.Etc, n)
		}
	}
	vers, err := os.ReadDir(s.store())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("extension store %s: %w", s.store(), err)
	}
	for _, v := range vers {
		if !v.IsDir() || !versionRE.MatchString(v.Name()) {
			continue
		}
		dir := filepath.Join(s.store(), v.Name())
		if err := atomicfile.RemoveStale(dir); err != nil {
			return st, fmt.Errorf("extension store %s: %w", dir, err)
		}
		imgs, err := os.ReadDir(dir)
		if err != nil {
			return st, fmt.Errorf("extension store %s: %w", dir, err)
		}
		m := map[string]string{}
		for _, e := range imgs {
			n, ok := strings.CutSuffix(e.Name(), ".raw")
			if !ok || !e.Type().IsRegular() {
				continue
			}
			m[n] = readHash(filepath.Join(dir, n+".usrhash"))
		}
		st.Store[v.Name()] = m
	}
	return st, nil
}

func readHash(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Stage makes the store hold, for next, an image of every extension active on current, as
// images describes them (see Plan), and returns the steps it took.
func (s *Stager) Stage(ctx context.Context, current, next string, images []Image) ([]Op, error) {
	st, err := s.Read()
	if err != nil {
		return nil, err
	}
	ops, err := Plan(st, current, next, images)
	if err != nil {
		return nil, err
	}
	for _, op := range ops {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.log().Info("extension", "op", op.Kind.String(), "name", op.Name, "version", op.Version)
		if err := s.apply(ctx, op); err != nil {
			return nil, fmt.Errorf("extension %s: %w", op, err)
		}
	}
	return ops, nil
}

func (s *Stager) apply(ctx context.Context, op Op) error {
	dir := filepath.Join(s.store(), op.Version)
	switch op.Kind {
	case Adopt:
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		// The image first: a kill between the two renames leaves it in the store without
		// its root hash (merged without dm-verity until the next run moves the hash).
		for _, ext := range []string{".raw", ".usrhash"} {
			err := os.Rename(filepath.Join(s.etc(), op.Name+ext), filepath.Join(dir, op.Name+ext))
			if err != nil && !(ext == ".usrhash" && errors.Is(err, fs.ErrNotExist)) {
				return err
			}
		}
		if err := atomicfile.SyncDir(dir); err != nil {
			return err
		}
		return atomicfile.SyncDir(s.etc())
	case Fetch:
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		// The root hash goes last and is removed first: a .usrhash that matches means the
		// image beside it is complete (Read, Plan).
		os.Remove(filepath.Join(dir, op.Name+".usrhash"))
		if err := atomicfile.Write(filepath.Join(dir, op.Name+".raw"), 0o644, func(w io.Writer) error {
			return s.fetch(ctx, op.Image, w)
		}); err != nil {
			return err
		}
		return atomicfile.WriteFile(filepath.Join(dir, op.Name+".usrhash"), []byte(op.Image.USRHash+"\n"), 0o644)
	case Drop:
		if err := os.Remove(filepath.Join(dir, op.Name+".usrhash")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return os.Remove(filepath.Join(dir, op.Name+".raw"))
	case Prune:
		return os.RemoveAll(dir)
	}
	return fmt.Errorf("unknown step %v", op.Kind)
}

// fetch writes the image to w (a temporary file) and checks it: exactly Size bytes with the
// given SHA-256, and a GPT whose usr partition carries the UUID of the root hash.
func (s *Stager) fetch(ctx context.Context, im Image, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, im.URL, nil)
	if err != nil {
		return err
	}
	c := s.HTTP
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", im.URL, resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(bufio.NewReader(resp.Body), im.Size+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", im.URL, err)
	}
	if n != im.Size {
		return fmt.Errorf("%w: %s is %d bytes, want %d", ErrImage, im.URL, n, im.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != im.SHA256 {
		return fmt.Errorf("%w: %s has sha256 %s, want %s", ErrImage, im.URL, got, im.SHA256)
	}
	f, ok := w.(io.ReaderAt)
	if !ok {
		return fmt.Errorf("%s: cannot read the written image back", im.URL)
	}
	t, err := gpt.Read(f, im.Size, 512)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrImage, im.URL, err)
	}
	want := usrPartitionUUID(im.USRHash)
	for _, p := range t.Partitions {
		if p.GUID.String() == want {
			return nil
		}
	}
	return fmt.Errorf("%w: %s has no partition %s of root hash %s", ErrImage, im.URL, want, im.USRHash)
}
