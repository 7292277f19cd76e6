package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// App is an application: what machines name with their Omaha app id, by its id (a UUID,
// as Flatcar's) or its product id (as Cairn's io.github.cairn-os.cairn).
type App struct {
	ID          string    `json:"id"`
	ProductID   string    `json:"product_id,omitempty"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
}

const appCols = `id, COALESCE(product_id, ''), name, description, created_at`

func scanApp(sc interface{ Scan(...any) error }) (*App, error) {
	var a App
	var created int64
	if err := sc.Scan(&a.ID, &a.ProductID, &a.Name, &a.Description, &created); err != nil {
		return nil, err
	}
	a.CreatedAt = fromMicros(created)
	return &a, nil
}

// CreateApp adds an application. An empty ID gets a new UUID; IDs are kept as
// NormalizeAppID makes them.
func (s *Store) CreateApp(ctx context.Context, a App) (*App, error) {
	a.ID, a.ProductID = NormalizeAppID(a.ID), NormalizeAppID(a.ProductID)
	if a.ID == "" {
		a.ID = newID()
	}
	if strings.TrimSpace(a.Name) == "" {
		return nil, fmt.Errorf("application: %w: a name is required", ErrInvalid)
	}
	a.CreatedAt = fromMicros(micros(s.now()))
	var product any
	if a.ProductID != "" {
		product = a.ProductID
	}
	err := s.Write(ctx, func(tx *Tx) error {
		// An id must not be another application's product id, nor the other way round:
		// a machine's app id has to find one application.
		var n int
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM applications WHERE id = ? OR product_id = ? OR id = ? OR product_id = ?`,
			a.ID, a.ID, a.ProductID, a.ProductID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("application %s: %w: its id or product id names an application already", a.ID, ErrConflict)
		}
		_, err := tx.exec(ctx, `INSERT INTO applications (id, product_id, name, description, created_at) VALUES (?, ?, ?, ?, ?)`,
			a.ID, product, a.Name, a.Description, micros(a.CreatedAt))
		if isUnique(err) {
			return fmt.Errorf("application %s: %w: exists", a.ID, ErrConflict)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// App finds an application by its id or its product id (as a machine names it: any case,
// with or without braces).
func (s *Store) App(ctx context.Context, ref string) (*App, error) {
	return findApp(ctx, s.queryRow, ref)
}

// App is Store.App within the transaction.
func (t *Tx) App(ctx context.Context, ref string) (*App, error) {
	return findApp(ctx, t.queryRow, ref)
}

func findApp(ctx context.Context, row rowFunc, ref string) (*App, error) {
	id := NormalizeAppID(ref)
	a, err := scanApp(row(ctx, `SELECT `+appCols+` FROM applications WHERE id = ? OR product_id = ?`, id, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("application %q: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("application %q: %w", ref, err)
	}
	return a, nil
}

// Apps lists the applications by name.
func (s *Store) Apps(ctx context.Context) ([]*App, error) {
	rows, err := s.query(ctx, `SELECT `+appCols+` FROM applications ORDER BY name, id`)
	if err != nil {
		return nil, fmt.Errorf("applications: %w", err)
	}
	defer rows.Close()
	var out []*App
	for rows.Next() {
		a, err := scanApp(rows)
		if err != nil {
			return nil, fmt.Errorf("applications: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// UpdateApp changes an application's name and description.
func (s *Store) UpdateApp(ctx context.Context, id, name, description string) (*App, error) {
	if strings.TrimSpace(name) == "" {
		return nil, fmt.Errorf("application %s: %w: a name is required", id, ErrInvalid)
	}
	err := s.Write(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE applications SET name = ?, description = ? WHERE id = ?`, name, description, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("application %s: %w", id, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.App(ctx, id)
}

// DeleteApp removes an application with its packages, channels, groups, instances, events
// and history. The payload files stay for the caller to remove (PackageFiles before).
func (s *Store) DeleteApp(ctx context.Context, id string) error {
	return s.Write(ctx, func(tx *Tx) error {
		// Channels point at packages without a cascade: clear them first.
		if _, err := tx.exec(ctx, `UPDATE channels SET package_id = NULL WHERE app_id = ?`, id); err != nil {
			return err
		}
		for _, q := range []string{`DELETE FROM events WHERE app_id = ?`, `DELETE FROM instance_history WHERE app_id = ?`} {
			if _, err := tx.exec(ctx, q, id); err != nil {
				return err
			}
		}
		res, err := tx.exec(ctx, `DELETE FROM applications WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("application %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("application %s: %w", id, ErrNotFound)
		}
		return nil
	})
}
