// Package gpt reads and writes GUID Partition Tables (UEFI spec, chapter 5) in a disk image
// or on a block device, through io.ReaderAt/io.WriterAt: the image builder writes Cairn's
// disk into a plain file with it (no loop devices), and the initramfs reads it to find a
// slot's partition by its unique GUID before udev runs. It is small on purpose: one sector
// size per table, 128-byte entries, a protective MBR, primary and backup copies.
package gpt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrNoTable = errors.New("no valid GPT")
	ErrLayout  = errors.New("partition does not fit")
)

const (
	signature    = "EFI PART"
	revision     = 0x00010000
	headerSize   = 92
	entrySize    = 128
	numEntries   = 128
	nameUnits    = 36
	maxEntryArea = 1 << 20 // refuse tables whose entry array claims more than this
)

// GUID is a GUID as stored on disk (mixed endian: the first three fields little endian).
type GUID [16]byte

// ParseGUID parses the textual form "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" (any case).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("GUID %q: want the form XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX", s)
	}
	hex := strings.ReplaceAll(s, "-", "")
	var raw [16]byte
	for i := range 16 {
		hi, ok1 := unhex(hex[2*i])
		lo, ok2 := unhex(hex[2*i+1])
		if !ok1 || !ok2 {
			return g, fmt.Errorf("GUID %q: not hexadecimal", s)
		}
		raw[i] = hi<<4 | lo
	}
	// Textual order is big endian; the first three fields are stored little endian.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, nil
}

// MustParseGUID is ParseGUID for constants.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String returns the upper-case textual form, as sgdisk prints it.
func (g GUID) String() string {
	return fmt.Sprintf("%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15])
}

// IsZero reports whether g is the all-zero GUID (an unused entry's type).
func (g GUID) IsZero() bool { return g == GUID{} }

// TypeUSR is the Discoverable Partitions Specification's x86-64 /usr partition type: the
// partition of a system extension image that systemd-sysext merges over /usr (image/sysext
// writes it, update-engine/extensions reads it). Cairn's own slots have another type,
// disklayout.TypeUSR.
var TypeUSR = MustParseGUID("8484680C-9521-48C6-9C11-B0720656F69E")

// Partition is one used entry of the table.
type Partition struct {
	Number     int // 1-based index of the entry in the array
	Type       GUID
	GUID       GUID // unique partition GUID
	FirstLBA   uint64
	LastLBA    uint64 // inclusive
	Attributes uint64
	Name       string
}

// Size is the partition's size in bytes for the given sector size.
func (p Partition) Size(sectorSize int) int64 {
	return int64(p.LastLBA-p.FirstLBA+1) * int64(sectorSize)
}

// Offset is the partition's byte offset on the disk.
func (p Partition) Offset(sectorSize int) int64 { return int64(p.FirstLBA) * int64(sectorSize) }

// Table is a whole GPT.
type Table struct {
	SectorSize int // 512 unless set
	DiskGUID   GUID
	Partitions []Partition // used entries, any order; Number picks the array slot
}

func (t *Table) sector() int {
	if t.SectorSize == 0 {
		return 512
	}
	return t.SectorSize
}

// Usable returns the first and last LBA that partitions may use on a disk of diskSize bytes,
// with 128 entries on each side.
func (t *Table) Usable(diskSize int64) (first, last uint64) {
	ss := uint64(t.sector())
	entrySectors := (numEntries*entrySize + ss - 1) / ss
	sectors := uint64(diskSize) / ss
	return 2 + entrySectors, sectors - 2 - entrySectors
}

// Find returns the partition with unique GUID g.
func (t *Table) Find(g GUID) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.GUID == g {
			return p, true
		}
	}
	return Partition{}, false
}

// FindName returns the first partition named name.
func (t *Table) FindName(name string) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Name == name {
			return p, true
		}
	}
	return Partition{}, false
}

// Validate checks the table against a disk of diskSize bytes: entry numbers, bounds, overlaps.
func (t *Table) Validate(diskSize int64) error {
	ss := t.sector()
	if ss < 512 || ss&(ss-1) != 0 {
		return fmt.Errorf("sector size %d: want a power of two >= 512", ss)
	}
	if diskSize%int64(ss) != 0 {
		return fmt.Errorf("disk size %d is not a multiple of the sector size %d", diskSize, ss)
	}
	first, last := t.Usable(diskSize)
	if diskSize/int64(ss) < 3+2*int64(first) || first > last {
		return fmt.Errorf("disk of %d bytes is too small for a GPT", diskSize)
	}
	seen := map[int]bool{}
	for i, p := range t.Partitions {
		switch {
		case p.Number < 1 || p.Number > numEntries:
			return fmt.Errorf("partition %q: number %d out of 1..%d", p.Name, p.Number, numEntries)
		case seen[p.Number]:
			return fmt.Errorf("partition %q: number %d used twice", p.Name, p.Number)
		case p.Type.IsZero():
			return fmt.Errorf("partition %d %q: zero type GUID marks an unused entry", p.Number, p.Name)
		case len(utf16.Encode([]rune(p.Name))) > nameUnits:
			return fmt.Errorf("partition %d: name %q longer than %d UTF-16 units", p.Number, p.Name, nameUnits)
		case p.FirstLBA > p.LastLBA:
			return fmt.Errorf("partition %d %q: first LBA %d after last %d: %w", p.Number, p.Name, p.FirstLBA, p.LastLBA, ErrLayout)
		case p.FirstLBA < first || p.LastLBA > last:
			return fmt.Errorf("partition %d %q: LBAs %d..%d outside usable %d..%d: %w", p.Number, p.Name, p.FirstLBA, p.LastLBA, first, last, ErrLayout)
		}
		seen[p.Number] = true
		for _, q := range t.Partitions[:i] {
			if p.FirstLBA <= q.LastLBA && q.FirstLBA <= p.LastLBA {
				return fmt.Errorf("partition %d %q overlaps partition %d %q: %w", p.Number, p.Name, q.Number, q.Name, ErrLayout)
			}
		}
	}
	return nil
}

// Write writes a protective MBR, the primary table at LBA 1..33 and the backup table at the
// end of a disk of diskSize bytes. It writes only the table sectors; partition contents are
// the caller's.
func (t *Table) Write(w io.WriterAt, diskSize int64) error {
	if err := t.Validate(diskSize); err != nil {
		return err
	}
	ss := t.sector()
	sectors := uint64(diskSize) / uint64(ss)
	first, last := t.Usable(diskSize)

	entries := make([]byte, numEntries*entrySize)
	for _, p := range t.Partitions {
		e := entries[(p.Number-1)*entrySize:][:entrySize]
		copy(e[0:16], p.Type[:])
		copy(e[16:32], p.GUID[:])
		binary.LittleEndian.PutUint64(e[32:], p.FirstLBA)
		binary.LittleEndian.PutUint64(e[40:], p.LastLBA)
		binary.LittleEndian.PutUint64(e[48:], p.Attributes)
		for i, u := range utf16.Encode([]rune(p.Name)) {
			binary.LittleEndian.PutUint16(e[56+2*i:], u)
		}
	}
	entriesCRC := crc32.ChecksumIEEE(entries)
	entrySectors := uint64(len(entries)) / uint64(ss)
	if len(entries)%ss != 0 {
		entrySectors++
		entries = append(entries, make([]byte, ss-len(entries)%ss)...)
	}

	header := func(my, alt, entryLBA uint64) []byte {
		h := make([]byte, ss)
		copy(h, signature)
		binary.LittleEndian.PutUint32(h[8:], revision)
		binary.LittleEndian.PutUint32(h[12:], headerSize)
		binary.LittleEndian.PutUint64(h[24:], my)
		binary.LittleEndian.PutUint64(h[32:], alt)
		binary.LittleEndian.PutUint64(h[40:], first)
		binary.LittleEndian.PutUint64(h[48:], last)
		copy(h[56:72], t.DiskGUID[:])
		binary.LittleEndian.PutUint64(h[72:], entryLBA)
		binary.LittleEndian.PutUint32(h[80:], numEntries)
		binary.LittleEndian.PutUint32(h[84:], entrySize)
		binary.LittleEndian.PutUint32(h[88:], entriesCRC)
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:headerSize]))
		return h
	}

	writes := []struct {
		lba  uint64
		data []byte
	}{
		{0, protectiveMBR(ss, sectors)},
		{1, header(1, sectors-1, 2)},
		{2, entries},
		{sectors - 1 - entrySectors, entries},
		{sectors - 1, header(sectors-1, 1, sectors-1-entrySectors)},
	}
	for _, x := range writes {
		if _, err := w.WriteAt(x.data, int64(x.lba)*int64(ss)); err != nil {
			return fmt.Errorf("write GPT at LBA %d: %w", x.lba, err)
		}
	}
	return nil
}

func protectiveMBR(ss int, sectors uint64) []byte {
	m := make([]byte, ss)
	p := m[446:]
	p[1], p[2], p[3] = 0x00, 0x02, 0x00 // CHS of LBA 1
	p[4] = 0xEE
	p[5], p[6], p[7] = 0xFF, 0xFF, 0xFF
	binary.LittleEndian.PutUint32(p[8:], 1)
	size := min(sectors-1, 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(p[12:], uint32(size))
	m[510], m[511] = 0x55, 0xAA
	return m
}

// Read reads the GPT of a disk of diskSize bytes with the given sector size (0 means 512). It
// checks the primary header and entries by their CRCs and falls back to the backup copy at the
// end of the disk when the primary is damaged.
func Read(r io.ReaderAt, diskSize int64, sectorSize int) (*Table, error) {
	if sectorSize == 0 {
		sectorSize = 512
	}
	if sectorSize < 512 || sectorSize > 1<<16 || sectorSize&(sectorSize-1) != 0 {
		return nil, fmt.Errorf("sector size %d: %w", sectorSize, ErrNoTable)
	}
	sectors := uint64(diskSize) / uint64(sectorSize)
	if sectors < 3 {
		return nil, fmt.Errorf("disk of %d bytes: %w", diskSize, ErrNoTable)
	}
	t, perr := readAt(r, 1, sectors, sectorSize)
	if perr == nil {
		return t, nil
	}
	t, berr := readAt(r, sectors-1, sectors, sectorSize)
	if berr == nil {
		return t, nil
	}
	return nil, fmt.Errorf("primary: %v; backup: %v: %w", perr, berr, ErrNoTable)
}

func readAt(r io.ReaderAt, lba, sectors uint64, ss int) (*Table, error) {
	h := make([]byte, ss)
	if _, err := r.ReadAt(h, int64(lba)*int64(ss)); err != nil {
		return nil, fmt.Errorf("read header at LBA %d: %w", lba, err)
	}
	if string(h[:8]) != signature {
		return nil, fmt.Errorf("LBA %d: no GPT signature", lba)
	}
	hsize := binary.LittleEndian.Uint32(h[12:])
	if hsize < headerSize || int(hsize) > ss {
		return nil, fmt.Errorf("LBA %d: header size %d", lba, hsize)
	}
	want := binary.LittleEndian.Uint32(h[16:])
	hc := bytes.Clone(h[:hsize])
	binary.LittleEndian.PutUint32(hc[16:], 0)
	if crc32.ChecksumIEEE(hc) != want {
		return nil, fmt.Errorf("LBA %d: header CRC mismatch", lba)
	}
	if my := binary.LittleEndian.Uint64(h[24:]); my != lba {
		return nil, fmt.Errorf("LBA %d: header says it is at LBA %d", lba, my)
	}
	first := binary.LittleEndian.Uint64(h[40:])
	last := binary.LittleEndian.Uint64(h[48:])
	entryLBA := binary.LittleEndian.Uint64(h[72:])
	n := binary.LittleEndian.Uint32(h[80:])
	esize := binary.LittleEndian.Uint32(h[84:])
	if esize < entrySize || esize%8 != 0 || esize > 4096 {
		return nil, fmt.Errorf("LBA %d: entry size %d", lba, esize)
	}
	area := uint64(n) * uint64(esize)
	if area > maxEntryArea {
		return nil, fmt.Errorf("LBA %d: %d entries of %d bytes is too many", lba, n, esize)
	}
	if first > last || last >= sectors || entryLBA >= sectors || entryLBA+(area+uint64(ss)-1)/uint64(ss) > sectors {
		return nil, fmt.Errorf("LBA %d: header LBAs out of the disk's %d sectors", lba, sectors)
	}
	entries := make([]byte, area)
	if _, err := r.ReadAt(entries, int64(entryLBA)*int64(ss)); err != nil {
		return nil, fmt.Errorf("read entries at LBA %d: %w", entryLBA, err)
	}
	if crc32.ChecksumIEEE(entries) != binary.LittleEndian.Uint32(h[88:]) {
		return nil, fmt.Errorf("LBA %d: entries CRC mismatch", lba)
	}
	t := &Table{SectorSize: ss}
	copy(t.DiskGUID[:], h[56:72])
	for i := range n {
		e := entries[uint64(i)*uint64(esize):][:entrySize]
		var p Partition
		copy(p.Type[:], e[0:16])
		if p.Type.IsZero() {
			continue
		}
		p.Number = int(i) + 1
		copy(p.GUID[:], e[16:32])
		p.FirstLBA = binary.LittleEndian.Uint64(e[32:])
		p.LastLBA = binary.LittleEndian.Uint64(e[40:])
		p.Attributes = binary.LittleEndian.Uint64(e[48:])
		if p.FirstLBA > p.LastLBA || p.FirstLBA < first || p.LastLBA > last {
			return nil, fmt.Errorf("LBA %d: entry %d LBAs %d..%d outside %d..%d", lba, p.Number, p.FirstLBA, p.LastLBA, first, last)
		}
		units := make([]uint16, 0, nameUnits)
		for j := range nameUnits {
			u := binary.LittleEndian.Uint16(e[56+2*j:])
			if u == 0 {
				break
			}
			units = append(units, u)
		}
		p.Name = string(utf16.Decode(units))
		t.Partitions = append(t.Partitions, p)
	}
	return t, nil
}
