package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/update-engine/omaha"
)

// Instance is one machine running one application.
type Instance struct {
	AppID        string `json:"app_id"`
	ID           string `json:"id"` // machine id
	GroupID      string `json:"group_id,omitempty"`
	Track        string `json:"track"`
	Alias        string `json:"alias"`
	IP           string `json:"ip"`
	Version      string `json:"version"`
	Board        string `json:"board"`
	OEM          string `json:"oem"`
	OEMVersion   string `json:"oem_version"`
	AlephVersion string `json:"aleph_version"`
	// Status is the state of its last update (rollout.Status), since StatusAt; ErrorCode
	// is the error that ended it, for status error.
	Status           rollout.Status `json:"status"`
	StatusAt         time.Time      `json:"status_at"`
	ErrorCode        int            `json:"error_code,omitempty"`
	UpdateInProgress bool           `json:"update_in_progress"`
	// GrantedVersion and GrantedAt are its last update's (Nebraska's last update version).
	GrantedVersion string    `json:"granted_version,omitempty"`
	GrantedAt      time.Time `json:"granted_at"`
	// RolledBackVersion is the version it last reported rolling back from (error 44), at
	// RolledBackAt; RollbackTries and RollbackTriesLeft are the boot tries the version had
	// and had left, as its rollback report said (Cairn's engine; 0 when not said).
	RolledBackVersion string    `json:"rolled_back_version,omitempty"`
	RolledBackAt      time.Time `json:"rolled_back_at"`
	RollbackTries     int       `json:"rollback_tries,omitempty"`
	RollbackTriesLeft int       `json:"rollback_tries_left,omitempty"`
	// Hold and HoldReason say why its last check was not offered its group's version
	// (rollout's reason, and the same in words for people).
	Hold       rollout.Reason `json:"hold,omitempty"`
	HoldReason string         `json:"hold_reason,omitempty"`
	// Operation (the engine's CURRENT_OP, e.g. UPDATE_STATUS_DOWNLOADING), Step (apply's step,
	// e.g. write-usr) and Progress (0 to 1, of the operation) are what the machine last
	// reported of the update it runs (Cairn's engine: omaha.Report), at ProgressAt. An update
	// check without them, a completion and a new grant clear them; an error keeps them, to
	// say where the update failed.
	Operation  string    `json:"operation,omitempty"`
	Step       string    `json:"step,omitempty"`
	Progress   float64   `json:"progress"`
	ProgressAt time.Time `json:"progress_at"`
	// Pods are the machine's pods as its update checks last listed them (at most
	// omaha.MaxPods, running ones first), PodsTotal how many it has; PodsAt is when the list
	// last changed (the last check says it still holds). None: it never reported pods.
	Pods      []omaha.Pod `json:"pods,omitempty"`
	PodsTotal int         `json:"pods_total"`
	PodsAt    time.Time   `json:"pods_at"`

	CreatedAt   time.Time `json:"created_at"`
	LastCheckAt time.Time `json:"last_check_at"`

	pods string // the list as stored, to tell a report that changes it
}

// Rollout is the instance as rollout.Decide reads it.
func (in *Instance) Rollout(onDemand bool) rollout.Instance {
	return rollout.Instance{Version: in.Version, Status: in.Status, GrantedVersion: in.GrantedVersion, GrantedAt: in.GrantedAt,
		RolledBackVersion: in.RolledBackVersion, OnDemand: onDemand}
}

const instanceCols = `app_id, id, COALESCE(group_id, ''), track, alias, ip, version, board, oem, oem_version, aleph_version, status, status_at,
	error_code, update_in_progress, granted_version, granted_at, rolled_back_version, hold, hold_reason, progress, step, created_at, last_check_at,
	operation, progress_at, pods, pods_total, pods_at, rolled_back_at, rollback_tries, rollback_tries_left`

func scanInstance(sc interface{ Scan(...any) error }) (*Instance, error) {
	var in Instance
	var statusAt, grantedAt, created, lastCheck, progressAt, podsAt, rolledBackAt int64
	if err := sc.Scan(&in.AppID, &in.ID, &in.GroupID, &in.Track, &in.Alias, &in.IP, &in.Version, &in.Board, &in.OEM, &in.OEMVersion,
		&in.AlephVersion, &in.Status, &statusAt, &in.ErrorCode, &in.UpdateInProgress, &in.GrantedVersion, &grantedAt,
		&in.RolledBackVersion, &in.Hold, &in.HoldReason, &in.Progress, &in.Step, &created, &lastCheck,
		&in.Operation, &progressAt, &in.pods, &in.PodsTotal, &podsAt, &rolledBackAt, &in.RollbackTries, &in.RollbackTriesLeft); err != nil {
		return nil, err
	}
	in.StatusAt, in.GrantedAt, in.CreatedAt, in.LastCheckAt = fromMicros(statusAt), fromMicros(grantedAt), fromMicros(created), fromMicros(lastCheck)
	in.ProgressAt, in.PodsAt, in.RolledBackAt = fromMicros(progressAt), fromMicros(podsAt), fromMicros(rolledBackAt)
	if in.pods != "" {
		if err := json.Unmarshal([]byte(in.pods), &in.Pods); err != nil {
			return nil, fmt.Errorf("instance %s: pods: %w", in.ID, err)
		}
	}
	return &in, nil
}

// CheckIn is what a machine's request says of it.
type CheckIn struct {
	AppID, MachineID                 string
	GroupID                          string // "" when its track names no group
	Track, Alias, IP, Version, Board string
	OEM, OEMVersion, AlephVersion    string
	Check                            bool // a ping or an update check, not events alone
	Time                             time.Time
}

// CheckIn registers the machine or updates what it says of itself (an empty alias, OEM or
// aleph version keeps the one known, as in Nebraska), and returns the instance as stored.
func (t *Tx) CheckIn(ctx context.Context, c CheckIn) (*Instance, error) {
	at := micros(c.Time)
	lastCheck := int64(0)
	if c.Check {
		lastCheck = at
	}
	// One statement either way: the machine's first request inserts it, later ones update
	// it, and the row comes back as stored.
	in, err := scanInstance(t.queryRow(ctx, `INSERT INTO instances (app_id, id, group_id, track, alias, ip, version, board, oem, oem_version,
		aleph_version, created_at, last_check_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (app_id, id) DO UPDATE SET group_id = excluded.group_id, track = excluded.track,
			alias = CASE WHEN excluded.alias = '' THEN instances.alias ELSE excluded.alias END,
			ip = excluded.ip, version = excluded.version,
			board = CASE WHEN excluded.board = '' THEN instances.board ELSE excluded.board END,
			oem = CASE WHEN excluded.oem = '' THEN instances.oem ELSE excluded.oem END,
			oem_version = CASE WHEN excluded.oem_version = '' THEN instances.oem_version ELSE excluded.oem_version END,
			aleph_version = CASE WHEN excluded.aleph_version = '' THEN instances.aleph_version ELSE excluded.aleph_version END,
			last_check_at = CASE WHEN excluded.last_check_at = 0 THEN instances.last_check_at ELSE excluded.last_check_at END
		RETURNING `+instanceCols,
		c.AppID, c.MachineID, nullable(c.GroupID), c.Track, c.Alias, c.IP, c.Version, c.Board, c.OEM, c.OEMVersion, c.AlephVersion, at, lastCheck))
	if err != nil {
		return nil, fmt.Errorf("instance %s: %w", c.MachineID, err)
	}
	return in, nil
}

// SetStatus moves an instance to status (with the error code that ended its update, if
// any), records it in the instance's history, and ends its update in progress unless the
// status is one of an update under way.
func (t *Tx) SetStatus(ctx context.Context, in *Instance, status rollout.Status, code int, at time.Time) error {
	if _, err := t.exec(ctx, `UPDATE instances SET status = ?, status_at = ?, error_code = ?, update_in_progress = ? WHERE app_id = ? AND id = ?`,
		status, micros(at), code, status.InProgress(), in.AppID, in.ID); err != nil {
		return fmt.Errorf("instance %s: status %s: %w", in.ID, status, err)
	}
	in.Status, in.StatusAt, in.ErrorCode, in.UpdateInProgress = status, at, code, status.InProgress()
	return t.addHistory(ctx, in, status, in.GrantedVersion, code, at)
}

// SetRolledBack records the version the instance rolled back from, when, and the boot
// tries the version had and had left (0 when the report did not say).
func (t *Tx) SetRolledBack(ctx context.Context, in *Instance, version string, tries, triesLeft int, at time.Time) error {
	if _, err := t.exec(ctx, `UPDATE instances SET rolled_back_version = ?, rolled_back_at = ?, rollback_tries = ?, rollback_tries_left = ?
		WHERE app_id = ? AND id = ?`, version, micros(at), tries, triesLeft, in.AppID, in.ID); err != nil {
		return fmt.Errorf("instance %s: rollback: %w", in.ID, err)
	}
	in.RolledBackVersion, in.RolledBackAt, in.RollbackTries, in.RollbackTriesLeft = version, at, tries, triesLeft
	return nil
}

// SetReport records the operation, step and progress the instance reports of its update
// ("", "", 0 clear them), when they changed.
func (t *Tx) SetReport(ctx context.Context, in *Instance, operation, step string, progress float64, at time.Time) error {
	if in.Operation == operation && in.Step == step && in.Progress == progress {
		return nil
	}
	if _, err := t.exec(ctx, `UPDATE instances SET operation = ?, step = ?, progress = ?, progress_at = ? WHERE app_id = ? AND id = ?`,
		operation, step, progress, micros(at), in.AppID, in.ID); err != nil {
		return fmt.Errorf("instance %s: progress: %w", in.ID, err)
	}
	in.Operation, in.Step, in.Progress, in.ProgressAt = operation, step, progress, at
	return nil
}

// PodsChanged reports whether pods (a list as the machine sent it) differs from the
// instance's.
func (in *Instance) PodsChanged(pods *omaha.Pods) bool {
	b := pods.Bound()
	return podsJSON(b) != in.pods || int(b.Total) != in.PodsTotal
}

// podsJSON is how a bounded list is stored: the same list, the same text.
func podsJSON(p *omaha.Pods) string {
	if len(p.Pods) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(p.Pods) // strings and slices only
	return string(b)
}

// SetPods records the instance's pods as it reported them, bounded (omaha.Pods.Bound), when
// they changed.
func (t *Tx) SetPods(ctx context.Context, in *Instance, pods *omaha.Pods, at time.Time) error {
	if !in.PodsChanged(pods) {
		return nil
	}
	b := pods.Bound()
	js := podsJSON(b)
	if _, err := t.exec(ctx, `UPDATE instances SET pods = ?, pods_total = ?, pods_at = ? WHERE app_id = ? AND id = ?`,
		js, int(b.Total), micros(at), in.AppID, in.ID); err != nil {
		return fmt.Errorf("instance %s: pods: %w", in.ID, err)
	}
	in.pods, in.Pods, in.PodsTotal, in.PodsAt = js, b.Pods, int(b.Total), at
	if in.Pods == nil {
		in.Pods = []omaha.Pod{}
	}
	return nil
}

// Grant records that the instance was offered version: status granted, in progress, its
// grant time; and the reason it was held, if any, is gone.
func (t *Tx) Grant(ctx context.Context, in *Instance, version string, at time.Time) error {
	if _, err := t.exec(ctx, `UPDATE instances SET status = ?, status_at = ?, error_code = 0, update_in_progress = ?, granted_version = ?,
		granted_at = ?, hold = '', hold_reason = '', operation = '', progress = 0, step = '' WHERE app_id = ? AND id = ?`,
		rollout.StatusGranted, micros(at), true, version, micros(at), in.AppID, in.ID); err != nil {
		return fmt.Errorf("instance %s: grant %s: %w", in.ID, version, err)
	}
	in.Status, in.StatusAt, in.ErrorCode, in.UpdateInProgress, in.GrantedVersion, in.GrantedAt, in.Hold, in.HoldReason =
		rollout.StatusGranted, at, 0, true, version, at, rollout.ReasonNone, ""
	in.Operation, in.Progress, in.Step = "", 0, ""
	return t.addHistory(ctx, in, rollout.StatusGranted, version, 0, at)
}

// SetHold records why the instance's check got no offer (ReasonNone and "" for none), when
// it changed.
func (t *Tx) SetHold(ctx context.Context, in *Instance, hold rollout.Reason, detail string) error {
	if in.Hold == hold && in.HoldReason == detail {
		return nil
	}
	_, err := t.exec(ctx, `UPDATE instances SET hold = ?, hold_reason = ? WHERE app_id = ? AND id = ?`, hold, detail, in.AppID, in.ID)
	in.Hold, in.HoldReason = hold, detail
	return err
}

func (t *Tx) addHistory(ctx context.Context, in *Instance, status rollout.Status, version string, code int, at time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO instance_history (app_id, instance_id, group_id, status, version, error_code, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		in.AppID, in.ID, in.GroupID, status, version, code, micros(at))
	if err != nil {
		return fmt.Errorf("instance %s: history: %w", in.ID, err)
	}
	return nil
}

// SetProgress records the step and progress an instance reports of its update.
func (s *Store) SetProgress(ctx context.Context, appID, id, step string, progress float64) error {
	return s.Write(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE instances SET step = ?, progress = ?, progress_at = ? WHERE app_id = ? AND id = ?`,
			step, progress, micros(tx.Now()), appID, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("instance %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

// TimedOut lists a group's instances whose update was granted before cutoff and is still in
// progress.
func (t *Tx) TimedOut(ctx context.Context, groupID string, cutoff time.Time) ([]*Instance, error) {
	rows, err := t.query(ctx, `SELECT `+instanceCols+` FROM instances WHERE group_id = ? AND update_in_progress = ? AND granted_at <= ?`,
		groupID, true, micros(cutoff))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Instance
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// Instance finds one instance of an application.
func (s *Store) Instance(ctx context.Context, appID, id string) (*Instance, error) {
	in, err := scanInstance(s.queryRow(ctx, `SELECT `+instanceCols+` FROM instances WHERE app_id = ? AND id = ?`, appID, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("instance %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("instance %q: %w", id, err)
	}
	return in, nil
}

// InstanceFilter selects instances; empty fields select all.
type InstanceFilter struct {
	GroupID string
	Status  rollout.Status
	Version string
	// Search matches the machine id, alias or IP (a substring, any case).
	Search string
	// Sort is one of id, alias, ip, version, status, last_check (default), with Desc.
	Sort string
	Desc bool
	// Page counts from 1; PerPage is 50 by default, 1000 at most.
	Page, PerPage int
}

var instanceSorts = map[string]string{"id": "id", "alias": "alias", "ip": "ip", "version": "version", "status": "status",
	"last_check": "last_check_at", "status_at": "status_at", "": "last_check_at"}

// Instances lists an application's instances by filter, one page, and how many match in all.
func (s *Store) Instances(ctx context.Context, appID string, f InstanceFilter) ([]*Instance, int, error) {
	col, ok := instanceSorts[f.Sort]
	if !ok {
		return nil, 0, fmt.Errorf("instances: %w: sort %q", ErrInvalid, f.Sort)
	}
	if f.Status != "" && !validStatus(f.Status) {
		return nil, 0, fmt.Errorf("instances: %w: status %q", ErrInvalid, f.Status)
	}
	where := []string{"app_id = ?"}
	args := []any{appID}
	if f.GroupID != "" {
		where, args = append(where, "group_id = ?"), append(args, f.GroupID)
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, f.Status)
	}
	if f.Version != "" {
		where, args = append(where, "version = ?"), append(args, f.Version)
	}
	if f.Search != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(f.Search)) + "%"
		where = append(where, `(LOWER(id) LIKE ? ESCAPE '\' OR LOWER(alias) LIKE ? ESCAPE '\' OR LOWER(ip) LIKE ? ESCAPE '\')`)
		args = append(args, like, like, like)
	}
	cond := " WHERE " + strings.Join(where, " AND ")
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM instances`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("instances: %w", err)
	}
	per := f.PerPage
	if per <= 0 {
		per = 50
	}
	per = min(per, 1000)
	page := max(f.Page, 1)
	order := " ASC"
	if f.Desc {
		order = " DESC"
	}
	rows, err := s.query(ctx, `SELECT `+instanceCols+` FROM instances`+cond+` ORDER BY `+col+order+`, id LIMIT ? OFFSET ?`,
		append(args, per, (page-1)*per)...)
	if err != nil {
		return nil, 0, fmt.Errorf("instances: %w", err)
	}
	defer rows.Close()
	out := []*Instance{}
	for rows.Next() {
		in, err := scanInstance(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("instances: %w", err)
		}
		out = append(out, in)
	}
	return out, total, rows.Err()
}

func validStatus(s rollout.Status) bool { return slices.Contains(rollout.Statuses, s) }

// HistoryEntry is one status an instance went through.
type HistoryEntry struct {
	Status    rollout.Status `json:"status"`
	Version   string         `json:"version"`
	ErrorCode int            `json:"error_code,omitempty"`
	GroupID   string         `json:"group_id,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
}

// History is an instance's status history, newest first, at most limit entries.
func (s *Store) History(ctx context.Context, appID, id string, limit int) ([]*HistoryEntry, error) {
	rows, err := s.query(ctx, `SELECT status, version, error_code, COALESCE(group_id, ''), created_at FROM instance_history
		WHERE app_id = ? AND instance_id = ? ORDER BY id DESC LIMIT ?`, appID, id, limit)
	if err != nil {
		return nil, fmt.Errorf("instance %s: history: %w", id, err)
	}
	defer rows.Close()
	out := []*HistoryEntry{}
	for rows.Next() {
		var h HistoryEntry
		var at int64
		if err := rows.Scan(&h.Status, &h.Version, &h.ErrorCode, &h.GroupID, &at); err != nil {
			return nil, err
		}
		h.CreatedAt = fromMicros(at)
		out = append(out, &h)
	}
	return out, rows.Err()
}

// LastCheck is when a machine last checked in.
type LastCheck struct {
	AppID, ID string
	At        time.Time
}

// touchChunk is how many machines one statement of TouchLastChecks updates: 3 parameters
// each, far below SQLite's and PostgreSQL's limits.
const touchChunk = 500

// TouchLastChecks records the machines' last check times in one transaction, each only
// forward: a time older than the one stored (a later check written meanwhile) changes
// nothing. Routine checks are answered from reads and their times written this way, in
// batches, so that a fleet's check-ins cost one write a batch rather than one each.
func (s *Store) TouchLastChecks(ctx context.Context, checks []LastCheck) error {
	if len(checks) == 0 {
		return nil
	}
	return s.Write(ctx, func(tx *Tx) error {
		for chunk := range slices.Chunk(checks, touchChunk) {
			rows := strings.TrimSuffix(strings.Repeat("(?, ?, CAST(? AS BIGINT)), ", len(chunk)), ", ")
			args := make([]any, 0, 3*len(chunk))
			for _, c := range chunk {
				args = append(args, c.AppID, c.ID, micros(c.At))
			}
			// VALUES names its columns column1, column2, … in SQLite and PostgreSQL alike.
			if _, err := tx.exec(ctx, `UPDATE instances SET last_check_at = v.column3 FROM (VALUES `+rows+`) AS v
				WHERE instances.app_id = v.column1 AND instances.id = v.column2 AND instances.last_check_at < v.column3`, args...); err != nil {
				return fmt.Errorf("instances: last checks: %w", err)
			}
		}
		return nil
	})
}
