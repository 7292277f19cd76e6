package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-os/cairn/update-engine/omaha"
)

// Event is one event a machine reported, as it reported it.
type Event struct {
	ID              int64             `json:"id"`
	AppID           string            `json:"app_id"`
	InstanceID      string            `json:"instance_id"`
	GroupID         string            `json:"group_id,omitempty"`
	Type            omaha.EventType   `json:"type"`
	Result          omaha.EventResult `json:"result"`
	ErrorCode       omaha.ErrorCode   `json:"error_code,omitempty"`
	PreviousVersion string            `json:"previous_version,omitempty"`
	// Version is what the machine ran when it reported the event.
	Version   string    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
}

// Kind is what the event tells about an update, read as Nebraska reads it.
func (e *Event) Kind() omaha.Kind {
	ev := omaha.EventRequest{Type: e.Type, Result: e.Result, ErrorCode: e.ErrorCode, PreviousVersion: e.PreviousVersion}
	return ev.Kind()
}

// String says what the event reports.
func (e *Event) String() string {
	ev := omaha.EventRequest{Type: e.Type, Result: e.Result, ErrorCode: e.ErrorCode, PreviousVersion: e.PreviousVersion}
	return ev.String()
}

// AddEvent records an event.
func (t *Tx) AddEvent(ctx context.Context, e *Event) error {
	err := t.queryRow(ctx, `INSERT INTO events (app_id, instance_id, group_id, type, result, error_code, previous_version, version, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.AppID, e.InstanceID, nullable(e.GroupID), int(e.Type), int(e.Result), int(e.ErrorCode), e.PreviousVersion, e.Version, micros(e.CreatedAt)).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("instance %s: event %s: %w", e.InstanceID, e, err)
	}
	return nil
}

// EventFilter selects events; empty fields select all.
type EventFilter struct {
	AppID, InstanceID, GroupID string
	// AfterID: only events recorded after the one with this id (for following a log).
	AfterID int64
	// Limit is 100 by default, 10,000 at most; the newest come first unless Oldest.
	Limit  int
	Oldest bool
}

// Events lists events by filter.
func (s *Store) Events(ctx context.Context, f EventFilter) ([]*Event, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"app_id", f.AppID}, {"instance_id", f.InstanceID}, {"group_id", f.GroupID}} {
		if c.v != "" {
			where, args = append(where, c.col+" = ?"), append(args, c.v)
		}
	}
	if f.AfterID > 0 {
		where, args = append(where, "id > ?"), append(args, f.AfterID)
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 10000)
	order := " ORDER BY id DESC"
	if f.Oldest {
		order = " ORDER BY id"
	}
	rows, err := s.query(ctx, `SELECT id, app_id, instance_id, COALESCE(group_id, ''), type, result, error_code, previous_version, version, created_at
		FROM events`+cond+order+` LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	defer rows.Close()
	out := []*Event{}
	for rows.Next() {
		var e Event
		var typ, res, code int
		var at int64
		if err := rows.Scan(&e.ID, &e.AppID, &e.InstanceID, &e.GroupID, &typ, &res, &code, &e.PreviousVersion, &e.Version, &at); err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		e.Type, e.Result, e.ErrorCode, e.CreatedAt = omaha.EventType(typ), omaha.EventResult(res), omaha.ErrorCode(code), fromMicros(at)
		out = append(out, &e)
	}
	return out, rows.Err()
}
