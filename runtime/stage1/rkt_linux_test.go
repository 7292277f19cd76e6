package stage1_test

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/runtime/fixture"
	"github.com/cairn-os/cairn/runtime/store"
)

var (
	rktOnce   sync.Once
	rktPath   string
	rktErr    error
	rktTmpDir string
)

// rktBinary is $CAIRN_BIN/rkt, or rkt built once for this test binary (with seccomp support).
func rktBinary(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t)
	rktOnce.Do(func() {
		if d := os.Getenv("CAIRN_BIN"); d != "" {
			rktPath = filepath.Join(d, "rkt")
			return
		}
		rktTmpDir, rktErr = os.MkdirTemp("", "cairn-rkt-bin-")
		if rktErr != nil {
			return
		}
		rktPath = filepath.Join(rktTmpDir, "rkt")
		cmd := exec.Command("go", "build", "-tags", "seccomp", "-o", rktPath, "github.com/cairn-os/cairn/runtime/cmd/rkt")
		if out, err := cmd.CombinedOutput(); err != nil {
			rktErr = &buildError{err, string(out)}
		}
	})
	if rktErr != nil {
		t.Fatal(rktErr)
	}
	return rktPath
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build rkt: " + e.err.Error() + "\n" + e.out }

// env is one scratch rkt data directory with the fixture images imported.
type env struct {
	t   *testing.T
	rkt string
	dir string
	aci string // ACI name
	oci string // OCI image ID
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rkt := rktBinary(t)
	testenv.RequireFile(t, fixture.BusyboxPath)
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := fixture.WriteACI(&buf, fixture.ACIOptions{
		Name:   fixture.ACIName,
		Labels: map[string]string{"version": fixture.ACIVersion},
		App: &types.App{Exec: types.Exec{"/bin/sh", "-c", "echo hello from aci"}, User: "0", Group: "0",
			Environment: types.Environment{{Name: "FROM_IMAGE", Value: "aci"}},
			MountPoints: []types.MountPoint{{Name: "data", Path: "/data"}}},
		Files: map[string]string{"etc/passwd": "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/:/bin/sh\n", "etc/group": "root:x:0:\napp:x:1000:\n"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ImportACI(context.Background(), &buf, store.ImportOptions{Name: fixture.ACIName, Trusted: true}); err != nil {
		t.Fatal(err)
	}
	layer, err := fixture.BusyboxLayerTar()
	if err != nil {
		t.Fatal(err)
	}
	oimg, err := fixture.OCIImage([]string{"/bin/sh", "-c", "echo hello from oci; cat /etc/hello.txt"}, layer, mustLayer(t, fixture.HelloPath, fixture.HelloText))
	if err != nil {
		t.Fatal(err)
	}
	oi, err := st.ImportOCI(context.Background(), oimg, store.ImportOptions{Name: fixture.OCIName, Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, rkt: rkt, dir: dir, aci: fixture.ACIName, oci: oi.ID}
	t.Cleanup(func() {
		// Whatever a test left, gc with no grace period must clean it.
		e.run("gc", "--grace-period=0s")
		e.run("gc", "--grace-period=0s")
	})
	return e
}

func mustLayer(t *testing.T, path, content string) []byte {
	t.Helper()
	b, err := fixture.LayerTar([]fixture.Entry{{Header: tarFile(path, len(content)), Body: content}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tarFile(path string, size int) tar.Header {
	return tar.Header{Name: path, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg, ModTime: fixture.Mtime}
}

type result struct {
	out, err string
	code     int
}

func (e *env) cmd(args ...string) *exec.Cmd {
	c := exec.Command(e.rkt, append([]string{"--dir=" + e.dir}, args...)...)
	return c
}

func (e *env) run(args ...string) result {
	e.t.Helper()
	c := e.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("rkt %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

// podLeftovers counts what pods of this data directory left on the host: mounts under it,
// cgroups named rkt-<uuid> of its pods, and processes in them.
func (e *env) podLeftovers() []string {
	var left []string
	mi, _ := os.ReadFile("/proc/thread-self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, e.dir) {
			left = append(left, "mount "+l)
		}
	}
	uuids := map[string]bool{}
	for _, ph := range []string{"embryo", "prepare", "prepared", "run", "exited-garbage", "garbage"} {
		ents, _ := os.ReadDir(filepath.Join(e.dir, "pods", ph))
		for _, en := range ents {
			uuids[en.Name()] = true
		}
	}
	own, _ := os.ReadFile("/proc/self/cgroup")
	for _, line := range strings.Split(strings.TrimSpace(string(own)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || parts[1] == "" {
			continue
		}
		h := strings.TrimPrefix(strings.Split(parts[1], ",")[0], "name=")
		base := filepath.Join("/sys/fs/cgroup", h, parts[2])
		ents, _ := os.ReadDir(base)
		for _, en := range ents {
			if strings.HasPrefix(en.Name(), "rkt-") && uuids[strings.TrimPrefix(en.Name(), "rkt-")] {
				left = append(left, "cgroup "+filepath.Join(base, en.Name()))
			}
		}
	}
	return left
}

func TestRktRunACIAndOCI(t *testing.T) {
	e := newEnv(t)
	r := e.run("run", "--net=none", e.aci)
	if r.code != 0 || r.out != "hello from aci\n" {
		t.Fatalf("run aci: code %d out %q err %q", r.code, r.out, r.err)
	}
	r = e.run("run", "--net=none", e.oci)
	if r.code != 0 || r.out != "hello from oci\n"+fixture.HelloText {
		t.Fatalf("run oci: code %d out %q err %q", r.code, r.out, r.err)
	}
	r = e.run("run", "--net=none", e.aci, "--exec=/bin/sh", "--", "-c", "exit 42")
	if r.code != 42 {
		t.Fatalf("exit status %d, want 42 (stderr %q)", r.code, r.err)
	}
	if left := e.podLeftovers(); len(left) > 0 {
		t.Fatalf("leftovers after runs:\n%s", strings.Join(left, "\n"))
	}
}
