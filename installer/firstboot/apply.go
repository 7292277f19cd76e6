package firstboot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/cairn-os/cairn/internal/atomicfile"
)

// Apply carries out p on the system whose root directory is root (the new system's /, before
// systemd starts). Order as Ignition's files stage: groups and users, then directories, files
// and links, then units. Names of owners and groups are checked before the first write.
func Apply(ctx context.Context, root string, p *Plan) error {
	acc, err := loadAccounts(root)
	if err != nil {
		return fmt.Errorf("read accounts: %w", err)
	}
	if err := p.checkNames(acc); err != nil {
		return err
	}
	a := &applier{root: root, acc: acc}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"passwd", func() error { return a.passwd(p) }},
		{"directories", func() error { return each(p.Dirs, a.dir) }},
		{"files", func() error { return each(p.Files, a.file) }},
		{"links", func() error { return each(p.Links, a.link) }},
		{"units", func() error { return each(p.Units, a.unit) }},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.fn(); err != nil {
			return fmt.Errorf("first boot: %s: %w", s.name, err)
		}
	}
	return nil
}

func each[T any](xs []T, fn func(T) error) error {
	for _, x := range xs {
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}

// checkNames makes sure every user and group named as an owner, a primary or a supplementary
// group exists on the target or is created by the plan.
func (p *Plan) checkNames(acc *accounts) error {
	users, groups := map[string]bool{}, map[string]bool{}
	for _, g := range p.Groups {
		groups[g.Name] = true
	}
	for _, u := range p.Users {
		users[u.Name] = true
		if !u.NoUserGroup && u.PrimaryGroup == nil {
			groups[u.Name] = true
		}
	}
	hasUser := func(n string) bool { _, ok := acc.uid(n); return ok || users[n] }
	hasGroup := func(n string) bool { _, ok := acc.gid(n); return ok || groups[n] }
	var bad []string
	for _, u := range p.Users {
		if u.PrimaryGroup != nil && !hasGroup(*u.PrimaryGroup) {
			bad = append(bad, fmt.Sprintf("passwd.users %s: primary group %q does not exist", u.Name, *u.PrimaryGroup))
		}
		for _, g := range u.Groups {
			if !hasGroup(g) {
				bad = append(bad, fmt.Sprintf("passwd.users %s: group %q does not exist", u.Name, g))
			}
		}
	}
	check := func(p string, o Owner) {
		if o.User != nil && !hasUser(*o.User) {
			bad = append(bad, fmt.Sprintf("%s: owner %q does not exist", p, *o.User))
		}
		if o.Group != nil && !hasGroup(*o.Group) {
			bad = append(bad, fmt.Sprintf("%s: group %q does not exist", p, *o.Group))
		}
	}
	for _, d := range p.Dirs {
		check(d.Path, d.Owner)
	}
	for _, f := range p.Files {
		check(f.Path, f.Owner)
	}
	for _, l := range p.Links {
		check(l.Path, l.Owner)
	}
	if len(bad) > 0 {
		return fmt.Errorf("first boot: %s", strings.Join(bad, "; "))
	}
	return nil
}

type applier struct {
	root string
	acc  *accounts
}

// join resolves p inside the root: symlinks in the target's tree are followed without ever
// leaving it.
func (a *applier) join(p string) (string, error) {
	return securejoin.SecureJoin(a.root, p)
}

func (a *applier) passwd(p *Plan) error {
	for _, g := range p.Groups {
		if err := a.acc.ensureGroup(g); err != nil {
			return err
		}
	}
	type home struct {
		dir      string
		uid, gid int
		keys     []string
		create   bool
	}
	var homes []home
	for _, u := range p.Users {
		dir, uid, gid, created, err := a.acc.ensureUser(u)
		if err != nil {
			return err
		}
		homes = append(homes, home{dir, uid, gid, u.SSHAuthorizedKeys, created && !u.NoCreateHome})
	}
	if err := a.acc.save(); err != nil {
		return err
	}
	for _, h := range homes {
		if h.create {
			if err := a.mkdirOwned(h.dir, 0o700, h.uid, h.gid); err != nil {
				return err
			}
		}
		if len(h.keys) > 0 {
			if err := a.sshKeys(h.dir, h.uid, h.gid, h.keys); err != nil {
				return err
			}
		}
	}
	return nil
}

// sshKeys writes the keys as the fragment .ssh/authorized_keys.d/ignition, as Ignition does,
// and assembles .ssh/authorized_keys from all fragments, as Container Linux's update-ssh-keys
// did, so that a stock sshd reads them.
func (a *applier) sshKeys(home string, uid, gid int, keys []string) error {
	sshDir := path.Join(home, ".ssh")
	fragDir := path.Join(sshDir, "authorized_keys.d")
	if err := a.mkdirOwned(sshDir, 0o700, uid, gid); err != nil {
		return err
	}
	if err := a.mkdirOwned(fragDir, 0o700, uid, gid); err != nil {
		return err
	}
	if err := a.writeOwned(path.Join(fragDir, "ignition"), []byte(strings.Join(keys, "\n")+"\n"), 0o600, uid, gid); err != nil {
		return err
	}
	hostFrag, err := a.join(fragDir)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(hostFrag)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var all strings.Builder
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(hostFrag, n))
		if err != nil {
			return err
		}
		fmt.Fprintf(&all, "# %s\n%s", n, b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			all.WriteByte('\n')
		}
	}
	return a.writeOwned(path.Join(sshDir, "authorized_keys"), []byte(all.String()), 0o600, uid, gid)
}

// mkdirOwned creates dir and its missing parents (parents root-owned 0755, as Ignition does),
// then sets dir's mode and owner.
func (a *applier) mkdirOwned(dir string, mode os.FileMode, uid, gid int) error {
	p, err := a.join(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(p, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	return os.Lchown(p, uid, gid)
}

func (a *applier) writeOwned(file string, data []byte, mode os.FileMode, uid, gid int) error {
	p, err := a.join(file)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(p, mode); err != nil { // atomicfile's chmod is subject to nothing, but setuid bits need an explicit chmod after chown
		return err
	}
	return os.Lchown(p, uid, gid)
}

// ids resolves an owner to numeric IDs. Unset parts are, as in Ignition, those of the node
// kept at the path (an existing one that is not overwritten), or root's (0) for a new node.
func (a *applier) ids(o Owner, kept fs.FileInfo) (int, int, error) {
	uid, gid := 0, 0
	if kept != nil {
		if u, g, ok := ownerOf(kept); ok {
			uid, gid = u, g
		}
	}
	switch {
	case o.UID != nil:
		uid = *o.UID
	case o.User != nil:
		n, ok := a.acc.uid(*o.User)
		if !ok {
			return 0, 0, fmt.Errorf("user %q does not exist", *o.User)
		}
		uid = n
	}
	switch {
	case o.GID != nil:
		gid = *o.GID
	case o.Group != nil:
		n, ok := a.acc.gid(*o.Group)
		if !ok {
			return 0, 0, fmt.Errorf("group %q does not exist", *o.Group)
		}
		gid = n
	}
	return uid, gid, nil
}

func (a *applier) dir(d Dir) error {
	p, err := a.join(d.Path)
	if err != nil {
		return err
	}
	fi, statErr := os.Lstat(p)
	exists := statErr == nil
	var kept fs.FileInfo
	if exists && !d.Overwrite {
		kept = fi
	}
	uid, gid, err := a.ids(d.Owner, kept)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Path, err)
	}
	switch {
	case exists && d.Overwrite:
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	case exists && !fi.IsDir():
		return fmt.Errorf("%s: a non-directory exists there and overwrite is false", d.Path)
	case exists && d.Mode == nil:
		m := fi.Mode()
		d.Mode = &m
	}
	m := os.FileMode(0o755)
	if d.Mode != nil {
		m = *d.Mode
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Lchown(p, uid, gid); err != nil {
		return err
	}
	return os.Chmod(p, m)
}

func (a *applier) file(f File) error {
	p, err := a.join(f.Path)
	if err != nil {
		return err
	}
	fi, statErr := os.Lstat(p)
	exists := statErr == nil
	var kept fs.FileInfo
	if exists && !f.Overwrite {
		kept = fi
	}
	uid, gid, err := a.ids(f.Owner, kept)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	var data []byte
	switch {
	case exists && f.Overwrite:
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		data = f.Data
	case exists && !fi.Mode().IsRegular():
		return fmt.Errorf("%s: a non-file exists there and overwrite is false", f.Path)
	case exists && f.Data != nil:
		return fmt.Errorf("%s: the file exists, contents are given and overwrite is false", f.Path)
	case exists:
		if data, err = os.ReadFile(p); err != nil {
			return err
		}
		if f.Mode == nil {
			m := fi.Mode().Perm()
			f.Mode = &m
		}
	default:
		data = f.Data
	}
	for _, frag := range f.Append {
		data = append(data, frag...)
	}
	m := os.FileMode(0o644)
	if f.Mode != nil {
		m = *f.Mode
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p, data, m.Perm()); err != nil {
		return err
	}
	if err := os.Lchown(p, uid, gid); err != nil {
		return err
	}
	return os.Chmod(p, m)
}

func (a *applier) link(l Link) error {
	// The link's parent is resolved inside the root; the link itself is not followed.
	parent, err := a.join(path.Dir(l.Path))
	if err != nil {
		return err
	}
	p := filepath.Join(parent, path.Base(l.Path))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	if fi, err := os.Lstat(p); err == nil {
		if !l.Overwrite {
			if !l.Hard && fi.Mode()&os.ModeSymlink != 0 {
				if t, _ := os.Readlink(p); t == l.Target {
					return a.chownLink(p, l, fi)
				}
			}
			return fmt.Errorf("%s: something exists there and overwrite is false", l.Path)
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	if l.Hard {
		target, err := a.join(l.Target)
		if err != nil {
			return err
		}
		return os.Link(target, p)
	}
	if err := os.Symlink(l.Target, p); err != nil {
		return err
	}
	return a.chownLink(p, l, nil)
}

// chownLink sets the owner of the symbolic link at p; kept is the link already there, if any.
func (a *applier) chownLink(p string, l Link, kept fs.FileInfo) error {
	uid, gid, err := a.ids(l.Owner, kept)
	if err != nil {
		return fmt.Errorf("%s: %w", l.Path, err)
	}
	return os.Lchown(p, uid, gid)
}
