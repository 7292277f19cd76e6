// Package extensions keeps a host's activated system extensions (image/sysext: kubelet and
// kubeadm in kubernetes-VERSION.raw) matched to the OS version each slot boots. An extension
// fits one OS version (its extension-release names the VERSION_ID; systemd-sysext leaves it out
// on any other), so an update that installs version N+1 must also bring the extensions built
// for N+1. They are kept per version in the store, /var/lib/cairn/extensions/VERSION/, which
// each slot's /usr reaches through /usr/lib/extensions, a link to its own version's directory
// (image/build.ExtensionLink): the slot booted finds the extensions of its version, including
// after a rollback, and nothing is switched at boot.
//
// A host activates an extension by placing NAME.raw (and NAME.usrhash, its dm-verity root
// hash) in /etc/extensions from its first-boot config. Staging an update adopts those files
// into the store's directory of the running version (a rename on the same file system), so
// that /etc/extensions, which systemd-sysext prefers, no longer hides the store; fetches the
// image of every activated extension for the new version, checked against its size, SHA-256 and
// root hash, into that version's directory; and removes the directories of versions no slot
// holds. Plan computes the steps from what is on disk (pure, table-tested); Stager carries them
// out, and running it twice changes nothing.
package extensions

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Where a host keeps its extensions.
const (
	DefaultEtcDir   = "/etc/extensions"
	DefaultStoreDir = "/var/lib/cairn/extensions"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrMissing: an activated extension has no image for the version being installed, and the
	// new version would boot without it.
	ErrMissing = errors.New("no image of an activated extension for the new version")
	ErrImage   = errors.New("extension image does not match its description")
	ErrInvalid = errors.New("invalid extension description")
	// ErrRelease: an extension's extension-release (or the host's os-release) cannot be read.
	ErrRelease = errors.New("unreadable release file")
)

// Image describes one extension image built for one OS version: what an update carries for
// each extension it keeps up to date.
type Image struct {
	Name    string `json:"name"` // the file is Name.raw, its extension-release extension-release.Name
	URL     string `json:"url"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`  // hex, of the whole .raw file
	USRHash string `json:"usrhash"` // hex dm-verity root hash, also the source of the partition UUIDs
}

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+~-]{0,63}$`)
	hexRE     = regexp.MustCompile(`^[0-9a-f]{64,128}$`)
)

// Check reports what is wrong with the description.
func (im Image) Check() error {
	switch {
	case !nameRE.MatchString(im.Name):
		return fmt.Errorf("%w: name %q", ErrInvalid, im.Name)
	case im.URL == "":
		return fmt.Errorf("%w: extension %s: no URL", ErrInvalid, im.Name)
	case im.Size <= 0:
		return fmt.Errorf("%w: extension %s: size %d", ErrInvalid, im.Name, im.Size)
	case len(im.SHA256) != 64 || !hexRE.MatchString(im.SHA256):
		return fmt.Errorf("%w: extension %s: sha256 %q", ErrInvalid, im.Name, im.SHA256)
	case !hexRE.MatchString(im.USRHash):
		return fmt.Errorf("%w: extension %s: usrhash %q", ErrInvalid, im.Name, im.USRHash)
	}
	return nil
}

// usrPartitionUUID is the UUID (text, upper case) the usr partition of an image with this root
// hash has: its first 128 bits.
func usrPartitionUUID(usrHash string) string {
	b, _ := hex.DecodeString(usrHash[:32])
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// State is what a host has: the images in /etc/extensions and in the store.
type State struct {
	Etc []string // names with a NAME.raw file in the etc directory
	// Store is version -> name -> the root hash in NAME.usrhash ("" when the .raw has none).
	Store map[string]map[string]string
}

// OpKind is what an Op does.
type OpKind int

const (
	// Adopt moves NAME.raw and NAME.usrhash from the etc directory into the store's
	// directory of Version.
	Adopt OpKind = iota + 1
	// Fetch downloads Image into the store's directory of Version.
	Fetch
	// Drop removes NAME from the store's directory of Version: staged earlier, no longer active.
	Drop
	// Prune removes the store's directory of Version.
	Prune
)

func (k OpKind) String() string {
	switch k {
	case Adopt:
		return "adopt"
	case Fetch:
		return "fetch"
	case Drop:
		return "drop"
	case Prune:
		return "prune"
	}
	return fmt.Sprintf("OpKind(%d)", int(k))
}

// Op is one step of staging.
type Op struct {
	Kind    OpKind
	Name    string // Adopt, Fetch, Drop
	Version string
	Image   Image // Fetch
}

func (o Op) String() string {
	if o.Kind == Prune {
		return fmt.Sprintf("prune %s", o.Version)
	}
	return fmt.Sprintf("%s %s for %s", o.Kind, o.Name, o.Version)
}

// Plan returns the steps that leave every extension active on the running version (current)
// staged for next, as images describes them, with the running version's own in the store and
// no store directory of a third version. Images of extensions the host did not activate are
// not fetched. An activated extension without an image is ErrMissing, and nothing is to be
// done.
func Plan(s State, current, next string, images []Image) ([]Op, error) {
	if !versionRE.MatchString(current) || !versionRE.MatchString(next) || current == next {
		return nil, fmt.Errorf("%w: versions %q -> %q", ErrInvalid, current, next)
	}
	byName := map[string]Image{}
	for _, im := range images {
		if err := im.Check(); err != nil {
			return nil, err
		}
		if _, dup := byName[im.Name]; dup {
			return nil, fmt.Errorf("%w: extension %s described twice", ErrInvalid, im.Name)
		}
		byName[im.Name] = im
	}
	active := map[string]bool{}
	for n := range s.Store[current] {
		active[n] = true
	}
	var ops []Op
	etc := slices.Clone(s.Etc)
	sort.Strings(etc)
	for _, n := range etc {
		active[n] = true
		ops = append(ops, Op{Kind: Adopt, Name: n, Version: current})
	}
	names := make([]string, 0, len(active))
	for n := range active {
		names = append(names, n)
	}
	sort.Strings(names)
	var missing []string
	for _, n := range names {
		im, ok := byName[n]
		if !ok {
			missing = append(missing, n)
			continue
		}
		if s.Store[next][n] == im.USRHash {
			continue // staged by an earlier run
		}
		ops = append(ops, Op{Kind: Fetch, Name: n, Version: next, Image: im})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s activated on %s, none given for %s", ErrMissing, strings.Join(missing, ", "), current, next)
	}
	var stale []string
	for n := range s.Store[next] {
		if !active[n] {
			stale = append(stale, n)
		}
	}
	sort.Strings(stale)
	for _, n := range stale {
		ops = append(ops, Op{Kind: Drop, Name: n, Version: next})
	}
	var versions []string
	for v := range s.Store {
		if v != current && v != next {
			versions = append(versions, v)
		}
	}
	sort.Strings(versions)
	for _, v := range versions {
		ops = append(ops, Op{Kind: Prune, Version: v})
	}
	return ops, nil
}
