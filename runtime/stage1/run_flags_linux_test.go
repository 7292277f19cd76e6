package stage1_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
