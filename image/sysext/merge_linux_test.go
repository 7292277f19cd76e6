package sysext

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
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
