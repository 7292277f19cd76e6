// Package disklayout is Cairn's disk layout, after Container Linux's: which partition holds
// what, its GPT label, type GUID and size. The image builder writes it, the installer checks
// it, the update engine finds its slots by it. It is data only: no I/O.
package disklayout

import "fmt"

// GPT partition type GUIDs (as printed by sgdisk, upper case).
const (
	TypeEFISystem = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	TypeBIOSBoot  = "21686148-6449-6E6F-744E-656564454649"
	// TypeUSR is CoreOS's /usr partition type: both slots carry it.
	TypeUSR = "5DFBF5F4-2848-4BAC-AA5E-0D9A20B745A6"
	// TypeLinuxData is the generic Linux filesystem type, used for OEM as Container Linux did.
	TypeLinuxData = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
	// TypeRootResize is CoreOS's "root, grow me on first boot" type.
	TypeRootResize = "3884DD41-8582-4404-B9A8-E9B84F2DF50E"
)

// Fixed unique partition GUIDs of the two /usr slots, the same on every Cairn disk (as on
// Container Linux), so that a slot can be named on the kernel command line before udev runs.
const (
	GUIDUSRA = "7130C94A-213A-4E5A-8E26-6CCE9662F132"
	GUIDUSRB = "E03DD35C-7C2D-4A47-B3FE-27F15780A57C"
)

const MiB = 1 << 20

// Partition is one entry of the layout.
type Partition struct {
	Number int    // GPT entry number (1-based), fixed: tools address partitions by it
	Label  string // GPT partition name
	Type   string // type GUID
	GUID   string // fixed unique GUID, or "" for a random one at build time
	Size   int64  // bytes; 0 means "the rest of the disk" (only the last partition)
	FS     string // filesystem made at build time: vfat, ext4, or "" (raw: /usr images, BIOS boot)
}

// Partitions is the layout in disk order.
var Partitions = []Partition{
	{Number: 1, Label: "EFI-SYSTEM", Type: TypeEFISystem, Size: 128 * MiB, FS: "vfat"},
	{Number: 2, Label: "BIOS-BOOT", Type: TypeBIOSBoot, Size: 2 * MiB},
	{Number: 3, Label: "USR-A", Type: TypeUSR, GUID: GUIDUSRA, Size: 1024 * MiB},
	{Number: 4, Label: "USR-B", Type: TypeUSR, GUID: GUIDUSRB, Size: 1024 * MiB},
	{Number: 6, Label: "OEM", Type: TypeLinuxData, Size: 128 * MiB, FS: "ext4"},
	{Number: 9, Label: "ROOT", Type: TypeRootResize, Size: 0, FS: "ext4"},
}

// Slot names an A/B /usr slot.
type Slot string

const (
	SlotA Slot = "A"
	SlotB Slot = "B"
)

// Other returns the slot that is not s.
func (s Slot) Other() Slot {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// Partition returns the layout entry of the slot's /usr partition.
func (s Slot) Partition() Partition {
	p, _ := ByLabel("USR-" + string(s))
	return p
}

// ByLabel finds a partition of the layout by its GPT label.
func ByLabel(label string) (Partition, error) {
	for _, p := range Partitions {
		if p.Label == label {
			return p, nil
		}
	}
	return Partition{}, fmt.Errorf("disk layout has no partition labelled %q", label)
}

// ByNumber finds a partition of the layout by its GPT entry number.
func ByNumber(n int) (Partition, error) {
	for _, p := range Partitions {
		if p.Number == n {
			return p, nil
		}
	}
	return Partition{}, fmt.Errorf("disk layout has no partition number %d", n)
}

// SlotOfGUID returns the slot whose /usr partition has the unique GUID g (any case).
func SlotOfGUID(g string) (Slot, error) {
	switch upper(g) {
	case GUIDUSRA:
		return SlotA, nil
	case GUIDUSRB:
		return SlotB, nil
	}
	return "", fmt.Errorf("partition GUID %s is not a Cairn /usr slot", g)
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// MinDiskSize is the smallest disk the layout fits on, with ROOT at its minimum of 256 MiB
// plus GPT headers at both ends.
func MinDiskSize() int64 {
	var n int64 = 2 * MiB // primary GPT + alignment, backup GPT
	for _, p := range Partitions {
		if p.Size == 0 {
			n += 256 * MiB
		}
		n += p.Size
	}
	return n
}
