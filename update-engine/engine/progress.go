package engine

import (
	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/apply"
)

// stepStatus is what one progress report of apply makes of the engine's status.
type stepStatus struct {
	op       string  // CURRENT_OP
	progress float64 // of the step, 0 to 1
	step     string
	// downloadFinished: the download-finished event is due now (the flow left the download).
	downloadFinished bool
}

// statusOf maps apply's progress p to the status; sent says whether the download-finished
// event was sent already.
func statusOf(p apply.Progress, sent bool) stepStatus {
	s := stepStatus{op: api.OpFinalizing, step: p.Step, downloadFinished: !sent && p.Phase != apply.PhaseDownload}
	switch p.Phase {
	case apply.PhaseDownload:
		s.op = api.OpDownloading
	case apply.PhaseVerify:
		s.op = api.OpVerifying
	}
	if p.Total > 0 {
		s.progress = float64(p.Done) / float64(p.Total)
	}
	return s
}
