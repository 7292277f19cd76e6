// Package sysext builds system extension images for Cairn's read-only /usr: a file tree under
// /usr (programs, units, an extension-release file naming the OS version it fits) packed as a
// Discoverable Disk Image that systemd-sysext merges over /usr at boot. The image is a GPT with
// a usr partition (erofs) and a usr-verity partition (its dm-verity hash tree with a
// superblock), whose partition UUIDs are the first and last 128 bits of the root hash, as
// systemd-repart lays them out; the root hash also goes into a .usrhash file beside the image,
// from which systemd opens the usr partition through dm-verity. Every byte follows from the
// inputs: fixed timestamps and owners, UUIDs and salt derived from the content.
package sysext

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/cairn-os/cairn/internal/gpt"
)

// Sentinel errors, checked with errors.Is.
var (
	ErrSpec   = errors.New("bad extension spec")
	ErrLayout = errors.New("extension does not fit its disk")
)

// The Discoverable Partitions Specification's x86-64 types for /usr and its verity tree.
var (
	TypeUSR       = gpt.TypeUSR
	TypeUSRVerity = gpt.MustParseGUID("77FF5F63-E7B6-4633-ACF4-1565B864C0E6")
)

// Partition names, as systemd-repart names the same partitions.
const (
	LabelUSR       = "usr-x86-64"
	LabelUSRVerity = "usr-x86-64-verity"
)

// ReleaseDir is where an extension carries its extension-release file.
const ReleaseDir = "/usr/lib/extension-release.d"

// File is one entry of the extension's tree: a regular file (Data or Source) or a symlink
// (Link). Path is absolute and under /usr.
type File struct {
	Path   string
	Mode   fs.FileMode // permission bits of a regular file
	Data   []byte
	Source string // a file on the build machine to copy
	Link   string
}

// Spec is an extension: its name, the OS it fits and its files.
type Spec struct {
	// Name is the image's name: the file is Name.raw and systemd-sysext looks for
	// extension-release.Name inside it.
	Name string
	// OSID and OSVersion must equal the host's os-release ID and VERSION_ID, or
	// systemd-sysext refuses to merge the image.
	OSID      string
	OSVersion string
	Files     []File
	// SourceDateEpoch is every file's timestamp in the image.
	SourceDateEpoch int64
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ReleasePath is the extension-release file's path in the image.
func (s Spec) ReleasePath() string { return ReleaseDir + "/extension-release." + s.Name }

// Release is the extension-release file: systemd-sysext merges the image only on a host whose
// os-release has the same ID and VERSION_ID.
func (s Spec) Release() string {
	return fmt.Sprintf("ID=%s\nVERSION_ID=%s\n", s.OSID, s.OSVersion)
}

// Check reports what is wrong with s before anything is built.
func (s Spec) Check() error {
	switch {
	case !nameRE.MatchString(s.Name):
		return fmt.Errorf("%w: name %q: want letters, digits, '.', '_', '-'", ErrSpec, s.Name)
	case s.OSID == "" || s.OSVersion == "":
		return fmt.Errorf("%w: extension %s: the OS ID and VERSION_ID it fits are required", ErrSpec, s.Name)
	case strings.ContainsAny(s.OSID+s.OSVersion, " \t\n\"'="):
		return fmt.Errorf("%w: extension %s: OS ID %q or version %q is not an os-release value", ErrSpec, s.Name, s.OSID, s.OSVersion)
	}
	seen := map[string]bool{}
	for _, f := range s.Files {
		clean := path.Clean(f.Path)
		switch {
		case clean != f.Path || !strings.HasPrefix(f.Path, "/usr/"):
			return fmt.Errorf("%w: extension %s: path %q: want a clean absolute path under /usr (systemd-sysext merges /usr only)", ErrSpec, s.Name, f.Path)
		case seen[f.Path]:
			return fmt.Errorf("%w: extension %s: path %s given twice", ErrSpec, s.Name, f.Path)
		case f.Path == s.ReleasePath():
			return fmt.Errorf("%w: extension %s: %s is written from the spec", ErrSpec, s.Name, f.Path)
		case f.Link == "" && f.Source == "" && f.Data == nil:
			return fmt.Errorf("%w: extension %s: %s has no content", ErrSpec, s.Name, f.Path)
		}
		seen[f.Path] = true
	}
	return nil
}

// Digest is a hash of everything an image is made from: the name, the OS it fits, the
// timestamp, and each file's path, mode, link and contents (a Source's as it is on disk now).
// The order of Files does not count, as in the image. A cache of built images keyed by it is
// stale only when the builder itself changed.
func (s Spec) Digest() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "name %q os %q version %q epoch %d\n", s.Name, s.OSID, s.OSVersion, s.SourceDateEpoch)
	files := slices.SortedFunc(slices.Values(s.Files), func(a, b File) int { return cmp.Compare(a.Path, b.Path) })
	for _, f := range files {
		c := sha256.New()
		switch {
		case f.Link != "":
		case f.Source != "":
			if err := copyFrom(c, f.Source); err != nil {
				return "", fmt.Errorf("extension %s: %s: %w", s.Name, f.Path, err)
			}
		default:
			c.Write(f.Data)
		}
		fmt.Fprintf(h, "file %q mode %o link %q data %x\n", f.Path, f.Mode.Perm(), f.Link, c.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func copyFrom(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// sectors of 512 bytes; partitions start on MiB boundaries.
const (
	sector = 512
	mib    = 1 << 20
)

// Layout is the GPT of an extension image: the usr partition of usrBytes and the usr-verity
// partition of verityBytes, each rounded up to a MiB, their UUIDs taken from rootHash (hex),
// and the disk's size.
func Layout(usrBytes, verityBytes int64, rootHash string) (*gpt.Table, int64, error) {
	usrUUID, verityUUID, err := partitionUUIDs(rootHash)
	if err != nil {
		return nil, 0, err
	}
	if usrBytes <= 0 || verityBytes <= 0 {
		return nil, 0, fmt.Errorf("%w: usr %d bytes, verity %d bytes", ErrLayout, usrBytes, verityBytes)
	}
	up := func(n int64) int64 { return (n + mib - 1) / mib * mib }
	// One MiB before the first partition holds the primary table, one after the last the backup.
	size := mib + up(usrBytes) + up(verityBytes) + mib
	first := uint64(mib / sector)
	usrEnd := first + uint64(up(usrBytes)/sector) - 1
	verityEnd := usrEnd + uint64(up(verityBytes)/sector)
	d := sha256.Sum256([]byte("cairn sysext disk " + rootHash))
	var disk gpt.GUID
	copy(disk[:], d[:16])
	disk[7] = disk[7]&0x0f | 0x40
	disk[8] = disk[8]&0x3f | 0x80
	t := &gpt.Table{DiskGUID: disk, Partitions: []gpt.Partition{
		{Number: 1, Type: TypeUSR, GUID: usrUUID, FirstLBA: first, LastLBA: usrEnd, Name: LabelUSR},
		{Number: 2, Type: TypeUSRVerity, GUID: verityUUID, FirstLBA: usrEnd + 1, LastLBA: verityEnd, Name: LabelUSRVerity},
	}}
	if err := t.Validate(size); err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrLayout, err)
	}
	return t, size, nil
}

// partitionUUIDs are the data and verity partitions' UUIDs for a root hash: its first and last
// 128 bits, which is how systemd finds the partitions that belong to a given root hash.
func partitionUUIDs(rootHash string) (usr, verity gpt.GUID, err error) {
	raw, err := hex.DecodeString(rootHash)
	if err != nil || len(raw) < 32 {
		return usr, verity, fmt.Errorf("%w: root hash %q: want at least 64 hex digits", ErrLayout, rootHash)
	}
	if usr, err = gpt.ParseGUID(uuidText(raw[:16])); err != nil {
		return usr, verity, err
	}
	verity, err = gpt.ParseGUID(uuidText(raw[len(raw)-16:]))
	return usr, verity, err
}

func uuidText(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
