// Package rootfs makes the Debian userland of a Cairn image with mmdebstrap: the command is
// a plain value (Plan) that tests compare; Build runs it against a package cache that survives
// rebuilds, and keeps finished trees in a cache keyed by everything that goes into them.
package rootfs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ErrUnknownPackage is returned when apt cannot find a requested package.
var ErrUnknownPackage = errors.New("unknown Debian package")

// Spec is what goes into a root filesystem.
type Spec struct {
	Suite           string   // "bookworm"
	Sources         string   // apt sources file to copy into the build (the machine's own)
	Packages        []string // on top of the Essential:yes set
	SourceDateEpoch int64
	// DebCache keeps downloaded .debs between builds.
	DebCache string
}

// Key is a hash of everything that decides the tree's content: the suite, the sources file's
// bytes, the packages, the epoch. Same key, same tree (as far as the mirror is unchanged).
func (s Spec) Key() (string, error) {
	src, err := os.ReadFile(s.Sources)
	if err != nil {
		return "", fmt.Errorf("apt sources %s: %w", s.Sources, err)
	}
	h := sha256.New()
	pk := append([]string(nil), s.Packages...)
	sort.Strings(pk)
	fmt.Fprintf(h, "suite=%s\nepoch=%d\npackages=%s\nplan=%d\n", s.Suite, s.SourceDateEpoch, strings.Join(pk, ","), planVersion)
	h.Write(src)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// planVersion changes whenever Plan changes what a tree contains, to invalidate cached trees.
const planVersion = 1

// excluded paths keep /usr small: documentation and translations (copyright files stay).
var excluded = []string{"/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*", "/usr/share/doc/*", "/usr/share/lintian/*"}

// Plan is the mmdebstrap command line that builds the tree into dir.
func (s Spec) Plan(dir string) []string {
	args := []string{"mmdebstrap", "--mode=root", "--variant=essential", "--format=directory"}
	if len(s.Packages) > 0 {
		args = append(args, "--include="+strings.Join(s.Packages, ","))
	}
	for _, p := range excluded {
		args = append(args, "--dpkgopt=path-exclude="+p)
	}
	args = append(args, "--dpkgopt=path-include=/usr/share/doc/*/copyright")
	// (The kernel's postinst also builds a Debian initramfs that Cairn does not use; it lands in
	// /boot, which the image drops. Pre-seeding initramfs-tools' config to skip it makes dpkg
	// fail on the conffile, so the few seconds are paid.)
	if s.DebCache != "" {
		// Reuse and refill the package cache (mmdebstrap(1), "EXAMPLES").
		args = append(args,
			"--skip=essential/unlink",
			`--setup-hook=mkdir -p "$1/var/cache/apt/archives/"`,
			"--setup-hook=sync-in "+s.DebCache+" /var/cache/apt/archives/",
			"--customize-hook=sync-out /var/cache/apt/archives "+s.DebCache,
		)
	}
	// Host-specific files would make the tree differ between build machines.
	// (resolv.conf stays when it is systemd-resolved's symlink rather than the host's copy.)
	args = append(args, `--customize-hook=rm -f "$1/etc/hostname"; [ -L "$1/etc/resolv.conf" ] || rm -f "$1/etc/resolv.conf"`)
	return append(args, s.Suite, dir, s.Sources)
}

// apt's ways of saying a package does not exist (apt-get(8) messages, via mmdebstrap).
var unknownRE = regexp.MustCompile(`(?m)(?:Unable to locate package ([^\s']+)|Package '?([^\s']+?)'? has no installation candidate)`)

// UnknownPackage finds the package apt could not find in mmdebstrap's output.
func UnknownPackage(log string) (string, bool) {
	m := unknownRE.FindStringSubmatch(log)
	if m == nil {
		return "", false
	}
	if m[1] != "" {
		return m[1], true
	}
	return m[2], true
}

// Build makes the tree for s, or returns the cached one, in cacheDir/rootfs/<key>. progress
// receives mmdebstrap's log lines.
func Build(ctx context.Context, s Spec, cacheDir string, progress io.Writer) (dir string, cached bool, err error) {
	key, err := s.Key()
	if err != nil {
		return "", false, err
	}
	final := filepath.Join(cacheDir, "rootfs", key)
	if _, err := os.Stat(filepath.Join(final, "usr")); err == nil {
		return final, true, nil
	}
	if s.DebCache != "" {
		if err := os.MkdirAll(s.DebCache, 0o755); err != nil {
			return "", false, err
		}
	}
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		return "", false, err
	}
	// A dry run first (apt resolves the list, nothing is downloaded or installed: seconds), so a
	// wrong package name fails before minutes of unpacking.
	// (It leaves a skeleton in its target, so that is a directory of its own.)
	simDir := final + ".simulate"
	sim := s.Plan(simDir)
	sim = append([]string{sim[0], "--simulate"}, sim[1:]...)
	err = s.run(ctx, sim, nil)
	os.RemoveAll(simDir)
	if err != nil {
		return "", false, err
	}
	if err := s.run(ctx, s.Plan(tmp), progress); err != nil {
		os.RemoveAll(tmp)
		return "", false, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", false, err
	}
	return final, false, nil
}

// run runs one mmdebstrap command line, passing its output to progress, and turns apt's
// "no such package" into ErrUnknownPackage.
func (s Spec) run(ctx context.Context, argv []string, progress io.Writer) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(s.SourceDateEpoch, 10), "LC_ALL=C.UTF-8")
	var tail bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if progress != nil {
				fmt.Fprintln(progress, line)
			}
			tail.WriteString(line + "\n")
			if tail.Len() > 64<<10 {
				tail.Next(tail.Len() - 32<<10)
			}
		}
	}()
	runErr := cmd.Run()
	pw.Close()
	<-done
	if runErr != nil {
		if name, ok := UnknownPackage(tail.String()); ok {
			return fmt.Errorf("package %q: %w in %s (check image/packages.txt or -config)", name, ErrUnknownPackage, s.Suite)
		}
		return fmt.Errorf("mmdebstrap %s: %w\n%s", s.Suite, runErr, lastLines(tail.String(), 15))
	}
	return nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
