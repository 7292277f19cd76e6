package stage1

import (
	"errors"
	"testing"

	"github.com/cairn-os/cairn/runtime/pod"
	"github.com/cairn-os/cairn/runtime/podapi"
)

func TestPlanStep(t *testing.T) {
	for _, c := range []struct {
		op    appOp
		state pod.AppState
		want  appStep
		err   bool
	}{
		{opStart, pod.AppCreated, stepExec, false},
		{opStart, pod.AppRunning, stepNone, false}, // idempotent
		{opStart, pod.AppExited, stepNone, true},   // never back
		{opStop, pod.AppCreated, stepNone, false},  // nothing runs: stays created
		{opStop, pod.AppRunning, stepStop, false},
		{opStop, pod.AppExited, stepNone, false},
		{opRemove, pod.AppCreated, stepKill, false},
		{opRemove, pod.AppRunning, stepStop, false},
		{opRemove, pod.AppExited, stepNone, false},
		{opStart, pod.AppUnknown, stepNone, true},
		{opRemove, pod.AppUnknown, stepNone, true},
		{"pause", pod.AppRunning, stepNone, true},
	} {
		got, err := planStep(c.op, c.state)
		if got != c.want || (err != nil) != c.err || err != nil && !errors.Is(err, podapi.ErrState) {
			t.Errorf("%s of %s: %v %v, want %v (error %v)", c.op, c.state, got, err, c.want, c.err)
		}
	}
}
