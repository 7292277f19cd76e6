package engine

import (
	"testing"

	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/apply"
)

func TestStatusOf(t *testing.T) {
	for _, c := range []struct {
		p    apply.Progress
		sent bool
		want stepStatus
	}{
		{apply.Progress{Step: "download", Phase: apply.PhaseDownload}, false,
			stepStatus{op: api.OpDownloading, step: "download"}},
		{apply.Progress{Step: "download", Phase: apply.PhaseDownload, Done: 25, Total: 100}, false,
			stepStatus{op: api.OpDownloading, progress: 0.25, step: "download"}},
		{apply.Progress{Step: "download", Phase: apply.PhaseDownload, Done: 100, Total: 100}, false,
			stepStatus{op: api.OpDownloading, progress: 1, step: "download"}},
		// The first report after the download is the download's end.
		{apply.Progress{Step: "verify-payload", Phase: apply.PhaseVerify}, false,
			stepStatus{op: api.OpVerifying, step: "verify-payload", downloadFinished: true}},
		{apply.Progress{Step: "verify-payload", Phase: apply.PhaseVerify}, true,
			stepStatus{op: api.OpVerifying, step: "verify-payload"}},
		{apply.Progress{Step: "invalidate-inactive", Phase: apply.PhaseFinalize}, true,
			stepStatus{op: api.OpFinalizing, step: "invalidate-inactive"}},
		{apply.Progress{Step: "write-usr", Phase: apply.PhaseFinalize, Done: 1 << 20, Total: 4 << 20}, true,
			stepStatus{op: api.OpFinalizing, progress: 0.25, step: "write-usr"}},
		{apply.Progress{Step: "verify-usr", Phase: apply.PhaseFinalize, Done: 3, Total: 4}, true,
			stepStatus{op: api.OpFinalizing, progress: 0.75, step: "verify-usr"}},
		// Whatever phase comes first after the download ends it.
		{apply.Progress{Step: "cleanup", Phase: apply.PhaseFinalize}, false,
			stepStatus{op: api.OpFinalizing, step: "cleanup", downloadFinished: true}},
		// Bytes without a total are no fraction.
		{apply.Progress{Step: "write-usr", Phase: apply.PhaseFinalize, Done: 5}, true,
			stepStatus{op: api.OpFinalizing, step: "write-usr"}},
	} {
		if got := statusOf(c.p, c.sent); got != c.want {
			t.Errorf("statusOf(%+v, sent %v) = %+v, want %+v", c.p, c.sent, got, c.want)
		}
	}
}
