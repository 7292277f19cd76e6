package stage0

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/moby/sys/user"

	"github.com/cairn-os/cairn/runtime/stage1"
)

// tree is an image's root as overlayfs presents it: its read-only layers, lowest first, with
// whiteouts and opaque directories applied. It answers lookups without mounting anything, so
// that an app's command and user are checked before its pod exists.
type tree []string

// maxSymlinks is the kernel's limit on symlinks in one lookup.
const maxSymlinks = 40

var (
	errNotDir = errors.New("not a directory")
	errLoop   = errors.New("too many levels of symbolic links")
)

// lookup resolves an absolute name the way the kernel would in the mounted root, following
// symlinks (which cannot lead out of it): it returns the host path of the entry in the
// top-most layer that has it, and that entry's lstat.
func (t tree) lookup(name string) (string, fs.FileInfo, error) {
	if !path.IsAbs(name) {
		return "", nil, fmt.Errorf("%q is not an absolute path", name)
	}
	rest := strings.Split(name, "/")
	var resolved []string
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) > 0 {
				resolved = resolved[:len(resolved)-1]
			}
			continue
		}
		host, fi, err := t.entry(resolved, c)
		if err != nil {
			return "", nil, err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if links++; links > maxSymlinks {
				return "", nil, fmt.Errorf("%s: %w", name, errLoop)
			}
			target, err := os.Readlink(host)
			if err != nil {
				return "", nil, err
			}
			if path.IsAbs(target) {
				resolved = nil
			}
			rest = append(strings.Split(target, "/"), rest...)
		case len(rest) == 0 || !fi.IsDir() && onlySeparators(rest):
			if !fi.IsDir() && len(rest) > 0 {
				return "", nil, fmt.Errorf("%s: %w", name, errNotDir)
			}
			return host, fi, nil
		case fi.IsDir():
			resolved = append(resolved, c)
		default:
			return "", nil, fmt.Errorf("%s: %w", name, errNotDir)
		}
	}
	dirs, err := t.dirs(resolved)
	if err != nil {
		return "", nil, err
	}
	fi, err := os.Lstat(dirs[0])
	return dirs[0], fi, err
}

func onlySeparators(rest []string) bool {
	for _, c := range rest {
		if c != "" && c != "." {
			return false
		}
	}
	return true
}

// dirs returns the host directories that make up the merged directory at the components
// given, top layer first: each layer's directory of that path down to the first layer where
// it is opaque, or where a whiteout or a non-directory hides what is below.
func (t tree) dirs(components []string) ([]string, error) {
	dirs := make([]string, 0, len(t))
	for _, l := range slices.Backward(t) {
		dirs = append(dirs, l)
	}
	for _, c := range components {
		var next []string
		for _, d := range dirs {
			p := filepath.Join(d, c)
			fi, err := os.Lstat(p)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if !fi.IsDir() {
				break // a whiteout, or a file that hides the lower layers' directory
			}
			next = append(next, p)
			if isOpaque(p) {
				break
			}
		}
		if len(next) == 0 {
			return nil, fmt.Errorf("/%s: %w", path.Join(components...), fs.ErrNotExist)
		}
		dirs = next
	}
	return dirs, nil
}

// entry finds name in the merged directory at the components given: the top-most layer's
// entry, unless that is a whiteout.
func (t tree) entry(components []string, name string) (string, fs.FileInfo, error) {
	dirs, err := t.dirs(components)
	if err != nil {
		return "", nil, err
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		if isWhiteout(fi) {
			break
		}
		return p, fi, nil
	}
	return "", nil, fmt.Errorf("/%s: %w", path.Join(append(components, name)...), fs.ErrNotExist)
}

// readFile reads a small file of the tree (/etc/passwd), nil if it is not there.
func (t tree) readFile(name string) (io.Reader, error) {
	host, fi, err := t.lookup(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	f, err := openNoFollow(host)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return strings.NewReader(string(b)), nil
}

// checkExec checks that the app's command is an executable file of the image, found as
// stage1 will find it: relative to the working directory, or on the app's PATH.
func (t tree) checkExec(a *types.App) error {
	name := a.Exec[0]
	if strings.Contains(name, "/") {
		if !path.IsAbs(name) {
			name = path.Join("/", a.WorkingDirectory, name)
		}
		return t.executable(name)
	}
	pathEnv := stage1.DefaultPath
	if v, ok := a.Environment.Get("PATH"); ok {
		pathEnv = v
	}
	for d := range strings.SplitSeq(pathEnv, ":") {
		if d != "" && path.IsAbs(d) && t.executable(path.Join(d, name)) == nil {
			return nil
		}
	}
	return fmt.Errorf("%q (PATH=%s): %w", name, pathEnv, stage1.ErrExecNotFound)
}

func (t tree) executable(name string) error {
	_, fi, err := t.lookup(name)
	if err != nil {
		return fmt.Errorf("%q: %w", name, stage1.ErrExecNotFound)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%q is not an executable file: %w", name, stage1.ErrExecNotFound)
	}
	return nil
}

// checkUser checks that the app's user and group are numbers, or names the image's
// /etc/passwd and /etc/group define, as stage1 resolves them.
func (t tree) checkUser(a *types.App) error {
	spec := a.User
	if spec == "" {
		spec = "0"
	}
	if a.Group != "" {
		spec += ":" + a.Group
	}
	var passwd, group io.Reader
	if !isNumber(a.User) || a.Group != "" && !isNumber(a.Group) {
		var err error
		if passwd, err = t.readFile("/etc/passwd"); err != nil {
			return err
		}
		if group, err = t.readFile("/etc/group"); err != nil {
			return err
		}
	}
	if _, err := user.GetExecUser(spec, &user.ExecUser{}, passwd, group); err != nil {
		return fmt.Errorf("user %q group %q: %w", a.User, a.Group, err)
	}
	return nil
}

func isNumber(s string) bool { _, err := strconv.Atoi(s); return err == nil }
