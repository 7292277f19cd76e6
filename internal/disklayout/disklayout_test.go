package disklayout

import "testing"

func TestLayoutIsContainerLinuxShaped(t *testing.T) {
	want := map[int]string{1: "EFI-SYSTEM", 2: "BIOS-BOOT", 3: "USR-A", 4: "USR-B", 6: "OEM", 9: "ROOT"}
	if len(Partitions) != len(want) {
		t.Fatalf("%d partitions, want %d", len(Partitions), len(want))
	}
	last := 0
	for i, p := range Partitions {
		if want[p.Number] != p.Label {
			t.Errorf("partition %d is %q, want %q", p.Number, p.Label, want[p.Number])
		}
		if p.Number <= last {
			t.Errorf("partition %d out of order", p.Number)
		}
		last = p.Number
		if p.Size == 0 && i != len(Partitions)-1 {
			t.Errorf("%s: only the last partition may fill the disk", p.Label)
		}
	}
}

func TestSlots(t *testing.T) {
	if SlotA.Other() != SlotB || SlotB.Other() != SlotA {
		t.Fatal("Other is not an involution")
	}
	if p := SlotB.Partition(); p.Number != 4 || p.GUID != GUIDUSRB || p.Type != TypeUSR {
		t.Fatalf("slot B partition %+v", p)
	}
	s, err := SlotOfGUID("7130c94a-213a-4e5a-8e26-6cce9662f132")
	if err != nil || s != SlotA {
		t.Fatalf("SlotOfGUID lower-case A: %v %v", s, err)
	}
	if _, err := SlotOfGUID(TypeUSR); err == nil {
		t.Fatal("type GUID accepted as a slot GUID")
	}
	if _, err := ByLabel("USR-C"); err == nil {
		t.Fatal("unknown label accepted")
	}
	if MinDiskSize() < 2300*MiB {
		t.Fatalf("MinDiskSize %d too small for two 1 GiB slots", MinDiskSize())
	}
}
