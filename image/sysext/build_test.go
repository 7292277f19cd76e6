package sysext

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/internal/gpt"
	"github.com/cairn-os/cairn/internal/testenv"
)

// standIns writes small programs in place of kubelet, kubeadm and kubectl.
func standIns(t *testing.T) string {
	dir := t.TempDir()
	for _, b := range []string{"kubelet", "kubeadm", "kubectl"} {
		script := "#!/bin/sh\necho \"" + b + " Kubernetes " + KubernetesVersion + "\"\n"
		if err := os.WriteFile(filepath.Join(dir, b), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func build(t *testing.T, s Spec) (*Image, string) {
	t.Helper()
	var progress bytes.Buffer
	out := t.TempDir()
	img, err := (&Builder{Spec: s, Out: out, Progress: &progress}).Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range Steps() {
		if !strings.Contains(progress.String(), st.Name+" done") {
			t.Errorf("no progress line for %q:\n%s", st.Name, progress.String())
		}
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 2 {
		t.Errorf("output holds %d entries, want the image and its hash file", len(ents))
	}
	return img, out
}

// partitions reads the image's GPT and copies each partition out.
func partitions(t *testing.T, img *Image) (*gpt.Table, map[string]string) {
	t.Helper()
	f, err := os.Open(img.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := gpt.Read(f, img.Size, 512)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range tab.Partitions {
		buf := make([]byte, p.Size(512))
		if _, err := f.ReadAt(buf, p.Offset(512)); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), p.Name)
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		out[p.Name] = path
	}
	return tab, out
}

func TestBuildKubernetesExtension(t *testing.T) {
	testenv.RequireCommand(t, "mkfs.erofs")
	testenv.RequireCommand(t, "veritysetup")
	ctx := context.Background()
	s := Kubernetes(KubernetesVersion, "1.2.0", standIns(t), "", 1700000000)
	img, out := build(t, s)

	if filepath.Base(img.Path) != "kubernetes-v1.37.2.raw" {
		t.Errorf("image %s", img.Path)
	}
	hash, err := os.ReadFile(filepath.Join(out, "kubernetes-v1.37.2.usrhash"))
	if err != nil || strings.TrimSpace(string(hash)) != img.RootHash || len(img.RootHash) != 64 {
		t.Fatalf("usrhash %q (%v), root hash %s", hash, err, img.RootHash)
	}
	if fi, _ := os.Stat(img.Path); fi.Size() != img.Size || img.Size%(1<<20) != 0 {
		t.Errorf("image is %d bytes, reported %d", fi.Size(), img.Size)
	}

	// The layout: usr then usr-verity, typed for x86-64, UUIDs from the root hash.
	tab, parts := partitions(t, img)
	want, _, err := Layout(img.USRSize, img.VeritySize, img.RootHash)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Partitions) != 2 {
		t.Fatalf("%d partitions", len(tab.Partitions))
	}
	for i, p := range tab.Partitions {
		if p != want.Partitions[i] {
			t.Errorf("partition %d: %+v, want %+v", i+1, p, want.Partitions[i])
		}
	}
	if sfdisk, err := exec.LookPath("sfdisk"); err == nil {
		js, err := exec.Command(sfdisk, "--json", img.Path).Output()
		if err != nil {
			t.Fatalf("sfdisk: %v", err)
		}
		for _, w := range []string{strings.ToUpper(TypeUSR.String()), strings.ToUpper(TypeUSRVerity.String()), `"name":"usr-x86-64-verity"`} {
			if !strings.Contains(strings.ReplaceAll(strings.ToUpper(string(js)), " ", ""), strings.ToUpper(w)) {
				t.Errorf("sfdisk does not show %s:\n%s", w, js)
			}
		}
	}

	// dm-verity: the hash partition (with its superblock) checks the data partition.
	verify := func() error {
		o, err := exec.CommandContext(ctx, "veritysetup", "verify", parts[LabelUSR], parts[LabelUSRVerity], img.RootHash).CombinedOutput()
		if err != nil {
			return &exec.ExitError{Stderr: o}
		}
		return nil
	}
	if err := verify(); err != nil {
		t.Fatalf("veritysetup verify: %s", err.(*exec.ExitError).Stderr)
	}

	// The file system, what systemd mounts on /usr: the binaries, units and extension-release.
	if _, err := exec.LookPath("fsck.erofs"); err == nil {
		dir := filepath.Join(t.TempDir(), "x")
		if o, err := exec.Command("fsck.erofs", "--extract="+dir, parts[LabelUSR]).CombinedOutput(); err != nil {
			t.Fatalf("fsck.erofs: %v\n%s", err, o)
		}
		rel, err := os.ReadFile(filepath.Join(dir, "lib/extension-release.d/extension-release.kubernetes-v1.37.2"))
		if err != nil || string(rel) != "ID=cairn\nVERSION_ID=1.2.0\n" {
			t.Errorf("extension-release %q (%v)", rel, err)
		}
		if o, err := exec.Command(filepath.Join(dir, "bin/kubelet")).Output(); err != nil || !strings.Contains(string(o), KubernetesVersion) {
			t.Errorf("kubelet from the image: %q %v", o, err)
		}
		for _, p := range []string{"lib/systemd/system/kubelet.service", "lib/systemd/system/kubelet.service.d/10-kubeadm.conf"} {
			if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
				t.Error(err)
			}
		}
		if l, err := os.Readlink(filepath.Join(dir, "lib/systemd/system/multi-user.target.wants/kubelet.service")); err != nil || l != "../kubelet.service" {
			t.Errorf("kubelet's wants link %q %v", l, err)
		}
	}

	if _, err := exec.LookPath("systemd-dissect"); err == nil {
		o, err := exec.Command("systemd-dissect", "--json=short", "--usr-hash="+img.RootHash, img.Path).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-dissect: %v\n%s", err, o)
		}
		for _, w := range []string{`"designator":"usr"`, `"designator":"usr-verity"`} {
			if !strings.Contains(string(o), w) {
				t.Errorf("systemd-dissect does not see %s:\n%s", w, o)
			}
		}
	}

	// Same inputs, same bytes.
	again, _ := build(t, s)
	a, _ := os.ReadFile(img.Path)
	b, _ := os.ReadFile(again.Path)
	if again.RootHash != img.RootHash || !bytes.Equal(a, b) {
		t.Error("two builds of the same spec differ")
	}
	// A different OS version is a different image.
	other, _ := build(t, Kubernetes(KubernetesVersion, "1.3.0", standIns(t), "", 1700000000))
	if other.RootHash == img.RootHash {
		t.Error("the OS version does not change the image")
	}

	// One flipped bit in the data partition is caught.
	data, _ := os.ReadFile(parts[LabelUSR])
	data[1024+100] ^= 1 // in the erofs superblock, the first data block
	if err := os.WriteFile(parts[LabelUSR], data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := verify(); err == nil {
		t.Fatal("a corrupted usr partition verified")
	}
}

func TestBuildRefusesBadSpecAndMissingSource(t *testing.T) {
	testenv.RequireCommand(t, "mkfs.erofs")
	testenv.RequireCommand(t, "veritysetup")
	out := t.TempDir()
	s := Kubernetes(KubernetesVersion, "1.2.0", t.TempDir(), "", 1)
	_, err := (&Builder{Spec: s, Out: out}).Build(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/usr/bin/kubelet") {
		t.Fatalf("missing kubelet: %v", err)
	}
	s.OSVersion = ""
	if _, err := (&Builder{Spec: s, Out: out}).Build(context.Background()); err == nil {
		t.Fatal("spec without an OS version built")
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("failed builds left %d entries", len(ents))
	}
}
