package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cairn-os/cairn/console/rollout"
)

// Group is an update group: the machines whose track is Track, offered the package of
// Channel under Policy.
type Group struct {
	ID          string         `json:"id"`
	AppID       string         `json:"app_id"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Track       string         `json:"track"`
	ChannelID   string         `json:"channel_id,omitempty"`
	Channel     string         `json:"channel,omitempty"`    // its name
	Version     string         `json:"version,omitempty"`    // its package's version: the target
	PackageID   string         `json:"package_id,omitempty"` // its package
	Policy      rollout.Policy `json:"policy"`
	// Paused: no update is granted. PausedBy is a user, or "rollout" when the group
	// halted itself; PausedReason says why.
	Paused       bool      `json:"paused"`
	PausedReason string    `json:"paused_reason,omitempty"`
	PausedBy     string    `json:"paused_by,omitempty"`
	PausedAt     time.Time `json:"paused_at"`
	// ResumedAt: failures of attempts before it do not count towards a halt.
	ResumedAt       time.Time `json:"resumed_at"`
	ApprovedVersion string    `json:"approved_version,omitempty"`
	// RolloutVersion is the version whose rollout started last, at RolloutStartedAt (its
	// first grant in the group; zero for a rollout started before the console recorded it).
	RolloutVersion   string    `json:"rollout_version,omitempty"`
	RolloutStartedAt time.Time `json:"rollout_started_at"`
	CreatedAt        time.Time `json:"created_at"`
}

// Rollout is the group as rollout.Decide reads it.
func (g *Group) Rollout() rollout.Group {
	return rollout.Group{Policy: g.Policy, Paused: g.Paused, PausedReason: g.PausedReason, ApprovedVersion: g.ApprovedVersion}
}

// RolloutState is the group's rollout as rollout.CountSince reads it.
func (g *Group) RolloutState() rollout.Rollout {
	return rollout.Rollout{Version: g.RolloutVersion, StartedAt: g.RolloutStartedAt, ResumedAt: g.ResumedAt}
}

const groupCols = `g.id, g.app_id, g.name, g.description, g.track, COALESCE(g.channel_id, ''), COALESCE(c.name, ''), COALESCE(p.version, ''),
	COALESCE(p.id, ''), g.policy, g.paused, g.paused_reason, g.paused_by, g.paused_at, g.resumed_at, g.approved_version, g.rollout_version, g.rollout_started_at, g.created_at`
const groupFrom = ` FROM update_groups g LEFT JOIN channels c ON c.id = g.channel_id LEFT JOIN packages p ON p.id = c.package_id`

func scanGroup(sc interface{ Scan(...any) error }) (*Group, error) {
	var g Group
	var policy string
	var pausedAt, resumedAt, rolloutStarted, created int64
	if err := sc.Scan(&g.ID, &g.AppID, &g.Name, &g.Description, &g.Track, &g.ChannelID, &g.Channel, &g.Version, &g.PackageID,
		&policy, &g.Paused, &g.PausedReason, &g.PausedBy, &pausedAt, &resumedAt, &g.ApprovedVersion, &g.RolloutVersion, &rolloutStarted, &created); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(policy), &g.Policy); err != nil {
		return nil, fmt.Errorf("group %s: stored policy: %w", g.ID, err)
	}
	g.PausedAt, g.ResumedAt, g.CreatedAt = fromMicros(pausedAt), fromMicros(resumedAt), fromMicros(created)
	g.RolloutStartedAt = fromMicros(rolloutStarted)
	return &g, nil
}

// GroupSpec is what an operator sets of a group.
type GroupSpec struct {
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Track       string         `json:"track"`
	ChannelID   string         `json:"channel_id"`
	Policy      rollout.Policy `json:"policy"`
}

func (sp *GroupSpec) check() error {
	sp.Name, sp.Track = strings.TrimSpace(sp.Name), strings.TrimSpace(sp.Track)
	if sp.Name == "" {
		return fmt.Errorf("group: %w: a name is required", ErrInvalid)
	}
	if sp.Track == "" {
		sp.Track = sp.Name
	}
	if err := sp.Policy.Validate(); err != nil {
		return fmt.Errorf("group %s: %w: %w", sp.Name, ErrInvalid, err)
	}
	return nil
}

// CreateGroup adds a group.
func (s *Store) CreateGroup(ctx context.Context, appID string, sp GroupSpec) (*Group, error) {
	if err := sp.check(); err != nil {
		return nil, err
	}
	policy, err := json.Marshal(sp.Policy)
	if err != nil {
		return nil, err
	}
	id := newID()
	err = s.Write(ctx, func(tx *Tx) error {
		if err := tx.checkChannel(ctx, appID, sp.ChannelID); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `INSERT INTO update_groups (id, app_id, name, description, track, channel_id, policy, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			id, appID, sp.Name, sp.Description, sp.Track, nullable(sp.ChannelID), string(policy), micros(s.now()))
		switch {
		case isUnique(err):
			return fmt.Errorf("group %s: %w: track %q has a group", sp.Name, ErrConflict, sp.Track)
		case isForeignKey(err):
			return fmt.Errorf("group %s: application %s: %w", sp.Name, appID, ErrNotFound)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.Group(ctx, appID, id)
}

func (t *Tx) checkChannel(ctx context.Context, appID, channelID string) error {
	if channelID == "" {
		return nil
	}
	var n int
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM channels WHERE app_id = ? AND id = ?`, appID, channelID).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("channel %s: %w", channelID, ErrNotFound)
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Group finds an application's group by id, name or track.
func (s *Store) Group(ctx context.Context, appID, ref string) (*Group, error) {
	g, err := scanGroup(s.queryRow(ctx, `SELECT `+groupCols+groupFrom+` WHERE g.app_id = ? AND (g.id = ? OR g.track = ? OR g.name = ?) ORDER BY g.id = ? DESC, g.track = ? DESC LIMIT 1`,
		appID, ref, ref, ref, ref, ref))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("group %q: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("group %q: %w", ref, err)
	}
	return g, nil
}

// Groups lists an application's groups by name.
func (s *Store) Groups(ctx context.Context, appID string) ([]*Group, error) {
	return s.groups(ctx, `WHERE g.app_id = ? ORDER BY g.name`, appID)
}

// AllGroups lists every application's groups.
func (s *Store) AllGroups(ctx context.Context) ([]*Group, error) {
	return s.groups(ctx, `ORDER BY g.app_id, g.name`)
}

func (s *Store) groups(ctx context.Context, where string, args ...any) ([]*Group, error) {
	rows, err := s.query(ctx, `SELECT `+groupCols+groupFrom+` `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("groups: %w", err)
	}
	defer rows.Close()
	var out []*Group
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, fmt.Errorf("groups: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// UpdateGroup replaces what an operator sets of a group.
func (s *Store) UpdateGroup(ctx context.Context, appID, id string, sp GroupSpec) (*Group, error) {
	if err := sp.check(); err != nil {
		return nil, err
	}
	policy, err := json.Marshal(sp.Policy)
	if err != nil {
		return nil, err
	}
	err = s.Write(ctx, func(tx *Tx) error {
		if err := tx.checkChannel(ctx, appID, sp.ChannelID); err != nil {
			return err
		}
		res, err := tx.exec(ctx, `UPDATE update_groups SET name = ?, description = ?, track = ?, channel_id = ?, policy = ? WHERE app_id = ? AND id = ?`,
			sp.Name, sp.Description, sp.Track, nullable(sp.ChannelID), string(policy), appID, id)
		if isUnique(err) {
			return fmt.Errorf("group %s: %w: track %q has a group", sp.Name, ErrConflict, sp.Track)
		}
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("group %s: %w", id, ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Group(ctx, appID, id)
}

// Pause stops a group's updates, with the reason and who paused it.
func (s *Store) Pause(ctx context.Context, appID, id, reason, by string) error {
	return s.Write(ctx, func(tx *Tx) error { return tx.Pause(ctx, appID, id, reason, by) })
}

// Pause is Store.Pause within the transaction.
func (t *Tx) Pause(ctx context.Context, appID, id, reason, by string) error {
	res, err := t.exec(ctx, `UPDATE update_groups SET paused = ?, paused_reason = ?, paused_by = ?, paused_at = ? WHERE app_id = ? AND id = ?`,
		true, reason, by, micros(t.Now()), appID, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("group %s: %w", id, ErrNotFound)
	}
	return nil
}

// Resume lets a paused or halted group grant updates again. The failures that halted it
// stop counting: a halt is judged on the attempts and failures after the resume
// (rollout.CountSince), so that the group does not halt again at once.
func (s *Store) Resume(ctx context.Context, appID, id string) error {
	return s.Write(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE update_groups SET paused = ?, paused_reason = '', paused_by = '', resumed_at = ? WHERE app_id = ? AND id = ?`,
			false, micros(tx.Now()), appID, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("group %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

// Approve lets a group whose policy wants an admin's approval roll out version.
func (s *Store) Approve(ctx context.Context, appID, id, version string) error {
	return s.Write(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `UPDATE update_groups SET approved_version = ? WHERE app_id = ? AND id = ?`, version, appID, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("group %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

// DeleteGroup removes a group; its instances stay, without a group until their next check.
func (s *Store) DeleteGroup(ctx context.Context, appID, id string) error {
	return s.Write(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `DELETE FROM update_groups WHERE app_id = ? AND id = ?`, appID, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("group %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

// GroupByTrack finds the group of an application whose machines send track, and locks it
// against other writers until the transaction ends (on PostgreSQL; SQLite has one writer),
// so that two checks cannot both take the group's last free slot. (nil, nil) when there is
// none. A check locks only when it may grant: see Store.GroupByTrack and Tx.Group.
func (t *Tx) GroupByTrack(ctx context.Context, appID, track string) (*Group, error) {
	return groupByTrack(ctx, t.queryRow, appID, track, t.lock())
}

// GroupOfTrack is GroupByTrack without the lock: the group as the transaction reads it, on
// its own connection. A transaction that read it through the Store would wait for a second
// connection of PostgreSQL's pool, which a busy console's other transactions all hold while
// they wait for theirs.
func (t *Tx) GroupOfTrack(ctx context.Context, appID, track string) (*Group, error) {
	return groupByTrack(ctx, t.queryRow, appID, track, "")
}

// lock is the clause that locks a group's row (PostgreSQL); FOR NO KEY UPDATE, which
// instances' foreign key checks (KEY SHARE) do not wait for, so that a check that registered
// its instance first cannot deadlock with another.
func (t *Tx) lock() string {
	if t.s.dialect == Postgres {
		return ` FOR NO KEY UPDATE OF g`
	}
	return ""
}

// GroupByTrack is Tx.GroupByTrack without the lock: for a check that records what the
// machine said and decides to hold it, which takes nothing of the group's; one that may
// grant locks the group (Tx.Group) and decides again.
func (s *Store) GroupByTrack(ctx context.Context, appID, track string) (*Group, error) {
	return groupByTrack(ctx, s.queryRow, appID, track, "")
}

type rowFunc func(ctx context.Context, query string, args ...any) *sql.Row

func groupByTrack(ctx context.Context, row rowFunc, appID, track, lock string) (*Group, error) {
	// A track may also be a group's id, as machines set up with Nebraska's group UUIDs send.
	g, err := scanGroup(row(ctx, `SELECT `+groupCols+groupFrom+` WHERE g.app_id = ? AND (g.track = ? OR g.id = ?) ORDER BY g.track = ? DESC LIMIT 1`+lock,
		appID, track, strings.ToLower(track), track))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("group of track %q: %w", track, err)
	}
	return g, nil
}

// Group finds a group by id within the transaction, locked as GroupByTrack locks.
func (t *Tx) Group(ctx context.Context, id string) (*Group, error) {
	g, err := scanGroup(t.queryRow(ctx, `SELECT `+groupCols+groupFrom+` WHERE g.id = ?`+t.lock(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("group %s: %w", id, ErrNotFound)
	}
	return g, err
}

// StartRollout records that version's rollout began in the group at at (its first grant):
// its failures count from then on, not those of an earlier rollout of the same version.
func (t *Tx) StartRollout(ctx context.Context, groupID, version string, at time.Time) error {
	if _, err := t.exec(ctx, `UPDATE update_groups SET rollout_version = ?, rollout_started_at = ? WHERE id = ?`,
		version, micros(at), groupID); err != nil {
		return fmt.Errorf("group %s: start the rollout of %s: %w", groupID, version, err)
	}
	return nil
}

// RolloutStats counts the group's instances for rollout.Decide: updates in flight (granted
// within the timeout and not ended), granted within the period, and for the target version
// the instances that completed it, and since its rollout started or the group was last
// resumed (rollout.CountSince) the attempts and the machines that failed it
// (rollout.CountFailures: each machine once). An error a machine reported is counted from
// the status history, so that it still counts after the machine retried and a version that
// keeps failing and being retried reaches the limit; a timeout, from the instances, counts
// while the update is timed out. Each count is one query on an index of its own, so that a check costs little more
// in a group of 10,000 machines than in one of ten.
func (t *Tx) RolloutStats(ctx context.Context, g *Group, now time.Time) (rollout.Stats, error) {
	return rolloutStats(ctx, t.queryRow, g, now)
}

// RolloutStats is Tx.RolloutStats outside a transaction, for a check that decides it has
// nothing to write.
func (s *Store) RolloutStats(ctx context.Context, g *Group, now time.Time) (rollout.Stats, error) {
	return rolloutStats(ctx, s.queryRow, g, now)
}

// never is a time no failure is recorded at: nothing counts from it.
const never = int64(math.MaxInt64)

func rolloutStats(ctx context.Context, row rowFunc, g *Group, now time.Time) (rollout.Stats, error) {
	var st rollout.Stats
	timeoutCut := micros(now.Add(-time.Duration(g.Policy.UpdateTimeout)))
	periodCut := micros(now.Add(-time.Duration(g.Policy.Period)))
	since := never
	if t, ok := rollout.CountSince(g.RolloutState(), g.Version); ok {
		since = micros(t)
	}
	// One statement, one round trip: each count is a subquery on its own index. The
	// grants in the period are counted only for a policy that limits them, the attempts only
	// where a share of failures can matter (a failure, or a limit of errors whose reason
	// names them); CASE evaluates neither otherwise.
	err := row(ctx, `WITH failures AS (SELECT COUNT(*) AS n FROM (
			SELECT instance_id FROM instance_history WHERE group_id = ? AND version = ? AND status = ? AND created_at >= ?
			UNION SELECT id FROM instances WHERE group_id = ? AND granted_version = ? AND status = ? AND status_at >= ?) f)
		SELECT
			(SELECT COUNT(*) FROM instances WHERE group_id = ? AND update_in_progress = ? AND granted_at > ?),
			CASE WHEN ? > 0 THEN (SELECT COUNT(*) FROM instances WHERE group_id = ? AND granted_at > ?) ELSE 0 END,
			(SELECT COUNT(*) FROM instances WHERE group_id = ? AND granted_version = ? AND status = ?),
			failures.n,
			CASE WHEN ? > 0 OR failures.n > 0 THEN
				(SELECT COUNT(*) FROM instances WHERE group_id = ? AND granted_version = ? AND status <> ? AND status_at >= ?)
			ELSE 0 END
		FROM failures`,
		g.ID, g.Version, rollout.StatusError, since, g.ID, g.Version, rollout.StatusTimedOut, since,
		g.ID, true, timeoutCut,
		g.Policy.MaxUpdatesPerPeriod, g.ID, periodCut,
		g.ID, g.Version, rollout.StatusComplete,
		g.Policy.HaltErrors, g.ID, g.Version, rollout.StatusUndefined, since,
	).Scan(&st.InFlight, &st.GrantedInPeriod, &st.Completed, &st.Failures, &st.Attempts)
	if err != nil {
		return st, fmt.Errorf("group %s: rollout stats: %w", g.ID, err)
	}
	return st, nil
}

// Failures lists a group's failures of any version, as rollout.CountFailures takes them:
// the errors its machines reported (history) and its updates timed out now (instances).
func (s *Store) Failures(ctx context.Context, groupID string) ([]rollout.Failure, error) {
	rows, err := s.query(ctx, `SELECT instance_id, version, created_at FROM instance_history WHERE group_id = ? AND status = ?
		UNION ALL SELECT id, granted_version, status_at FROM instances WHERE group_id = ? AND status = ?`,
		groupID, rollout.StatusError, groupID, rollout.StatusTimedOut)
	if err != nil {
		return nil, fmt.Errorf("group %s: failures: %w", groupID, err)
	}
	defer rows.Close()
	var out []rollout.Failure
	for rows.Next() {
		var f rollout.Failure
		var at int64
		if err := rows.Scan(&f.Machine, &f.Version, &at); err != nil {
			return nil, fmt.Errorf("group %s: failures: %w", groupID, err)
		}
		f.At = fromMicros(at)
		out = append(out, f)
	}
	return out, rows.Err()
}
