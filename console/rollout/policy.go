// Package rollout decides, for one machine's update check, whether its group's rollout
// policy lets it have the channel's version now, and whether the group must halt itself.
// It is pure: Decide and Evaluate take the stored facts (the group's policy and state, counts
// of its instances, the instance, the time) and return a decision; the console computes
// the facts afresh at every check and applies the decision (a reconciler, not a state
// machine). The policy is Nebraska's (updates enabled, max updates per period, update
// timeout) with what Nebraska lacks: admin approval of a version, a cap on updates in flight,
// update windows in locksmith's syntax, canaries, and a group that halts itself when
// rollbacks and errors reach a count or a share of its attempts.
package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-os/cairn/update-engine/locksmith"
)

// Approval says whether a new version rolls out by itself or waits for an admin.
type Approval string

const (
	ApprovalAutomatic Approval = "automatic"
	ApprovalAdmin     Approval = "admin"
)

// Policy is a group's rollout policy. Zero limits mean "no limit"; zero halt thresholds
// mean "never halt" on that count.
type Policy struct {
	// Approval: automatic, or admin (a version is offered once an admin approved it for
	// the group).
	Approval Approval `json:"approval"`
	// MaxUpdatesPerPeriod caps the updates granted within any Period.
	MaxUpdatesPerPeriod int      `json:"max_updates_per_period"`
	Period              Duration `json:"period"`
	// MaxInFlight caps the updates granted and not yet complete, failed or timed out.
	MaxInFlight int `json:"max_in_flight"`
	// UpdateTimeout: an update granted this long ago and not complete stops counting as in
	// flight and is marked timed out.
	UpdateTimeout Duration `json:"update_timeout"`
	// WindowStart and WindowLength are an update window in locksmith's syntax ("Thu 04:00"
	// or "04:00" daily, "1h30m"); updates are granted only inside it. Both empty: always.
	WindowStart  string `json:"window_start,omitempty"`
	WindowLength string `json:"window_length,omitempty"`
	// Timezone of the window (an IANA name); empty is UTC.
	Timezone string `json:"timezone,omitempty"`
	// Canaries: this many instances must complete the version (3/2: running it, blessed
	// good) before any more are offered it.
	Canaries int `json:"canaries"`
	// HaltErrors: the group halts when this many of its attempts at the version failed
	// (errors, rollbacks, timeouts).
	HaltErrors int `json:"halt_errors"`
	// HaltPercent: the group halts when this share of its attempts failed, once it has
	// HaltMinSample attempts.
	HaltPercent   float64 `json:"halt_percent"`
	HaltMinSample int     `json:"halt_min_sample"`
}

// DefaultPolicy is a new group's: updates granted as they are asked for, each given an
// hour to complete, as Nebraska's default timeout.
func DefaultPolicy() Policy {
	return Policy{Approval: ApprovalAutomatic, Period: Duration(time.Hour), UpdateTimeout: Duration(time.Hour)}
}

// ErrPolicy is wrapped by every invalid policy's error.
var ErrPolicy = errors.New("invalid rollout policy")

// Validate checks the policy; the error names the field and what is allowed.
func (p Policy) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrPolicy, fmt.Sprintf(format, args...))
	}
	switch p.Approval {
	case ApprovalAutomatic, ApprovalAdmin:
	default:
		return bad("approval %q: want %q or %q", p.Approval, ApprovalAutomatic, ApprovalAdmin)
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"max_updates_per_period", p.MaxUpdatesPerPeriod}, {"max_in_flight", p.MaxInFlight}, {"canaries", p.Canaries},
		{"halt_errors", p.HaltErrors}, {"halt_min_sample", p.HaltMinSample}} {
		if c.v < 0 {
			return bad("%s %d: want 0 (no limit) or more", c.name, c.v)
		}
	}
	if p.MaxUpdatesPerPeriod > 0 && p.Period <= 0 {
		return bad("period %s: max_updates_per_period needs a period longer than 0", p.Period)
	}
	if p.UpdateTimeout <= 0 {
		return bad("update_timeout %s: want a duration longer than 0", p.UpdateTimeout)
	}
	if p.Period < 0 {
		return bad("period %s: want 0 or more", p.Period)
	}
	if p.HaltPercent < 0 || p.HaltPercent > 100 {
		return bad("halt_percent %g: want 0 (never) to 100", p.HaltPercent)
	}
	if _, err := p.window(); err != nil {
		return fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	return nil
}

// window is the parsed update window; nil when there is none.
func (p Policy) window() (*locksmith.Window, error) {
	w, err := locksmith.ParseWindow(p.WindowStart, p.WindowLength)
	if err != nil || w == nil {
		return nil, err
	}
	w.Location = time.UTC
	if p.Timezone != "" {
		loc, err := time.LoadLocation(p.Timezone)
		if err != nil {
			return nil, fmt.Errorf("timezone %q: %v", p.Timezone, err)
		}
		w.Location = loc
	}
	return w, nil
}

// Duration is a time.Duration written in JSON as Go writes durations ("1h30m").
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes "1h30m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1h30m" (or a number of seconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("duration %s: want a string such as \"1h30m\" or a number of seconds", b)
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a Go duration such as \"1h30m\"", s)
	}
	*d = Duration(v)
	return nil
}
