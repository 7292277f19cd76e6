package engine

import (
	"math"
	"testing"

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/apply"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// One report at a time: the operation, the step and the download-finished event.
func TestStatusOf(t *testing.T) {
	sent := progressState{downloadFinished: true}
	for _, c := range []struct {
		prev progressState
		p    apply.Progress
		want stepStatus
	}{
		{progressState{}, apply.Progress{Step: "download", Phase: apply.PhaseDownload},
			stepStatus{op: api.OpDownloading, step: "download"}},
		{progressState{}, apply.Progress{Step: "download", Phase: apply.PhaseDownload, Done: 25, Total: 100},
			stepStatus{op: api.OpDownloading, progress: 0.25, step: "download"}},
		{progressState{}, apply.Progress{Step: "download", Phase: apply.PhaseDownload, Done: 100, Total: 100},
			stepStatus{op: api.OpDownloading, progress: 1, step: "download"}},
		// The first report after the download is the download's end.
		{progressState{}, apply.Progress{Step: "verify-payload", Phase: apply.PhaseVerify},
			stepStatus{op: api.OpVerifying, step: "verify-payload", downloadFinished: true}},
		{sent, apply.Progress{Step: "verify-payload", Phase: apply.PhaseVerify},
			stepStatus{op: api.OpVerifying, step: "verify-payload"}},
		{sent, apply.Progress{Step: "invalidate-inactive", Phase: apply.PhaseFinalize},
			stepStatus{op: api.OpFinalizing, step: "invalidate-inactive"}},
		// write-usr is the first half of finalizing's bytes (verify-usr reads the same back),
		// after invalidate-inactive's 1%.
		{sent, apply.Progress{Step: "write-usr", Phase: apply.PhaseFinalize, Done: 1 << 20, Total: 4 << 20},
			stepStatus{op: api.OpFinalizing, progress: 0.01 + 0.47*0.25, step: "write-usr"}},
		{sent, apply.Progress{Step: "verify-usr", Phase: apply.PhaseFinalize, Done: 3, Total: 4},
			stepStatus{op: api.OpFinalizing, progress: 0.01 + 0.47 + 0.47*0.75, step: "verify-usr"}},
		// Whatever phase comes first after the download ends it.
		{progressState{}, apply.Progress{Step: "cleanup", Phase: apply.PhaseFinalize},
			stepStatus{op: api.OpFinalizing, progress: 0.99, step: "cleanup", downloadFinished: true}},
		// Bytes without a total are no fraction of the step.
		{sent, apply.Progress{Step: "write-usr", Phase: apply.PhaseFinalize, Done: 5},
			stepStatus{op: api.OpFinalizing, progress: 0.01, step: "write-usr"}},
		// A new operation starts from 0 whatever the last one reached.
		{progressState{op: api.OpDownloading, progress: 1}, apply.Progress{Step: "verify-payload", Phase: apply.PhaseVerify},
			stepStatus{op: api.OpVerifying, step: "verify-payload", downloadFinished: true}},
		// A step apply does not list leaves the figure where it was.
		{progressState{op: api.OpFinalizing, progress: 0.3, downloadFinished: true}, apply.Progress{Step: "mystery", Phase: apply.PhaseFinalize, Done: 1, Total: 2},
			stepStatus{op: api.OpFinalizing, progress: 0.3, step: "mystery"}},
	} {
		got, _ := statusOf(c.prev, c.p)
		if got.op != c.want.op || got.step != c.want.step || got.downloadFinished != c.want.downloadFinished || !near(got.progress, c.want.progress) {
			t.Errorf("statusOf(%+v, %+v) = %+v, want %+v", c.prev, c.p, got, c.want)
		}
	}
}

// A whole Apply's reports, as apply sends them (each step's start, then its bytes): within
// one CURRENT_OP the figure never goes back, and it reaches the values the shares give.
func TestStatusOfMonotonic(t *testing.T) {
	const payload, usr = 600, 1000
	flow := []apply.Progress{
		{Step: "download", Phase: apply.PhaseDownload},
		{Step: "download", Phase: apply.PhaseDownload, Done: 100, Total: payload},
		{Step: "download", Phase: apply.PhaseDownload, Done: 600, Total: payload},
		{Step: "verify-payload", Phase: apply.PhaseVerify},
		{Step: "invalidate-inactive", Phase: apply.PhaseFinalize},
		{Step: "write-usr", Phase: apply.PhaseFinalize},
		{Step: "write-usr", Phase: apply.PhaseFinalize, Done: 550, Total: usr},
		{Step: "write-usr", Phase: apply.PhaseFinalize, Done: usr, Total: usr},
		// Each step's own fraction starts again from 0 here: what made the demo's
		// FINALIZING go 0.55 → 0.14 → 0.87 → 0.00.
		{Step: "verify-usr", Phase: apply.PhaseFinalize},
		{Step: "verify-usr", Phase: apply.PhaseFinalize, Done: 140, Total: usr},
		{Step: "verify-usr", Phase: apply.PhaseFinalize, Done: 870, Total: usr},
		{Step: "verify-usr", Phase: apply.PhaseFinalize, Done: usr, Total: usr},
		{Step: "write-uki", Phase: apply.PhaseFinalize},
		{Step: "stage-extensions", Phase: apply.PhaseFinalize},
		{Step: "record", Phase: apply.PhaseFinalize},
		{Step: "set-next-boot", Phase: apply.PhaseFinalize},
		{Step: "cleanup", Phase: apply.PhaseFinalize},
	}
	want := []float64{0, 100.0 / 600, 1, 0, 0, 0.01, 0.01 + 0.47*0.55, 0.48, 0.48, 0.48 + 0.47*0.14, 0.48 + 0.47*0.87, 0.95, 0.95, 0.96, 0.97, 0.98, 0.99}
	var st progressState
	var last stepStatus
	finished := 0
	for i, p := range flow {
		s, next := statusOf(st, p)
		if !near(s.progress, want[i]) {
			t.Errorf("report %d (%s %d/%d): progress %.4f, want %.4f", i, p.Step, p.Done, p.Total, s.progress, want[i])
		}
		if i > 0 && s.op == last.op && s.progress < last.progress {
			t.Errorf("report %d (%s): %s went back from %.4f to %.4f", i, p.Step, s.op, last.progress, s.progress)
		}
		if s.downloadFinished {
			finished++
		}
		st, last = next, s
	}
	if finished != 1 {
		t.Errorf("download finished %d times, want once", finished)
	}
}

// Without the totals of the byte steps yet, the shares are equal; once a total is known the
// figure never falls below what was shown.
func TestStepShares(t *testing.T) {
	steps := []string{"invalidate-inactive", "write-usr", "verify-usr", "write-uki"}
	for _, c := range []struct {
		sizes map[string]int64
		want  []float64
	}{
		{nil, []float64{0.01, 0.49, 0.49, 0.01}},
		{map[string]int64{"usr": 7}, []float64{0.01, 0.49, 0.49, 0.01}},
		{map[string]int64{"payload": 7}, []float64{0.01, 0.49, 0.49, 0.01}},
	} {
		got := stepShares(steps, c.sizes)
		for i := range got {
			if !near(got[i], c.want[i]) {
				t.Errorf("stepShares(%v) = %v, want %v", c.sizes, got, c.want)
				break
			}
		}
	}
	if got := stepShares([]string{"verify-payload"}, nil); len(got) != 1 || got[0] != 1 {
		t.Errorf("a lone quiet step: %v", got)
	}
	if got := stepShares([]string{"download"}, map[string]int64{"payload": 5}); got[0] != 1 {
		t.Errorf("a lone byte step: %v", got)
	}
}

// Every step stepMoves names is one of apply's, so that a renamed step cannot silently lose
// its weight.
func TestStepMovesNamesApplySteps(t *testing.T) {
	names := map[string]bool{}
	for _, s := range apply.Steps() {
		names[s.Name] = true
	}
	for name := range stepMoves {
		if !names[name] {
			t.Errorf("stepMoves names %q, which apply.Steps does not have", name)
		}
	}
}
