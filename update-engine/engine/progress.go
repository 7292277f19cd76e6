package engine

import (
	"maps"

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/apply"
)

// stepStatus is what one progress report of apply makes of the engine's status.
type stepStatus struct {
	op       string  // CURRENT_OP
	progress float64 // of the operation, 0 to 1, never lower than the last report's in the same op
	step     string
	// downloadFinished: the download-finished event is due now (the flow left the download).
	downloadFinished bool
}

// progressState is what statusOf carries from one report to the next within one Apply.
type progressState struct {
	op       string
	progress float64
	// sizes are the byte counts of what the steps move (stepMoves), as the steps reported
	// them.
	sizes            map[string]int64
	downloadFinished bool
}

// stepMoves names what each of apply's steps that reports bytes moves: two steps that move
// the same thing (the /usr image written, then read back) weigh the same, so the first one's
// total tells the second one's before it starts.
var stepMoves = map[string]string{
	"download":   "payload",
	"write-usr":  "usr",
	"verify-usr": "usr",
}

// quietShare is the share of its operation that a step moving no bytes (removing a boot
// entry, renaming one) has when the operation also has steps that do.
const quietShare = 0.01

// Operation is the CURRENT_OP of an update in phase p of apply's steps.
func Operation(p apply.Phase) string {
	switch p {
	case apply.PhaseDownload:
		return api.OpDownloading
	case apply.PhaseVerify:
		return api.OpVerifying
	}
	return api.OpFinalizing
}

// statusOf maps apply's progress report p, given the state after the reports before it, to
// the status and the next state. Progress is one figure per CURRENT_OP: each step of the
// operation has a share of it, by the bytes it moves, so that the figure goes from 0 to 1
// across the operation's steps and never back.
func statusOf(prev progressState, p apply.Progress) (stepStatus, progressState) {
	next := prev
	op := Operation(p.Phase)
	if op != prev.op {
		next.op, next.progress = op, 0
	}
	if what, ok := stepMoves[p.Step]; ok && p.Total > 0 && prev.sizes[what] != p.Total {
		next.sizes = maps.Clone(prev.sizes)
		if next.sizes == nil {
			next.sizes = map[string]int64{}
		}
		next.sizes[what] = p.Total
	}
	s := stepStatus{op: op, step: p.Step, downloadFinished: !prev.downloadFinished && p.Phase != apply.PhaseDownload}
	if s.downloadFinished {
		next.downloadFinished = true
	}
	if f, ok := opFraction(p, next.sizes); ok && f > next.progress {
		next.progress = f
	}
	s.progress = next.progress
	return s, next
}

// opFraction is how far p is through its operation: the shares of the steps before p's, and
// p's share times its own fraction. ok is false for a step apply does not list.
func opFraction(p apply.Progress, sizes map[string]int64) (float64, bool) {
	var steps []string
	for _, st := range apply.Steps() {
		if st.Phase == p.Phase {
			steps = append(steps, st.Name)
		}
	}
	shares := stepShares(steps, sizes)
	f := 0.0
	for i, name := range steps {
		if name != p.Step {
			f += shares[i]
			continue
		}
		if p.Total > 0 {
			f += shares[i] * min(float64(p.Done)/float64(p.Total), 1)
		}
		return min(f, 1), true
	}
	return 0, false
}

// stepShares divides an operation among its steps: a step that moves bytes by its bytes (the
// size learned from its own report or from a step that moves the same thing; while none is
// known, the byte steps share equally), a step that moves none quietShare; with no byte step
// at all, every step the same.
func stepShares(steps []string, sizes map[string]int64) []float64 {
	shares := make([]float64, len(steps))
	var weights []float64
	var largest float64
	quiet := 0
	for _, name := range steps {
		what, moves := stepMoves[name]
		switch {
		case !moves:
			quiet++
			weights = append(weights, 0)
		default:
			w := float64(sizes[what])
			largest = max(largest, w)
			weights = append(weights, w)
		}
	}
	if quiet == len(steps) {
		for i := range shares {
			shares[i] = 1 / float64(len(steps))
		}
		return shares
	}
	if largest == 0 {
		largest = 1
	}
	total := 0.0
	for i, name := range steps {
		if _, moves := stepMoves[name]; moves && weights[i] == 0 {
			weights[i] = largest // not reported yet: as large as the largest known
		}
		total += weights[i]
	}
	rest := 1 - quietShare*float64(quiet)
	for i, name := range steps {
		if _, moves := stepMoves[name]; moves {
			shares[i] = rest * weights[i] / total
		} else {
			shares[i] = quietShare
		}
	}
	return shares
}
