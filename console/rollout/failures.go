package rollout

import "time"

// Failure is one failure a machine had with a version: an error it reported (a failed
// step, a rollback, a declined version), which stays a failure whatever the machine does
// next; or an update of it that is timed out now, which is the console's judgment, not the
// machine's report, and stops being a failure when the machine completes the update or is
// offered it again (it was slow, not failing).
type Failure struct {
	Machine string
	Version string
	At      time.Time
}

// Rollout is a group's rollout as far as its failures go: the version whose rollout
// started last, when its first grant was, and when an admin last resumed the group.
type Rollout struct {
	Version   string
	StartedAt time.Time
	ResumedAt time.Time
}

// CountSince says from when the failures of target count towards a halt: from the start of
// its rollout in the group or the group's last resume, whichever came later. A resume
// judges the rollout afresh, so that it does not halt again at once on the failures that
// halted it. ok is false while target's rollout has not started (no grant of it since
// another version's rollout): none of its failures count, not even those of an earlier
// rollout of the same version.
func CountSince(r Rollout, target string) (since time.Time, ok bool) {
	if target == "" || r.Version != target {
		return time.Time{}, false
	}
	if r.ResumedAt.After(r.StartedAt) {
		return r.ResumedAt, true
	}
	return r.StartedAt, true
}

// CountFailures is Stats.Failures over failures: the machines that failed version at since
// or later, each once however often they failed, and an error still counted after the
// machine was offered the version again. The store counts the same in SQL.
func CountFailures(failures []Failure, version string, since time.Time) int {
	machines := map[string]bool{}
	for _, f := range failures {
		if f.Version == version && !f.At.Before(since) {
			machines[f.Machine] = true
		}
	}
	return len(machines)
}
