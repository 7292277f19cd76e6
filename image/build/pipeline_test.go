package build

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/image/usrfs"
	"github.com/cairn-os/cairn/installer/imagesig"
	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/payload"
)

const hostStubDir = "/usr/lib/systemd/boot/efi"

// fakeTree is a tiny stand-in for a Debian tree: enough for every step of the pipeline (a
// kernel that is not one, no modules), so the whole pipeline runs in seconds.
func fakeTree(t *testing.T, withKernel bool) string {
	t.Helper()
	for _, tool := range hostTools {
		if tool[0] != "mmdebstrap" {
			testenv.RequireCommand(t, tool[0])
		}
	}
	testenv.RequireFile(t, filepath.Join(hostStubDir, "linuxx64.efi.stub"))
	root := t.TempDir()
	w := func(p string, data []byte) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cp := func(src, dst string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		w(dst, b)
	}
	if withKernel {
		w("boot/vmlinuz-6.1.0-test", bytes.Repeat([]byte("kernel"), 100000))
	}
	w("usr/lib/modules/6.1.0-test/modules.dep", []byte("kernel/fs/erofs/erofs.ko:\n"))
	w("usr/lib/modules/6.1.0-test/kernel/fs/erofs/erofs.ko", []byte("not really a module"))
	cp(filepath.Join(hostStubDir, "linuxx64.efi.stub"), "usr/lib/systemd/boot/efi/linuxx64.efi.stub")
	cp(filepath.Join(hostStubDir, "systemd-bootx64.efi"), "usr/lib/systemd/boot/efi/systemd-bootx64.efi")
	w("usr/bin/hello", []byte("#!/bin/sh\necho hello\n"))
	w("var/lib/dpkg/status", []byte("Package: base-files\nStatus: install ok installed\nVersion: 12.4\n"))
	w("etc/hostname", []byte("x\n"))
	for _, l := range [][2]string{{"usr/bin", "bin"}, {"usr/lib", "lib"}} {
		os.Symlink(l[0], filepath.Join(root, l[1]))
	}
	return root
}

func fakeBuilder(t *testing.T, tree, out string) *Builder {
	cache := t.TempDir()
	return &Builder{Out: out, Config: Config{Version: "1.2.3", RootfsDir: tree, CacheDir: cache, BinDir: filepath.Join(cache, "nobin"),
		SourceDateEpoch: 1700000000}}
}

func TestPipelineWithAFakeTree(t *testing.T) {
	tree := fakeTree(t, true)
	out := filepath.Join(t.TempDir(), "out")
	b := fakeBuilder(t, tree, out)
	var progress bytes.Buffer
	b.Progress = &progress
	if err := b.Run(context.Background()); err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	t.Logf("first build:\n%s", progress.String())
	for _, f := range []string{DiskImage, DiskSig, QCOW2Image, PXEKernel, PXEInitrd, PayloadFile, VersionTxt, ManifestFile,
		"cairn_production_uki_A.efi", "cairn_production_uki_B.efi"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("artifact %s: %v", f, err)
		}
	}
	for _, s := range b.Steps() {
		if !strings.Contains(progress.String(), s.Name+": done") {
			t.Errorf("progress lacks step %q", s.Name)
		}
	}
	// cairn-install's check of the disk passes with the image's own key.
	keys, err := payload.ParsePublicKeys(b.publicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := os.ReadFile(filepath.Join(out, DiskSig))
	st, err := imagesig.Verify(keys, sig)
	if fi, _ := os.Stat(filepath.Join(out, DiskImage)); err != nil || st.Size != fi.Size() {
		t.Errorf("disk signature: %+v %v", st, err)
	}
	m := b.manifest
	if m.Version != "1.2.3" || m.Kernel != "6.1.0-test" || m.Packages["base-files"] != "12.4" || len(m.Files) < 9 {
		t.Errorf("manifest %+v", m)
	}
	// Nothing of the work directory is left next to the output.
	ents, _ := os.ReadDir(filepath.Dir(out))
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
	// A second build from the same inputs gives the same bytes, file by file.
	out2 := filepath.Join(t.TempDir(), "out")
	b2 := fakeBuilder(t, tree, out2)
	b2.Config.PayloadKey = filepath.Join(b.Config.CacheDir, "dev-payload-key.pem")
	if err := b2.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(b2.manifest.Files) != len(m.Files) {
		t.Fatalf("second build made %d files, first %d", len(b2.manifest.Files), len(m.Files))
	}
	for i, f := range m.Files {
		if f != b2.manifest.Files[i] {
			t.Errorf("%s differs between two builds from the same inputs", f.Name)
			if d := os.Getenv("CAIRN_KEEP_DIFF"); d != "" {
				os.MkdirAll(d, 0o755)
				copyFile(filepath.Join(out, f.Name), filepath.Join(d, "1-"+f.Name), 0o644)
				copyFile(filepath.Join(out2, f.Name), filepath.Join(d, "2-"+f.Name), 0o644)
			}
		}
	}
}

func TestBadInputLeavesNoOutput(t *testing.T) {
	cases := map[string]struct {
		kernel bool
		limit  int64
		want   error
	}{
		"missing kernel":     {false, 0, ErrNoKernel},
		"/usr over its size": {true, 8192, usrfs.ErrTooBig},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			tree := fakeTree(t, c.kernel)
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			b := fakeBuilder(t, tree, out)
			b.usrLimit = c.limit
			var progress bytes.Buffer
			b.Progress = &progress
			err := b.Run(context.Background())
			if !errors.Is(err, c.want) {
				t.Fatalf("want %v, got %v", c.want, err)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Fatalf("failed build left %v", ents)
			}
			if !strings.Contains(progress.String(), "FAILED") {
				t.Errorf("progress does not show the failure:\n%s", progress.String())
			}
		})
	}
}

// split keeps the kernel's config under /usr/lib/modules: kubeadm's preflight reads it there.
func TestSplitKeepsKernelConfig(t *testing.T) {
	work := t.TempDir()
	tree := filepath.Join(work, "tree")
	for p, data := range map[string]string{
		"boot/config-6.1.0-test":                 "CONFIG_CGROUPS=y\n",
		"boot/vmlinuz-6.1.0-test":                "kernel",
		"usr/lib/modules/6.1.0-test/modules.dep": "",
		"etc/hostname":                           "x\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := &Builder{work: work, tree: tree, kver: "6.1.0-test"}
	if err := b.split(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(b.usrDir, "lib/modules/6.1.0-test/config")); err != nil || string(got) != "CONFIG_CGROUPS=y\n" {
		t.Errorf("/usr/lib/modules/6.1.0-test/config: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(b.rootDir, "boot")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/boot left in ROOT's skeleton: %v", err)
	}
}
