package kube

import (
	"fmt"

	"github.com/cairn-os/cairn/update-engine/api"
)

// Outcome is what became of a reboot into an update, read from update_engine's slots.
type Outcome int

const (
	// Booted: the node runs the slot it rebooted into, blessed good (or the reboot was not
	// into an update).
	Booted Outcome = iota
	// OnTrial: the node runs the new slot, not yet blessed good: the loader may still
	// roll it back.
	OnTrial
	// RolledBack: the node runs the other slot again, the new one out of tries (bad).
	RolledBack
	// NotRebooted: the node still runs the old slot, the new one not tried (locksmithd
	// stopped between the drain and the reboot, or the update was undone).
	NotRebooted
)

func (o Outcome) String() string {
	switch o {
	case Booted:
		return "booted"
	case OnTrial:
		return "on trial"
	case RolledBack:
		return "rolled back"
	case NotRebooted:
		return "not rebooted"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// slot returns the named slot of a listing.
func slot(sl *api.SlotList, name string) api.Slot {
	for _, s := range sl.Slots {
		if s.Slot == name {
			return s
		}
	}
	return api.Slot{Slot: name, State: api.SlotEmpty}
}

// target is the Record of a reboot from the slots as they are before it: the slot the
// loader boots next, when it is not the running one.
func target(sl *api.SlotList) Record {
	if sl.Next == "" || sl.Next == sl.Active {
		return Record{}
	}
	return Record{Slot: sl.Next, Version: slot(sl, sl.Next).Version}
}

// Judge tells, from the slots after a boot, what became of the reboot rec describes. The
// slot it went into is the one to look at: running it, it is good once blessed (before,
// it is trying, or bad at its last try, which the loader counted as it booted it); not
// running it, it is bad when the loader gave up on it.
func Judge(rec Record, sl *api.SlotList) Outcome {
	if rec.Slot == "" {
		return Booted
	}
	s := slot(sl, rec.Slot)
	if sl.Active == rec.Slot {
		if s.State == api.SlotGood {
			return Booted
		}
		return OnTrial
	}
	if s.State == api.SlotBad {
		return RolledBack
	}
	return NotRebooted
}
