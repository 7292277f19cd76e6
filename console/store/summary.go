package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// Count is how many instances of an application, in a group ("" for none), run a version
// in a status.
type Count struct {
	AppID    string         `json:"app_id"`
	GroupID  string         `json:"group_id"`
	Version  string         `json:"version"`
	Status   rollout.Status `json:"status"`
	InFlight int            `json:"in_flight"` // of them, with an update in progress
	N        int            `json:"n"`
}

// Counts breaks the instances down by application, group, version and status (of one
// application unless appID is empty), in one query.
func (s *Store) Counts(ctx context.Context, appID string) ([]Count, error) {
	rows, err := s.query(ctx, `SELECT app_id, COALESCE(group_id, ''), version, status,
		SUM(CASE WHEN update_in_progress = ? THEN 1 ELSE 0 END), COUNT(*)
		FROM instances WHERE ? = '' OR app_id = ? GROUP BY app_id, COALESCE(group_id, ''), version, status`, true, appID, appID)
	if err != nil {
		return nil, fmt.Errorf("instance counts: %w", err)
	}
	defer rows.Close()
	var out []Count
	for rows.Next() {
		var c Count
		if err := rows.Scan(&c.AppID, &c.GroupID, &c.Version, &c.Status, &c.InFlight, &c.N); err != nil {
			return nil, fmt.Errorf("instance counts: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Breakdown is a count by key, largest first.
type Breakdown struct {
	Key string `json:"key"`
	N   int    `json:"n"`
}

// GroupSummary is one group's rollout at a glance.
type GroupSummary struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	Track     string      `json:"track"`
	Version   string      `json:"version"` // the channel's: the target
	Paused    bool        `json:"paused"`
	Reason    string      `json:"paused_reason,omitempty"`
	Instances int         `json:"instances"`
	OnTarget  int         `json:"on_target"` // running the target version
	InFlight  int         `json:"in_flight"`
	Versions  []Breakdown `json:"versions"`
	Statuses  []Breakdown `json:"statuses"`
}

// Summary is an application's fleet at a glance: instances by version and status, and
// each group's rollout.
type Summary struct {
	AppID     string          `json:"app_id"`
	Instances int             `json:"instances"`
	Versions  []Breakdown     `json:"versions"`
	Statuses  []Breakdown     `json:"statuses"`
	Groups    []*GroupSummary `json:"groups"`
	// Ungrouped: instances whose track names no group.
	Ungrouped int       `json:"ungrouped"`
	At        time.Time `json:"at"`
}

// Summary summarizes an application's fleet.
func (s *Store) Summary(ctx context.Context, appID string) (*Summary, error) {
	groups, err := s.Groups(ctx, appID)
	if err != nil {
		return nil, err
	}
	counts, err := s.Counts(ctx, appID)
	if err != nil {
		return nil, err
	}
	sum := &Summary{AppID: appID, At: s.now().UTC()}
	versions, statuses := map[string]int{}, map[string]int{}
	byGroup := map[string]*GroupSummary{}
	gv, gs := map[string]map[string]int{}, map[string]map[string]int{}
	for _, g := range groups {
		gsum := &GroupSummary{ID: g.ID, Name: g.Name, Track: g.Track, Version: g.Version, Paused: g.Paused, Reason: g.PausedReason}
		byGroup[g.ID] = gsum
		sum.Groups = append(sum.Groups, gsum)
		gv[g.ID], gs[g.ID] = map[string]int{}, map[string]int{}
	}
	for _, c := range counts {
		sum.Instances += c.N
		versions[c.Version] += c.N
		statuses[string(c.Status)] += c.N
		g := byGroup[c.GroupID]
		if g == nil {
			sum.Ungrouped += c.N
			continue
		}
		g.Instances += c.N
		g.InFlight += c.InFlight
		if c.Version == g.Version {
			g.OnTarget += c.N
		}
		gv[c.GroupID][c.Version] += c.N
		gs[c.GroupID][string(c.Status)] += c.N
	}
	sum.Versions, sum.Statuses = breakdown(versions, true), breakdown(statuses, false)
	for id, g := range byGroup {
		g.Versions, g.Statuses = breakdown(gv[id], true), breakdown(gs[id], false)
	}
	return sum, nil
}

// breakdown sorts counts: versions newest first, anything else by count.
func breakdown(m map[string]int, versions bool) []Breakdown {
	out := []Breakdown{}
	for k, n := range m {
		out = append(out, Breakdown{Key: k, N: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if versions {
			if c := payload.CompareVersions(out[i].Key, out[j].Key); c != 0 {
				return c > 0
			}
			return out[i].Key < out[j].Key
		}
		if out[i].N != out[j].N {
			return out[i].N > out[j].N
		}
		return out[i].Key < out[j].Key
	})
	return out
}
