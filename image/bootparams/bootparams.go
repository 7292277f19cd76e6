// Package bootparams is the contract between a slot's UKI command line and Cairn's initramfs:
// which partition holds the slot's /usr and how to open it with dm-verity. The builder
// formats it, the initramfs parses it from /proc/cmdline (untrusted text as far as parsing
// goes: the firmware or a PXE server hands it over).
//
//	cairn.usr=PARTUUID=<guid>         the slot's USR partition, or
//	cairn.usr=auto                    the USR-type partition whose hash tree gives usrhash
//	                                  (a slot-neutral UKI, as update payloads carry)
//	cairn.usr=file:<path>             a /usr image inside the initramfs (PXE)
//	cairn.usrhash=<hex>               dm-verity root hash of /usr
//	cairn.verity=<blocks>,<salt hex>  4 KiB data blocks before the hash tree (which follows
//	                                  them in the same partition, no superblock), and the salt
//	cairn.slot=A|B                    the slot, for logs and the update engine
//
// The names are Cairn's own, not systemd's mount.usr= and usrhash=: systemd's generators act
// on those in the booted system too, and Cairn's early boot is not systemd.
package bootparams

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMissing is returned when the command line does not say how to mount /usr.
var ErrMissing = errors.New("command line lacks a verity /usr")

// BlockSize is the data and hash block size of Cairn's dm-verity, in bytes.
const BlockSize = 4096

// Params describe a verity-protected /usr.
type Params struct {
	USRPartUUID string // upper-case GUID, or ""
	USRFile     string // path inside the initramfs, or ""
	USRAuto     bool   // whichever USR partition matches RootHash
	RootHash    string // lower-case hex, sha256: 64 characters
	DataBlocks  int64
	Salt        string // lower-case hex, may be empty
	Slot        string
}

// HashOffset is the byte offset of the hash tree in the partition.
func (p Params) HashOffset() int64 { return p.DataBlocks * BlockSize }

// Cmdline formats p as kernel command line words.
func (p Params) Cmdline() string {
	var w []string
	switch {
	case p.USRAuto:
		w = append(w, "cairn.usr=auto")
	case p.USRFile != "":
		w = append(w, "cairn.usr=file:"+p.USRFile)
	default:
		w = append(w, "cairn.usr=PARTUUID="+p.USRPartUUID)
	}
	w = append(w, "cairn.usrhash="+p.RootHash, fmt.Sprintf("cairn.verity=%d,%s", p.DataBlocks, p.Salt))
	if p.Slot != "" {
		w = append(w, "cairn.slot="+p.Slot)
	}
	return strings.Join(w, " ")
}

// Parse reads Params from a kernel command line. Later words override earlier ones, as the
// kernel does for its own parameters.
func Parse(cmdline string) (Params, error) {
	var p Params
	var haveVerity bool
	for word := range strings.FieldsSeq(cmdline) {
		k, v, _ := strings.Cut(word, "=")
		switch k {
		case "cairn.usr":
			p.USRPartUUID, p.USRFile, p.USRAuto = "", "", false
			switch {
			case v == "auto":
				p.USRAuto = true
			case strings.HasPrefix(v, "PARTUUID="):
				g := strings.ToUpper(strings.TrimPrefix(v, "PARTUUID="))
				if !isGUID(g) {
					return Params{}, fmt.Errorf("cairn.usr=%s: not a partition GUID", v)
				}
				p.USRPartUUID = g
			case strings.HasPrefix(v, "file:/") && !strings.Contains(v, ".."):
				p.USRFile = strings.TrimPrefix(v, "file:")
			default:
				return Params{}, fmt.Errorf("cairn.usr=%s: want PARTUUID=<guid>, auto or file:/<path>", v)
			}
		case "cairn.usrhash":
			h := strings.ToLower(v)
			if len(h) != 64 || !isHex(h) {
				return Params{}, fmt.Errorf("cairn.usrhash=%s: want 64 hex digits (sha256)", v)
			}
			p.RootHash = h
		case "cairn.verity":
			blocks, salt, ok := strings.Cut(v, ",")
			n, err := strconv.ParseInt(blocks, 10, 64)
			salt = strings.ToLower(salt)
			if !ok || err != nil || n <= 0 || n > 1<<40 || len(salt)%2 != 0 || len(salt) > 512 || !isHex(salt) {
				return Params{}, fmt.Errorf("cairn.verity=%s: want <data blocks>,<salt hex>", v)
			}
			p.DataBlocks, p.Salt, haveVerity = n, salt, true
		case "cairn.slot":
			if v != "A" && v != "B" {
				return Params{}, fmt.Errorf("cairn.slot=%s: want A or B", v)
			}
			p.Slot = v
		}
	}
	if (p.USRPartUUID == "" && p.USRFile == "" && !p.USRAuto) || p.RootHash == "" || !haveVerity {
		return p, ErrMissing
	}
	return p, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
