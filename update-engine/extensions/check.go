package extensions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/cairn-os/cairn/update-engine/osrelease"
)

// searchDirs are the directories systemd-sysext (252) merges system extensions from, in its
// order: of two extensions of the same name, the one in the earlier directory is used.
var searchDirs = []string{
	"/etc/extensions",
	"/run/extensions",
	"/var/lib/extensions",
	"/usr/local/lib/extensions",
	"/usr/lib/extensions",
}

// Finding is one extension that systemd-sysext would consider, and whether it fits the host.
type Finding struct {
	Name    string            // the extension's name: its extension-release is extension-release.Name
	Path    string            // NAME.raw or the directory NAME, in the host's view (not under Root)
	Release osrelease.Release // its extension-release
	// Misfit is why systemd-sysext leaves it out (see misfit); "" when it fits.
	Misfit string
	// Unchecked is why an image that systemd-sysext may merge was not checked: it is in a
	// form the check does not read (errUnsupported).
	Unchecked string
	// Err is set when its extension-release cannot be read.
	Err error
}

// Report is the check's result for a host.
type Report struct {
	Host     osrelease.Release
	Arch     string
	Findings []Finding
}

// Line is what the check prints for a finding that does not fit or cannot be read, naming
// the file, the OS it fits and the host, or that was not checked, naming why; "" for one
// that fits.
func (r Report) Line(f Finding) string {
	file := filepath.Base(f.Path)
	switch {
	case f.Unchecked != "":
		return fmt.Sprintf("%s: not checked (%s)", file, f.Unchecked)
	case f.Err != nil:
		return fmt.Sprintf("%s: cannot check what it fits: %v", file, f.Err)
	case f.Misfit == "":
		return ""
	case f.Misfit == misfitOSRelease:
		return fmt.Sprintf("%s: %s", file, f.Misfit)
	case f.Release[keyID] == "":
		return fmt.Sprintf("%s: %s: not merged; update_engine stages matching extensions under %s", file, f.Misfit, DefaultStoreDir)
	}
	return fmt.Sprintf("%s fits %s, this host is %s: not merged; update_engine stages matching extensions under %s",
		file, fits(f.Release), describeHost(r.Host, r.Arch, f.Release), DefaultStoreDir)
}

// Failed reports whether an extension does not fit or its extension-release cannot be read
// (an image that is corrupt, not one the check does not read): the check fails then.
func (r Report) Failed() bool {
	for _, f := range r.Findings {
		if f.Err != nil || f.Misfit != "" {
			return true
		}
	}
	return false
}

// Checker finds the system extensions systemd-sysext would merge on a host and compares each
// one's extension-release with the host's os-release, before systemd-sysext does (which leaves
// a misfit out with no more than a debug or info line).
type Checker struct {
	// Root is the host's tree, as systemd-sysext --root; "" or "/" is the running host, where
	// (as systemd-sysext without --root) symlinks in the search directories are followed.
	Root string
	// Arch is systemd's name of the host's architecture; "" is hostArch().
	Arch string
}

func (c *Checker) root() string {
	if c.Root == "" {
		return "/"
	}
	return c.Root
}

func (c *Checker) arch() string {
	if c.Arch == "" {
		return hostArch()
	}
	return c.Arch
}

// hostRelease reads the host's os-release: /etc/os-release, else /usr/lib/os-release.
func (c *Checker) hostRelease() (osrelease.Release, error) {
	var errs []error
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		full, err := securejoin.SecureJoin(c.root(), p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r, err := osrelease.ReadFile(full)
		if errors.Is(err, osrelease.ErrSyntax) {
			return nil, fmt.Errorf("%w: os-release %s: %w", ErrRelease, p, err)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r[keyID] == "" {
			return nil, fmt.Errorf("%w: os-release %s has no ID", ErrRelease, p)
		}
		return r, nil
	}
	return nil, fmt.Errorf("%w: host os-release: %w", ErrRelease, errors.Join(errs...))
}

// candidate is an extension found in a search directory.
type candidate struct {
	name string
	path string // in the host's view
	full string // under Root
	dir  bool
}

// Candidates lists the extensions systemd-sysext would consider, as it discovers them: in
// each search directory, in order, every NAME.raw regular file and every directory NAME, the
// first of a name hiding later ones; names starting with ".#" (files being written) are not
// images. Symlinks are followed on the running host and skipped under a Root, as systemd does.
func (c *Checker) candidates() ([]candidate, error) {
	follow := c.root() == "/"
	seen := map[string]bool{}
	var out []candidate
	for _, d := range searchDirs {
		full, err := securejoin.SecureJoin(c.root(), d)
		if err != nil {
			return nil, fmt.Errorf("search directory %s: %w", d, err)
		}
		ents, err := os.ReadDir(full)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("search directory %s: %w", d, err)
		}
		for _, e := range ents {
			p := filepath.Join(full, e.Name())
			var fi fs.FileInfo
			if follow {
				fi, err = os.Stat(p)
			} else {
				fi, err = os.Lstat(p)
			}
			if errors.Is(err, fs.ErrNotExist) {
				continue // a dangling link, or gone since the listing
			}
			if err != nil {
				return nil, fmt.Errorf("search directory %s: %w", d, err)
			}
			name, isDir := e.Name(), fi.IsDir()
			switch {
			case fi.Mode().IsRegular():
				n, ok := strings.CutSuffix(name, ".raw")
				if !ok {
					continue
				}
				name = n
			case !isDir:
				continue
			}
			if name == "" || strings.HasPrefix(name, ".#") || seen[name] {
				continue
			}
			seen[name] = true
			out = append(out, candidate{name: name, path: filepath.Join(d, e.Name()), full: p, dir: isDir})
		}
	}
	return out, nil
}

// Check reads the host's os-release and every extension's extension-release and compares
// them, after looking for the /usr/lib/os-release that makes systemd-sysext refuse to merge
// anything. The error is for the host (no os-release, an unreadable search directory); what is
// wrong with an extension is in its Finding.
func (c *Checker) Check(ctx context.Context) (Report, error) {
	host, err := c.hostRelease()
	if err != nil {
		return Report{}, err
	}
	rep := Report{Host: host, Arch: c.arch()}
	cands, err := c.candidates()
	if err != nil {
		return rep, err
	}
	for _, cand := range cands {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		rep.Findings = append(rep.Findings, c.check(host, rep.Arch, cand))
	}
	return rep, nil
}

// misfitOSRelease is the misfit of an extension that carries /usr/lib/os-release: systemd-sysext
// 252 refuses the whole merge for it, not only this extension.
const misfitOSRelease = "it carries /usr/lib/os-release, which systemd-sysext refuses: it merges no extension at all while this one is there"

// check reads one extension as systemd-sysext's merge does: first whether it carries
// /usr/lib/os-release, then its extension-release against the host's.
func (c *Checker) check(host osrelease.Release, arch string, cand candidate) Finding {
	f := Finding{Name: cand.name, Path: cand.path}
	fail := func(err error) Finding {
		switch {
		case errors.Is(err, errAbsent):
			// As systemd's validation of an empty extension-release: left out.
			f.Misfit = "it carries no extension-release." + cand.name
		case errors.Is(err, errAmbiguous):
			f.Misfit = "it carries no extension-release." + cand.name + " and " + errAmbiguous.Error()
		case errors.Is(err, errUnsupported):
			f.Unchecked = uncheckedWhy(err)
		default:
			f.Err = err
		}
		return f
	}
	t, done, err := c.open(cand)
	if err != nil {
		return fail(err)
	}
	defer done()
	has, err := t.hasOSRelease()
	if err != nil {
		return fail(err)
	}
	if has {
		f.Misfit = misfitOSRelease
		return f
	}
	b, err := t.release(cand.name)
	if err != nil {
		return fail(err)
	}
	if f.Release, err = osrelease.Parse(b); err != nil {
		return fail(fmt.Errorf("%w: extension-release.%s: %w", ErrRelease, cand.name, err))
	}
	f.Misfit = misfit(host, arch, f.Release)
	return f
}

// tree is an extension's content as the check reads it.
type tree interface {
	// hasOSRelease reports whether it carries /usr/lib/os-release.
	hasOSRelease() (bool, error)
	// release reads its /usr/lib/extension-release.d/extension-release.NAME; errAbsent when
	// it has none.
	release(name string) ([]byte, error)
}

// open opens a candidate's tree; done releases it.
func (c *Checker) open(cand candidate) (t tree, done func(), err error) {
	if cand.dir {
		return dirTree(cand.full), func() {}, nil
	}
	f, err := os.Open(cand.full)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		t, err = openImage(f, fi.Size(), c.arch())
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return t, func() { f.Close() }, nil
}

// dirTree is a directory extension: systemd-sysext resolves paths in it as in a root of its
// own.
type dirTree string

func (d dirTree) hasOSRelease() (bool, error) {
	p, err := securejoin.SecureJoin(string(d), "usr/lib/os-release")
	if err != nil {
		return false, err
	}
	_, err = os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("%w: %w", ErrRelease, err)
	}
	return true, nil
}

// release reads extension-release.NAME. Without it, as systemd 252 does for an extension
// renamed when it was deployed, it reads the one other regular extension-release.* file whose
// extended attribute user.extension-release.strict is "false"; with none, or more than one,
// the extension has no extension-release.
func (d dirTree) release(name string) ([]byte, error) {
	file := "extension-release." + name
	p, err := securejoin.SecureJoin(string(d), releaseDir+"/"+file)
	if err != nil {
		return nil, err
	}
	b, err := readLimited(p)
	if !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	dir, err := securejoin.SecureJoin(string(d), releaseDir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s/%s: %w", ErrRelease, releaseDir, file, errAbsent)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRelease, err)
	}
	var lax []string
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "extension-release.")
		if !ok || !validImageName(n) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() && strictFalse(p) {
			lax = append(lax, e.Name())
		}
	}
	switch len(lax) {
	case 0:
		return nil, fmt.Errorf("%w: %s/%s: %w", ErrRelease, releaseDir, file, errAbsent)
	case 1:
		return readLimited(filepath.Join(dir, lax[0]))
	}
	return nil, fmt.Errorf("%w: %s/%s: %w: %s", ErrRelease, releaseDir, file, errAmbiguous, strings.Join(lax, ", "))
}

// errAmbiguous: an extension without its extension-release has more than one file that
// systemd could take instead, so it takes none.
var errAmbiguous = errors.New("more than one extension-release marked " + strictAttr + "=false")

// releaseDir is where an extension's extension-release is, in its tree.
const releaseDir = "usr/lib/extension-release.d"

// strictAttr is the extended attribute of an extension-release file that, set to "false",
// lets systemd take it for an extension of another name.
const strictAttr = "user.extension-release.strict"

// validImageName is systemd's image_name_is_valid: a file name of at most 255 bytes, valid
// UTF-8 without control characters, not "." or "..", not a temporary ".#" file.
func validImageName(s string) bool {
	if s == "" || len(s) > 255 || s == "." || s == ".." || strings.HasPrefix(s, ".#") || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '/' || r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, osrelease.MaxSize+1))
}
