package sim_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-os/cairn/console/consoletest"
	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/sim"
	"github.com/cairn-os/cairn/console/store"
	"github.com/cairn-os/cairn/internal/testenv"
)

// A rollout of 2.0.0 to 1000 simulated machines in a group of 5 canaries and at most 50
// updates in flight, halting at 10 failures, with rollbacks and failed updates injected;
// in compressed time, on SQLite and on PostgreSQL (-short: 300 machines, 3 canaries, 20 in
// flight, a halt at 6, faster, on SQLite). The console's rollout counts are sampled all along, each
// sample one statement: the limit is reached and never exceeded, and while fewer than the
// canaries completed, no more are in flight than make up the rest. The machines' records
// show the same from their side: no machine beyond the canaries (and those replacing failed
// ones) was offered the version before the canaries completed. The group halts at the
// report that makes the machines that failed the version the limit (each once, retried or
// not), within one check interval of it, and grants nothing after.
func TestRollout(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { rolloutTest(t, "", fleetOf()) })
	t.Run("postgres", func(t *testing.T) { rolloutTest(t, testenv.Postgres(t), fleetOf()) })
}

// fleet is a test's fleet and policy.
type fleet struct {
	hosts, canaries, maxInFlight, haltErrors int
	speed                                    float64
}

// fleetOf is the fleet of the test's tier.
func fleetOf() fleet {
	if testing.Short() {
		return fleet{hosts: 300, canaries: 3, maxInFlight: 20, haltErrors: 6, speed: 360}
	}
	return fleet{hosts: 1000, canaries: 5, maxInFlight: 50, haltErrors: 10, speed: 120}
}

// interval is the machines' check interval, in simulated time.
const interval = 10 * time.Minute

func rolloutTest(t *testing.T, dsn string, fl fleet) {
	ctx := context.Background()
	c := consoletest.Start(t, consoletest.Options{DSN: dsn})
	p := rollout.DefaultPolicy()
	p.Canaries, p.MaxInFlight, p.HaltErrors = fl.canaries, fl.maxInFlight, fl.haltErrors
	c.Group("stable", p)
	c.Publish("stable", c.Payload("2.0.0", nil, nil))
	g, err := c.Store.Group(ctx, c.App.ID, "stable")
	if err != nil {
		t.Fatal(err)
	}
	f, err := sim.New(sim.Config{URL: c.UpdateURL(), AppID: consoletest.AppID, Hosts: fl.hosts, Group: "stable", Version: "1.0.0",
		FailureRate: 0.04, RollbackRate: 0.06, CheckInterval: interval, PayloadSize: 400 << 20, Speed: fl.speed, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() { _ = f.Run(runCtx); close(done) }()

	// Sample the console's counts as often as it answers, until the group halts and one
	// more check interval passed.
	maxSeen, samples, canaryBreaches := 0, 0, 0
	var halted *store.Group
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err := c.Store.RolloutStats(ctx, g, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		maxSeen, samples = max(maxSeen, st.InFlight), samples+1
		if st.Completed < fl.canaries && st.Completed+st.InFlight > fl.canaries {
			if canaryBreaches++; canaryBreaches == 1 {
				t.Errorf("%d complete and %d in flight: more than the %d canaries before they completed", st.Completed, st.InFlight, fl.canaries)
			}
		}
		if halted == nil {
			if gg, err := c.Store.Group(ctx, c.App.ID, "stable"); err == nil && gg.Paused {
				halted = gg
				deadline = time.Now().Add(f.Real(interval))
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	<-done
	stats := f.Stats()
	t.Logf("%s simulated in %d samples: in flight at most %d; %v; %d checks, %d events, %d progress reports, %d errors; latency p50 %s, p99 %s",
		stats.Elapsed.Round(time.Second), samples, maxSeen, stats.Versions, stats.Checks, stats.Events, stats.Reports, stats.Errors, stats.P50, stats.P99)
	if halted == nil {
		t.Fatalf("the group did not halt in 90 s")
	}
	if maxSeen > fl.maxInFlight || maxSeen < fl.maxInFlight*9/10 {
		t.Errorf("at most %d updates in flight at once, want up to the limit of %d and no more", maxSeen, fl.maxInFlight)
	}

	records := f.Records()
	checkCanaries(t, records, fl.canaries)
	// A grant is a machine's first offer of the version. One whose check was sent after the
	// halt was decided was decided by a halted group: a new grant reads the group locked, so
	// it waits for the halting check to commit. A repeat of a grant in progress (the machine
	// asking again before its first event) reads the group unlocked, and can be answered
	// between the halt's decision (PausedAt) and its commit: it takes no slot and is not a
	// grant.
	var grantsAfterHalt, repeatsAfterHalt int
	offered := map[int]bool{}
	for _, r := range records {
		if r.Kind != sim.KindOffered {
			continue
		}
		switch after := r.Sent.After(halted.PausedAt); {
		case offered[r.Host] && after:
			repeatsAfterHalt++
		case !offered[r.Host] && after:
			grantsAfterHalt++
		}
		offered[r.Host] = true
	}
	if repeatsAfterHalt > 0 {
		t.Logf("%d repeated offers of grants in progress sent after the halt's decision, before its commit", repeatsAfterHalt)
	}
	if grantsAfterHalt > 0 {
		t.Errorf("%d grants after the halt at %v", grantsAfterHalt, halted.PausedAt)
	}

	// The halt, against the failure reports the machines had acknowledged. The console
	// counts the machines that reported a failure of the version (a failed step, a rollback,
	// a decline), each once, whether or not they were offered it again since (a failed
	// download is retried at the next check): the failures reach the limit at the report
	// that makes that count the limit, and not before the limit-th machine's first failure
	// was sent.
	failing := map[int]bool{}
	var kth *sim.Record
	var first []time.Time // each failing machine's first report, when it was sent
	reports := 0
	for _, r := range records {
		switch r.Kind {
		case sim.KindFailed, sim.KindRolledBack, sim.KindDeclined:
			reports++
			if !failing[r.Host] {
				failing[r.Host] = true
				first = append(first, r.Sent)
			}
		}
		if len(failing) == fl.haltErrors && kth == nil {
			kth = &r
		}
	}
	if kth == nil {
		t.Fatalf("%d failures reported by %d machines, the group halted at %v: %s", reports, len(failing), halted.PausedAt, halted.PausedReason)
	}
	slices.SortFunc(first, time.Time.Compare)
	lag := halted.PausedAt.Sub(kth.At)
	t.Logf("halted %s after the report of failure %d was acknowledged (%s simulated): %s", lag, fl.haltErrors, f.Sim(lag), halted.PausedReason)
	t.Logf("%d failure reports by %d machines in all", reports, len(failing))
	if !halted.PausedAt.After(first[fl.haltErrors-1]) || lag > f.Real(interval) {
		t.Errorf("halted at %v: machine %d's first failure sent at %v, the failures at the limit acknowledged at %v; want the halt after the former and within %s (one check interval) of the latter",
			halted.PausedAt, fl.haltErrors, first[fl.haltErrors-1], kth.At, f.Real(interval))
	}
	// Reports that commit at the same moment can take the count past the limit together (on
	// PostgreSQL, checks of one group run side by side up to its lock): the reason says the
	// count the halting check saw, at least the limit.
	var failed, attempts int
	_, err = fmt.Sscanf(halted.PausedReason, "%d of %d attempts failed", &failed, &attempts)
	if err != nil || failed < fl.haltErrors || halted.PausedBy != store.ActorRollout ||
		!strings.HasSuffix(halted.PausedReason, fmt.Sprintf("attempts failed (rollbacks, errors, timeouts), the limit is %d", fl.haltErrors)) {
		t.Errorf("halt reason %q by %s: want at least %d failures, by the rollout", halted.PausedReason, halted.PausedBy, fl.haltErrors)
	}
}

// checkCanaries checks, from the machines' side, that no machine beyond the canaries was
// offered the version before the canaries completed it: an offer answered before the
// canaries-th completion was sent was decided before the console knew of it, and by then
// the console may have granted the canaries and one more for each failure it could have
// known of (sent before the offer was answered). Grants it surely made before are the
// offers answered before this one was asked for.
func checkCanaries(t *testing.T, records []sim.Record, canaries int) {
	t.Helper()
	var offers, completes, failures []sim.Record
	offered := map[int]bool{} // an attempt under way: a repeated offer is the same grant
	for _, r := range records {
		switch r.Kind {
		case sim.KindOffered:
			if !offered[r.Host] {
				offers = append(offers, r)
			}
			offered[r.Host] = true
		case sim.KindFailed, sim.KindRolledBack:
			failures = append(failures, r)
			offered[r.Host] = false
		case sim.KindComplete:
			completes = append(completes, r)
			offered[r.Host] = false
		}
	}
	if len(completes) < canaries {
		t.Errorf("%d canaries completed, want %d", len(completes), canaries)
		return
	}
	slices.SortFunc(completes, func(a, b sim.Record) int { return a.Sent.Compare(b.Sent) })
	done := completes[canaries-1].Sent
	before := 0
	for _, o := range offers {
		if !o.At.Before(done) {
			continue
		}
		before++
		granted := 1 // this one
		for _, p := range offers {
			if p.At.Before(o.Sent) {
				granted++
			}
		}
		known := 0
		for _, f := range failures {
			if f.Sent.Before(o.At) {
				known++
			}
		}
		if granted > canaries+known {
			t.Errorf("machine %d offered %s at %v, the %d. grant, with at most %d failures known: beyond the %d canaries before they completed (at %v)",
				o.Host, o.Version, o.At, granted, known, canaries, done)
		}
	}
	t.Logf("%d offers before the %d canaries completed, %d after", before, canaries, len(offers)-before)
}
