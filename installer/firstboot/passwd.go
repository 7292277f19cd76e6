package firstboot

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cairn-os/cairn/internal/atomicfile"
)

// Ranges for IDs picked when a config gives none, as Debian's login.defs has them.
const (
	minUID, maxUID       = 1000, 59999
	minSysUID, maxSysUID = 100, 999
)

// table is one colon-separated database file of the target root (passwd, group, shadow, gshadow).
type table struct {
	path    string
	fields  int
	rows    [][]string
	mode    os.FileMode
	exists  bool
	changed bool
}

func loadTable(root, name string, fields int, mode os.FileMode) (*table, error) {
	t := &table{path: filepath.Join(root, "etc", name), fields: fields, mode: mode}
	b, err := os.ReadFile(t.path)
	if os.IsNotExist(err) {
		return t, nil
	}
	if err != nil {
		return nil, err
	}
	t.exists = true
	if fi, err := os.Stat(t.path); err == nil {
		t.mode = fi.Mode().Perm()
	}
	for n, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != fields {
			return nil, fmt.Errorf("%s:%d: %d fields, want %d", t.path, n+1, len(f), fields)
		}
		t.rows = append(t.rows, f)
	}
	return t, nil
}

func (t *table) find(name string) []string {
	for _, r := range t.rows {
		if r[0] == name {
			return r
		}
	}
	return nil
}

func (t *table) add(row ...string) {
	t.rows = append(t.rows, row)
	t.changed = true
}

func (t *table) save() error {
	if !t.changed {
		return nil
	}
	var b strings.Builder
	for _, r := range t.rows {
		b.WriteString(strings.Join(r, ":"))
		b.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Dir(t.path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(t.path, []byte(b.String()), t.mode)
}

// accounts is the target root's passwd, group, shadow and gshadow databases.
type accounts struct {
	passwd, group, shadow, gshadow *table
}

func loadAccounts(root string) (*accounts, error) {
	a := &accounts{}
	var err error
	if a.passwd, err = loadTable(root, "passwd", 7, 0o644); err != nil {
		return nil, err
	}
	if a.group, err = loadTable(root, "group", 4, 0o644); err != nil {
		return nil, err
	}
	if a.shadow, err = loadTable(root, "shadow", 9, 0o640); err != nil {
		return nil, err
	}
	if a.gshadow, err = loadTable(root, "gshadow", 4, 0o640); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *accounts) save() error {
	for _, t := range []*table{a.group, a.gshadow, a.passwd, a.shadow} {
		if t == a.gshadow && !t.exists && !t.changed {
			continue
		}
		if err := t.save(); err != nil {
			return fmt.Errorf("write %s: %w", t.path, err)
		}
	}
	return nil
}

func (a *accounts) uid(name string) (int, bool) {
	if r := a.passwd.find(name); r != nil {
		n, err := strconv.Atoi(r[2])
		return n, err == nil
	}
	return 0, false
}

func (a *accounts) gid(name string) (int, bool) {
	if r := a.group.find(name); r != nil {
		n, err := strconv.Atoi(r[2])
		return n, err == nil
	}
	return 0, false
}

// freeID returns the lowest ID in [lo, hi] that column col of t does not use.
func freeID(t *table, col, lo, hi int) (int, error) {
	used := map[int]bool{}
	for _, r := range t.rows {
		if n, err := strconv.Atoi(r[col]); err == nil {
			used[n] = true
		}
	}
	for id := lo; id <= hi; id++ {
		if !used[id] {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no free ID in %d-%d in %s", lo, hi, t.path)
}

func (a *accounts) ensureGroup(g Group) error {
	if a.group.find(g.Name) != nil {
		return nil
	}
	var gid int
	if g.GID != nil {
		gid = *g.GID
	} else {
		lo, hi := minUID, maxUID
		if g.System {
			lo, hi = minSysUID, maxSysUID
		}
		var err error
		if gid, err = freeID(a.group, 2, lo, hi); err != nil {
			return fmt.Errorf("group %s: %w", g.Name, err)
		}
	}
	pw := "!"
	if g.PasswordHash != nil {
		pw = *g.PasswordHash
	}
	a.group.add(g.Name, "x", strconv.Itoa(gid), "")
	a.gshadow.add(g.Name, pw, "", "")
	return nil
}

// addMember puts user into group's member lists (group and gshadow).
func (a *accounts) addMember(group, user string) {
	for _, t := range []*table{a.group, a.gshadow} {
		r := t.find(group)
		if r == nil {
			continue
		}
		members := []string{}
		if r[3] != "" {
			members = strings.Split(r[3], ",")
		}
		for _, m := range members {
			if m == user {
				goto next
			}
		}
		r[3] = strings.Join(append(members, user), ",")
		t.changed = true
	next:
	}
}

// ensureUser creates u or updates the fields a config may change on an existing account.
// It returns the account's home directory, UID, GID and whether it was created.
func (a *accounts) ensureUser(u User) (home string, uid, gid int, created bool, err error) {
	for _, g := range u.Groups {
		if a.group.find(g) == nil {
			return "", 0, 0, false, fmt.Errorf("user %s: supplementary group %q does not exist", u.Name, g)
		}
	}
	if r := a.passwd.find(u.Name); r != nil {
		if u.Gecos != nil {
			r[4] = *u.Gecos
		}
		if u.Shell != nil {
			r[6] = *u.Shell
		}
		a.passwd.changed = true
		if u.PasswordHash != nil {
			if s := a.shadow.find(u.Name); s != nil {
				s[1] = *u.PasswordHash
				a.shadow.changed = true
			} else {
				a.shadow.add(u.Name, *u.PasswordHash, "", "0", "99999", "7", "", "", "")
			}
		}
		for _, g := range u.Groups {
			a.addMember(g, u.Name)
		}
		uid, _ = strconv.Atoi(r[2])
		gid, _ = strconv.Atoi(r[3])
		return r[5], uid, gid, false, nil
	}

	lo, hi := minUID, maxUID
	if u.System {
		lo, hi = minSysUID, maxSysUID
	}
	if u.UID != nil {
		uid = *u.UID
	} else if uid, err = freeID(a.passwd, 2, lo, hi); err != nil {
		return "", 0, 0, false, fmt.Errorf("user %s: %w", u.Name, err)
	}
	switch {
	case u.PrimaryGroup != nil:
		g, ok := a.gid(*u.PrimaryGroup)
		if !ok {
			return "", 0, 0, false, fmt.Errorf("user %s: primary group %q does not exist", u.Name, *u.PrimaryGroup)
		}
		gid = g
	case u.NoUserGroup:
		gid = 100 // "users", as useradd does without USERGROUPS_ENAB
	default:
		want := uid
		if r := a.group.find(u.Name); r != nil {
			want, _ = strconv.Atoi(r[2])
		} else {
			for _, r := range a.group.rows {
				if r[2] == strconv.Itoa(uid) {
					if want, err = freeID(a.group, 2, lo, hi); err != nil {
						return "", 0, 0, false, fmt.Errorf("user %s: %w", u.Name, err)
					}
					break
				}
			}
			a.group.add(u.Name, "x", strconv.Itoa(want), "")
			a.gshadow.add(u.Name, "!", "", "")
		}
		gid = want
	}
	home = "/home/" + u.Name
	if u.HomeDir != nil {
		home = *u.HomeDir
	}
	shell, gecos, pw := "/bin/bash", "", "*"
	if u.Shell != nil {
		shell = *u.Shell
	}
	if u.Gecos != nil {
		gecos = *u.Gecos
	}
	if u.PasswordHash != nil {
		pw = *u.PasswordHash
	}
	a.passwd.add(u.Name, "x", strconv.Itoa(uid), strconv.Itoa(gid), gecos, home, shell)
	a.shadow.add(u.Name, pw, "", "0", "99999", "7", "", "", "")
	for _, g := range u.Groups {
		a.addMember(g, u.Name)
	}
	return home, uid, gid, true, nil
}
