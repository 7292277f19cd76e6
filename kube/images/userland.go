package images

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A debPackage is a Debian package whose files an image carries, with the commands the
// image's program runs from it.
type debPackage struct {
	Name string
	// Commands are checked to exist. They may be paths the package does not list itself:
	// /usr/sbin/iptables is an update-alternatives link to iptables-nft or iptables-legacy.
	Commands []string
}

// proxyPackages are what kube-proxy execs, as Kubernetes' distroless-iptables image has them
// from Debian: nft for the nftables mode (sigs.k8s.io/knftables), iptables-restore and
// friends for the iptables mode and for clearing one mode's rules when running the other.
var proxyPackages = []debPackage{
	{Name: "nftables", Commands: []string{"/usr/sbin/nft"}},
	{Name: "iptables", Commands: []string{
		"/usr/sbin/iptables", "/usr/sbin/iptables-save", "/usr/sbin/iptables-restore",
		"/usr/sbin/ip6tables", "/usr/sbin/ip6tables-save", "/usr/sbin/ip6tables-restore",
	}},
}

// Userland lists the files of this machine that kube-proxy's image carries: the programs and
// plugins of Debian's nftables and iptables packages (dpkg-query -L), the commands kube-proxy
// runs, and the shared libraries and dynamic loader ldd names for them.
func Userland(ctx context.Context) ([]string, error) {
	return userland(ctx, proxyPackages)
}

func userland(ctx context.Context, pkgs []debPackage) ([]string, error) {
	var paths []string
	for _, p := range pkgs {
		out, err := exec.CommandContext(ctx, "dpkg-query", "-L", p.Name).Output()
		if err != nil {
			return nil, fmt.Errorf("package %s (Debian) is not installed (tools/deps/install.sh installs it): dpkg-query -L: %w", p.Name, err)
		}
		files, err := debFiles(out)
		if err != nil {
			return nil, fmt.Errorf("package %s (Debian): %w", p.Name, err)
		}
		for _, c := range p.Commands {
			if _, err := os.Stat(c); err != nil {
				return nil, fmt.Errorf("package %s (Debian): %s is missing (reinstall %s): %w", p.Name, c, p.Name, err)
			}
		}
		paths = append(paths, files...)
		paths = append(paths, p.Commands...)
	}
	var elfs []string
	for _, p := range paths {
		if isELF(p) {
			elfs = append(elfs, p)
		}
	}
	libs, err := ldd(ctx, elfs)
	if err != nil {
		return nil, err
	}
	paths = append(paths, libs...)
	slices.Sort(paths)
	return slices.Compact(paths), nil
}

// HostLayer is a layer of this machine's programs at their paths, with the shared libraries
// and dynamic loader ldd names for them, each path resolving in the image as it does on the
// machine (hostTree: a symlink met on the way is the same symlink in the layer). It lets an
// image over another base run a program of the host. A symlinked directory on a program's
// path comes with it (on a merged-/usr host, /bin -> usr/bin) and would hide the base's
// directory of that name, so programs are best named where they are (/usr/bin/bash).
func HostLayer(ctx context.Context, programs ...string) (v1.Layer, error) {
	name := strings.Join(programs, " ")
	libs, err := ldd(ctx, programs)
	if err != nil {
		return nil, fmt.Errorf("host layer of %s: %w", name, err)
	}
	tree, err := hostTree("/", append(slices.Clone(programs), libs...))
	if err != nil {
		return nil, fmt.Errorf("host layer of %s: %w", name, err)
	}
	l, err := layer(tree)
	if err != nil {
		return nil, fmt.Errorf("host layer of %s: %w", name, err)
	}
	return l, nil
}

// debFiles picks, from a package's file list, what a program needs at run time: the
// programs and libraries (ELF files, or links to them) under the bin, sbin and lib
// directories. Documentation, man pages, /etc and systemd units are left out, and so are
// directories, which hold nothing by themselves.
func debFiles(list []byte) ([]string, error) {
	var out []string
	s := bufio.NewScanner(bytes.NewReader(list))
	for s.Scan() {
		p := s.Text()
		if !keepDebFile(p) {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		// Scripts (iptables-apply, and ip6tables-apply linking to it) would need a shell the
		// image does not have.
		if fi.IsDir() || !isELF(p) {
			continue
		}
		out = append(out, p)
	}
	return out, s.Err()
}

func keepDebFile(p string) bool {
	if !path.IsAbs(p) || strings.Contains(p, "/systemd/") {
		return false
	}
	for _, d := range []string{"/bin/", "/sbin/", "/lib/", "/lib64/", "/usr/bin/", "/usr/sbin/", "/usr/lib/", "/usr/lib64/"} {
		if strings.HasPrefix(p, d) {
			return true
		}
	}
	return false
}

func isELF(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 4)
	_, err = f.ReadAt(magic, 0)
	return err == nil && string(magic) == "\x7fELF"
}

// ldd lists the shared libraries and dynamic loader that files load, as ldd prints them.
func ldd(ctx context.Context, files []string) ([]string, error) {
	if len(files) == 0 {
		return nil, nil
	}
	// ldd exits 1 when one of several files is static; the output says which.
	out, err := exec.CommandContext(ctx, "ldd", files...).Output()
	if err != nil && len(out) == 0 {
		return nil, fmt.Errorf("ldd: %w", err)
	}
	return lddPaths(out)
}

// errLibNotFound is a library that ldd could not resolve.
var errLibNotFound = errors.New("shared library not found")

// lddPaths parses ldd's output for the absolute paths of what is loaded. The output of
// several files has a "file:" line before each one's list; the vDSO has no path.
func lddPaths(out []byte) ([]string, error) {
	var paths []string
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		line := s.Text()
		if !strings.HasPrefix(line, "\t") {
			continue
		}
		line = strings.TrimSpace(line)
		lib, loaded, arrow := strings.Cut(line, " => ")
		if !arrow {
			loaded = lib
		}
		if strings.HasPrefix(loaded, "not found") {
			return nil, fmt.Errorf("%s: %w", lib, errLibNotFound)
		}
		p, _, _ := strings.Cut(loaded, " (")
		if path.IsAbs(p) {
			paths = append(paths, path.Clean(p))
		}
	}
	return paths, s.Err()
}

// maxLinks bounds the symlinks followed for one path, as the kernel's ELOOP does.
const maxLinks = 40

// hostTree is the image entries that make each of paths, read under root, resolve in the
// image as it does on the machine: every symlink met on the way (/lib64, the
// update-alternatives links of /usr/sbin/iptables) becomes the same symlink in the image,
// and the file it ends at is copied with its mode.
func hostTree(root string, paths []string) ([]file, error) {
	t := map[string]file{}
	for _, p := range paths {
		if err := addHostPath(t, root, p); err != nil {
			return nil, err
		}
	}
	out := make([]file, 0, len(t))
	for _, f := range t {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b file) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

func addHostPath(t map[string]file, root, p string) error {
	todo := strings.Split(p, "/")
	cur := "" // resolved so far, relative to root; never holds a symlink
	for links := 0; len(todo) > 0; {
		part := todo[0]
		todo = todo[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			cur = parentDir(cur)
			continue
		}
		next := path.Join(cur, part)
		host := filepath.Join(root, filepath.FromSlash(next))
		fi, err := os.Lstat(host)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if links++; links > maxLinks {
				return fmt.Errorf("%s: too many levels of symbolic links", p)
			}
			target, err := os.Readlink(host)
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			t[next] = file{Path: next, Mode: fs.ModeSymlink | 0o777, Link: target}
			if path.IsAbs(target) {
				cur = ""
			}
			todo = append(strings.Split(target, "/"), todo...)
		case fi.IsDir():
			if _, ok := t[next]; !ok {
				t[next] = dir(next, fi.Mode().Perm())
			}
			cur = next
		case fi.Mode().IsRegular():
			if len(todo) > 0 {
				return fmt.Errorf("%s: %s is not a directory", p, next)
			}
			f, err := regular(next, host, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			t[next] = f
			cur = next
		default:
			return fmt.Errorf("%s: %s is a %v, not a file, directory or symlink", p, next, fi.Mode().Type())
		}
	}
	return nil
}

func parentDir(p string) string {
	if d := path.Dir(p); d != "." {
		return d
	}
	return ""
}
