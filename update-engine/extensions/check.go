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
// them. The error is for the host (no os-release, an unreadable search directory); what is
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
		f := Finding{Name: cand.name, Path: cand.path}
		var err error
		f.Release, err = c.release(cand)
		switch {
		case errors.Is(err, errNoRelease):
			// As systemd's validation of an empty extension-release: left out.
			f.Misfit = "it carries no extension-release." + cand.name
		case errors.Is(err, errUnsupported):
			f.Unchecked = uncheckedWhy(err)
		case err != nil:
			f.Err = err
		default:
			f.Misfit = misfit(host, rep.Arch, f.Release)
		}
		rep.Findings = append(rep.Findings, f)
	}
	return rep, nil
}

// release reads and parses an extension's extension-release.
func (c *Checker) release(cand candidate) (osrelease.Release, error) {
	b, err := c.releaseBytes(cand)
	if err != nil {
		return nil, err
	}
	r, err := osrelease.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w: extension-release.%s: %w", ErrRelease, cand.name, err)
	}
	return r, nil
}

func (c *Checker) releaseBytes(cand candidate) ([]byte, error) {
	file := "extension-release." + cand.name
	if cand.dir {
		p, err := securejoin.SecureJoin(cand.full, "usr/lib/extension-release.d/"+file)
		if err != nil {
			return nil, err
		}
		b, err := readLimited(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: usr/lib/extension-release.d/%s: %w", ErrRelease, file, errNoRelease)
		}
		return b, err
	}
	f, err := os.Open(cand.full)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return readImageRelease(f, fi.Size(), cand.name, c.arch())
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, osrelease.MaxSize+1))
}
