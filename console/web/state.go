package web

import (
	"fmt"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
)

// GroupState is a group's rollout at a glance: a key (its pill's colour), a label and a
// detail for people.
type GroupState struct {
	Key    string // halted, paused, nopackage, idle, done, approval, rolling
	Label  string
	Detail string
}

// StateOf says where a group's rollout is, in the order an operator needs to know it: a
// halt (the group stopped itself), a pause, nothing to roll out, no machines, every machine
// on the target, a version waiting for approval, else rolling out.
func StateOf(g *store.Group, s *store.GroupSummary) GroupState {
	var n, on, inFlight int
	if s != nil {
		n, on, inFlight = s.Instances, s.OnTarget, s.InFlight
	}
	switch {
	case g.Paused && g.PausedBy == store.ActorRollout:
		return GroupState{"halted", "Halted", g.PausedReason}
	case g.Paused:
		d := "paused by " + g.PausedBy
		if g.PausedReason != "" && g.PausedReason != "paused by "+g.PausedBy {
			d += ": " + g.PausedReason
		}
		return GroupState{"paused", "Paused", d}
	case g.Version == "":
		return GroupState{"nopackage", "No package", "its channel has no package to offer"}
	case n == 0:
		return GroupState{"idle", "No machines", "no machine has checked in on track " + g.Track}
	case on == n:
		return GroupState{"done", "Up to date", fmt.Sprintf("all %d on %s", n, g.Version)}
	case g.Policy.Approval == rollout.ApprovalAdmin && g.ApprovedVersion != g.Version:
		return GroupState{"approval", "Awaiting approval", fmt.Sprintf("%s waits for an admin's approval", g.Version)}
	default:
		d := fmt.Sprintf("%d of %d on %s", on, n, g.Version)
		if inFlight > 0 {
			d += fmt.Sprintf(", %d updating", inFlight)
		}
		return GroupState{"rolling", "Rolling out", d}
	}
}

// statusLabels name the update statuses for people (Nebraska's words).
var statusLabels = map[rollout.Status]string{
	rollout.StatusUndefined:   "Idle",
	rollout.StatusGranted:     "Update granted",
	rollout.StatusDownloading: "Downloading",
	rollout.StatusDownloaded:  "Downloaded",
	rollout.StatusInstalled:   "Installed",
	rollout.StatusComplete:    "Complete",
	rollout.StatusError:       "Error",
	rollout.StatusTimedOut:    "Timed out",
}

// StatusLabel is a status in words.
func StatusLabel(s rollout.Status) string {
	if l, ok := statusLabels[s]; ok {
		return l
	}
	if s == "" {
		return "Idle"
	}
	return string(s)
}

// statusColors are the statuses' colours in charts and pills: blues along an update, green
// at its end, red and orange for failures, grey for none.
var statusColors = map[rollout.Status]string{
	rollout.StatusUndefined:   "#8c959f",
	rollout.StatusGranted:     "#8250df",
	rollout.StatusDownloading: "#54aeff",
	rollout.StatusDownloaded:  "#218bff",
	rollout.StatusInstalled:   "#0550ae",
	rollout.StatusComplete:    "#1a7f37",
	rollout.StatusError:       "#cf222e",
	rollout.StatusTimedOut:    "#bc4c00",
}

// StatusColor is a status's colour.
func StatusColor(s rollout.Status) string {
	if c, ok := statusColors[s]; ok {
		return c
	}
	return "#8c959f"
}

// versionPalette colours versions, newest first: distinct hues that keep 3:1 contrast on
// white.
var versionPalette = []string{"#0969da", "#1a7f37", "#9a6700", "#8250df", "#bf3989", "#0a7e8c", "#bc4c00", "#57606a"}

// VersionColor is the colour of the i-th newest version.
func VersionColor(i int) string {
	if i < 0 {
		i = 0
	}
	return versionPalette[i%len(versionPalette)]
}
