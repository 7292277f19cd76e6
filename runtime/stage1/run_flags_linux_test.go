package stage1_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/store"
)

// importACI adds an ACI to e's store.
func (e *env) importACI(o fixture.ACIOptions) {
	e.t.Helper()
	st, err := store.Open(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := fixture.WriteACI(&buf, o); err != nil {
		e.t.Fatal(err)
	}
	if _, err := st.ImportACI(context.Background(), &buf, store.ImportOptions{Name: o.Name, Trusted: true}); err != nil {
		e.t.Fatal(err)
	}
}

// runUUID runs a pod to its end and returns its UUID with the result.
func (e *env) runUUID(args ...string) (string, result) {
	e.t.Helper()
	uf := filepath.Join(e.t.TempDir(), "uuid")
	r := e.run(append([]string{"run", "--uuid-file-save=" + uf}, args...)...)
	b, _ := os.ReadFile(uf)
	return strings.TrimSpace(string(b)), r
}

// Several images make several apps without "---" between them, as in rkt's documentation.
func TestRunSeveralImages(t *testing.T) {
	e := newEnv(t)
	e.importACI(fixture.HelloACI("example.com/worker", "worker here"))
	e.importACI(fixture.HelloACI("example.com/syncer", "syncer here"))
	r := e.run("run", "--net=none", "example.com/worker", "example.com/syncer")
	if r.code != 0 || !strings.Contains(r.out, "worker here\n") || !strings.Contains(r.out, "syncer here\n") {
		t.Fatalf("two images: code %d out %q err %q", r.code, r.out, r.err)
	}
	id, r := e.runUUID("--net=none", e.aci, "--name=a", e.aci, "--name=b")
	if r.code != 0 || r.out != "hello from aci\nhello from aci\n" {
		t.Fatalf("IMAGE --name=a IMAGE --name=b: code %d out %q err %q", r.code, r.out, r.err)
	}
	m := e.run("cat-manifest", id)
	if !strings.Contains(m.out, `"name": "a"`) || !strings.Contains(m.out, `"name": "b"`) {
		t.Fatalf("apps of the pod: %s", m.out)
	}
}

// Arguments after "--" are appended to the image's command; --exec replaces the command.
func TestRunAppArguments(t *testing.T) {
	e := newEnv(t)
	e.importACI(fixture.ACIOptions{Name: "example.com/worker", Exec: []string{"/bin/echo", "worker-default"}})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"example.com/worker"}, "worker-default\n"},
		{[]string{"example.com/worker", "--", "--loglevel", "verbose"}, "worker-default --loglevel verbose\n"},
		{[]string{"example.com/worker", "--exec", "/bin/echo", "--", "--loglevel", "verbose"}, "--loglevel verbose\n"},
		{[]string{"example.com/worker", "--", "one", "---", "example.com/worker", "--name=two", "--exec=/bin/true"}, "worker-default one\n"},
	} {
		r := e.run(append([]string{"run", "--net=none"}, c.args...)...)
		if r.code != 0 || r.out != c.want {
			t.Errorf("rkt run %q: code %d out %q err %q, want %q", c.args, r.code, r.out, r.err, c.want)
		}
	}
}

// --hosts-entry takes comma-separated IP=HOST pairs and repeats; each address gets one line
// with its names, as in rkt's DNS documentation.
func TestRunHostsEntries(t *testing.T) {
	e := newEnv(t)
	r := e.run("run", "--net=none", "--hosts-entry", "198.51.100.0=host1,198.51.100.1=host2", "--hosts-entry", "198.51.100.0=host3",
		e.aci, "--exec=/bin/cat", "--", "/etc/hosts")
	if r.code != 0 || !strings.HasSuffix(r.out, "\n198.51.100.0\thost1 host3\n198.51.100.1\thost2\n") {
		t.Fatalf("code %d /etc/hosts %q err %q", r.code, r.out, r.err)
	}
}

// An image's mount point that no volume fills gets an empty volume of its own, shown in the
// pod manifest; a read-only mount point's volume is read-only.
func TestRunImplicitVolume(t *testing.T) {
	e := newEnv(t)
	id, r := e.runUUID("--net=none", e.aci, "--exec=/bin/sh", "--", "-c", "echo x > /data/f && cat /data/f && grep -c ' /data ' /proc/self/mountinfo")
	if r.code != 0 || r.out != "x\n1\n" {
		t.Fatalf("code %d out %q err %q", r.code, r.out, r.err)
	}
	m := e.run("cat-manifest", id)
	if !strings.Contains(m.out, `"name": "busybox-data"`) || !strings.Contains(m.out, `"kind": "empty"`) || !strings.Contains(m.out, `"path": "/data"`) {
		t.Fatalf("pod manifest: %s", m.out)
	}
	e.importACI(fixture.ACIOptions{Name: "example.com/worker-backup", App: &types.App{
		Exec: types.Exec{"/bin/sh", "-c", "touch /backup/x 2>/dev/null || echo read-only"}, User: "0", Group: "0",
		MountPoints: []types.MountPoint{{Name: "work", Path: "/backup", ReadOnly: true}}}})
	r = e.run("run", "--net=none", "example.com/worker-backup")
	if r.code != 0 || r.out != "read-only\n" {
		t.Fatalf("read-only mount point: code %d out %q err %q", r.code, r.out, r.err)
	}
}

// rkt's MapReduce example: two images whose mount points share one host volume by name, the
// backup's read-only.
func TestRunMapReduceExample(t *testing.T) {
	e := newEnv(t)
	e.importACI(fixture.ACIOptions{Name: "example.com/reduce-worker", App: &types.App{
		Exec: types.Exec{"/bin/sh", "-c", "echo reduced > /var/lib/work/out"}, User: "0", Group: "0",
		MountPoints: []types.MountPoint{{Name: "work", Path: "/var/lib/work"}}}})
	e.importACI(fixture.ACIOptions{Name: "example.com/worker-backup", App: &types.App{
		Exec: types.Exec{"/bin/sh", "-c", "for i in $(seq 100); do [ -s /backup/out ] && break; sleep 0.05; done; cat /backup/out; touch /backup/x 2>/dev/null || echo read-only"},
		User: "0", Group: "0", MountPoints: []types.MountPoint{{Name: "work", Path: "/backup", ReadOnly: true}}}})
	work := t.TempDir()
	r := e.run("run", "--net=none", "--volume=work,kind=host,source="+work, "example.com/reduce-worker", "example.com/worker-backup")
	if r.code != 0 || r.out != "reduced\nread-only\n" {
		t.Fatalf("code %d out %q err %q", r.code, r.out, r.err)
	}
	if b, _ := os.ReadFile(filepath.Join(work, "out")); string(b) != "reduced\n" {
		t.Fatalf("host volume: %q", b)
	}
}
