package sysext

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/daemon"
)

// mergeScript merges the extensions of a host tree $1 with systemd-sysext in a mount namespace
// of its own, runs kubelet from the merged /usr and lists its units. systemd-sysext moves its
// overlay in from a child namespace: the tree's mounts are made shared (new peer groups, in
// this namespace only) as under systemd; /run is private to it.
const mergeScript = `set -e
mount --make-rshared /
mount -t tmpfs tmpfs /run
mount --bind "$1/usr" "$1/usr"
systemd-sysext --root="$1" merge
"$1/usr/bin/kubelet" --version
ls "$1/usr/lib/systemd/system"
`

// dmVerity reports whether this kernel can open dm-verity devices (some test machines have no
// device-mapper).
func dmVerity() bool {
	f, err := os.OpenFile("/dev/mapper/control", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func TestSysextMergesOnlyOnItsVersion(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []string{"systemd-sysext", "unshare", "mkfs.erofs", "veritysetup"} {
		testenv.RequireCommand(t, c)
	}
	img, out := build(t, Kubernetes(KubernetesVersion, "1.2.0", standIns(t), "", 1700000000))
	verity := dmVerity()
	if !verity {
		t.Log("no device-mapper in this kernel: merged without the root hash, dm-verity not exercised")
	}

	// host makes a host tree of versionID with the image in dir: etc/extensions (as a first-boot
	// config places it) or var/lib/cairn/extensions/VERSION, the store that the base image's
	// /usr/lib/extensions links to for its own version (image/build.ExtensionLink).
	host := func(versionID, dir string) string {
		root := t.TempDir()
		for _, d := range []string{"usr/lib", "usr/bin", dir} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("ID=cairn\nVERSION_ID="+versionID+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../var/lib/cairn/extensions/"+versionID, filepath.Join(root, "usr/lib/extensions")); err != nil {
			t.Fatal(err)
		}
		names := []string{filepath.Base(img.Path)}
		// With the root hash beside the image systemd opens the usr partition through
		// dm-verity, which needs device-mapper in the kernel.
		if verity {
			names = append(names, "kubernetes-v1.37.2.usrhash")
		}
		for _, n := range names {
			// Links, not symlinks: systemd 252 skips symlinks in its search directories.
			if err := os.Link(filepath.Join(out, n), filepath.Join(root, dir, n)); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	merge := func(root string) (string, error) {
		cmd := exec.CommandContext(context.Background(), "unshare", "--mount", "--propagation", "private", "sh", "-c", mergeScript, "sh", root)
		o, err := cmd.CombinedOutput()
		return string(o), err
	}

	for _, dir := range []string{"etc/extensions", "var/lib/cairn/extensions/1.2.0"} {
		o, err := merge(host("1.2.0", dir))
		if err != nil {
			t.Fatalf("merge from %s on the version the extension fits: %v\n%s", dir, err, o)
		}
		for _, want := range []string{"Using extensions 'kubernetes-v1.37.2'", "kubelet Kubernetes " + KubernetesVersion, "kubelet.service\n", "kubelet.service.d\n"} {
			if !strings.Contains(o, want) {
				t.Errorf("merged from %s: no %q in\n%s", dir, want, o)
			}
		}
	}

	// Another OS version: systemd-sysext leaves the extension out and says why (exiting 0);
	// kubelet is not there. From the store, a slot of another version does not even see it.
	o, err := merge(host("1.3.0", "etc/extensions"))
	if err == nil || !strings.Contains(o, "ignored due to incompatible version") || strings.Contains(o, "kubelet Kubernetes") {
		t.Errorf("extension for 1.2.0 on a 1.3.0 host: %v\n%s", err, o)
	}
	o, err = merge(host("1.3.0", "var/lib/cairn/extensions/1.2.0"))
	if err == nil || !strings.Contains(o, "No extensions found") {
		t.Errorf("1.2.0's store on a 1.3.0 host: %v\n%s", err, o)
	}
}

// checkMergeScript merges a host tree's extensions as mergeScript does and runs what each
// extension's program prints, "absent" for one that is not there.
const checkMergeScript = `set -e
mount --make-rshared /
mount -t tmpfs tmpfs /run
mount --bind "$1/usr" "$1/usr"
systemd-sysext --root="$1" merge
for p in fits old; do "$1/usr/bin/$p" 2>/dev/null || echo "$p absent"; done
`

// update_engine -check-extensions, as cairn-sysext-check.service runs it before the merge: of
// two extensions in /etc/extensions, the one built for another OS version is named on its
// output with the exit status 1, and systemd-sysext then merges the one that fits and not it.
func TestCheckNamesMisfitSysextLeavesOut(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []string{"systemd-sysext", "unshare", "mkfs.erofs", "veritysetup"} {
		testenv.RequireCommand(t, c)
	}
	spec := func(name, osVersion string) Spec {
		return Spec{Name: name, OSID: "cairn", OSVersion: osVersion, SourceDateEpoch: 1700000000, Files: []File{
			{Path: "/usr/bin/" + name, Mode: 0o755, Data: []byte("#!/bin/sh\necho " + name + " merged\n")},
		}}
	}
	fits, fitsDir := build(t, spec("fits", "1.3.0"))
	old, oldDir := build(t, spec("old", "1.2.0"))

	root := t.TempDir()
	for _, d := range []string{"usr/lib", "usr/bin", "etc/extensions"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("NAME=\"Cairn\"\nID=cairn\nVERSION_ID=1.3.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, img := range []struct{ path, dir string }{{fits.Path, fitsDir}, {old.Path, oldDir}} {
		// Without the .usrhash: merged unverified, as in TestSysextMergesOnlyOnItsVersion
		// without device-mapper.
		if err := os.Link(img.path, filepath.Join(root, "etc/extensions", filepath.Base(img.path))); err != nil {
			t.Fatal(err)
		}
	}

	var stdout, stderr bytes.Buffer
	code := daemon.Run(context.Background(), []string{"-check-extensions", "-root", root}, &stdout, &stderr)
	const want = "old.raw fits cairn 1.2.0, this host is cairn 1.3.0: not merged; update_engine stages matching extensions under /var/lib/cairn/extensions\n"
	if code != 1 || stdout.String() != want || stderr.Len() != 0 {
		t.Errorf("check: exit %d, stdout %q, stderr %q; want 1 and %q", code, stdout.String(), stderr.String(), want)
	}

	o, err := exec.CommandContext(context.Background(), "unshare", "--mount", "--propagation", "private", "sh", "-c", checkMergeScript, "sh", root).CombinedOutput()
	if err != nil {
		t.Fatalf("merge: %v\n%s", err, o)
	}
	for _, w := range []string{"Using extensions 'fits'", "fits merged\n", "old absent\n"} {
		if !strings.Contains(string(o), w) {
			t.Errorf("merge: no %q in\n%s", w, o)
		}
	}

	// With the misfit gone, nothing is left out and the check passes.
	if err := os.Remove(filepath.Join(root, "etc/extensions/old.raw")); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := daemon.Run(context.Background(), []string{"-check-extensions", "-root", root}, &stdout, &stderr); code != 0 || stdout.Len() != 0 {
		t.Errorf("check with the fitting extension alone: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
}
