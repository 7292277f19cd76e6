package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Roles: an admin changes anything; a viewer reads.
const (
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// ValidRole reports whether r is a role.
func ValidRole(r string) bool { return r == RoleAdmin || r == RoleViewer }

// User is an operator.
type User struct {
	ID           string    `json:"id"`
	Username     string    `json:"username"`
	PasswordHash string    `json:"-"`
	Role         string    `json:"role"`
	CreatedAt    time.Time `json:"created_at"`
}

const userCols = `id, username, password_hash, role, created_at`

func scanUser(sc interface{ Scan(...any) error }) (*User, error) {
	var u User
	var at int64
	if err := sc.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.Role, &at); err != nil {
		return nil, err
	}
	u.CreatedAt = fromMicros(at)
	return &u, nil
}

// CreateUser adds a user with a password hash (bcrypt, made by the caller).
func (s *Store) CreateUser(ctx context.Context, username, passwordHash, role string) (*User, error) {
	username = strings.TrimSpace(username)
	if username == "" || strings.ContainsAny(username, " \t\n/") {
		return nil, fmt.Errorf("user %q: %w: a name without spaces or slashes is required", username, ErrInvalid)
	}
	if !ValidRole(role) {
		return nil, fmt.Errorf("user %s: %w: role %q: want admin or viewer", username, ErrInvalid, role)
	}
	u := &User{ID: newID(), Username: username, PasswordHash: passwordHash, Role: role, CreatedAt: fromMicros(micros(s.now()))}
	err := s.Write(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?)`, u.ID, u.Username, u.PasswordHash, u.Role, micros(u.CreatedAt))
		if isUnique(err) {
			return fmt.Errorf("user %s: %w: exists", username, ErrConflict)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// User finds a user by id or name.
func (s *Store) User(ctx context.Context, ref string) (*User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ? OR username = ?`, ref, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("user %q: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", ref, err)
	}
	return u, nil
}

// Users lists the users by name.
func (s *Store) Users(ctx context.Context) ([]*User, error) {
	rows, err := s.query(ctx, `SELECT `+userCols+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	defer rows.Close()
	out := []*User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// UpdateUser sets a user's password hash and role (an empty one keeps what there is). A
// new password ends the user's sessions.
func (s *Store) UpdateUser(ctx context.Context, id, passwordHash, role string) error {
	if role != "" && !ValidRole(role) {
		return fmt.Errorf("user %s: %w: role %q: want admin or viewer", id, ErrInvalid, role)
	}
	return s.Write(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE users SET password_hash = CASE WHEN ? = '' THEN password_hash ELSE ? END,
			role = CASE WHEN ? = '' THEN role ELSE ? END WHERE id = ?`, passwordHash, passwordHash, role, role, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %s: %w", id, ErrNotFound)
		}
		if passwordHash != "" {
			_, err = tx.exec(ctx, `DELETE FROM sessions WHERE user_id = ?`, id)
		}
		return err
	})
}

// DeleteUser removes a user with its sessions and tokens.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	return s.Write(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `DELETE FROM users WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("user %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

// Session is a logged-in browser: the user, and the token its unsafe requests must carry
// (CSRF).
type Session struct {
	ID        string    `json:"-"` // SHA-256 of the cookie's secret
	User      *User     `json:"user"`
	CSRF      string    `json:"csrf_token"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateSession records a session (id: the hash of the cookie's secret).
func (s *Store) CreateSession(ctx context.Context, id, userID, csrf string, expires time.Time) error {
	return s.Write(ctx, func(tx *Tx) error {
		now := micros(tx.Now())
		if _, err := tx.exec(ctx, `DELETE FROM sessions WHERE expires_at < ?`, now); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `INSERT INTO sessions (id, user_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
			id, userID, csrf, now, micros(expires))
		return err
	})
}

// Session finds an unexpired session with its user.
func (s *Store) Session(ctx context.Context, id string) (*Session, error) {
	var se Session
	var created, expires int64
	u := &User{}
	var uat int64
	err := s.queryRow(ctx, `SELECT s.id, s.csrf, s.created_at, s.expires_at, u.id, u.username, u.password_hash, u.role, u.created_at
		FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ? AND s.expires_at > ?`, id, micros(s.now())).
		Scan(&se.ID, &se.CSRF, &created, &expires, &u.ID, &u.Username, &u.PasswordHash, &u.Role, &uat)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	u.CreatedAt = fromMicros(uat)
	se.User, se.CreatedAt, se.ExpiresAt = u, fromMicros(created), fromMicros(expires)
	return &se, nil
}

// DeleteSession ends a session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	return s.Write(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `DELETE FROM sessions WHERE id = ?`, id)
		return err
	})
}

// Token is an API token for scripts: its role, its owner; the secret itself is never
// stored, only its hash.
type Token struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	Username   string    `json:"username"`
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"` // zero: never
}

const tokenCols = `t.id, t.user_id, u.username, t.name, t.role, t.created_at, t.last_used_at, t.expires_at`

func scanToken(sc interface{ Scan(...any) error }) (*Token, error) {
	var t Token
	var created, used, expires int64
	if err := sc.Scan(&t.ID, &t.UserID, &t.Username, &t.Name, &t.Role, &created, &used, &expires); err != nil {
		return nil, err
	}
	t.CreatedAt, t.LastUsedAt, t.ExpiresAt = fromMicros(created), fromMicros(used), fromMicros(expires)
	return &t, nil
}

// CreateToken records a token by its hash.
func (s *Store) CreateToken(ctx context.Context, userID, name, role, hash string, expires time.Time) (*Token, error) {
	if !ValidRole(role) {
		return nil, fmt.Errorf("token %s: %w: role %q: want admin or viewer", name, ErrInvalid, role)
	}
	id := newID()
	err := s.Write(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `INSERT INTO api_tokens (id, user_id, name, token_hash, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, userID, name, hash, role, micros(tx.Now()), micros(expires))
		if isForeignKey(err) {
			return fmt.Errorf("token %s: user %s: %w", name, userID, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return scanToken(s.queryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?`, id))
}

// TokenByHash finds an unexpired token by its hash, with its owner, and notes its use
// (at most once a minute, so that a script's calls do not each write).
func (s *Store) TokenByHash(ctx context.Context, hash string) (*Token, *User, error) {
	now := s.now()
	var t *Token
	u := &User{}
	var uat int64
	row := s.queryRow(ctx, `SELECT `+tokenCols+`, u.id, u.username, u.password_hash, u.role, u.created_at
		FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = ? AND (t.expires_at = 0 OR t.expires_at > ?)`, hash, micros(now))
	var tk Token
	var created, used, expires int64
	err := row.Scan(&tk.ID, &tk.UserID, &tk.Username, &tk.Name, &tk.Role, &created, &used, &expires, &u.ID, &u.Username, &u.PasswordHash, &u.Role, &uat)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("token: %w", err)
	}
	tk.CreatedAt, tk.LastUsedAt, tk.ExpiresAt = fromMicros(created), fromMicros(used), fromMicros(expires)
	u.CreatedAt = fromMicros(uat)
	t = &tk
	if now.Sub(t.LastUsedAt) > time.Minute {
		if err := s.Write(ctx, func(tx *Tx) error {
			_, err := tx.exec(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, micros(now), t.ID)
			return err
		}); err != nil {
			return nil, nil, err
		}
	}
	return t, u, nil
}

// Tokens lists the tokens, of one user unless userID is empty.
func (s *Store) Tokens(ctx context.Context, userID string) ([]*Token, error) {
	rows, err := s.query(ctx, `SELECT `+tokenCols+` FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE ? = '' OR t.user_id = ? ORDER BY u.username, t.name`, userID, userID)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	defer rows.Close()
	out := []*Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteToken revokes a token.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	return s.Write(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `DELETE FROM api_tokens WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("token %s: %w", id, ErrNotFound)
		}
		return nil
	})
}
