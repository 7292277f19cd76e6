package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Signature states of a package.
const (
	// SignatureVerified: the payload's ed25519 signature verified against the console's
	// keys and every part matched its signed hash. Only such a package can be published.
	SignatureVerified = "verified"
	// SignatureUnverified: unsigned, signed by a key the console does not have, or with a
	// signature or content that does not verify (SignatureError says which).
	SignatureUnverified = "unverified"
)

// Package is one release of an application: a payload file the console hosts.
type Package struct {
	ID             string    `json:"id"`
	AppID          string    `json:"app_id"`
	Version        string    `json:"version"`
	Board          string    `json:"board"`
	Filename       string    `json:"filename"`
	File           string    `json:"-"` // in the payload directory
	Size           int64     `json:"size"`
	SHA256         string    `json:"sha256"`
	SHA1           string    `json:"sha1"`
	Signature      string    `json:"signature"`
	SignatureError string    `json:"signature_error,omitempty"`
	ReleaseNotes   string    `json:"release_notes"`
	CreatedAt      time.Time `json:"created_at"`
	CreatedBy      string    `json:"created_by"`
	// Channels are the channels that point at it (filled by Packages and Package).
	Channels []string `json:"channels"`
}

// Verified reports whether the package may be published.
func (p *Package) Verified() bool { return p.Signature == SignatureVerified }

const packageCols = `id, app_id, version, board, filename, file, size, sha256, sha1, signature, signature_error, release_notes, created_at, created_by`

func scanPackage(sc interface{ Scan(...any) error }) (*Package, error) {
	var p Package
	var created int64
	if err := sc.Scan(&p.ID, &p.AppID, &p.Version, &p.Board, &p.Filename, &p.File, &p.Size, &p.SHA256, &p.SHA1,
		&p.Signature, &p.SignatureError, &p.ReleaseNotes, &created, &p.CreatedBy); err != nil {
		return nil, err
	}
	p.CreatedAt = fromMicros(created)
	return &p, nil
}

// CreatePackage records a package. Versions are immutable: a second package of the same
// version is ErrConflict, unless it is the same file (same SHA-256), which returns the
// package there is.
func (s *Store) CreatePackage(ctx context.Context, p Package) (*Package, error) {
	if p.Version == "" || p.Filename == "" || p.SHA256 == "" {
		return nil, fmt.Errorf("package: %w: version, filename and sha256 are required", ErrInvalid)
	}
	if p.Signature != SignatureVerified && p.Signature != SignatureUnverified {
		return nil, fmt.Errorf("package %s: %w: signature %q", p.Version, ErrInvalid, p.Signature)
	}
	p.ID = newID()
	p.CreatedAt = fromMicros(micros(s.now()))
	var existing *Package
	err := s.Write(ctx, func(tx *Tx) error {
		old, err := scanPackage(tx.queryRow(ctx, `SELECT `+packageCols+` FROM packages WHERE app_id = ? AND version = ?`, p.AppID, p.Version))
		if err == nil {
			if old.SHA256 != p.SHA256 {
				return fmt.Errorf("package %s: %w: version %s exists with other content (sha256 %s); versions are immutable: give the new build a new version",
					p.Version, ErrConflict, p.Version, old.SHA256)
			}
			existing = old
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.exec(ctx, `INSERT INTO packages (`+packageCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			p.ID, p.AppID, p.Version, p.Board, p.Filename, p.File, p.Size, p.SHA256, p.SHA1, p.Signature, p.SignatureError,
			p.ReleaseNotes, micros(p.CreatedAt), p.CreatedBy)
		if isForeignKey(err) {
			return fmt.Errorf("package %s: application %s: %w", p.Version, p.AppID, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return s.Package(ctx, existing.AppID, existing.ID)
	}
	p.Channels = []string{}
	return &p, nil
}

// Package finds an application's package by id or version.
func (s *Store) Package(ctx context.Context, appID, ref string) (*Package, error) {
	p, err := scanPackage(s.queryRow(ctx, `SELECT `+packageCols+` FROM packages WHERE app_id = ? AND (id = ? OR version = ?)`, appID, ref, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("package %q: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("package %q: %w", ref, err)
	}
	if err := s.fillChannels(ctx, []*Package{p}); err != nil {
		return nil, err
	}
	return p, nil
}

// PackageByID finds a package of any application, for the payload download path.
func (s *Store) PackageByID(ctx context.Context, id string) (*Package, error) {
	p, err := scanPackage(s.queryRow(ctx, `SELECT `+packageCols+` FROM packages WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("package %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("package %q: %w", id, err)
	}
	return p, nil
}

// Packages lists an application's packages, newest first.
func (s *Store) Packages(ctx context.Context, appID string) ([]*Package, error) {
	rows, err := s.query(ctx, `SELECT `+packageCols+` FROM packages WHERE app_id = ? ORDER BY created_at DESC, version DESC`, appID)
	if err != nil {
		return nil, fmt.Errorf("packages: %w", err)
	}
	defer rows.Close()
	var out []*Package
	for rows.Next() {
		p, err := scanPackage(rows)
		if err != nil {
			return nil, fmt.Errorf("packages: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, s.fillChannels(ctx, out)
}

func (s *Store) fillChannels(ctx context.Context, ps []*Package) error {
	if len(ps) == 0 {
		return nil
	}
	byID := map[string]*Package{}
	for _, p := range ps {
		p.Channels = []string{}
		byID[p.ID] = p
	}
	rows, err := s.query(ctx, `SELECT name, package_id FROM channels WHERE app_id = ? AND package_id IS NOT NULL ORDER BY name`, ps[0].AppID)
	if err != nil {
		return fmt.Errorf("channels: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, pkg string
		if err := rows.Scan(&name, &pkg); err != nil {
			return err
		}
		if p := byID[pkg]; p != nil {
			p.Channels = append(p.Channels, name)
		}
	}
	return rows.Err()
}

// SetReleaseNotes changes a package's release notes.
func (s *Store) SetReleaseNotes(ctx context.Context, appID, id, notes string) error {
	return s.Write(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE packages SET release_notes = ? WHERE app_id = ? AND id = ?`, notes, appID, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("package %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

// DeletePackage removes a package that no channel points at, and returns it (its file is
// the caller's to remove, once no other package shares it).
func (s *Store) DeletePackage(ctx context.Context, appID, id string) (*Package, error) {
	var p *Package
	err := s.Write(ctx, func(tx *Tx) error {
		var err error
		p, err = scanPackage(tx.queryRow(ctx, `SELECT `+packageCols+` FROM packages WHERE app_id = ? AND id = ?`, appID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("package %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return err
		}
		var ch string
		err = tx.queryRow(ctx, `SELECT name FROM channels WHERE package_id = ? ORDER BY name LIMIT 1`, id).Scan(&ch)
		if err == nil {
			return fmt.Errorf("package %s: %w: channel %s points at it; point the channel elsewhere first", p.Version, ErrConflict, ch)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		_, err = tx.exec(ctx, `DELETE FROM packages WHERE id = ?`, id)
		return err
	})
	return p, err
}

// FileInUse reports whether a package still refers to the payload file.
func (s *Store) FileInUse(ctx context.Context, file string) (bool, error) {
	var n int
	err := s.queryRow(ctx, `SELECT COUNT(*) FROM packages WHERE file = ?`, file).Scan(&n)
	return n > 0, err
}
