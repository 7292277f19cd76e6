package slots

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/cairn-os/cairn/internal/disklayout"
	"github.com/cairn-os/cairn/update-engine/payload"
)

// EntryDir is where systemd-boot finds Type #2 (UKI) boot entries on the ESP.
const EntryDir = "EFI/Linux"

// State is a slot's boot state as the boot counter in its UKI's file name tells it.
type State string

const (
	StateEmpty  State = "empty"  // no boot entry: the slot is not bootable
	StateGood   State = "good"   // no counter: blessed by systemd-bless-boot (or installed good)
	StateTrying State = "trying" // counter with tries left: the loader will still try it
	StateBad    State = "bad"    // counter at 0 tries left: the loader sorts it last, rollback
)

// Entry is a parsed UKI file name: cairn-<version>-<slot>[+<left>[-<done>]].efi, the Boot
// Loader Specification's boot counting in the name.
type Entry struct {
	Name      string
	Version   string
	Slot      disklayout.Slot
	Counting  bool
	TriesLeft int
	TriesDone int
}

var entryRE = regexp.MustCompile(`^cairn-([0-9A-Za-z][0-9A-Za-z._~]*)-([AB])(?:\+([0-9]{1,4})(?:-([0-9]{1,4}))?)?\.efi$`)

// ParseEntry parses a UKI file name; ok is false for files that are not Cairn slot entries.
func ParseEntry(name string) (Entry, bool) {
	m := entryRE.FindStringSubmatch(name)
	if m == nil {
		return Entry{}, false
	}
	e := Entry{Name: name, Version: m[1], Slot: disklayout.Slot(m[2])}
	if m[3] != "" {
		e.Counting = true
		e.TriesLeft, _ = strconv.Atoi(m[3])
		if m[4] != "" {
			e.TriesDone, _ = strconv.Atoi(m[4])
		}
	}
	return e, true
}

// EntryName builds the file name of a slot's UKI; tries < 0 means "no counter" (good).
func EntryName(version string, slot disklayout.Slot, tries int) string {
	if tries < 0 {
		return fmt.Sprintf("cairn-%s-%s.efi", version, slot)
	}
	return fmt.Sprintf("cairn-%s-%s+%d.efi", version, slot, tries)
}

// ID is the entry's name without the boot counter, as systemd-boot identifies it.
func (e Entry) ID() string { return EntryName(e.Version, e.Slot, -1) }

// State reports the entry's boot state.
func (e Entry) State() State {
	switch {
	case !e.Counting:
		return StateGood
	case e.TriesLeft > 0:
		return StateTrying
	}
	return StateBad
}

// ValidVersion says whether v can appear in an entry name.
func ValidVersion(v string) bool {
	_, ok := ParseEntry(EntryName(v, disklayout.SlotA, -1))
	return ok && !strings.ContainsAny(v, "+-")
}

// bootOrder reports whether systemd-boot lists a before b: entries without tries left last,
// then the newer version first, then the larger id, then more tries left.
func bootOrder(a, b Entry) bool {
	if ab, bb := a.State() == StateBad, b.State() == StateBad; ab != bb {
		return bb
	}
	if c := payload.CompareVersions(a.Version, b.Version); c != 0 {
		return c > 0
	}
	if a.ID() != b.ID() {
		return a.ID() > b.ID()
	}
	return a.TriesLeft > b.TriesLeft
}
