package fleet

import (
	"testing"
	"time"

	"github.com/cairn-os/cairn/console/rollout"
	"github.com/cairn-os/cairn/console/store"
)

func TestHeldBack(t *testing.T) {
	offered := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	after, before := offered.Add(time.Minute), offered.Add(-time.Minute)
	for _, tc := range []struct {
		name string
		in   *store.Instance
		held bool
	}{
		{"no instance", nil, false},
		{"waiting for the canary", &store.Instance{Version: Old, LastCheckAt: after, Hold: rollout.ReasonCanaries, HoldReason: "waiting for canaries: 0 of 1 complete, 1 in flight"}, true},
		{"max in flight", &store.Instance{Version: Old, LastCheckAt: after, Hold: rollout.ReasonMaxInFlight}, true},
		{"a hold from before the offer", &store.Instance{Version: Old, LastCheckAt: before, Hold: rollout.ReasonCanaries}, false},
		{"nothing offered then", &store.Instance{Version: Old, LastCheckAt: after, Hold: rollout.ReasonNoPackage}, false},
		{"updating", &store.Instance{Version: Old, LastCheckAt: after, UpdateInProgress: true}, false},
		{"updated", &store.Instance{Version: New, LastCheckAt: after, Hold: rollout.ReasonUpToDate}, false},
		{"a halted group", &store.Instance{Version: Old, LastCheckAt: after, Hold: rollout.ReasonPaused}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held, why := HeldBack(tc.in, New, offered)
			if held != tc.held || (held && tc.in.HoldReason != why) {
				t.Errorf("HeldBack = %v %q, want %v", held, why, tc.held)
			}
		})
	}
}
