package firstboot

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strings"

	"github.com/coreos/ignition/v2/config/v3_4/types"
	"github.com/vincent-petithory/dataurl"
)

// MaxFileSize bounds one decoded (and decompressed) file or fragment.
const MaxFileSize = 64 << 20

// Owner names a file's owner by ID or by name; names are resolved against the target's
// passwd and group databases after the config's users and groups exist.
type Owner struct {
	UID   *int
	User  *string
	GID   *int
	Group *string
}

// File is a regular file to write.
type File struct {
	Path      string
	Data      []byte // nil: no contents given (create empty, or keep an existing file)
	Append    [][]byte
	Mode      *os.FileMode
	Owner     Owner
	Overwrite bool
}

// Dir is a directory to create.
type Dir struct {
	Path      string
	Mode      *os.FileMode
	Owner     Owner
	Overwrite bool
}

// Link is a symbolic or hard link to create.
type Link struct {
	Path      string
	Target    string
	Hard      bool
	Owner     Owner
	Overwrite bool
}

// Unit is a systemd unit to write, enable, disable or mask.
type Unit struct {
	Name     string
	Contents *string
	Enabled  *bool
	Mask     *bool
	Dropins  []Dropin
}

// Dropin is a unit drop-in file.
type Dropin struct {
	Name     string
	Contents *string
}

// User is an account that must exist.
type User struct {
	Name              string
	UID               *int
	PasswordHash      *string
	SSHAuthorizedKeys []string
	Gecos             *string
	HomeDir           *string
	NoCreateHome      bool
	PrimaryGroup      *string
	Groups            []string
	NoUserGroup       bool
	Shell             *string
	System            bool
}

// Group is a group that must exist.
type Group struct {
	Name         string
	GID          *int
	PasswordHash *string
	System       bool
}

// Plan is everything a config asks for, decoded and verified, as plain data. Applying it
// writes; making it only reads the config.
type Plan struct {
	Groups []Group
	Users  []User
	Dirs   []Dir
	Files  []File
	Links  []Link
	Units  []Unit
}

// MakePlan decodes every content source of cfg (data: URLs, gzip) and checks every
// verification hash, so that a config that cannot be applied whole fails before any write.
func MakePlan(cfg Config) (*Plan, error) {
	if err := CheckSupported(cfg); err != nil {
		return nil, err
	}
	p := &Plan{}
	for _, g := range cfg.Passwd.Groups {
		p.Groups = append(p.Groups, Group{Name: g.Name, GID: g.Gid, PasswordHash: g.PasswordHash, System: isTrue(g.System)})
	}
	for _, u := range cfg.Passwd.Users {
		nu := User{
			Name: u.Name, UID: u.UID, PasswordHash: u.PasswordHash, Gecos: u.Gecos, HomeDir: u.HomeDir,
			NoCreateHome: isTrue(u.NoCreateHome), PrimaryGroup: u.PrimaryGroup, NoUserGroup: isTrue(u.NoUserGroup),
			Shell: u.Shell, System: isTrue(u.System),
		}
		for _, k := range u.SSHAuthorizedKeys {
			nu.SSHAuthorizedKeys = append(nu.SSHAuthorizedKeys, string(k))
		}
		for _, g := range u.Groups {
			nu.Groups = append(nu.Groups, string(g))
		}
		p.Users = append(p.Users, nu)
	}
	for i, d := range cfg.Storage.Directories {
		if err := checkPath(d.Path); err != nil {
			return nil, fmt.Errorf("storage.directories[%d]: %w", i, err)
		}
		p.Dirs = append(p.Dirs, Dir{Path: d.Path, Mode: mode(d.Mode), Owner: owner(d.Node), Overwrite: isTrue(d.Overwrite)})
	}
	for i, f := range cfg.Storage.Files {
		key := fmt.Sprintf("storage.files[%d]", i)
		if err := checkPath(f.Path); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		nf := File{Path: f.Path, Mode: mode(f.Mode), Owner: owner(f.Node), Overwrite: isTrue(f.Overwrite)}
		var err error
		if nf.Data, err = decode(f.Contents); err != nil {
			return nil, fmt.Errorf("%s.contents (%s): %w", key, f.Path, err)
		}
		for j, r := range f.Append {
			b, err := decode(r)
			if err != nil {
				return nil, fmt.Errorf("%s.append[%d] (%s): %w", key, j, f.Path, err)
			}
			nf.Append = append(nf.Append, b)
		}
		p.Files = append(p.Files, nf)
	}
	for i, l := range cfg.Storage.Links {
		if err := checkPath(l.Path); err != nil {
			return nil, fmt.Errorf("storage.links[%d]: %w", i, err)
		}
		if l.Target == nil {
			return nil, fmt.Errorf("storage.links[%d] (%s): no target", i, l.Path)
		}
		p.Links = append(p.Links, Link{Path: l.Path, Target: *l.Target, Hard: isTrue(l.Hard), Owner: owner(l.Node), Overwrite: isTrue(l.Overwrite)})
	}
	for i, u := range cfg.Systemd.Units {
		if strings.ContainsAny(u.Name, "/\x00") {
			return nil, fmt.Errorf("systemd.units[%d]: unit name %q contains a slash", i, u.Name)
		}
		nu := Unit{Name: u.Name, Contents: u.Contents, Enabled: u.Enabled, Mask: u.Mask}
		for j, d := range u.Dropins {
			if strings.ContainsAny(d.Name, "/\x00") {
				return nil, fmt.Errorf("systemd.units[%d].dropins[%d]: drop-in name %q contains a slash", i, j, d.Name)
			}
			nu.Dropins = append(nu.Dropins, Dropin{Name: d.Name, Contents: d.Contents})
		}
		p.Units = append(p.Units, nu)
	}
	return p, nil
}

func isTrue(b *bool) bool { return b != nil && *b }

func mode(m *int) *os.FileMode {
	if m == nil {
		return nil
	}
	fm := os.FileMode(*m) & os.ModePerm
	if *m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	if *m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if *m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	return &fm
}

func owner(n types.Node) Owner {
	return Owner{UID: n.User.ID, User: n.User.Name, GID: n.Group.ID, Group: n.Group.Name}
}

// checkPath refuses paths that Ignition's validation lets through but that make no sense
// on the target root: relative ones and ones that climb out of it.
func checkPath(p string) error {
	if !path.IsAbs(p) {
		return fmt.Errorf("path %q is not absolute", p)
	}
	if path.Clean(p) == "/" {
		return fmt.Errorf("path %q is the root itself", p)
	}
	return nil
}

// decode returns the bytes a resource describes: nil for no source, the decoded data: URL
// (gunzipped when compression is gzip) otherwise, checked against its verification hash.
func decode(r types.Resource) ([]byte, error) {
	if r.Source == nil {
		return nil, nil
	}
	u, err := dataurl.DecodeString(*r.Source)
	if err != nil {
		return nil, fmt.Errorf("source is not a valid data: URL: %w", err)
	}
	data := u.Data
	if r.Compression != nil && *r.Compression == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gzip contents: %w", err)
		}
		data, err = io.ReadAll(io.LimitReader(zr, MaxFileSize+1))
		if err != nil {
			return nil, fmt.Errorf("gzip contents: %w", err)
		}
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("contents exceed %d bytes", MaxFileSize)
	}
	if r.Verification.Hash != nil {
		if err := verify(*r.Verification.Hash, data); err != nil {
			return nil, err
		}
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

func verify(want string, data []byte) error {
	kind, sum, ok := strings.Cut(want, "-")
	if !ok {
		return fmt.Errorf("verification hash %q is not <type>-<hex>", want)
	}
	var h hash.Hash
	switch kind {
	case "sha512":
		h = sha512.New()
	case "sha256":
		h = sha256.New()
	default:
		return fmt.Errorf("verification hash type %q is not sha512 or sha256", kind)
	}
	h.Write(data)
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(sum) {
		return fmt.Errorf("verification failed: contents hash to %s-%s, config says %s", kind, got, want)
	}
	return nil
}
