package engine

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

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

// A client that goes away is written to no more, and an update it started runs to its end
// before its handler returns (Serve waits for handlers, so for the update too).
func TestAnswerClientGone(t *testing.T) {
	gone := errors.New("broken pipe")
	for _, c := range []struct {
		name string
		busy bool // the scheduler holds the engine: the call follows its run
	}{
		{"own update", false},
		{"followed update", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := newMachine(t)
			m.publish("2.0.0", m.priv)
			e := m.engine("1.0.0")
			if c.busy {
				if err := e.begin(); err != nil {
					t.Fatal(err)
				}
				go func() {
					time.Sleep(100 * time.Millisecond)
					e.setStatus(func(s *api.Status) { s.CurrentOperation = api.OpDownloading })
					time.Sleep(100 * time.Millisecond)
					e.end()
					e.setStatus(func(s *api.Status) { s.CurrentOperation = api.OpNeedReboot })
				}()
			}
			sends := 0
			send := func(api.Reply) error {
				sends++
				return gone
			}
			err := (&Server{Engine: e}).answer(t.Context(), api.Call{Method: api.MethodUpdate}, send)
			if !errors.Is(err, gone) {
				t.Fatalf("answer: %v, want the failed write's error", err)
			}
			if sends != 1 {
				t.Errorf("%d writes, want none after the first failed", sends)
			}
			if !c.busy {
				if op := e.Status().CurrentOperation; op != api.OpNeedReboot {
					t.Errorf("answer returned with the update at %q, want it applied", op)
				}
			}
		})
	}
}
