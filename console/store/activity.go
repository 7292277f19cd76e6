package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Severities of activity entries.
const (
	SeverityInfo    = "info"
	SeverityWarning = "warning"
	SeverityError   = "error"
)

// Actors that are not users.
const (
	ActorRollout = "rollout" // the console's own rollout decisions
	ActorOmaha   = "omaha"   // what machines reported
	ActorConsole = "console" // the console itself (imports at start)
)

// Activity is one entry of the activity log: who did what, when; the operators' changes
// (the audit log) and the rollout's own decisions.
type Activity struct {
	ID         int64     `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	AppID      string    `json:"app_id,omitempty"`
	GroupID    string    `json:"group_id,omitempty"`
	InstanceID string    `json:"instance_id,omitempty"`
	Version    string    `json:"version,omitempty"`
	Severity   string    `json:"severity"`
	Kind       string    `json:"kind"`
	Actor      string    `json:"actor"`
	Message    string    `json:"message"`
}

// AddActivity writes an activity entry (CreatedAt defaults to now).
func (t *Tx) AddActivity(ctx context.Context, a *Activity) error {
	if a.CreatedAt.IsZero() {
		a.CreatedAt = t.Now()
	}
	if a.Severity == "" {
		a.Severity = SeverityInfo
	}
	err := t.queryRow(ctx, `INSERT INTO activity (created_at, app_id, group_id, instance_id, version, severity, kind, actor, message)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		micros(a.CreatedAt), a.AppID, a.GroupID, a.InstanceID, a.Version, a.Severity, a.Kind, a.Actor, a.Message).Scan(&a.ID)
	if err != nil {
		return fmt.Errorf("activity %s: %w", a.Kind, err)
	}
	return nil
}

// AddActivity writes an activity entry in a transaction of its own.
func (s *Store) AddActivity(ctx context.Context, a *Activity) error {
	return s.Write(ctx, func(tx *Tx) error { return tx.AddActivity(ctx, a) })
}

type auditKey struct{}

type audit struct {
	a    Activity
	done bool
}

// WithAudit returns a context whose next write (Store.Write, and so every change the
// store makes) also writes a in the same transaction: a change and its audit entry are
// committed together or not at all.
func WithAudit(ctx context.Context, a Activity) context.Context {
	return context.WithValue(ctx, auditKey{}, &audit{a: a})
}

// writeAudit writes the context's audit entry, once.
func (t *Tx) writeAudit(ctx context.Context) error {
	au, _ := ctx.Value(auditKey{}).(*audit)
	if au == nil || au.done {
		return nil
	}
	a := au.a
	if err := t.AddActivity(ctx, &a); err != nil {
		return err
	}
	au.done = true
	return nil
}

// ActivityFilter selects activity entries; empty fields select all.
type ActivityFilter struct {
	AppID, GroupID, InstanceID, Kind, Severity string
	// BeforeID pages back: entries older than the one with this id.
	BeforeID int64
	// Limit is 100 by default, 1000 at most.
	Limit int
}

// ActivityLog lists activity entries, newest first.
func (s *Store) ActivityLog(ctx context.Context, f ActivityFilter) ([]*Activity, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"app_id", f.AppID}, {"group_id", f.GroupID}, {"instance_id", f.InstanceID},
		{"kind", f.Kind}, {"severity", f.Severity}} {
		if c.v != "" {
			where, args = append(where, c.col+" = ?"), append(args, c.v)
		}
	}
	if f.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	rows, err := s.query(ctx, `SELECT id, created_at, app_id, group_id, instance_id, version, severity, kind, actor, message FROM activity`+
		cond+` ORDER BY id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("activity: %w", err)
	}
	defer rows.Close()
	out := []*Activity{}
	for rows.Next() {
		var a Activity
		var at int64
		if err := rows.Scan(&a.ID, &at, &a.AppID, &a.GroupID, &a.InstanceID, &a.Version, &a.Severity, &a.Kind, &a.Actor, &a.Message); err != nil {
			return nil, fmt.Errorf("activity: %w", err)
		}
		a.CreatedAt = fromMicros(at)
		out = append(out, &a)
	}
	return out, rows.Err()
}
