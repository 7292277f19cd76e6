package rollout

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// Thursday 2026-11-26 10:00 UTC.
var now = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func TestDecide(t *testing.T) {
	base := DefaultPolicy()
	with := func(f func(*Policy)) Policy { p := base; f(&p); return p }
	old := Instance{Version: "1.0.0", Status: StatusComplete}
	cases := []struct {
		name   string
		group  Group
		target string
		stats  Stats
		in     Instance
		want   Decision // Detail is checked by substring
	}{
		{"no package", Group{Policy: base}, "", Stats{}, old, Decision{Hold: ReasonNoPackage}},
		{"up to date", Group{Policy: base}, "1.0.0", Stats{}, old, Decision{}},
		{"newer than the channel", Group{Policy: base}, "0.9.0", Stats{}, old, Decision{}},
		{"offered", Group{Policy: base}, "2.0.0", Stats{}, old, Decision{Offer: true}},
		{"versions compare as numbers", Group{Policy: base}, "1.10.0", Stats{}, Instance{Version: "1.9.0"}, Decision{Offer: true}},
		{"granted, asks again", Group{Policy: base}, "2.0.0", Stats{InFlight: 1},
			Instance{Version: "1.0.0", Status: StatusGranted, GrantedVersion: "2.0.0", GrantedAt: now.Add(-time.Minute)},
			Decision{Offer: true, Again: true}},
		{"granted, asks again, limits full: still the same grant", Group{Policy: with(func(p *Policy) { p.MaxInFlight = 1 })}, "2.0.0", Stats{InFlight: 1},
			Instance{Version: "1.0.0", Status: StatusGranted, GrantedVersion: "2.0.0", GrantedAt: now.Add(-time.Minute)},
			Decision{Offer: true, Again: true}},
		{"granted, group paused since", Group{Policy: base, Paused: true, PausedReason: "by alice"}, "2.0.0", Stats{InFlight: 1},
			Instance{Version: "1.0.0", Status: StatusGranted, GrantedVersion: "2.0.0", GrantedAt: now.Add(-time.Minute)},
			Decision{Hold: ReasonPaused, Detail: "by alice"}},
		{"downloading", Group{Policy: base}, "2.0.0", Stats{InFlight: 1},
			Instance{Version: "1.0.0", Status: StatusDownloading, GrantedVersion: "2.0.0", GrantedAt: now.Add(-time.Minute)},
			Decision{Hold: ReasonInProgress, Detail: "downloading"}},
		{"installed, waiting for its reboot", Group{Policy: base}, "2.0.0", Stats{InFlight: 1},
			Instance{Version: "1.0.0", Status: StatusInstalled, GrantedVersion: "2.0.0", GrantedAt: now.Add(-time.Minute)},
			Decision{Hold: ReasonInProgress}},
		{"in progress past the timeout: offered again", Group{Policy: base}, "2.0.0", Stats{},
			Instance{Version: "1.0.0", Status: StatusDownloading, GrantedVersion: "2.0.0", GrantedAt: now.Add(-2 * time.Hour)},
			Decision{Offer: true}},
		{"in progress for an older target: a new grant", Group{Policy: base}, "3.0.0", Stats{},
			Instance{Version: "1.0.0", Status: StatusDownloading, GrantedVersion: "2.0.0", GrantedAt: now.Add(-time.Minute)},
			Decision{Offer: true}},
		{"failed before: offered again", Group{Policy: base}, "2.0.0", Stats{Attempts: 1, Failures: 1},
			Instance{Version: "1.0.0", Status: StatusError, GrantedVersion: "2.0.0", GrantedAt: now.Add(-time.Minute)},
			Decision{Offer: true}},
		{"rolled back from it, scheduled check", Group{Policy: base}, "2.0.0", Stats{},
			Instance{Version: "1.0.0", Status: StatusError, GrantedVersion: "2.0.0", RolledBackVersion: "2.0.0"},
			Decision{Hold: ReasonRolledBack}},
		{"rolled back from it, on demand", Group{Policy: base}, "2.0.0", Stats{},
			Instance{Version: "1.0.0", Status: StatusError, GrantedVersion: "2.0.0", RolledBackVersion: "2.0.0", OnDemand: true},
			Decision{Offer: true}},
		{"rolled back from another version", Group{Policy: base}, "2.0.1", Stats{},
			Instance{Version: "1.0.0", Status: StatusError, RolledBackVersion: "2.0.0"},
			Decision{Offer: true}},
		{"paused", Group{Policy: base, Paused: true}, "2.0.0", Stats{}, old, Decision{Hold: ReasonPaused}},
		{"paused, with its reason", Group{Policy: base, Paused: true, PausedReason: "3 of 5 attempts failed"}, "2.0.0", Stats{}, old,
			Decision{Hold: ReasonPaused, Detail: "3 of 5 attempts failed"}},
		{"admin approval, not approved", Group{Policy: with(func(p *Policy) { p.Approval = ApprovalAdmin })}, "2.0.0", Stats{}, old,
			Decision{Hold: ReasonNotApproved, Detail: "2.0.0 awaits"}},
		{"admin approval, an older version approved", Group{Policy: with(func(p *Policy) { p.Approval = ApprovalAdmin }), ApprovedVersion: "1.5.0"}, "2.0.0", Stats{}, old,
			Decision{Hold: ReasonNotApproved}},
		{"admin approval, approved", Group{Policy: with(func(p *Policy) { p.Approval = ApprovalAdmin }), ApprovedVersion: "2.0.0"}, "2.0.0", Stats{}, old,
			Decision{Offer: true}},
		{"window open (daily 09:00 for 2h)", Group{Policy: with(func(p *Policy) { p.WindowStart, p.WindowLength = "09:00", "2h" })}, "2.0.0", Stats{}, old,
			Decision{Offer: true}},
		{"window closed (daily 11:00 for 1h)", Group{Policy: with(func(p *Policy) { p.WindowStart, p.WindowLength = "11:00", "1h" })}, "2.0.0", Stats{}, old,
			Decision{Hold: ReasonOutsideWindow, Detail: "opens in 1h0m0s"}},
		{"weekly window, another day", Group{Policy: with(func(p *Policy) { p.WindowStart, p.WindowLength = "Sat 04:00", "4h" })}, "2.0.0", Stats{}, old,
			Decision{Hold: ReasonOutsideWindow}},
		{"window in a time zone (10:00 UTC is 11:00 in Berlin)", Group{Policy: with(func(p *Policy) {
			p.WindowStart, p.WindowLength, p.Timezone = "11:00", "30m", "Europe/Berlin"
		})}, "2.0.0", Stats{}, old, Decision{Offer: true}},
		{"max in flight reached", Group{Policy: with(func(p *Policy) { p.MaxInFlight = 50 })}, "2.0.0", Stats{InFlight: 50}, old,
			Decision{Hold: ReasonMaxInFlight, Detail: "50 updates in flight"}},
		{"max in flight not reached", Group{Policy: with(func(p *Policy) { p.MaxInFlight = 50 })}, "2.0.0", Stats{InFlight: 49}, old,
			Decision{Offer: true}},
		{"max per period reached", Group{Policy: with(func(p *Policy) { p.MaxUpdatesPerPeriod = 10 })}, "2.0.0", Stats{GrantedInPeriod: 10}, old,
			Decision{Hold: ReasonMaxPerPeriod, Detail: "10 updates granted in the last 1h0m0s"}},
		{"max per period not reached", Group{Policy: with(func(p *Policy) { p.MaxUpdatesPerPeriod = 10 })}, "2.0.0", Stats{GrantedInPeriod: 9}, old,
			Decision{Offer: true}},
		{"canaries: the first offered", Group{Policy: with(func(p *Policy) { p.Canaries = 2 })}, "2.0.0", Stats{}, old, Decision{Offer: true}},
		{"canaries: all in flight", Group{Policy: with(func(p *Policy) { p.Canaries = 2 })}, "2.0.0", Stats{InFlight: 2}, old,
			Decision{Hold: ReasonCanaries, Detail: "0 of 2 complete, 2 in flight"}},
		{"canaries: one complete, one in flight", Group{Policy: with(func(p *Policy) { p.Canaries = 2 })}, "2.0.0", Stats{InFlight: 1, Completed: 1}, old,
			Decision{Hold: ReasonCanaries}},
		{"canaries: one failed, so another is one", Group{Policy: with(func(p *Policy) { p.Canaries = 2 })}, "2.0.0", Stats{InFlight: 1, Attempts: 2, Failures: 1}, old,
			Decision{Offer: true}},
		{"canaries: done, the rest offered", Group{Policy: with(func(p *Policy) { p.Canaries = 2; p.MaxInFlight = 5 })}, "2.0.0", Stats{InFlight: 4, Completed: 2}, old,
			Decision{Offer: true}},
		{"halts at k failures", Group{Policy: with(func(p *Policy) { p.HaltErrors = 3 })}, "2.0.0", Stats{Attempts: 10, Failures: 3}, old,
			Decision{Hold: ReasonHalted, Halt: "3 of 10 attempts failed"}},
		{"below k failures", Group{Policy: with(func(p *Policy) { p.HaltErrors = 3 })}, "2.0.0", Stats{Attempts: 10, Failures: 2}, old,
			Decision{Offer: true}},
		{"halts at x%", Group{Policy: with(func(p *Policy) { p.HaltPercent, p.HaltMinSample = 20, 5 })}, "2.0.0", Stats{Attempts: 5, Failures: 1}, old,
			Decision{Hold: ReasonHalted, Halt: "1 of 5 attempts failed (20%)"}},
		{"x% below the minimum sample", Group{Policy: with(func(p *Policy) { p.HaltPercent, p.HaltMinSample = 20, 5 })}, "2.0.0", Stats{Attempts: 4, Failures: 1}, old,
			Decision{Offer: true}},
		{"below x%", Group{Policy: with(func(p *Policy) { p.HaltPercent, p.HaltMinSample = 20, 5 })}, "2.0.0", Stats{Attempts: 6, Failures: 1}, old,
			Decision{Offer: true}},
		{"invalid policy holds", Group{Policy: with(func(p *Policy) { p.Approval = "sometimes" })}, "2.0.0", Stats{}, old,
			Decision{Hold: ReasonInvalidPolicy, Detail: "approval"}},
		{"pause comes before the limits", Group{Policy: with(func(p *Policy) { p.MaxInFlight = 1 }), Paused: true}, "2.0.0", Stats{InFlight: 1}, old,
			Decision{Hold: ReasonPaused}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Decide(c.group, c.target, c.stats, c.in, now)
			if got.Offer != c.want.Offer || got.Again != c.want.Again || got.Hold != c.want.Hold ||
				!strings.Contains(got.Detail, c.want.Detail) || (c.want.Halt == "") != (got.Halt == "") || !strings.Contains(got.Halt, c.want.Halt) {
				t.Fatalf("Decide = %+v, want %+v", got, c.want)
			}
			if got.Hold != ReasonNone && got.Detail == "" {
				t.Fatalf("a hold without a detail: %+v", got)
			}
			if got.Offer && got.Hold != ReasonNone {
				t.Fatalf("an offer with a hold: %+v", got)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	cases := []struct {
		p    Policy
		st   Stats
		halt bool
	}{
		{Policy{}, Stats{Attempts: 100, Failures: 100}, false},
		{Policy{HaltErrors: 1}, Stats{Attempts: 1, Failures: 1}, true},
		{Policy{HaltErrors: 2}, Stats{Attempts: 1, Failures: 1}, false},
		{Policy{HaltPercent: 50}, Stats{Attempts: 2, Failures: 1}, true},
		{Policy{HaltPercent: 50}, Stats{Attempts: 3, Failures: 1}, false},
		{Policy{HaltPercent: 50, HaltMinSample: 10}, Stats{Attempts: 2, Failures: 2}, false},
		{Policy{HaltPercent: 50, HaltMinSample: 10}, Stats{Attempts: 10, Failures: 5}, true},
		{Policy{HaltPercent: 10}, Stats{Attempts: 0, Failures: 0}, false},
		{Policy{HaltPercent: 100}, Stats{Attempts: 3, Failures: 3}, true},
		{Policy{HaltPercent: 100}, Stats{Attempts: 3, Failures: 2}, false},
	}
	for _, c := range cases {
		if halt, why := Evaluate(c.p, c.st); halt != c.halt || halt == (why == "") {
			t.Errorf("Evaluate(%+v, %+v) = %v %q, want %v", c.p, c.st, halt, why, c.halt)
		}
	}
}

func TestTimedOut(t *testing.T) {
	p := DefaultPolicy()
	for _, c := range []struct {
		granted time.Time
		want    bool
	}{
		{time.Time{}, false},
		{now.Add(-59 * time.Minute), false},
		{now.Add(-time.Hour), false},
		{now.Add(-61 * time.Minute), true},
	} {
		if got := TimedOut(p, c.granted, now); got != c.want {
			t.Errorf("TimedOut(granted %v) = %v", c.granted, got)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultPolicy()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		f    func(*Policy)
		want string
	}{
		{func(p *Policy) { p.Approval = "" }, "approval"},
		{func(p *Policy) { p.MaxInFlight = -1 }, "max_in_flight"},
		{func(p *Policy) { p.MaxUpdatesPerPeriod, p.Period = 5, 0 }, "period"},
		{func(p *Policy) { p.UpdateTimeout = 0 }, "update_timeout"},
		{func(p *Policy) { p.HaltPercent = 101 }, "halt_percent"},
		{func(p *Policy) { p.Canaries = -2 }, "canaries"},
		{func(p *Policy) { p.WindowStart, p.WindowLength = "Someday 04:00", "1h" }, "unknown day"},
		{func(p *Policy) { p.WindowStart, p.WindowLength = "04:00", "" }, "length"},
		{func(p *Policy) { p.WindowStart, p.WindowLength = "04:00", "25h" }, "longer than its period"},
		{func(p *Policy) { p.WindowStart, p.WindowLength, p.Timezone = "04:00", "1h", "Mars/Olympus" }, "timezone"},
	} {
		p := ok
		c.f(&p)
		err := p.Validate()
		if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an ErrPolicy naming %s", p, err, c.want)
		}
	}
}

func TestPolicyJSON(t *testing.T) {
	p := DefaultPolicy()
	p.MaxInFlight, p.WindowStart, p.WindowLength, p.HaltPercent = 50, "Thu 04:00", "2h", 12.5
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"update_timeout":"1h0m0s"`) {
		t.Fatalf("durations as Go writes them: %s", b)
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil || back != p {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"period": 900}`), &back); err != nil || back.Period != Duration(15*time.Minute) {
		t.Fatalf("seconds: %+v %v", back, err)
	}
	for _, bad := range []string{`{"period": "soon"}`, `{"period": true}`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestCountSince(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		r      Rollout
		target string
		since  time.Time
		ok     bool
	}{
		{"started, never resumed", Rollout{Version: "2.0.0", StartedAt: t0}, "2.0.0", t0, true},
		{"resumed after the start", Rollout{Version: "2.0.0", StartedAt: t0, ResumedAt: t0.Add(time.Hour)}, "2.0.0", t0.Add(time.Hour), true},
		{"resumed before the start: another version's halt", Rollout{Version: "2.0.0", StartedAt: t0, ResumedAt: t0.Add(-time.Hour)}, "2.0.0", t0, true},
		{"started before the start was recorded", Rollout{Version: "2.0.0", ResumedAt: t0}, "2.0.0", t0, true},
		{"another version's rollout", Rollout{Version: "1.0.0", StartedAt: t0}, "2.0.0", time.Time{}, false},
		{"no rollout yet", Rollout{}, "2.0.0", time.Time{}, false},
		{"no target", Rollout{}, "", time.Time{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if since, ok := CountSince(c.r, c.target); !since.Equal(c.since) || ok != c.ok {
				t.Errorf("CountSince(%+v, %q) = %v %v, want %v %v", c.r, c.target, since, ok, c.since, c.ok)
			}
		})
	}
}

func TestCountFailures(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	cases := []struct {
		name     string
		failures []Failure
		since    time.Time
		want     int
	}{
		{"none", nil, t0, 0},
		{"one machine, one failure", []Failure{{"a", "2.0.0", at(1)}}, t0, 1},
		{"a machine failing twice counts once", []Failure{{"a", "2.0.0", at(1)}, {"a", "2.0.0", at(5)}}, t0, 1},
		// The machine was offered 2.0.0 again after its first failure (a retried download)
		// and is updating or complete now: its failure still counts.
		{"a retried failure still counts", []Failure{{"a", "2.0.0", at(1)}, {"b", "2.0.0", at(2)}}, t0, 2},
		{"failures before a resume do not count after it",
			[]Failure{{"a", "2.0.0", at(1)}, {"b", "2.0.0", at(2)}, {"c", "2.0.0", at(12)}}, at(10), 1},
		{"a failure at the resume's instant counts", []Failure{{"a", "2.0.0", at(10)}}, at(10), 1},
		{"a machine failing before and after a resume counts once after it",
			[]Failure{{"a", "2.0.0", at(1)}, {"a", "2.0.0", at(11)}}, at(10), 1},
		{"another version's failures do not count",
			[]Failure{{"a", "1.9.0", at(1)}, {"b", "3.0.0", at(2)}, {"c", "2.0.0", at(3)}}, t0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := CountFailures(c.failures, "2.0.0", c.since); got != c.want {
				t.Errorf("CountFailures = %d, want %d", got, c.want)
			}
		})
	}
}
