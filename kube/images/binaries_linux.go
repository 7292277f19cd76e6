package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// etcdPackage is etcd's main package, a tool of Cairn's go.mod: the etcd image is the
// release Cairn's own etcd client and embedded server are.
const etcdPackage = "go.etcd.io/etcd/server/v3"

// pausePackage is the pause program, relative to the repository.
const pausePackage = "kube/images/pause"

// Binaries builds what Build needs, or finds it built, and returns where it is: the
// ControlPlane commands by tools/kube/build.sh, CoreDNS by tools/coredns/build.sh, etcd and
// pause by go build from Cairn's module into the tools cache ($TOOLS_CACHE, or cairn-tools in
// the user's cache directory, as the scripts use), and kube-proxy's Userland. Each binary is
// rebuilt only when what it is built from changed; the builds run one at a time, under nice,
// and callers running at once build once. Build output and a line per binary go to progress.
func Binaries(ctx context.Context, repoRoot string, progress io.Writer) (Sources, error) {
	if progress == nil {
		progress = io.Discard
	}
	var src Sources
	var err error
	if src.Userland, err = Userland(ctx); err != nil {
		return Sources{}, fmt.Errorf("kube-proxy's userland: %w", err)
	}
	if src.Kube, err = script(ctx, progress, filepath.Join(repoRoot, "tools/kube/build.sh"), ControlPlane...); err != nil {
		return Sources{}, err
	}
	if src.KubeVersion, err = dirVersion(src.Kube, "kubernetes-"); err != nil {
		return Sources{}, err
	}
	dns, err := script(ctx, progress, filepath.Join(repoRoot, "tools/coredns/build.sh"))
	if err != nil {
		return Sources{}, err
	}
	src.CoreDNS = filepath.Join(dns, "coredns")
	if src.CoreDNSVersion, err = dirVersion(dns, "coredns-"); err != nil {
		return Sources{}, err
	}
	cache, err := toolsCache()
	if err != nil {
		return Sources{}, err
	}
	if src.Etcd, src.EtcdVersion, err = buildEtcd(ctx, repoRoot, cache, progress); err != nil {
		return Sources{}, err
	}
	if src.Pause, err = buildPause(ctx, repoRoot, cache, progress); err != nil {
		return Sources{}, err
	}
	return src, nil
}

// script runs a tools/*/build.sh, which prints the directory it built into.
func script(ctx context.Context, progress io.Writer, path string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stderr = progress
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", path, strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	dir := lines[len(lines)-1]
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("%s printed %q, not the directory it built into", path, dir)
	}
	return dir, nil
}

// dirVersion is the version a build script's directory is named with: kubernetes-v1.37.2.
func dirVersion(dir, prefix string) (string, error) {
	v, ok := strings.CutPrefix(filepath.Base(dir), prefix)
	if !ok || v == "" {
		return "", fmt.Errorf("%s: not named %sVERSION", dir, prefix)
	}
	return v, nil
}

// toolsCache is where the build scripts and Binaries keep what they build.
func toolsCache() (string, error) {
	if d := os.Getenv("TOOLS_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("tools cache: %w", err)
	}
	return filepath.Join(d, "cairn-tools"), nil
}

// buildEtcd builds etcd into cache/etcd-VERSION and returns it with its version ("3.6.16").
// Its stamp is the module versions etcd compiles from, as Cairn's go.mod selects them.
func buildEtcd(ctx context.Context, repoRoot, cache string, progress io.Writer) (bin, version string, err error) {
	out, err := goCmd(ctx, repoRoot, "list", "-deps", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{end}}", etcdPackage)
	if err != nil {
		return "", "", err
	}
	mods := strings.Fields(strings.ReplaceAll(out, " ", "@"))
	slices.Sort(mods)
	mods = slices.Compact(mods)
	for _, m := range mods {
		if v, ok := strings.CutPrefix(m, etcdPackage+"@"); ok {
			version = v
		}
	}
	if version == "" {
		return "", "", fmt.Errorf("etcd: %s is not in the build list of %s", etcdPackage, repoRoot)
	}
	bin = filepath.Join(cache, "etcd-"+version, "etcd")
	err = cachedBuild(ctx, progress, repoRoot, etcdPackage, bin, strings.Join(mods, "\n"))
	return bin, strings.TrimPrefix(version, "v"), err
}

// buildPause builds kube/images/pause into cache/pause-PauseVersion; its stamp is its source.
func buildPause(ctx context.Context, repoRoot, cache string, progress io.Writer) (string, error) {
	srcDir := filepath.Join(repoRoot, pausePackage)
	names, err := filepath.Glob(filepath.Join(srcDir, "*.go"))
	if err != nil || len(names) == 0 {
		return "", fmt.Errorf("pause: no Go files in %s", srcDir)
	}
	var stamp bytes.Buffer
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return "", fmt.Errorf("pause: %w", err)
		}
		fmt.Fprintf(&stamp, "%s %x\n", filepath.Base(n), sha256.Sum256(b))
	}
	bin := filepath.Join(cache, "pause-"+PauseVersion, "pause")
	return bin, cachedBuild(ctx, progress, repoRoot, "./"+pausePackage, bin, stamp.String())
}

// cachedBuild builds pkg from the module in dir into out unless out is there with a stamp
// of the same inputs and Go toolchain. A lock beside out makes concurrent callers build once.
func cachedBuild(ctx context.Context, progress io.Writer, dir, pkg, out, inputs string) error {
	name := filepath.Base(out)
	goVersion, err := goCmd(ctx, dir, "env", "GOVERSION")
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(goVersion + "\n" + inputs))
	want := hex.EncodeToString(sum[:]) + "\n"
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	lock, err := os.OpenFile(filepath.Join(filepath.Dir(out), ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("%s: lock %s: %w", name, lock.Name(), err)
	}
	stamp := out + ".stamp"
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		if fi, err := os.Stat(out); err == nil && fi.Mode().IsRegular() {
			return nil
		}
	}
	if err := os.Remove(stamp); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("%s: %w", name, err)
	}
	start := time.Now()
	// -mod=readonly: the build uses exactly what go.sum pins; -buildvcs=false: the binary
	// does not depend on the checkout's state.
	cmd := exec.CommandContext(ctx, "nice", "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out+".tmp", pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=readonly -buildvcs=false")
	cmd.Stdout, cmd.Stderr = progress, progress
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: go build %s: %w", name, pkg, err)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(progress, "built %s in %s: %d MB\n", name, time.Since(start).Round(time.Second), fi.Size()>>20)
	return nil
}

// goCmd runs the go command in dir and returns its output, trimmed.
func goCmd(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s in %s: %w: %s", strings.Join(args, " "), dir, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(string(out)), nil
}
