package pods

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/testenv"
)

// workDir is the directory a benchmark keeps its rkt data directory, runc bundles and state
// and podman's storage in, and a few words saying which file system that is, for the report.
//
// By default it is an ext4 with a journal, made on a loop device for the benchmark, as a
// host's /var is (Cairn's ROOT is made so). An ext4 without a journal, as some VMs' root file
// systems are, skips the inodes deleted in the last 60 s (300 s while their inode table block
// is not written back) when it allocates one (find_inode_bit's recently_deleted check, made
// only without a journal), so each file a pod start creates there costs more the more the
// whole machine deleted lately: builds, tests, this benchmark's own gc. rkt creates about
// thirty files and directories per pod (its pod directory and the overlay's), runc three, so
// such a file system measures the machine's recent past more than either runtime.
//
// CAIRN_BENCH_DIR=DIR uses DIR as it is instead (the report says which file system it is on).
func workDir(b *testing.B) (dir, where string) {
	if d := os.Getenv("CAIRN_BENCH_DIR"); d != "" {
		dir, err := os.MkdirTemp(d, "bench-")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
		return dir, d + " (" + fsType(d) + ", CAIRN_BENCH_DIR)"
	}
	mkfs := testenv.RequireCommand(b, "mkfs.ext4")
	tmp := b.TempDir()
	img, dir := filepath.Join(tmp, "fs.img"), filepath.Join(tmp, "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	// Sparse: only what the benchmark writes takes space.
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.Truncate(img, 2<<30); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", "-O", "has_journal", img).CombinedOutput(); err != nil {
		b.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	// mount -o loop sets the loop device to detach itself when the file system is unmounted,
	// so that a benchmark killed before its cleanup leaves only the mount.
	if out, err := exec.Command("mount", "-t", "ext4", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		b.Fatalf("mount %s: %v %s", img, err, out)
	}
	b.Cleanup(func() {
		if exec.Command("umount", dir).Run() == nil {
			return
		}
		// Something is left mounted under it (a pod gc did not take down): say what, then
		// detach the whole tree.
		left, _ := exec.Command("findmnt", "-R", dir).CombinedOutput()
		b.Errorf("mounts left under %s:\n%s", dir, left)
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			b.Errorf("umount -l %s: %v %s", dir, err, out)
		}
	})
	where = fsType(dir)
	if !strings.HasPrefix(where, "ext4 with a journal") {
		b.Fatalf("the benchmark's file system on %s is %s, not an ext4 with a journal", dir, where)
	}
	return dir, where
}

// fsType names the file system dir is on, and whether it has a journal when it is ext4 (from
// /sys/fs/ext4/<its block device's kernel name>/journal_task).
func fsType(dir string) string {
	out, err := exec.Command("findmnt", "-n", "-o", "FSTYPE,SOURCE,MAJ:MIN", "-T", dir).Output()
	if err != nil {
		return "file system unknown"
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return strings.Join(f, " on ")
	}
	if f[0] != "ext4" {
		return f[0] + " on " + f[1]
	}
	dev, err := os.Readlink(filepath.Join("/sys/dev/block", f[2]))
	if err != nil {
		return "ext4 on " + f[1]
	}
	task, err := os.ReadFile(filepath.Join("/sys/fs/ext4", filepath.Base(dev), "journal_task"))
	switch {
	case err != nil:
		return "ext4 on " + f[1]
	case strings.TrimSpace(string(task)) == "<none>":
		return "ext4 without a journal on " + f[1]
	}
	return "ext4 with a journal on " + f[1]
}
