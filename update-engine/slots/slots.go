// Package slots is the single place that knows the state of Cairn's A/B /usr slots. A slot is
// a USR partition (found by its fixed partition GUID) plus a Unified Kernel Image on the ESP
// whose file name carries the Boot Loader Specification boot counter:
// EFI/Linux/cairn-<version>-<slot>[+<left>[-<done>]].efi. systemd-boot decrements the counter
// on each attempt, systemd-bless-boot drops it once the boot is good, and an entry at 0 tries
// left is sorted last: the previous slot boots again, without a human.
//
// The active slot comes from the kernel command line (mount.usr= or usr= naming the
// partition's PARTUUID). Everything else comes from the ESP's file names.
package slots

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf16"

	"github.com/cairn-os/cairn/internal/disklayout"
)

// ErrNoActiveSlot: the command line does not name a Cairn USR partition.
var ErrNoActiveSlot = errors.New("kernel command line names no Cairn /usr slot")

// Slots reads and changes slot state. All paths and devices are fields so that tests can
// point it at a loop-device disk.
type Slots struct {
	ESP ESP
	// Cmdline is the file holding the kernel command line (default /proc/cmdline).
	Cmdline string
	// BootEnv is the file where early boot records the slot it opened (CAIRN_SLOT,
	// CAIRN_USR_PARTUUID), default /run/cairn/boot.env. It wins over the command line, which
	// does not name the slot when the UKI came from a slot-neutral update payload.
	BootEnv string
	// PartitionPath returns the block device of a slot's USR partition
	// (default: /dev/disk/by-partuuid/<guid>).
	PartitionPath func(disklayout.Slot) (string, error)
	// EFIVars is the efivarfs directory, used only to pin a one-shot boot into an entry that
	// the loader's own order would not pick (a forced downgrade). Default
	// /sys/firmware/efi/efivars.
	EFIVars string
}

// SlotStatus is one slot's view.
type SlotStatus struct {
	Slot      disklayout.Slot `json:"slot"`
	Partition string          `json:"partition"`
	Entry     string          `json:"entry,omitempty"`
	Version   string          `json:"version,omitempty"`
	State     State           `json:"state"`
	TriesLeft int             `json:"tries_left,omitempty"`
	TriesDone int             `json:"tries_done,omitempty"`
	Active    bool            `json:"active"`
	NextBoot  bool            `json:"next_boot"`
}

// Status is both slots, the running one and the one the loader will pick next.
type Status struct {
	Active   disklayout.Slot `json:"active"`
	Inactive disklayout.Slot `json:"inactive"`
	Next     disklayout.Slot `json:"next,omitempty"`
	Slots    []SlotStatus    `json:"slots"`
}

// Slot returns the status of s.
func (st *Status) Slot(s disklayout.Slot) SlotStatus {
	for _, x := range st.Slots {
		if x.Slot == s {
			return x
		}
	}
	return SlotStatus{Slot: s, State: StateEmpty}
}

// ActiveSlot reads the running slot from early boot's record, else the kernel command line.
func (s *Slots) ActiveSlot() (disklayout.Slot, error) {
	env := s.BootEnv
	if env == "" {
		env = "/run/cairn/boot.env"
	}
	if b, err := os.ReadFile(env); err == nil {
		if slot, err := ActiveFromBootEnv(string(b)); err == nil {
			return slot, nil
		}
	}
	p := s.Cmdline
	if p == "" {
		p = "/proc/cmdline"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("active slot: %w", err)
	}
	return ActiveFromCmdline(string(b))
}

// ActiveFromBootEnv reads the slot from early boot's /run/cairn/boot.env: the USR partition's
// GUID (CAIRN_USR_PARTUUID) decides; CAIRN_SLOT is used when the GUID is absent.
func ActiveFromBootEnv(env string) (disklayout.Slot, error) {
	var named string
	for line := range strings.SplitSeq(env, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "CAIRN_USR_PARTUUID":
			if slot, err := disklayout.SlotOfGUID(v); err == nil {
				return slot, nil
			}
		case "CAIRN_SLOT":
			named = v
		}
	}
	if s := disklayout.Slot(named); s == disklayout.SlotA || s == disklayout.SlotB {
		return s, nil
	}
	return "", ErrNoActiveSlot
}

// ActiveFromCmdline finds the USR partition in a kernel command line: cairn.usr= (Cairn's
// early boot), mount.usr=, usr= or systemd.verity_usr_data= with PARTUUID=<guid> or
// /dev/disk/by-partuuid/<guid>, else cairn.slot=.
func ActiveFromCmdline(cmdline string) (disklayout.Slot, error) {
	var named disklayout.Slot
	for f := range strings.FieldsSeq(cmdline) {
		k, v, ok := strings.Cut(f, "=")
		if ok && k == "cairn.slot" && (v == "A" || v == "B") {
			named = disklayout.Slot(v)
			continue
		}
		if !ok || (k != "cairn.usr" && k != "mount.usr" && k != "usr" && k != "systemd.verity_usr_data") {
			continue
		}
		v = strings.Trim(v, `"`)
		guid, ok := strings.CutPrefix(v, "PARTUUID=")
		if !ok {
			guid, ok = strings.CutPrefix(v, "/dev/disk/by-partuuid/")
		}
		if !ok {
			continue
		}
		if slot, err := disklayout.SlotOfGUID(guid); err == nil {
			return slot, nil
		}
	}
	if named != "" {
		return named, nil
	}
	return "", ErrNoActiveSlot
}

func (s *Slots) partition(slot disklayout.Slot) string {
	if s.PartitionPath != nil {
		if p, err := s.PartitionPath(slot); err == nil {
			return p
		}
		return ""
	}
	return ByPartUUID(slot)
}

// ByPartUUID is the udev path of a slot's USR partition.
func ByPartUUID(slot disklayout.Slot) string {
	return "/dev/disk/by-partuuid/" + strings.ToLower(slot.Partition().GUID)
}

// DiskPartitions returns a PartitionPath for a whole-disk device whose partitions appear as
// <disk>p<N> (loop, nvme) or <disk><N> (sd, vd), numbered as in disklayout.
func DiskPartitions(disk string) func(disklayout.Slot) (string, error) {
	return func(slot disklayout.Slot) (string, error) {
		n := slot.Partition().Number
		sep := ""
		if last := disk[len(disk)-1]; '0' <= last && last <= '9' {
			sep = "p"
		}
		return fmt.Sprintf("%s%s%d", disk, sep, n), nil
	}
}

// Entries lists the Cairn slot entries on the ESP in the loader's boot order.
func (s *Slots) Entries(ctx context.Context) ([]Entry, error) {
	names, err := s.ESP.List(ctx, EntryDir)
	if err != nil {
		return nil, err
	}
	var es []Entry
	for _, n := range names {
		if e, ok := ParseEntry(n); ok {
			es = append(es, e)
		}
	}
	sort.SliceStable(es, func(i, j int) bool { return bootOrder(es[i], es[j]) })
	return es, nil
}

// Status reports both slots.
func (s *Slots) Status(ctx context.Context) (*Status, error) {
	active, err := s.ActiveSlot()
	if err != nil {
		return nil, err
	}
	es, err := s.Entries(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{Active: active, Inactive: active.Other()}
	if len(es) > 0 {
		st.Next = es[0].Slot
	}
	for _, slot := range []disklayout.Slot{disklayout.SlotA, disklayout.SlotB} {
		ss := SlotStatus{Slot: slot, Partition: s.partition(slot), State: StateEmpty, Active: slot == active, NextBoot: slot == st.Next}
		for _, e := range es {
			if e.Slot == slot { // the first in boot order is the one that counts
				ss.Entry, ss.Version, ss.State, ss.TriesLeft, ss.TriesDone = e.Name, e.Version, e.State(), e.TriesLeft, e.TriesDone
				break
			}
		}
		st.Slots = append(st.Slots, ss)
	}
	return st, nil
}

// Invalidate makes a slot unbootable by removing its entries (and any staged UKI). It is the
// first thing done before its partition is overwritten. It refuses the active slot.
func (s *Slots) Invalidate(ctx context.Context, slot disklayout.Slot) error {
	if active, err := s.ActiveSlot(); err != nil || active == slot {
		return fmt.Errorf("slot %s: refusing to invalidate the active slot (%v)", slot, err)
	}
	names, err := s.ESP.List(ctx, EntryDir)
	if err != nil {
		return err
	}
	for _, n := range names {
		e, ok := ParseEntry(n)
		staged := strings.HasPrefix(n, "cairn-") && strings.HasSuffix(n, "-"+string(slot)+StageSuffix)
		if (ok && e.Slot == slot) || staged {
			if err := s.ESP.Remove(ctx, EntryDir+"/"+n); err != nil {
				return fmt.Errorf("slot %s: remove %s: %w", slot, n, err)
			}
		}
	}
	return nil
}

// StageSuffix marks a UKI written but not yet made bootable: the loader only reads *.efi.
const StageSuffix = ".efi.new"

// StageName is the not-yet-bootable name of a slot's UKI.
func StageName(version string, slot disklayout.Slot) string {
	return fmt.Sprintf("cairn-%s-%s%s", version, slot, StageSuffix)
}

// StageUKI writes a UKI for slot under its staging name.
func (s *Slots) StageUKI(ctx context.Context, version string, slot disklayout.Slot, r io.Reader) error {
	if !ValidVersion(version) {
		return fmt.Errorf("slot %s: version %q cannot be named in a boot entry", slot, version)
	}
	return s.ESP.Create(ctx, EntryDir+"/"+StageName(version, slot), r)
}

// OpenStaged reads back a staged UKI.
func (s *Slots) OpenStaged(ctx context.Context, version string, slot disklayout.Slot) (io.ReadCloser, error) {
	return s.ESP.Open(ctx, EntryDir+"/"+StageName(version, slot))
}

// SetNext makes the staged UKI of slot bootable with tries boot attempts: one rename, the
// commit point of an update. If the loader's order would still not pick it (the version is
// older than the active one: a forced downgrade), a one-shot boot is pinned through the
// LoaderEntryOneShot EFI variable.
func (s *Slots) SetNext(ctx context.Context, version string, slot disklayout.Slot, tries int) error {
	if tries < 1 || tries > 9 {
		return fmt.Errorf("slot %s: %d tries, want 1..9", slot, tries)
	}
	to := EntryName(version, slot, tries)
	if err := s.ESP.Rename(ctx, EntryDir+"/"+StageName(version, slot), EntryDir+"/"+to); err != nil {
		return fmt.Errorf("slot %s: make %s bootable: %w", slot, to, err)
	}
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	if st.Next == slot {
		return nil
	}
	if err := s.pinOneShot(EntryName(version, slot, -1)); err != nil {
		// Not the next boot and no way to make it so: leave it unbootable again.
		if rerr := s.ESP.Rename(ctx, EntryDir+"/"+to, EntryDir+"/"+StageName(version, slot)); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("slot %s: the loader prefers slot %s and a one-shot boot cannot be set: %w", slot, st.Next, err)
	}
	return nil
}

// loaderGUID is systemd-boot's EFI variable vendor GUID.
const loaderGUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

func (s *Slots) pinOneShot(id string) error {
	dir := s.EFIVars
	if dir == "" {
		dir = "/sys/firmware/efi/efivars"
	}
	if _, err := os.Stat(dir); err != nil {
		return err
	}
	// Attributes NON_VOLATILE|BOOTSERVICE_ACCESS|RUNTIME_ACCESS, then UTF-16LE with a NUL.
	b := []byte{7, 0, 0, 0}
	for _, u := range utf16.Encode([]rune(id + "\x00")) {
		b = append(b, byte(u), byte(u>>8))
	}
	// efivarfs wants the variable written in one write(2) and does not support rename.
	return os.WriteFile(filepath.Join(dir, "LoaderEntryOneShot-"+loaderGUID), b, 0o644)
}

// MarkGood drops the boot counter of slot's entry, as systemd-bless-boot does after
// boot-complete.target. It is idempotent.
func (s *Slots) MarkGood(ctx context.Context, slot disklayout.Slot) error {
	es, err := s.Entries(ctx)
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.Slot == slot && e.Counting {
			return s.ESP.Rename(ctx, EntryDir+"/"+e.Name, EntryDir+"/"+e.ID())
		}
	}
	return nil
}

// CountBootAttempt does what systemd-boot does when it starts a counting entry: one try
// fewer, one more done. Tests use it to play the loader's part.
func (s *Slots) CountBootAttempt(ctx context.Context, slot disklayout.Slot) error {
	es, err := s.Entries(ctx)
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.Slot == slot && e.Counting && e.TriesLeft > 0 {
			to := fmt.Sprintf("cairn-%s-%s+%d-%d.efi", e.Version, e.Slot, e.TriesLeft-1, e.TriesDone+1)
			return s.ESP.Rename(ctx, EntryDir+"/"+e.Name, EntryDir+"/"+to)
		}
	}
	return nil
}

// PartitionOf returns the block device of slot's USR partition.
func (s *Slots) PartitionOf(slot disklayout.Slot) (string, error) {
	if s.PartitionPath != nil {
		return s.PartitionPath(slot)
	}
	return ByPartUUID(slot), nil
}
