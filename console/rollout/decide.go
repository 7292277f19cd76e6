package rollout

import (
	"fmt"
	"time"

	"github.com/cairn-os/cairn/update-engine/payload"
)

// Status is an instance's update status, with Nebraska's meanings: granted (offered an
// update), downloading (13/1), downloaded (14/1), installed (800/1: written, waiting for
// its reboot), complete (3/2 with a previous version: running the new version, which Cairn
// reports once it is blessed good), error (any result 0: a failure, a rollback (44), a
// declined version (35)). Timed out is the console's own: granted longer ago than the
// group's update timeout without completing.
type Status string

const (
	StatusUndefined   Status = "undefined"
	StatusGranted     Status = "granted"
	StatusDownloading Status = "downloading"
	StatusDownloaded  Status = "downloaded"
	StatusInstalled   Status = "installed"
	StatusComplete    Status = "complete"
	StatusError       Status = "error"
	StatusTimedOut    Status = "timedout"
)

// Statuses lists every status, in the order of an update.
var Statuses = []Status{StatusUndefined, StatusGranted, StatusDownloading, StatusDownloaded, StatusInstalled,
	StatusComplete, StatusError, StatusTimedOut}

// InProgress reports whether an instance in status s is in the middle of an update.
func (s Status) InProgress() bool {
	switch s {
	case StatusGranted, StatusDownloading, StatusDownloaded, StatusInstalled:
		return true
	}
	return false
}

// Group is what Decide needs of a group: its policy and its state.
type Group struct {
	Policy Policy
	// Paused: no update is granted (an admin paused the group, or it halted itself).
	Paused       bool
	PausedReason string
	// ApprovedVersion is the version an admin approved (Policy.Approval admin).
	ApprovedVersion string
}

// Stats are counts over the group's instances, for the target version where it says so.
type Stats struct {
	// InFlight: updates granted and not complete, failed or timed out (any version).
	InFlight int
	// GrantedInPeriod: updates granted within the last Policy.Period.
	GrantedInPeriod int
	// Completed: instances that completed the target version (3/2).
	Completed int
	// Attempts: instances whose attempt at the target version is since its rollout started
	// or the group was last resumed (CountSince). Failures: the machines that failed the
	// target version since then (an error reported, a rollback: still counted after they
	// were offered it again; an update timed out now), each once (CountFailures).
	Attempts, Failures int
}

// Instance is what Decide needs of the machine that asks.
type Instance struct {
	Version string // running
	Status  Status
	// GrantedVersion and GrantedAt are its last grant.
	GrantedVersion string
	GrantedAt      time.Time
	// RolledBackVersion is a version it reported rolling back from (error 44).
	RolledBackVersion string
	// OnDemand: an operator asked for this check on the machine (installsource
	// ondemandupdate), rather than its schedule.
	OnDemand bool
}

// Reason is why an instance is not offered the target version.
type Reason string

const (
	ReasonNone          Reason = ""
	ReasonNoGroup       Reason = "no group" // the machine's track names no group
	ReasonNoPackage     Reason = "no package"
	ReasonUpToDate      Reason = "up to date"
	ReasonInProgress    Reason = "update in progress"
	ReasonRolledBack    Reason = "rolled back from this version"
	ReasonPaused        Reason = "group paused"
	ReasonNotApproved   Reason = "awaiting approval"
	ReasonOutsideWindow Reason = "outside the update window"
	ReasonCanaries      Reason = "waiting for canaries"
	ReasonMaxInFlight   Reason = "max updates in flight"
	ReasonMaxPerPeriod  Reason = "max updates per period"
	ReasonInvalidPolicy Reason = "invalid policy"
	ReasonHalted        Reason = "group halted"
)

// Decision is the answer to one check.
type Decision struct {
	// Offer: answer with the target version.
	Offer bool
	// Again: the offer repeats a grant still in progress (granted, not yet downloading); it
	// is not a new grant and counts against no limit.
	Again bool
	// Hold says why there is no offer, and Detail says it for people; both empty when the
	// instance is up to date or offered.
	Hold   Reason
	Detail string
	// Halt, when not empty, is why the group must pause itself now.
	Halt string
}

// Decide answers one instance's check against the group's policy, its counts and the target
// version (the channel's package; "" when there is none). It grants nothing itself: an Offer
// that is not Again is a new grant for the caller to record.
func Decide(g Group, target string, st Stats, in Instance, now time.Time) Decision {
	hold := func(r Reason, format string, args ...any) Decision {
		d := Decision{Hold: r, Detail: string(r)}
		if format != "" {
			d.Detail = fmt.Sprintf(format, args...)
		}
		return d
	}
	if target == "" {
		return hold(ReasonNoPackage, "the group's channel has no package")
	}
	if payload.CompareVersions(in.Version, target) >= 0 {
		return Decision{}
	}
	inFlight := in.GrantedVersion == target && in.Status.InProgress() && !TimedOut(g.Policy, in.GrantedAt, now)
	if inFlight && in.Status != StatusGranted {
		return hold(ReasonInProgress, "updating to %s (%s)", target, in.Status)
	}
	if in.RolledBackVersion == target && !in.OnDemand {
		return hold(ReasonRolledBack, "rolled back from %s; offered again only to a check asked for on the machine", target)
	}
	if g.Paused {
		if g.PausedReason != "" {
			return hold(ReasonPaused, "group paused: %s", g.PausedReason)
		}
		return hold(ReasonPaused, "")
	}
	if inFlight {
		// The machine asks again before its first event: the same grant, not a new one.
		return Decision{Offer: true, Again: true}
	}
	if err := g.Policy.Validate(); err != nil {
		return hold(ReasonInvalidPolicy, "%v", err)
	}
	if g.Policy.Approval == ApprovalAdmin && g.ApprovedVersion != target {
		return hold(ReasonNotApproved, "%s awaits an admin's approval for this group", target)
	}
	if halt, why := Evaluate(g.Policy, st); halt {
		d := hold(ReasonHalted, "group halted: %s", why)
		d.Halt = why
		return d
	}
	if w, _ := g.Policy.window(); w != nil {
		if wait := w.Wait(now); wait > 0 {
			return hold(ReasonOutsideWindow, "outside the update window; it opens in %s", wait.Round(time.Minute))
		}
	}
	p := g.Policy
	if p.Canaries > 0 && st.Completed < p.Canaries && st.Completed+st.InFlight >= p.Canaries {
		return hold(ReasonCanaries, "waiting for canaries: %d of %d complete, %d in flight", st.Completed, p.Canaries, st.InFlight)
	}
	if p.MaxInFlight > 0 && st.InFlight >= p.MaxInFlight {
		return hold(ReasonMaxInFlight, "%d updates in flight, the most the group allows", st.InFlight)
	}
	if p.MaxUpdatesPerPeriod > 0 && st.GrantedInPeriod >= p.MaxUpdatesPerPeriod {
		return hold(ReasonMaxPerPeriod, "%d updates granted in the last %s, the most the group allows", st.GrantedInPeriod, p.Period)
	}
	return Decision{Offer: true}
}

// Evaluate says whether the group must halt: its failures at the target version reached
// HaltErrors, or HaltPercent of its attempts once there are HaltMinSample of them.
func Evaluate(p Policy, st Stats) (bool, string) {
	if p.HaltErrors > 0 && st.Failures >= p.HaltErrors {
		return true, fmt.Sprintf("%d of %d attempts failed (rollbacks, errors, timeouts), the limit is %d", st.Failures, st.Attempts, p.HaltErrors)
	}
	if p.HaltPercent > 0 && st.Attempts > 0 && st.Attempts >= p.HaltMinSample &&
		float64(st.Failures)*100 >= p.HaltPercent*float64(st.Attempts) && st.Failures > 0 {
		return true, fmt.Sprintf("%d of %d attempts failed (%.0f%%), the limit is %g%%", st.Failures, st.Attempts,
			100*float64(st.Failures)/float64(st.Attempts), p.HaltPercent)
	}
	return false, ""
}

// TimedOut reports whether an update granted at grantedAt has run out of the policy's
// update timeout at now.
func TimedOut(p Policy, grantedAt, now time.Time) bool {
	return p.UpdateTimeout > 0 && !grantedAt.IsZero() && now.Sub(grantedAt) > time.Duration(p.UpdateTimeout)
}
