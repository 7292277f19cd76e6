package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cairn-os/cairn/internal/atomicfile"
	"github.com/cairn-os/cairn/runtime/image"
	"golang.org/x/sys/unix"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrNotFound   = errors.New("image not found")
	ErrAmbiguous  = errors.New("image reference is ambiguous")
	ErrDigest     = errors.New("content does not match its digest")
	ErrDependency = errors.New("image dependency not in store")
	ErrCorrupt    = errors.New("store content is damaged")
	// ErrTooLarge marks an image refused because extracting it would go past its Limits.
	ErrTooLarge = errors.New("image too large")
)

// ImportOptions describe where an image came from and how far it is trusted.
type ImportOptions struct {
	// Name is the reference the image was fetched as (appc name or OCI reference). For an ACI
	// the manifest's name wins; for an OCI image it is the image's name in the store.
	Name string
	// Source is the URL or path the image came from.
	Source string
	// Trusted says the image's signature was verified: only then are device nodes,
	// setuid/setgid bits and file capabilities kept.
	Trusted bool
	// Signer names the key that verified the signature (a fingerprint), when Trusted.
	Signer string
	// Privileged keeps device nodes, setuid/setgid bits and file capabilities of an image
	// whose signature was not verified, because the caller trusts where it came from (the
	// CRI trusts the registry it pulls from, as containerd does). The image is not Trusted.
	Privileged bool
	// Limits bound what the import may extract; zero fields are DefaultLimits'.
	Limits Limits
}

// Store is an open image store. Its methods are safe for concurrent use by goroutines and by
// other processes that open the same directory.
type Store struct {
	dir string // <data dir>/cas
	// Log receives progress and warnings (dropped device nodes, removed trees). Open sets it
	// to slog.Default(); callers may replace it.
	Log *slog.Logger
	// InUse, when set, names the images that pods still use; GC keeps them whatever their age.
	InUse func(ctx context.Context) ([]string, error)
	// Now is the clock (tests replace it).
	Now func() time.Time
	// owners: apply tar owners (only root can).
	owners bool
	// hook, when set (by tests), runs at named points of an import, e.g. to kill the process there.
	hook func(point string)
}

func (s *Store) crashPoint(point string) {
	if s.hook != nil {
		s.hook(point)
	}
}

// Open opens (creating it if needed) the store under dataDir (rkt's --dir) and removes what
// interrupted imports left behind, unless another process is importing right now.
func Open(dataDir string) (*Store, error) {
	s := &Store{
		dir:    filepath.Join(dataDir, "cas"),
		Log:    slog.Default(),
		Now:    time.Now,
		owners: os.Geteuid() == 0,
	}
	for _, d := range []string{"blob/sha512", "blob/sha256", "tree", "treelock", "image", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("open store %s: %w", dataDir, err)
		}
	}
	l, ok, err := tryLockFile(s.path("lock"), unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", dataDir, err)
	}
	if ok {
		defer l.Unlock()
		if err := s.clearTemp(); err != nil {
			return nil, fmt.Errorf("open store %s: %w", dataDir, err)
		}
	}
	return s, nil
}

// Dir is the store's directory (<data dir>/cas).
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

// clearTemp removes interrupted imports; the caller holds the store lock exclusively.
func (s *Store) clearTemp() error {
	ents, err := os.ReadDir(s.path("tmp"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := s.path("tmp", e.Name())
		if err := removeAll(p); err != nil {
			return fmt.Errorf("remove stale %s: %w", p, err)
		}
	}
	return atomicfile.RemoveStale(s.path("image"))
}

// removeAll removes a tree even where its directories are read-only (as an unprivileged
// user's extracted images can be).
func removeAll(p string) error {
	err := os.RemoveAll(p)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	werr := filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if err := os.Chmod(q, 0o700); err != nil {
			return fmt.Errorf("chmod %s: %w", q, err)
		}
		return nil
	})
	if err := os.RemoveAll(p); err != nil {
		return errors.Join(err, werr) // werr names a directory that stayed read-only
	}
	return nil
}

// removeTemp removes an import's temporary directory once the import is over; one that is
// left is removed by the next Open or GC.
func (s *Store) removeTemp(dir string) {
	if err := removeAll(dir); err != nil {
		s.Log.Warn("temporary directory left behind", "dir", dir, "err", err)
	}
}

func (s *Store) lock(ctx context.Context, how int) (*flock, error) {
	return lockFile(ctx, s.path("lock"), how)
}

// record is an image's metadata file, cas/image/<id>.json.
type record struct {
	ID         string            `json:"id"`
	Format     image.Format      `json:"format"`
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels,omitempty"`
	ImportTime time.Time         `json:"importTime"`
	LastUsed   time.Time         `json:"lastUsed"`
	Source     string            `json:"source,omitempty"`
	Trusted    bool              `json:"trusted"`
	Signer     string            `json:"signer,omitempty"`
	// Privileged says the import kept the privileged entries without Trusted.
	Privileged bool  `json:"privileged,omitempty"`
	Size       int64 `json:"size"`
	// Blobs are the digests ("sha512:<hex>", "sha256:<hex>") of the blobs the image uses.
	Blobs []string `json:"blobs"`
	// Trees are the keys of the trees the image uses itself, lowest first (an ACI's
	// dependencies are images of their own, resolved when the image is read).
	Trees []string `json:"trees"`
	// Config is the digest of an OCI image's config blob.
	Config string `json:"config,omitempty"`
	// Dropped counts the entries an unverified import left out or stripped.
	Dropped int `json:"dropped,omitempty"`
	// Aliases are other references the same OCI image was fetched as.
	Aliases []string `json:"aliases,omitempty"`
}

func recordFile(id string) string { return strings.Replace(id, ":", "-", 1) + ".json" }

func (s *Store) writeRecord(r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(s.path("image", recordFile(r.ID)), append(b, '\n'), 0o644)
}

func (s *Store) readRecord(id string) (*record, error) {
	b, err := os.ReadFile(s.path("image", recordFile(id)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%w: metadata of %s: %v", ErrCorrupt, id, err)
	}
	return &r, nil
}

func (s *Store) records() ([]*record, error) {
	ents, err := os.ReadDir(s.path("image"))
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var rs []*record
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".json") {
			continue
		}
		id := strings.TrimSuffix(n, ".json")
		if strings.HasPrefix(id, "sha256-") {
			id = "sha256:" + id[len("sha256-"):]
		}
		r, err := s.readRecord(id)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].ImportTime.Before(rs[j].ImportTime) })
	return rs, nil
}

// resolve finds the one record that ref names: a full ID, a unique ID prefix, or
// name[:version]. A name that several images carry resolves to the latest imported.
func (s *Store) resolve(ref string) (*record, error) {
	rs, err := s.records()
	if err != nil {
		return nil, err
	}
	return resolveIn(rs, ref)
}

func resolveIn(rs []*record, ref string) (*record, error) {
	norm := ref
	if strings.HasPrefix(norm, "sha256-") {
		norm = "sha256:" + norm[len("sha256-"):]
	}
	if strings.HasPrefix(norm, "sha512-") || strings.HasPrefix(norm, "sha256:") {
		var found []*record
		for _, r := range rs {
			if strings.HasPrefix(r.ID, norm) {
				found = append(found, r)
			}
		}
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
		case 1:
			return found[0], nil
		default:
			return nil, fmt.Errorf("%w: %s matches %d images", ErrAmbiguous, ref, len(found))
		}
	}
	// An image named exactly so wins over a Docker image that answers to the name as a short
	// name (an ACI "redis" over docker.io/library/redis:latest), as in rkt, whose Docker images
	// had only their registry names; the newest of each.
	var best, short *record
	for _, r := range rs { // sorted by import time: the last match is the newest
		switch {
		case !matchName(r, ref):
		case r.Format == image.OCI && r.Name != ref && !slices.Contains(r.Aliases, ref):
			short = r
		default:
			best = r
		}
	}
	if best == nil {
		best = short
	}
	if best == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	return best, nil
}

// matchName reports whether ref ("name" or "name:version") names r.
func matchName(r *record, ref string) bool {
	if r.Name == ref {
		return true
	}
	if r.Format == image.OCI {
		// docker.io/library/busybox:latest answers to busybox, busybox:latest,
		// library/busybox and docker.io/library/busybox, as docker's short names do.
		for _, n := range append([]string{r.Name}, r.Aliases...) {
			for _, c := range []string{n, strings.TrimPrefix(n, "docker.io/"), strings.TrimPrefix(n, "docker.io/library/")} {
				if c == ref || c == ref+":latest" {
					return true
				}
			}
		}
		return false
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 {
		return false
	}
	return r.Name == ref[:i] && r.Labels["version"] == ref[i+1:]
}

// Get returns the image that ref names (full ID, unique ID prefix, or name[:version]), with
// its trees (and an ACI's dependencies' trees, lowest first) ready for overlayfs.
func (s *Store) Get(ctx context.Context, ref string) (*image.Image, error) {
	rs, err := s.records()
	if err != nil {
		return nil, err
	}
	r, err := resolveIn(rs, ref)
	if err != nil {
		return nil, err
	}
	return s.image(rs, r, nil)
}

// List returns every image in the store, oldest import first. An ACI whose dependencies are
// missing is listed with only its own tree in Layers.
func (s *Store) List(ctx context.Context) ([]*image.Image, error) {
	rs, err := s.records()
	if err != nil {
		return nil, err
	}
	imgs := make([]*image.Image, 0, len(rs))
	for _, r := range rs {
		img, err := s.image(rs, r, nil)
		if errors.Is(err, ErrDependency) {
			img, err = s.image(nil, r, nil)
		}
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

// TreePath is the absolute path of the tree with key k.
func (s *Store) TreePath(k string) string { return s.path("tree", k) }

// BlobPath is the path of the blob with digest d ("sha512:<hex>" or "sha256:<hex>").
func (s *Store) BlobPath(d string) string {
	alg, hex, _ := strings.Cut(d, ":")
	return s.path("blob", alg, hex)
}

// Touch records that a pod uses the image now (rkt's "last used").
func (s *Store) Touch(ctx context.Context, id string) error {
	l, err := s.lock(ctx, unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer l.Unlock()
	r, err := s.readRecord(id)
	if err != nil {
		return err
	}
	r.LastUsed = s.Now().UTC()
	return s.writeRecord(r)
}

// Remove deletes the image that ref names and frees the blobs and trees that no other image uses.
func (s *Store) Remove(ctx context.Context, ref string) error {
	l, err := s.lock(ctx, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer l.Unlock()
	r, err := s.resolve(ref)
	if err != nil {
		return err
	}
	if err := s.removeRecord(r); err != nil {
		return err
	}
	return s.sweep(ctx)
}

func (s *Store) removeRecord(r *record) error {
	p := s.path("image", recordFile(r.ID))
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("remove image %s: %w", r.ID, err)
	}
	if err := atomicfile.SyncDir(s.path("image")); err != nil {
		return fmt.Errorf("remove image %s: %w", r.ID, err)
	}
	s.Log.Debug("removed image", "id", r.ID, "name", r.Name)
	return nil
}

// GC removes images not used for longer than gracePeriod (a negative period keeps every
// image), except those InUse names, then every blob and tree that no image references, and
// leftovers of interrupted imports. It returns the IDs of the removed images.
func (s *Store) GC(ctx context.Context, gracePeriod time.Duration) (removed []string, err error) {
	l, err := s.lock(ctx, unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	if err := s.clearTemp(); err != nil {
		return nil, err
	}
	if gracePeriod >= 0 {
		keep := map[string]bool{}
		if s.InUse != nil {
			ids, err := s.InUse(ctx)
			if err != nil {
				return nil, fmt.Errorf("gc: images in use: %w", err)
			}
			for _, id := range ids {
				if strings.HasPrefix(id, "sha256-") {
					id = "sha256:" + id[len("sha256-"):]
				}
				keep[id] = true
			}
		}
		rs, err := s.records()
		if err != nil {
			return nil, err
		}
		deadline := s.Now().Add(-gracePeriod)
		for _, r := range rs {
			if keep[r.ID] || r.LastUsed.After(deadline) {
				continue
			}
			if err := s.removeRecord(r); err != nil {
				return removed, err
			}
			removed = append(removed, r.ID)
		}
	}
	return removed, s.sweep(ctx)
}

// sweep removes blobs, trees and tree locks that no image references. The caller holds the
// store lock exclusively, so no import is between writing a tree and its metadata.
func (s *Store) sweep(ctx context.Context) error {
	rs, err := s.records()
	if err != nil {
		return err
	}
	blobs, trees := map[string]bool{}, map[string]bool{}
	for _, r := range rs {
		for _, b := range r.Blobs {
			blobs[b] = true
		}
		for _, t := range r.Trees {
			trees[t] = true
		}
	}
	for _, alg := range []string{"sha512", "sha256"} {
		ents, err := os.ReadDir(s.path("blob", alg))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if blobs[alg+":"+e.Name()] {
				continue
			}
			if err := os.Remove(s.path("blob", alg, e.Name())); err != nil {
				return fmt.Errorf("remove blob %s:%s: %w", alg, e.Name(), err)
			}
			s.Log.Debug("removed blob", "digest", alg+":"+e.Name())
		}
	}
	ents, err := os.ReadDir(s.path("tree"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		if trees[e.Name()] {
			continue
		}
		// Rename first: a tree disappears at once, even if removing its files is interrupted.
		tmp, err := os.MkdirTemp(s.path("tmp"), "rm-")
		if err != nil {
			return err
		}
		if err := os.Rename(s.path("tree", e.Name()), filepath.Join(tmp, "tree")); err != nil {
			return fmt.Errorf("remove tree %s: %w", e.Name(), err)
		}
		if err := removeAll(tmp); err != nil {
			return fmt.Errorf("remove tree %s: %w", e.Name(), err)
		}
		s.Log.Debug("removed tree", "tree", e.Name())
	}
	locks, err := os.ReadDir(s.path("treelock"))
	if err != nil {
		return err
	}
	for _, e := range locks {
		if !trees[strings.TrimSuffix(e.Name(), ".lock")] {
			os.Remove(s.path("treelock", e.Name()))
		}
	}
	return nil
}
