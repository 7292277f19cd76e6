package stage1_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/store"
)

// runSaved runs a pod to its end and returns its UUID.
func (e *env) runSaved(args ...string) (string, result) {
	e.t.Helper()
	uf := filepath.Join(e.t.TempDir(), "uuid")
	r := e.run(append([]string{"run", "--uuid-file-save=" + uf}, args...)...)
	b, err := os.ReadFile(uf)
	if err != nil {
		e.t.Fatalf("rkt run %v: %d %q %q: no UUID: %v", args, r.code, r.out, r.err, err)
	}
	return strings.TrimSpace(string(b)), r
}

// aciEntry reads one entry of a gzip-compressed ACI.
func aciEntry(t *testing.T, path, name string) (*tar.Header, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s is not gzip-compressed: %v", path, err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("%s has no %s", path, name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == name {
			b, _ := io.ReadAll(tr)
			return hdr, string(b)
		}
	}
}

// rkt export writes an exited pod's app as an ACI with what the app changed: it imports and
// runs with the changed file present and the removed one gone.
func TestExport(t *testing.T) {
	e := newEnv(t)
	// The exported images carry the fixture's name and version: the pods below name the
	// fixture by its ID.
	st, err := store.Open(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := st.Get(context.Background(), e.aci)
	if err != nil {
		t.Fatal(err)
	}
	e.aci = img.ID
	change := "echo changed > /changed.txt; rm /etc/group; ln /changed.txt /hardlink"
	for _, mode := range []struct {
		name  string
		flags []string
	}{
		{"overlay", nil},
		{"no-overlay", []string{"--no-overlay"}},
		{"private-users", []string{"--private-users"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			args := append(append([]string{"--net=none"}, mode.flags...), e.aci, "--exec=/bin/sh", "--", "-c", change)
			id, r := e.runSaved(args...)
			if r.code != 0 {
				t.Fatalf("run: %d %q", r.code, r.err)
			}
			out := filepath.Join(t.TempDir(), "changed.aci")
			if r := e.run("export", id, out); r.code != 0 {
				t.Fatalf("export: %d %q", r.code, r.err)
			}
			hdr, body := aciEntry(t, out, "rootfs/changed.txt")
			if body != "changed\n" || hdr.Uid != 0 || hdr.Gid != 0 {
				t.Fatalf("rootfs/changed.txt: %q owned by %d:%d; want the app's content, owned by the pod's root", body, hdr.Uid, hdr.Gid)
			}
			if _, m := aciEntry(t, out, "manifest"); !strings.Contains(m, `"name":"`+fixture.ACIName+`"`) || strings.Contains(m, "dependencies") {
				t.Fatalf("manifest %s", m)
			}
			r = e.run("--insecure-options=image", "run", "--net=none", out, "--exec=/bin/sh", "--", "-c",
				"cat /changed.txt /hardlink; test -e /etc/group || echo group gone; cat /etc/passwd | head -1")
			if r.code != 0 || r.out != "changed\nchanged\ngroup gone\nroot:x:0:0::/:/bin/sh\n" {
				t.Fatalf("run of the exported ACI: %d out %q err %q", r.code, r.out, r.err)
			}
		})
	}
	id, _ := e.runSaved("--net=none", e.aci, "--exec=/bin/true")
	out := filepath.Join(t.TempDir(), "x.aci")
	if r := e.run("export", id, out); r.code != 0 {
		t.Fatalf("export: %d %q", r.code, r.err)
	}
	if r := e.run("export", id, out); r.code == 0 || !strings.Contains(r.err, "--overwrite") {
		t.Fatalf("export over an existing file: %d %q", r.code, r.err)
	}
	if r := e.run("export", "--overwrite", id, out); r.code != 0 {
		t.Fatalf("export --overwrite: %d %q", r.code, r.err)
	}
	if r := e.run("export", id, strings.TrimSuffix(out, ".aci")+".tar"); r.code == 0 || !strings.Contains(r.err, "extension must be .aci") {
		t.Fatalf("export to a .tar: %d %q", r.code, r.err)
	}
	// Only exited pods; in a pod of two apps, one named with --app.
	run, _ := e.start("--net=none", e.aci, "--name=a", "--exec=/bin/sleep", "--", "1000", "---", e.aci, "--name=b", "--exec=/bin/true")
	if r := e.run("export", run, out); r.code == 0 || !strings.Contains(r.err, "only exited pods can be exported") {
		t.Fatalf("export of a running pod: %d %q", r.code, r.err)
	}
	if r := e.run("stop", "--force", run); r.code != 0 {
		t.Fatal(r.err)
	}
	if r := e.run("status", "--wait=20s", run); r.code != 0 {
		t.Fatal(r.err)
	}
	if r := e.run("export", "--overwrite", run, out); r.code == 0 || !strings.Contains(r.err, "Pod contains multiple apps:\n\ta\n\tb\n") || !strings.Contains(r.err, `"rkt export --app= ..."`) {
		t.Fatalf("export of a two-app pod without --app: %d %q", r.code, r.err)
	}
	if r := e.run("export", "--overwrite", "--app=b", run, out); r.code != 0 {
		t.Fatalf("export --app=b: %d %q", r.code, r.err)
	}
	if left := e.podLeftovers(); len(left) > 0 {
		t.Fatalf("leftovers after export:\n%s", strings.Join(left, "\n"))
	}
}

// rkt enter on a pod of several apps without --app lists them, as rkt does.
func TestEnterMultiAppPod(t *testing.T) {
	e := newEnv(t)
	id, _ := e.start("--net=none", e.aci, "--name=redis", "--exec=/bin/sleep", "--", "1000", "---",
		e.aci, "--name=etcd", "--exec=/bin/sleep", "--", "1000")
	r := e.run("enter", id, "/bin/true")
	want := "Pod contains multiple apps:\n\tredis\n\tetcd\n"
	if r.code == 0 || !strings.HasPrefix(r.err, want) || !strings.Contains(r.err, `unable to determine app name: specify app using "rkt enter --app= ..."`) {
		t.Fatalf("enter without --app: %d %q; want the apps listed (%q)", r.code, r.err, want)
	}
	if r := e.run("enter", "--app=etcd", id, "/bin/sh", "-c", "echo $AC_APP_NAME"); r.code != 0 || r.out != "etcd\n" {
		t.Fatalf("enter --app=etcd: %d %q %q", r.code, r.out, r.err)
	}
	if r := e.run("stop", "--force", id); r.code != 0 {
		t.Fatal(r.err)
	}
}

// Under `ip netns exec`, /sys is a new sysfs with no cgroup mounts in it: rkt run says so and
// what to do instead. The test makes the same mount namespace as ip netns exec does (a slave
// copy, /sys replaced by a fresh sysfs), without a named namespace.
func TestRunUnderIPNetnsExec(t *testing.T) {
	e := newEnv(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("no unshare(1)")
	}
	script := fmt.Sprintf("umount -l /sys && mount -t sysfs sysfs /sys && exec %s --dir=%s run --net=none %s", e.rkt, e.dir, e.aci)
	c := exec.Command(unshare, "--mount", "--propagation", "slave", "sh", "-c", script)
	b, err := c.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 254 {
		t.Fatalf("rkt run under a remounted /sys: %v %q; want exit status 254", err, b)
	}
	for _, want := range []string{"no cgroup filesystem under /sys/fs/cgroup", "ip netns exec", "nsenter --net=/var/run/netns/NAME"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("error %q does not say %q", b, want)
		}
	}
	e.run("gc", "--grace-period=0s")
	if left := e.podLeftovers(); len(left) > 0 {
		t.Fatalf("leftovers:\n%s", strings.Join(left, "\n"))
	}
}
