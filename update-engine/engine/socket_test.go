package engine

import (
	"encoding/json"
	"testing"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/update-engine/api"
	"github.com/cairn-os/cairn/update-engine/slots"
)

// The Slots reply marshals as slots.Status does: update_engine_client -slots -format=json
// prints slots' own JSON.
func TestSlotListJSON(t *testing.T) {
	for _, c := range []struct {
		name string
		st   *slots.Status
	}{
		{"update pending", &slots.Status{Active: disklayout.SlotA, Inactive: disklayout.SlotB, Next: disklayout.SlotB, Slots: []slots.SlotStatus{
			{Slot: disklayout.SlotA, Partition: "/dev/loop0p3", Entry: "cairn-1.0.0-A.efi", Version: "1.0.0", State: slots.StateGood, Active: true},
			{Slot: disklayout.SlotB, Partition: "/dev/loop0p4\n", Entry: "cairn-2.0.0-B+2-1.efi", Version: "2.0.0", State: slots.StateTrying,
				TriesLeft: 2, TriesDone: 1, NextBoot: true},
		}}},
		{"rolled back", &slots.Status{Active: disklayout.SlotA, Inactive: disklayout.SlotB, Next: disklayout.SlotA, Slots: []slots.SlotStatus{
			{Slot: disklayout.SlotA, State: slots.StateGood, Active: true, NextBoot: true},
			{Slot: disklayout.SlotB, Version: "2.0.0", State: slots.StateBad, TriesDone: 3},
		}}},
		{"empty", &slots.Status{Active: disklayout.SlotB, Inactive: disklayout.SlotA, Slots: []slots.SlotStatus{
			{Slot: disklayout.SlotA, State: slots.StateEmpty},
		}}},
		{"nil slots", &slots.Status{}},
		{"no slots", &slots.Status{Slots: []slots.SlotStatus{}}},
	} {
		want, _ := json.Marshal(c.st)
		got, _ := json.Marshal(slotList(c.st))
		if string(got) != string(want) {
			t.Errorf("%s: got\n%s\nwant\n%s", c.name, got, want)
		}
	}
	if slotList(nil) != nil {
		t.Error("no status: a slot list")
	}
}

// api names the states that slots reports.
func TestSlotStates(t *testing.T) {
	for _, c := range []struct {
		slots slots.State
		api   string
	}{
		{slots.StateEmpty, api.SlotEmpty},
		{slots.StateGood, api.SlotGood},
		{slots.StateTrying, api.SlotTrying},
		{slots.StateBad, api.SlotBad},
	} {
		if string(c.slots) != c.api {
			t.Errorf("slots state %q, api says %q", c.slots, c.api)
		}
	}
}
