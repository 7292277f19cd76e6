package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Channel names the package a group's machines are offered.
type Channel struct {
	ID        string    `json:"id"`
	AppID     string    `json:"app_id"`
	Name      string    `json:"name"`
	PackageID string    `json:"package_id,omitempty"`
	Version   string    `json:"version,omitempty"` // the package's
	CreatedAt time.Time `json:"created_at"`
}

const channelCols = `c.id, c.app_id, c.name, COALESCE(c.package_id, ''), COALESCE(p.version, ''), c.created_at`
const channelFrom = ` FROM channels c LEFT JOIN packages p ON p.id = c.package_id`

func scanChannel(sc interface{ Scan(...any) error }) (*Channel, error) {
	var c Channel
	var created int64
	if err := sc.Scan(&c.ID, &c.AppID, &c.Name, &c.PackageID, &c.Version, &created); err != nil {
		return nil, err
	}
	c.CreatedAt = fromMicros(created)
	return &c, nil
}

// CreateChannel adds a channel, pointing at packageID unless it is empty (the package must
// be verified: see SetChannelPackage).
func (s *Store) CreateChannel(ctx context.Context, appID, name, packageID string) (*Channel, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return nil, fmt.Errorf("channel: %w: a name is required", ErrInvalid)
	}
	id := newID()
	err := s.Write(ctx, func(tx *Tx) error {
		if _, err := tx.exec(ctx, `INSERT INTO channels (id, app_id, name, created_at) VALUES (?, ?, ?, ?)`, id, appID, name, micros(s.now())); err != nil {
			switch {
			case isUnique(err):
				return fmt.Errorf("channel %s: %w: exists", name, ErrConflict)
			case isForeignKey(err):
				return fmt.Errorf("channel %s: application %s: %w", name, appID, ErrNotFound)
			}
			return err
		}
		if packageID == "" {
			return nil
		}
		return tx.setChannelPackage(ctx, appID, id, packageID)
	})
	if err != nil {
		return nil, err
	}
	return s.Channel(ctx, appID, id)
}

// Channel finds an application's channel by id or name.
func (s *Store) Channel(ctx context.Context, appID, ref string) (*Channel, error) {
	c, err := scanChannel(s.queryRow(ctx, `SELECT `+channelCols+channelFrom+` WHERE c.app_id = ? AND (c.id = ? OR c.name = ?)`, appID, ref, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("channel %q: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("channel %q: %w", ref, err)
	}
	return c, nil
}

// Channels lists an application's channels by name.
func (s *Store) Channels(ctx context.Context, appID string) ([]*Channel, error) {
	rows, err := s.query(ctx, `SELECT `+channelCols+channelFrom+` WHERE c.app_id = ? ORDER BY c.name`, appID)
	if err != nil {
		return nil, fmt.Errorf("channels: %w", err)
	}
	defer rows.Close()
	var out []*Channel
	for rows.Next() {
		c, err := scanChannel(rows)
		if err != nil {
			return nil, fmt.Errorf("channels: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// SetChannelPackage points a channel at a package (publishes it there), or at none when
// packageID is empty. A package whose signature did not verify is refused (ErrNotVerified).
func (s *Store) SetChannelPackage(ctx context.Context, appID, channelID, packageID string) error {
	return s.Write(ctx, func(tx *Tx) error {
		return tx.setChannelPackage(ctx, appID, channelID, packageID)
	})
}

func (t *Tx) setChannelPackage(ctx context.Context, appID, channelID, packageID string) error {
	var pkg any
	if packageID != "" {
		var version, sig, sigErr string
		err := t.queryRow(ctx, `SELECT version, signature, signature_error FROM packages WHERE app_id = ? AND id = ?`, appID, packageID).Scan(&version, &sig, &sigErr)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("package %s: %w", packageID, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if sig != SignatureVerified {
			return fmt.Errorf("package %s: %w (%s); upload it signed with a key the console has (-keys) before publishing it", version, ErrNotVerified, sigErr)
		}
		pkg = packageID
	}
	res, err := t.exec(ctx, `UPDATE channels SET package_id = ? WHERE app_id = ? AND id = ?`, pkg, appID, channelID)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("channel %s: %w", channelID, ErrNotFound)
	}
	return nil
}

// RenameChannel changes a channel's name.
func (s *Store) RenameChannel(ctx context.Context, appID, id, name string) error {
	name = strings.TrimSpace(name)
	if name == "" {
		return fmt.Errorf("channel: %w: a name is required", ErrInvalid)
	}
	return s.Write(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE channels SET name = ? WHERE app_id = ? AND id = ?`, name, appID, id)
		if isUnique(err) {
			return fmt.Errorf("channel %s: %w: exists", name, ErrConflict)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("channel %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

// DeleteChannel removes a channel; groups on it are left without one (they offer nothing).
func (s *Store) DeleteChannel(ctx context.Context, appID, id string) error {
	return s.Write(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `DELETE FROM channels WHERE app_id = ? AND id = ?`, appID, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("channel %s: %w", id, ErrNotFound)
		}
		return nil
	})
}
