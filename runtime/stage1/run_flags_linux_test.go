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

// rkt's environment example: --inherit-env, --set-env-file, --set-env and --environment in
// their order of precedence.
func TestRunEnvironment(t *testing.T) {
	e := newEnv(t)
	file := filepath.Join(t.TempDir(), "env")
	os.WriteFile(file, []byte("# from a file\nFROM_FILE=file\nEXAMPLE_OVERRIDE=file\n"), 0o644)
	show := []string{"--exec=/bin/sh", "--", "-c", "echo $EXAMPLE_ENV $FOO $EXAMPLE_OVERRIDE $FROM_FILE $FROM_IMAGE"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{"--inherit-env", "--set-env=FOO=bar", "--set-env=EXAMPLE_OVERRIDE=over", e.aci}, show...), "hello bar over aci\n"},
		{append([]string{"--inherit-env", "--set-env=FOO=bar", "--set-env=EXAMPLE_OVERRIDE=over", e.aci, "--environment=EXAMPLE_OVERRIDE=ride"}, show...), "hello bar ride aci\n"},
		{append([]string{"--set-env-file=" + file, e.aci}, show...), "file file aci\n"},
		{append([]string{"--set-env-file=" + file, "--set-env=EXAMPLE_OVERRIDE=over", e.aci}, show...), "over file aci\n"},
	} {
		cmd := e.cmd(append([]string{"run", "--net=none"}, c.args...)...)
		cmd.Env = append(os.Environ(), "EXAMPLE_ENV=hello", "EXAMPLE_OVERRIDE=under", "FROM_IMAGE=host")
		out, err := cmd.Output()
		if err != nil || string(out) != c.want {
			t.Errorf("rkt run %q: %q %v, want %q", c.args, out, err, c.want)
		}
	}
}

// --readonly-rootfs, --supplementary-gids, --user-annotation, --user-label and a --mount
// before the first image, for every app.
func TestRunAppSettings(t *testing.T) {
	e := newEnv(t)
	try := []string{"--exec=/bin/sh", "--", "-c", "touch /x 2>/dev/null && echo rw || echo ro"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append([]string{e.aci}, try...), "rw\n"},
		{append([]string{e.aci, "--readonly-rootfs"}, try...), "ro\n"},
		{append([]string{"--readonly-rootfs", e.aci}, try...), "ro\n"},
		{append([]string{"--readonly-rootfs", e.aci, "--readonly-rootfs=false"}, try...), "rw\n"},
		{[]string{e.aci, "--user=app", "--group=app", "--supplementary-gids=2000,3000", "--exec=/bin/id", "--", "-G"}, "1000 2000 3000\n"},
	} {
		r := e.run(append([]string{"run", "--net=none"}, c.args...)...)
		if r.code != 0 || r.out != c.want {
			t.Errorf("rkt run %q: code %d out %q err %q, want %q", c.args, r.code, r.out, r.err, c.want)
		}
	}
	id, r := e.runUUID("--net=none", "--user-annotation=team=infra", "--user-label=tier=1",
		e.aci, "--user-annotation=owner=me", "--user-label=app=web", "--exec=/bin/true")
	m := e.run("cat-manifest", id)
	for _, want := range []string{`"owner": "me"`, `"app": "web"`, `"team": "infra"`, `"tier": "1"`} {
		if r.code != 0 || !strings.Contains(m.out, want) {
			t.Errorf("pod manifest without %s: %s (%s)", want, m.out, r.err)
		}
	}
	r = e.run("run", "--net=none", "--volume=shared,kind=empty", "--mount", "volume=shared,target=/shared",
		e.aci, "--name=writer", "--exec=/bin/sh", "--", "-c", "echo from-writer > /shared/f",
		"---", e.aci, "--name=reader", "--exec=/bin/sh", "--", "-c", "for i in $(seq 100); do [ -s /shared/f ] && break; sleep 0.05; done; cat /shared/f")
	if r.code != 0 || r.out != "from-writer\n" {
		t.Errorf("a pod-level --mount: code %d out %q err %q", r.code, r.out, r.err)
	}
}

// rkt's pod manifest walkthrough: the manifest of a pod that ran, edited, runs as a pod of
// its own (rkt run --pod-manifest), and through rkt prepare --pod-manifest.
func TestRunPodManifest(t *testing.T) {
	e := newEnv(t)
	id, r := e.runUUID("--net=none", e.aci, "--exec=/bin/echo", "--", "first")
	if r.code != 0 || r.out != "first\n" {
		t.Fatalf("first pod: code %d out %q err %q", r.code, r.out, r.err)
	}
	m := e.run("cat-manifest", id)
	pm := filepath.Join(t.TempDir(), "pod-manifest.json")
	if err := os.WriteFile(pm, []byte(strings.Replace(m.out, `"first"`, `"from the manifest"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	r = e.run("run", "--net=none", "--pod-manifest="+pm)
	if r.code != 0 || r.out != "from the manifest\n" {
		t.Fatalf("run --pod-manifest: code %d out %q err %q", r.code, r.out, r.err)
	}
	r = e.run("prepare", "--net=none", "--pod-manifest="+pm)
	uuid := strings.TrimSpace(r.out)
	if r.code != 0 || len(uuid) != 36 {
		t.Fatalf("prepare --pod-manifest: code %d out %q err %q", r.code, r.out, r.err)
	}
	if r = e.run("run-prepared", uuid); r.code != 0 || r.out != "from the manifest\n" {
		t.Fatalf("run-prepared: code %d out %q err %q", r.code, r.out, r.err)
	}
}

// rkt run-prepared takes the network flags rkt allows there: they replace what the pod was
// prepared with.
func TestRunPreparedFlags(t *testing.T) {
	e := newEnv(t)
	r := e.run("prepare", "--quiet", "--net=host", "--hostname=before", e.aci, "--exec=/bin/sh", "--",
		"-c", "hostname; tail -n 1 /etc/hosts; grep -v '^#' /etc/resolv.conf; ls /sys/class/net | wc -l")
	uuid := strings.TrimSpace(r.out)
	if r.code != 0 || len(uuid) != 36 {
		t.Fatalf("prepare --quiet: code %d out %q err %q", r.code, r.out, r.err)
	}
	r = e.run("run-prepared", "--net=none", "--hostname=after", "--hosts-entry=10.0.0.7=db,10.0.0.7=database",
		"--dns=10.0.0.53", "--dns-search=example.com", "--mds-register=false", uuid)
	want := "after\n10.0.0.7\tdb database\n\nsearch example.com\nnameserver 10.0.0.53\n1\n"
	if r.code != 0 || r.out != want {
		t.Fatalf("run-prepared: code %d out %q err %q, want %q", r.code, r.out, r.err, want)
	}
}
